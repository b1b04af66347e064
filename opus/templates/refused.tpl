% rebase('base')
<h1 class="h3">{{title}}</h1>
% if done:
<p>{{done}} job{{'s' if done != 1 else ''}} done.</p>
% end
<ul>
% for job, reason in refused:
  <li><code class="text-break">{{job}}</code>: {{reason}}</li>
% end
</ul>
<p><a href="{{back}}">Back to the job list</a></p>

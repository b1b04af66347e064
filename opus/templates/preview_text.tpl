% if preview.note:
<p class="small text-body-secondary">{{preview.note}}: shown as text.</p>
% end
<pre class="preview{{' preview-short' if not full else ''}}" tabindex="0" aria-label="Content of {{name}}">{{preview.text}}</pre>
% include('preview_more', preview=preview, download=download, page=page, full=full)

% if preview.truncated:
<p class="small">The first {{size(preview.read)}} of {{size(preview.size)}}:
% if not full:
<a href="{{page}}">see more</a> or
% end
<a href="{{download}}">download the rest</a>.</p>
% end

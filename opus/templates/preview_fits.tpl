% if preview.quicklook:
<figure class="mb-2">
  <img class="preview-quicklook border{{'' if full else ' preview-thumbnail'}}" src="{{page}}/quicklook.png" alt="Quick look of the image of {{name}}" loading="lazy">
  <figcaption class="small text-body-secondary">Quick look of the image ({{preview.image}}), scaled with ZScale{{'' if full else ', downsampled'}}.</figcaption>
</figure>
% elif preview.image:
<p class="small text-body-secondary">{{preview.image}}.</p>
% end
% if preview.text:
<pre class="preview{{' preview-short' if not full else ''}}" tabindex="0" aria-label="Primary header of {{name}}">{{preview.text}}</pre>
% if preview.note:
<p class="small">Shown: {{preview.note}}{{'' if full else ':'}}
% if not full:
<a href="{{page}}">see the whole header</a>.
% end
</p>
% end
% elif preview.note:
<p class="small text-body-secondary">No preview: {{preview.note}}.</p>
% end
% include('preview_samp', preview=preview, result=result, name=name, page=page)

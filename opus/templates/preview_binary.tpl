% if preview.note:
<p class="small text-body-secondary mb-1">{{preview.note}}.</p>
% end
<p class="small text-body-secondary mb-0">No preview for this type of file: download it.</p>

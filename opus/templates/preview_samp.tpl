% if preview.samp:
<div class="d-flex flex-wrap gap-2 align-items-center js-only" data-samp>
  <button type="button" class="btn btn-sm btn-outline-primary" data-samp-mtype="{{preview.samp}}" data-samp-share="{{page}}/share" data-samp-name="{{name}}">Send to SAMP<span class="visually-hidden"> {{result.result_id}}</span></button>
  <span class="small" data-samp-status role="status" aria-live="polite"></span>
</div>
% end

% result = shown.result
% preview = shown.preview
% download = '/store/' + q(job.id) + '/' + q(result.result_id)
% page = job_url(job.jobname, job.id) + '/results/' + q(result.result_id)
<article class="card mb-3" aria-labelledby="result-{{q(result.result_id)}}">
  <div class="card-header d-flex flex-wrap gap-2 align-items-center">
    <h3 class="h6 mb-0 me-auto text-break" id="result-{{q(result.result_id)}}">{{result.result_id}}</h3>
    <a class="btn btn-sm btn-primary" href="{{download}}" download="{{shown.name}}">Download<span class="visually-hidden"> {{result.result_id}}</span></a>
% if get('entity_of'):
    <a class="btn btn-sm btn-outline-secondary" href="/entities/{{entity_of(job.id, result.result_id)}}" data-entity-link>Provenance<span class="visually-hidden"> of {{result.result_id}}</span></a>
% end
% if not full:
    <a class="btn btn-sm btn-outline-secondary" href="{{page}}">Preview<span class="visually-hidden"> {{result.result_id}}</span></a>
% end
  </div>
  <div class="card-body">
    <dl class="row small mb-2">
      <dt class="col-sm-2">File</dt><dd class="col-sm-10 text-break">{{shown.name}}</dd>
      <dt class="col-sm-2">Type</dt><dd class="col-sm-10 text-break">{{result.content_type}}</dd>
      <dt class="col-sm-2">Size</dt><dd class="col-sm-10">{{size(result.size)}} ({{result.size}} bytes)</dd>
      <dt class="col-sm-2">SHA-256</dt><dd class="col-sm-10 hash"><code>{{result.sha256}}</code></dd>
    </dl>
% include('preview_' + preview.kind, preview=preview, result=result, name=shown.name, download=download, page=page, full=full)
  </div>
</article>

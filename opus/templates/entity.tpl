% rebase('base')
<h1 class="h3 text-break">{{'Result' if entity.kind == 'result' else 'Input'}} <span class="text-body-secondary">{{entity.name}}</span></h1>
<dl class="row entity-facts" data-entity="{{entity.id}}">
  <dt class="col-sm-3">Entity ID</dt><dd class="col-sm-9 text-break"><code>{{entity.id}}</code></dd>
  <dt class="col-sm-3">Name</dt><dd class="col-sm-9 text-break">{{entity.name}}</dd>
  <dt class="col-sm-3">Kind</dt><dd class="col-sm-9">{{entity.kind}}</dd>
  <dt class="col-sm-3">Content type</dt><dd class="col-sm-9 text-break">{{entity.content_type}}</dd>
  <dt class="col-sm-3">Size</dt><dd class="col-sm-9">{{size(entity.size)}} ({{entity.size}} bytes)</dd>
  <dt class="col-sm-3">SHA-256</dt><dd class="col-sm-9 hash"><code>{{entity.sha256}}</code></dd>
  <dt class="col-sm-3">Created</dt><dd class="col-sm-9"><time datetime="{{iso(entity.creation_time)}}">{{when(entity.creation_time)}}</time></dd>
  <dt class="col-sm-3">Owner</dt><dd class="col-sm-9 text-break">{{entity.owner}}</dd>
% if entity.source:
  <dt class="col-sm-3">Fetched from</dt><dd class="col-sm-9 text-break"><code>{{entity.source}}</code></dd>
% end
</dl>
<section aria-labelledby="made-title" class="mb-4">
  <h2 class="h4" id="made-title">{{'Made by' if entity.kind == 'result' else 'Given to'}}</h2>
% if job is None:
  <p data-made-by>{{'Made by a job that was deleted' if entity.kind == 'result' else 'Given to a job that was deleted'}} (<code>{{entity.job_id}}</code>).</p>
% else:
  <p data-made-by><a href="{{job_url(job.jobname, job.id)}}">{{job.jobname}} job {{job.run_id or job.id}}</a>, {{'as its result' if entity.kind == 'result' else 'as its input'}} <code>{{entity.name}}</code> (<span>{{job.phase.value}}</span>).</p>
% end
</section>
<section aria-labelledby="used-title" class="mb-4">
  <h2 class="h4" id="used-title">Used by</h2>
% if uses:
  <ul data-used-by>
% for use in uses:
    <li><a href="{{job_url(use.job.jobname, use.job.id)}}">{{use.job.jobname}} job {{use.job.run_id or use.job.id}}</a>, as its input <code>{{use.role}}</code> ({{use.job.phase.value}})</li>
% end
  </ul>
% else:
  <p class="text-body-secondary">No job of yours used it.</p>
% end
</section>
<section aria-labelledby="file-title" class="mb-4">
  <h2 class="h4" id="file-title">File</h2>
% if entity.present:
  <p><a class="btn btn-primary" href="/store/{{entity.id}}" download>Download<span class="visually-hidden"> {{entity.name}}</span></a>
    <a class="btn btn-outline-secondary" href="/provsap?ID={{entity.id}}&amp;DEPTH=1&amp;DIRECTION=BOTH&amp;RESPONSEFORMAT=PROV-SVG">Provenance graph</a></p>
  <p class="small text-body-secondary">To use it as the input of a new job, give its entity ID (or choose it among "my results" in the form): <code>{{entity.id}}</code></p>
% else:
  <p class="text-body-secondary">The file was deleted with its job.</p>
% end
</section>

% rebase('base', modules=('job.js', 'samp.js'))
% url = job_url(job.jobname, job.id)
% label = job.run_id or job.id
<div id="job" data-job-path="/rest/{{q(job.jobname)}}/{{q(job.id)}}" data-phase="{{job.phase}}" data-version="{{job.version}}">
<h1 class="h3 text-break">{{job.jobname}} job <span class="text-body-secondary">{{label}}</span></h1>
<section data-live="status" aria-labelledby="status-title">
  <h2 class="visually-hidden" id="status-title">Status</h2>
  <p class="fs-5">Phase: <span data-live-phase aria-live="polite">
% include('phase', phase=job.phase)
</span></p>
% progress = job.progress if job.phase in (Phase.QUEUED, Phase.EXECUTING) else None
% percent = '%g' % (progress or 0)
% said = percent + ' %' + (': ' + job.progress_message if job.progress_message else '')
  <div class="mb-3" data-live-progress{{!'' if progress is not None else ' hidden'}}>
    <div class="progress" role="progressbar" aria-label="Progress of the job" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{{percent}}" aria-valuetext="{{said}}">
      <div class="progress-bar" data-progress-bar></div>
    </div>
    <p class="small mt-1 mb-0 text-break"><span data-progress-percent>{{percent}} %</span> <span class="text-body-secondary" data-progress-message>{{job.progress_message or ''}}</span></p>
  </div>
% if job.error_message:
  <div class="alert alert-danger" role="alert"><strong>Error:</strong> <span class="pre-wrap">{{job.error_message}}</span></div>
% end
  <dl class="row job-facts">
    <dt class="col-sm-3">Job ID</dt><dd class="col-sm-9 text-break"><code>{{job.id}}</code></dd>
    <dt class="col-sm-3">Run ID</dt><dd class="col-sm-9 text-break">{{job.run_id or '—'}}</dd>
    <dt class="col-sm-3">Owner</dt><dd class="col-sm-9 text-break">{{job.owner}}</dd>
    <dt class="col-sm-3">Created</dt><dd class="col-sm-9"><time datetime="{{iso(job.creation_time)}}">{{when(job.creation_time)}}</time></dd>
    <dt class="col-sm-3">Started</dt><dd class="col-sm-9"><time datetime="{{iso(job.start_time)}}">{{when(job.start_time) or '—'}}</time></dd>
    <dt class="col-sm-3">Ended</dt><dd class="col-sm-9"><time datetime="{{iso(job.end_time)}}">{{when(job.end_time) or '—'}}</time></dd>
    <dt class="col-sm-3">Duration</dt><dd class="col-sm-9">{{duration(job.start_time, job.end_time) or '—'}}</dd>
    <dt class="col-sm-3">Execution duration</dt><dd class="col-sm-9">{{job.execution_duration}} s at most</dd>
% if job.quote:
    <dt class="col-sm-3">Expected end</dt><dd class="col-sm-9"><time datetime="{{iso(job.quote)}}">{{when(job.quote)}}</time></dd>
% end
    <dt class="col-sm-3">Destruction</dt><dd class="col-sm-9"><time datetime="{{iso(job.destruction_time)}}">{{when(job.destruction_time) or '—'}}</time></dd>
% if job.definition_hash:
    <dt class="col-sm-3">Definition</dt><dd class="col-sm-9 text-break" data-definition-revision="{{job.definition_revision or ''}}">{{'revision %d' % job.definition_revision if job.definition_revision else 'a draft (trial job)'}}{{', version ' + definition.version if definition else ''}} <code title="SHA-256 of the definition">{{job.definition_hash[:12]}}</code></dd>
% end
% if job.source_url:
    <dt class="col-sm-3">Source code</dt><dd class="col-sm-9 text-break" data-source-commit="{{job.source_commit or ''}}"><code>{{job.source_url}}</code> at <code>{{job.source_ref}}</code>
% if job.source_commit:
      (commit <code>{{job.source_commit}}</code>)
% end
    </dd>
% end
  </dl>
  <form method="post" class="d-flex flex-wrap gap-2 mb-4 job-actions">
    <input type="hidden" name="csrf_token" value="{{viewer.csrf_token}}">
    <input type="hidden" name="next" value="{{url}}">
% if job.phase == Phase.PENDING:
    <button type="submit" class="btn btn-primary" formaction="{{url}}/run">Run</button>
% end
% if can_abort(job.phase):
    <button type="submit" class="btn btn-warning" formaction="{{url}}/abort">Abort</button>
% end
    <button type="submit" class="btn btn-outline-danger" formaction="{{url}}/delete" data-confirm="Delete this job and its files?">Delete</button>
% if job.jobname in viewer.job_types:
    <a class="btn btn-outline-secondary" href="/jobs/new/{{q(job.jobname)}}?rerun={{q(job.id)}}">Rerun</a>
% end
% if results:
    <a class="btn btn-outline-secondary" href="{{url}}/results.zip" download>Download all</a>
% end
  </form>
</section>
<section aria-labelledby="parameters-title" class="mb-4">
  <h2 class="h4" id="parameters-title">Parameters</h2>
% if details.parameters:
  <div class="table-responsive">
  <table class="table table-sm">
    <thead><tr><th scope="col">Name</th><th scope="col">Value</th><th scope="col">About</th></tr></thead>
    <tbody>
% for param in details.parameters:
% about = definition.parameter(param.name) if definition else None
% entity = definition.used_entity(param.name) if definition else None
    <tr>
      <th scope="row" class="text-break">{{param.name}}</th>
      <td class="text-break pre-wrap">{{param.value}}{{' (fetched from this URL)' if param.by_reference else ''}}{{(' ' + about.unit) if about and about.unit else ''}}</td>
      <td class="small text-body-secondary">{{about.annotation if about else (entity.annotation if entity else ('an option of the job manager' if param.name in option_names else ''))}}</td>
    </tr>
% end
    </tbody>
  </table>
  </div>
% else:
  <p>No parameters.</p>
% end
</section>
<section data-live="results" aria-labelledby="results-title" class="mb-4">
  <h2 class="h4" id="results-title">Results</h2>
% if not results:
  <p class="text-body-secondary">{{'No results yet.' if is_active(job.phase) else 'No results.'}}</p>
% end
% for shown in results:
% include('result_card', shown=shown, job=job, full=False)
% end
</section>
<section data-live="streams" aria-labelledby="streams-title" class="mb-4">
  <h2 class="h4" id="streams-title">Output</h2>
% for stream in streams:
  <h3 class="h6">{{stream.name}}</h3>
% if stream.size:
  <pre class="preview log" data-stream="{{stream.name}}" tabindex="0" aria-label="{{stream.name}} of the job">{{stream.text}}</pre>
% if stream.truncated:
  <p class="small">The last {{size(stream.shown)}} of {{size(stream.size)}}: <a href="/rest/{{q(job.jobname)}}/{{q(job.id)}}/{{stream.name}}">download the whole {{stream.name}}</a>.</p>
% end
% else:
  <p class="text-body-secondary small" data-stream="{{stream.name}}">Nothing on {{stream.name}}{{' yet' if is_active(job.phase) else ''}}.</p>
% end
% end
</section>
<section data-live="provenance" aria-labelledby="provenance-title" class="mb-4">
  <h2 class="h4" id="provenance-title">Provenance</h2>
% if job.phase in (Phase.COMPLETED, Phase.ERROR, Phase.ABORTED, Phase.ARCHIVED):
% walk = '/provsap?ID=' + q(job.id) + '&DIRECTION=BOTH&RESPONSEFORMAT=PROV-SVG&DEPTH=1'
  <div data-provenance data-job-id="{{job.id}}" data-base-url="{{base_url}}">
    <div class="d-flex flex-wrap gap-3 mb-2" data-provenance-controls hidden>
      <div>
        <label class="form-label small mb-0" for="provenance-depth">Depth</label>
        <select class="form-select form-select-sm" id="provenance-depth" data-provenance-depth>
% for depth in ('1', '2', '3', 'ALL'):
          <option value="{{depth}}"{{!' selected' if depth == '1' else ''}}>{{'all' if depth == 'ALL' else depth}}</option>
% end
        </select>
      </div>
      <div>
        <label class="form-label small mb-0" for="provenance-direction">Direction</label>
        <select class="form-select form-select-sm" id="provenance-direction" data-provenance-direction>
% for value, text in (('BACK', 'back: what it came from'), ('FORWARD', 'forward: what came of it'), ('BOTH', 'both')):
          <option value="{{value}}"{{!' selected' if value == 'BOTH' else ''}}>{{text}}</option>
% end
        </select>
      </div>
      <div class="align-self-end">
        <button type="button" class="btn btn-sm btn-outline-secondary" aria-pressed="false" data-provenance-full-size>Full size</button>
      </div>
    </div>
    <div class="overflow-auto border rounded mb-2 provenance-graph" tabindex="0" aria-label="Provenance graph (scrolls)">
      <img src="{{walk}}" usemap="#provenance-map" alt="The provenance graph of this job: the entities it used and made, and the jobs around it (listed below the image)." data-provenance-image>
      <map name="provenance-map" id="provenance-map" data-provenance-map></map>
    </div>
    <ul class="small" data-provenance-nodes aria-label="The nodes of the provenance graph"></ul>
  </div>
  <p class="small mb-0">Download the provenance of this job:
% for fmt, text in (('json', 'PROV-JSON'), ('xml', 'PROV-XML'), ('provn', 'PROV-N'), ('svg', 'SVG'), ('png', 'PNG')):
    <a href="/rest/{{q(job.jobname)}}/{{q(job.id)}}/provenance?format={{fmt}}" download data-provenance-download="{{fmt}}">{{text}}</a>
% end
  </p>
% else:
  <p class="text-body-secondary">The provenance is recorded when the job ends.</p>
% end
</section>
</div>

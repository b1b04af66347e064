% rebase('base', modules=('form.js',))
<h1 class="h3">{{title}}</h1>
<p class="annotation">{{definition.annotation}}</p>
% if rerun:
<p class="alert alert-info">The values of job <a class="alert-link" href="{{job_url(definition.name, rerun)}}">{{rerun}}</a>, whose input files are reused unless you give others.</p>
% end
% if message:
<div class="alert alert-danger" role="alert" id="form-error">{{message}}</div>
% end
% if any(f.error for f in required + optional + advanced):
<div class="alert alert-danger" role="alert" id="form-error">The job was not created: see the fields marked below.</div>
% end
<form method="post" action="/jobs/new/{{q(definition.name)}}" enctype="multipart/form-data" class="job-form" data-job-form data-max-upload="{{max_upload}}">
  <input type="hidden" name="csrf_token" value="{{viewer.csrf_token}}">
% if rerun:
  <input type="hidden" name="opus.rerun" value="{{rerun}}">
% end
% if not required and not optional:
  <p>This job type takes no parameters.</p>
% end
% for f in required:
% include('field', f=f)
% end
% if optional:
  <details class="mb-3"{{!' open' if optional_open else ''}}>
    <summary class="mb-2">Show optional parameters ({{len(optional)}})</summary>
% for f in optional:
% include('field', f=f)
% end
  </details>
% end
  <details class="mb-3"{{!' open' if advanced_open else ''}}>
    <summary class="mb-2">Advanced</summary>
% for f in advanced:
% include('field', f=f)
% end
  </details>
  <div class="d-flex flex-wrap gap-2">
    <button type="submit" class="btn btn-primary" name="PHASE" value="RUN">Run</button>
    <button type="submit" class="btn btn-outline-secondary">Save as pending</button>
  </div>
</form>

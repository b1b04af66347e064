% rebase('base', modules=('form.js',))
<h1 class="h3">{{title}}</h1>
<p class="annotation">{{definition.annotation}}</p>
% if rerun:
<p class="alert alert-info">The values of job <a class="alert-link" href="{{job_url(definition.name, rerun)}}">{{rerun}}</a>, whose input files are reused unless you give others.</p>
% end
% if message:
<div class="alert alert-danger" role="alert" id="form-error">{{message}}</div>
% end
% if each_error or any(f.error for f in required + optional + advanced):
<div class="alert alert-danger" role="alert" id="form-error">The job was not created: see the fields marked below.</div>
% end
<form method="post" action="/jobs/new/{{q(definition.name)}}" enctype="multipart/form-data" class="job-form" data-job-form data-max-upload="{{max_upload}}" data-batch-max="{{batch_max}}">
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
% if batch_inputs:
  <div class="mb-3 batch-choice" data-batch-choice>
    <div class="form-check">
      <input class="form-check-input{{' is-invalid' if each_error else ''}}" type="checkbox" id="batch-each" name="opus.each" value="true"{{!' checked' if each else ''}} aria-describedby="batch-each-help{{' batch-each-error' if each_error else ''}}" data-batch-each>
      <label class="form-check-label" for="batch-each">Run once per file{{(' of ' + batch_inputs[0]) if several_files and len(batch_inputs) == 1 else ''}}</label>
    </div>
% if len(batch_inputs) == 1:
    <input type="hidden" name="opus.each.input" value="{{batch_inputs[0]}}" data-batch-input>
% else:
    <label class="form-label small mb-0 mt-1" for="batch-input">Input to run once per file</label>
    <select class="form-select form-select-sm" id="batch-input" name="opus.each.input" data-batch-input>
% for name in batch_inputs:
      <option value="{{name}}"{{!' selected' if name == each else ''}}>{{name}}</option>
% end
    </select>
% end
    <div class="form-text" id="batch-each-help">One job for each file given for {{batch_inputs[0] if len(batch_inputs) == 1 else 'the input chosen'}}, uploaded or chosen among your results, every other value the same: at most {{batch_max}} files, the uploads at most {{size(max_upload)}} together. The jobs share the run ID (yours, or “batch” and the time); the job list shows them.</div>
% if each_error:
    <div class="invalid-feedback d-block" id="batch-each-error" role="alert">{{each_error}}</div>
% end
  </div>
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

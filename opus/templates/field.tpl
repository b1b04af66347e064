% help_id = f.id + '-help'
% error_id = f.id + '-error'
% described = help_id + (' ' + error_id if f.error else '')
% invalid = ' is-invalid' if f.error else ''
<div class="mb-3 field" data-field="{{f.name}}">
% if f.widget == 'checkbox':
  <input type="hidden" name="opus.booleans" value="{{f.name}}">
  <div class="form-check">
    <input class="form-check-input{{invalid}}" type="checkbox" id="{{f.id}}" name="{{f.name}}" value="true"{{!' checked' if f.checked else ''}} aria-describedby="{{described}}">
    <label class="form-check-label" for="{{f.id}}">{{f.name}}</label>
  </div>
% elif f.widget == 'file':
  <fieldset class="file-input" data-file-input="{{f.name}}"{{!' data-required' if f.required else ''}}{{!' data-several' if f.multiple else ''}}{{!' data-batch' if f.batch else ''}} aria-describedby="{{described}}">
    <legend class="form-label fs-6 mb-1">{{f.name}}
% if f.required:
      <span class="text-danger" aria-hidden="true">*</span><span class="visually-hidden"> (required)</span>
% end
    </legend>
    <div class="mb-1">
% for source, text in (('file', 'Upload a file' + ('s' if f.multiple else '')), ('url', 'Give a URL'), ('reuse', 'Reuse the file of the job rerun'), ('results', 'Choose among my results')):
% if (source != 'reuse' or f.reuse) and (source != 'results' or f.batch):
      <div class="form-check form-check-inline"{{!' data-results-choice hidden' if source == 'results' else ''}}>
        <input class="form-check-input" type="radio" name="{{f.name}}.source" value="{{source}}" id="{{f.id}}-source-{{source}}"{{!' checked' if f.source == source else ''}}>
        <label class="form-check-label" for="{{f.id}}-source-{{source}}">{{text}}</label>
      </div>
% end
% end
    </div>
    <div data-source="file">
      <label class="form-label small" for="{{f.id}}-file">{{f.name}}: file{{'s' if f.multiple else ''}} to upload</label>
      <input class="form-control{{invalid}}" type="file" id="{{f.id}}-file" name="{{f.name}}"{{!' multiple' if f.multiple or f.batch else ''}}
% if f.accept:
        accept="{{f.accept}}"
% end
        >
    </div>
    <div data-source="url">
      <label class="form-label small" for="{{f.id}}-url">{{f.name}}: URL of the file</label>
      <input class="form-control{{invalid}}" type="url" id="{{f.id}}-url" name="{{f.name}}.url" value="{{f.value}}" placeholder="https://" inputmode="url">
    </div>
    <div class="mt-1" data-pick-result hidden>
      <label class="form-label small mb-0" for="{{f.id}}-pick">{{f.name}}: or one of my results</label>
      <select class="form-select form-select-sm" id="{{f.id}}-pick" data-pick-for="{{f.id}}-url"></select>
    </div>
% if f.batch:
    <fieldset class="mt-1 result-choices" data-source="results" data-results-for="{{f.name}}" hidden>
      <legend class="form-label small mb-0">{{f.name}}: my results, one job each</legend>
      <div class="result-list" data-result-list>
% for index, url in enumerate(f.chosen):
        <div class="form-check">
          <input class="form-check-input" type="checkbox" name="{{f.name}}.result" value="{{url}}" id="{{f.id}}-chosen-{{index}}" checked>
          <label class="form-check-label text-break" for="{{f.id}}-chosen-{{index}}">{{url}}</label>
        </div>
% end
      </div>
    </fieldset>
% end
% if f.reuse:
    <p class="small mb-0" data-source="reuse">Reused: <code class="text-break">{{f.reuse}}</code></p>
% end
  </fieldset>
% else:
  <label class="form-label" for="{{f.id}}">{{f.name}}
% if f.unit:
    <span class="text-body-secondary">({{f.unit}})</span>
% end
% if f.required:
    <span class="text-danger" aria-hidden="true">*</span><span class="visually-hidden"> (required)</span>
% end
  </label>
% if f.widget == 'select':
  <select class="form-select{{invalid}}" id="{{f.id}}" name="{{f.name}}"{{!' required' if f.required else ''}} aria-describedby="{{described}}">
% if not f.required or f.value not in f.options:
    <option value=""{{!' selected' if f.value not in f.options else ''}}>(none)</option>
% end
% for option in f.options:
    <option value="{{option}}"{{!' selected' if option == f.value else ''}}>{{option}}</option>
% end
  </select>
% else:
  <input class="form-control{{invalid}}" type="{{f.widget}}" id="{{f.id}}" name="{{f.name}}" value="{{f.value}}"{{!' required' if f.required else ''}}
% if f.min is not None:
    min="{{f.min}}"
% end
% if f.max is not None:
    max="{{f.max}}"
% end
% if f.step is not None:
    step="{{f.step}}"
% end
% if f.maxlength:
    maxlength="{{f.maxlength}}"
% end
% if f.widget == 'number':
    inputmode="{{'numeric' if f.step == '1' else 'decimal'}}"
% end
    aria-describedby="{{described}}">
% end
% end
  <div class="form-text" id="{{help_id}}"><span class="annotation">{{f.annotation}}</span>
% if f.batch:
    <div data-batch-note>Several files: tick “Run once per file” to make one job of each.</div>
% end
% if f.widget not in ('file',) and f.datatype not in ('xs:string',):
    <span class="text-body-secondary">({{f.datatype}}{{(', ' + f.min + ' to ' + f.max) if f.min is not None and f.max is not None else ((', at least ' + f.min) if f.min is not None else ((', at most ' + f.max) if f.max is not None else ''))}})</span>
% end
  </div>
% if f.error:
  <div class="invalid-feedback d-block" id="{{error_id}}" role="alert">{{f.error}}</div>
% end
</div>

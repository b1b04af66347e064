% rebase('base', modules=('jdl_editor.js',), styles=('editor.css',))
<div class="jdl-editor" data-jdl-editor data-name="{{definition_name}}" data-admin="{{'1' if is_admin else ''}}" data-style-nonce="{{style_nonce}}">
<nav aria-label="Breadcrumb"><ol class="breadcrumb mb-2"><li class="breadcrumb-item"><a href="/admin/jdl">Job definitions</a></li><li class="breadcrumb-item active" aria-current="page">{{definition_name}}</li></ol></nav>
<h1 class="h3">Job definition <span class="text-break">{{definition_name}}</span></h1>
<p class="small mb-2" data-state>Loading…</p>
<noscript><p class="alert alert-warning">The editor needs JavaScript.</p></noscript>
<div class="jdl-toolbar d-flex flex-wrap gap-2 mb-2" role="group" aria-label="Draft actions">
  <button type="button" class="btn btn-primary" data-action="save">Save draft</button>
  <button type="button" class="btn btn-outline-primary" data-action="validate">Validate</button>
  <button type="button" class="btn btn-outline-primary" data-action="try">Try it</button>
  <button type="button" class="btn btn-outline-primary" data-action="submit">Submit for approval</button>
% if is_admin:
  <button type="button" class="btn btn-success" data-action="approve">Approve</button>
% end
</div>
<div class="jdl-toolbar d-flex flex-wrap align-items-center gap-2 mb-3">
  <input class="visually-hidden jdl-import" type="file" id="jdl-import" accept=".yml,.yaml,.json,.xml,.vot,application/x-yaml,application/json,application/x-votable+xml,text/xml" aria-describedby="jdl-import-help">
  <label class="btn btn-outline-secondary mb-0" for="jdl-import">Import a file</label>
  <span class="form-text m-0" id="jdl-import-help">YAML, JSON or VOTable: it becomes the draft.</span>
  <span class="ms-sm-auto" role="group" aria-label="Export the draft">
    <button type="button" class="btn btn-outline-secondary" data-export="yaml">Export YAML</button>
    <button type="button" class="btn btn-outline-secondary" data-export="json">Export JSON</button>
    <button type="button" class="btn btn-outline-secondary" data-export="votable">Export VOTable</button>
  </span>
</div>
<p role="status" class="jdl-status" data-live-status></p>
<div class="alert alert-danger" role="alert" data-problems hidden>
  <p class="mb-1" data-problems-title>The definition has problems:</p>
  <ul class="mb-0" data-problem-list></ul>
</div>
<p class="alert alert-success" data-try-result hidden></p>

<div class="row g-4">
<form class="col-xl-7 jdl-form" data-jdl-form novalidate aria-label="Definition">
  <fieldset class="mb-3">
    <legend class="h5">Description</legend>
    <div class="row">
% for f in description:
    <div class="{{'col-12' if f.multiline else 'col-sm-6'}} mb-2">
      <label class="form-label" for="jdl-{{f.key}}">{{f.label}}</label>
% if f.multiline:
      <textarea class="form-control" id="jdl-{{f.key}}" data-path="{{f.key}}" rows="2" aria-describedby="jdl-{{f.key}}-help"></textarea>
% else:
      <input class="form-control" type="{{f.kind}}" id="jdl-{{f.key}}" data-path="{{f.key}}" autocomplete="off"{{!' readonly' if f.readonly else ''}}{{!' inputmode="numeric"' if f.numeric else ''}}{{!(' aria-describedby="jdl-' + f.key + '-help"') if f.help else ''}}>
% end
% if f.help:
      <div class="form-text" id="jdl-{{f.key}}-help">{{f.help}}</div>
% end
    </div>
% end
    </div>
  </fieldset>

  <fieldset class="mb-3" data-source-fields>
    <legend class="h5">Source code</legend>
    <p class="form-text mt-0" id="jdl-source-help">A git repository cloned into $JOB_SOURCE_DIR before the script runs (the script may call its code); leave the URL empty for none.</p>
    <div class="row">
    <div class="col-12 mb-2">
      <label class="form-label" for="jdl-source-git">Git repository URL</label>
      <input class="form-control" type="text" id="jdl-source-git" data-source="git" autocomplete="off" spellcheck="false" placeholder="https://github.com/org/code.git" aria-describedby="jdl-source-help">
    </div>
    <div class="col-sm-6 mb-2">
      <label class="form-label" for="jdl-source-kind">Ref given as</label>
      <select class="form-select" id="jdl-source-kind" data-source="kind">
        <option value="fixed">A branch, tag or commit hash</option>
        <option value="parameter">The value of a parameter</option>
      </select>
    </div>
    <div class="col-sm-6 mb-2">
      <label class="form-label" for="jdl-source-ref">Ref or parameter name</label>
      <input class="form-control" type="text" id="jdl-source-ref" data-source="ref" autocomplete="off" spellcheck="false" placeholder="main, v1.2, a full commit hash, or a parameter" aria-describedby="jdl-source-ref-help">
      <div class="form-text" id="jdl-source-ref-help">A parameter given as the ref is an xs:string with a default or required; its value is checked as a git ref.</div>
    </div>
    </div>
  </fieldset>

% for kind, heading, singular in (('parameters', 'Parameters', 'parameter'), ('used', 'Used entities (input files)', 'used entity'), ('generated', 'Generated entities (results)', 'generated entity')):
  <fieldset class="mb-3" data-rows="{{kind}}" data-singular="{{singular}}">
    <legend class="h5">{{heading}}</legend>
    <div data-row-list></div>
    <p class="small text-body-secondary" data-none>None.</p>
    <button type="button" class="btn btn-outline-primary btn-sm" data-add="{{kind}}">Add {{singular}}</button>
  </fieldset>
% end

  <fieldset class="mb-3">
    <legend class="h5">Script</legend>
    <p class="form-text mt-0" id="jdl-script-help">The bash script: it runs in the job's directory, each parameter and input file in a variable of its name (always quote them: "$name").</p>
    <div class="jdl-code jdl-script" data-script-editor data-path="script" id="jdl-script"></div>
  </fieldset>
</form>

<section class="col-xl-5 jdl-source" aria-labelledby="yaml-title">
  <h2 class="h5" id="yaml-title">YAML source</h2>
  <p class="form-text mt-0" id="jdl-yaml-help">The same definition as YAML: edits here fill the form when the text parses.</p>
  <div class="jdl-code jdl-yaml" data-yaml-editor></div>
  <p class="text-danger small mt-1" id="jdl-yaml-error" data-yaml-error role="alert" hidden></p>
</section>
</div>

<section class="mt-4" aria-labelledby="versions-title">
  <h2 class="h5" id="versions-title">Version history</h2>
  <div class="table-responsive" tabindex="0" aria-labelledby="versions-title">
    <table class="table table-sm align-middle">
      <thead><tr><th scope="col">Revision</th><th scope="col">Version</th><th scope="col">Approved by</th><th scope="col">Approved</th><th scope="col">Actions</th></tr></thead>
      <tbody data-version-rows></tbody>
    </table>
  </div>
  <p data-versions-empty hidden>No approved revision yet.</p>
  <div data-diff hidden>
    <h3 class="h6" id="diff-title" data-diff-title>Differences</h3>
    <pre class="jdl-diff" tabindex="0" aria-labelledby="diff-title" data-diff-text></pre>
  </div>
</section>

<datalist id="jdl-multiplicities">
% for value in multiplicities:
  <option value="{{value}}"></option>
% end
</datalist>

<template data-row-template="parameters">
  <fieldset class="jdl-row" data-row>
    <legend class="h6 jdl-row-title" data-row-title>Parameter</legend>
    <div class="row g-2">
      <div class="col-sm-6"><label class="form-label" data-label-for="name">Name</label><input class="form-control" type="text" data-field="name" autocomplete="off" spellcheck="false"></div>
      <div class="col-sm-6"><label class="form-label" data-label-for="datatype">Datatype</label><select class="form-select" data-field="datatype">
% for datatype in datatypes:
        <option value="{{datatype}}">{{datatype}}</option>
% end
      </select></div>
      <div class="col-sm-6"><label class="form-label" data-label-for="default">Default</label><input class="form-control" type="text" data-field="default" autocomplete="off" placeholder="none"></div>
      <div class="col-sm-6 d-flex flex-wrap gap-3 align-items-end pb-1">
        <div class="form-check"><input class="form-check-input" type="checkbox" data-field="required"><label class="form-check-label" data-label-for="required">Required</label></div>
        <div class="form-check"><input class="form-check-input" type="checkbox" data-field="normalize"><label class="form-check-label" data-label-for="normalize">Normalize values</label></div>
      </div>
      <div class="col-12"><label class="form-label" data-label-for="annotation">Annotation</label><textarea class="form-control" rows="1" data-field="annotation"></textarea></div>
      <div class="col-sm-6"><label class="form-label" data-label-for="options">Options, one per line</label><textarea class="form-control" rows="2" data-field="options"></textarea></div>
      <div class="col-6 col-sm-3"><label class="form-label" data-label-for="min">Min</label><input class="form-control" type="text" data-field="min" autocomplete="off"></div>
      <div class="col-6 col-sm-3"><label class="form-label" data-label-for="max">Max</label><input class="form-control" type="text" data-field="max" autocomplete="off"></div>
      <div class="col-sm-4"><label class="form-label" data-label-for="unit">Unit</label><input class="form-control" type="text" data-field="unit" autocomplete="off"></div>
      <div class="col-sm-4"><label class="form-label" data-label-for="ucd">UCD</label><input class="form-control" type="text" data-field="ucd" autocomplete="off"></div>
      <div class="col-sm-4"><label class="form-label" data-label-for="utype">Utype</label><input class="form-control" type="text" data-field="utype" autocomplete="off"></div>
    </div>
% include('jdl_row_actions')
  </fieldset>
</template>

<template data-row-template="used">
  <fieldset class="jdl-row" data-row>
    <legend class="h6 jdl-row-title" data-row-title>Used entity</legend>
    <div class="row g-2">
      <div class="col-sm-6"><label class="form-label" data-label-for="name">Name</label><input class="form-control" type="text" data-field="name" autocomplete="off" spellcheck="false"></div>
      <div class="col-sm-6"><label class="form-label" data-label-for="default">Default</label><input class="form-control" type="text" data-field="default" autocomplete="off" placeholder="none"></div>
      <div class="col-sm-6"><label class="form-label" data-label-for="content_type">Content types</label><input class="form-control" type="text" data-field="content_type" autocomplete="off" placeholder="text/plain, image/*"></div>
      <div class="col-sm-6"><label class="form-label" data-label-for="multiplicity">Multiplicity</label><input class="form-control" type="text" data-field="multiplicity" list="jdl-multiplicities" autocomplete="off" placeholder="1"></div>
      <div class="col-sm-6"><label class="form-label" data-label-for="source">Given as</label><select class="form-select" data-field="source">
% for value, text in used_sources:
        <option value="{{value}}">{{text}}</option>
% end
      </select></div>
      <div class="col-sm-6" data-template-part><label class="form-label" data-label-for="url">URL template ($ID: the identifier)</label><input class="form-control" type="text" data-field="url" autocomplete="off" placeholder="https://archive.example.org/data/$ID"></div>
      <div class="col-12"><label class="form-label" data-label-for="annotation">Annotation</label><textarea class="form-control" rows="1" data-field="annotation"></textarea></div>
    </div>
% include('jdl_row_actions')
  </fieldset>
</template>

<template data-row-template="generated">
  <fieldset class="jdl-row" data-row>
    <legend class="h6 jdl-row-title" data-row-title>Generated entity</legend>
    <div class="row g-2">
      <div class="col-sm-6"><label class="form-label" data-label-for="name">Name</label><input class="form-control" type="text" data-field="name" autocomplete="off" spellcheck="false"></div>
      <div class="col-sm-6"><label class="form-label" data-label-for="default">File name or glob</label><input class="form-control" type="text" data-field="default" autocomplete="off" placeholder="output.txt, *.png"></div>
      <div class="col-sm-6"><label class="form-label" data-label-for="content_type">Content type</label><input class="form-control" type="text" data-field="content_type" autocomplete="off" placeholder="text/plain"></div>
      <div class="col-sm-6"><label class="form-label" data-label-for="multiplicity">Multiplicity</label><input class="form-control" type="text" data-field="multiplicity" list="jdl-multiplicities" autocomplete="off" placeholder="1"></div>
      <div class="col-12"><label class="form-label" data-label-for="annotation">Annotation</label><textarea class="form-control" rows="1" data-field="annotation"></textarea></div>
    </div>
% include('jdl_row_actions')
  </fieldset>
</template>
</div>

% rebase('base', modules=('jdl_list.js',), styles=('editor.css',))
% error = get('error', '')
<h1 class="h3">Job definitions</h1>
<p>Each job type is defined once: write a draft, validate and try it, then submit it for approval; an admin approves it as a new revision.</p>
<form method="get" action="/admin/jdl" class="jdl-new mb-4" data-new-definition>
  <label class="form-label" for="new-definition-name">Name of a new definition</label>
  <div class="d-flex flex-wrap gap-2">
    <input class="form-control{{' is-invalid' if error else ''}}" type="text" id="new-definition-name" name="new" required pattern="{{name_pattern}}" autocomplete="off" spellcheck="false" aria-describedby="new-definition-help{{' new-definition-error' if error else ''}}">
    <button type="submit" class="btn btn-primary">New definition</button>
  </div>
  <div class="form-text" id="new-definition-help">Lower-case letters, digits and _, starting with a letter: the job type's name in URLs and scripts.</div>
% if error:
  <div class="invalid-feedback d-block" id="new-definition-error">{{error}}</div>
% end
</form>
<p role="status" data-live-status class="small text-body-secondary"></p>
<noscript><p class="alert alert-warning">The list of definitions and the editor need JavaScript.</p></noscript>
% if is_admin:
<section class="mb-4" aria-labelledby="queue-title" data-queue hidden>
  <h2 class="h5" id="queue-title">Waiting for approval</h2>
  <div class="table-responsive" tabindex="0" aria-labelledby="queue-title">
    <table class="table table-sm align-middle">
      <thead><tr><th scope="col">Name</th><th scope="col">Author</th><th scope="col">Submitted</th><th scope="col">Annotation</th></tr></thead>
      <tbody data-queue-rows></tbody>
    </table>
  </div>
  <p data-queue-empty hidden>No draft is waiting for approval.</p>
</section>
% end
<section aria-labelledby="definitions-title">
  <h2 class="h5" id="definitions-title">Definitions</h2>
  <div class="table-responsive" tabindex="0" aria-labelledby="definitions-title">
    <table class="table table-sm align-middle">
      <thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">Version</th><th scope="col">Revision</th><th scope="col">Draft</th><th scope="col">Annotation</th></tr></thead>
      <tbody data-definition-rows></tbody>
    </table>
  </div>
  <p data-definitions-empty hidden>No job definition yet.</p>
</section>

% rebase('base', modules=('jobs.js',))
<h1 class="h3">{{title}}</h1>
% if notice:
<p class="alert alert-success" role="status" data-batch-notice>{{notice}}</p>
% end
<form method="get" action="/jobs" class="row g-2 align-items-end mb-3" role="search" aria-label="Filter jobs">
  <div class="col-12 col-sm-6 col-lg-3">
    <label class="form-label" for="filter-type">Job type</label>
    <select class="form-select" id="filter-type" name="type">
      <option value="">All types</option>
% for name in viewer.job_types:
      <option value="{{name}}"{{!' selected' if name in types else ''}}>{{name}}</option>
% end
    </select>
  </div>
  <div class="col-12 col-sm-6 col-lg-3">
    <label class="form-label" for="filter-run-id">Run ID contains</label>
    <input class="form-control" type="search" id="filter-run-id" name="run_id" value="{{run_id}}">
  </div>
  <fieldset class="col-12 col-lg-6">
    <legend class="form-label fs-6 mb-1">Phase</legend>
% for phase in LIST_PHASES:
    <div class="form-check form-check-inline">
      <input class="form-check-input" type="checkbox" name="phase" value="{{phase}}" id="filter-phase-{{phase}}"{{!' checked' if phase in phases else ''}}>
      <label class="form-check-label" for="filter-phase-{{phase}}">{{phase}}</label>
    </div>
% end
  </fieldset>
  <div class="col-6 col-sm-3 col-lg-2">
    <label class="form-label" for="filter-limit">Jobs a page</label>
    <select class="form-select" id="filter-limit" name="limit">
% for size in (20, 50, 100, 200):
      <option{{!' selected' if size == limit else ''}}>{{size}}</option>
% end
    </select>
  </div>
  <div class="col-6 col-sm-3 col-lg-2">
    <button type="submit" class="btn btn-secondary w-100">Filter</button>
  </div>
</form>
<form method="post" action="/jobs/actions" id="job-list" data-changes="{{page.changes}}" data-first-page="{{'' if cursor else 'true'}}" data-types="{{','.join(types)}}" data-phases="{{','.join(phases)}}" data-run-id="{{run_id}}">
  <input type="hidden" name="csrf_token" value="{{viewer.csrf_token}}">
  <input type="hidden" name="next" value="{{list_url}}">
% include('jobs_table', jobs=page.jobs, selectable=True, caption=title, empty='No jobs match.')
  <div class="d-flex flex-wrap gap-2 mb-3">
    <button type="submit" class="btn btn-outline-warning btn-sm" name="action" value="abort">Abort selected</button>
    <button type="submit" class="btn btn-outline-danger btn-sm" name="action" value="delete" data-confirm="Delete the selected jobs and their files?">Delete selected</button>
  </div>
</form>
<nav aria-label="Pages of the job list">
  <ul class="pagination">
% if page.newer_cursor:
    <li class="page-item"><a class="page-link" href="/jobs{{query(type=types, phase=list(phases), run_id=run_id, limit=limit)}}">Newest jobs</a></li>
    <li class="page-item"><a class="page-link" href="/jobs{{query(type=types, phase=list(phases), run_id=run_id, limit=limit, newer=page.newer_cursor)}}" rel="prev">Newer jobs</a></li>
% end
% if page.next_cursor:
    <li class="page-item"><a class="page-link" href="/jobs{{query(type=types, phase=list(phases), run_id=run_id, limit=limit, cursor=page.next_cursor)}}" rel="next">Older jobs</a></li>
% end
  </ul>
</nav>
<p class="small text-body-secondary" data-live-status aria-live="polite"></p>
<template id="job-row-template">
<tr>
  <td><input class="form-check-input" type="checkbox" name="job"><label class="visually-hidden">Select job</label></td>
  <td><a data-slot="type"></a></td>
  <td class="text-break"><a data-slot="label"></a></td>
  <td><time data-slot="created"></time></td>
  <td data-cell="phase"><span class="badge" data-phase></span></td>
  <td data-cell="duration"></td>
  <td class="text-nowrap" data-cell="actions">
    <button type="submit" class="btn btn-sm btn-outline-primary" data-action="run">Run<span class="visually-hidden"> job</span></button>
    <button type="submit" class="btn btn-sm btn-outline-warning" data-action="abort">Abort<span class="visually-hidden"> job</span></button>
    <button type="submit" class="btn btn-sm btn-outline-danger" data-action="delete">Delete<span class="visually-hidden"> job</span></button>
  </td>
</tr>
</template>

% rebase('base')
% filters = dict(owner=owner, type=types, phase=list(phases), run_id=run_id, limit=limit)
<h1 class="h3">{{title}}</h1>
<form method="get" action="/admin/jobs" class="row g-2 align-items-end mb-3" role="search" aria-label="Filter jobs">
  <div class="col-12 col-sm-6 col-lg-3">
    <label class="form-label" for="filter-owner">Owner</label>
    <input class="form-control" type="search" id="filter-owner" name="owner" value="{{owner}}" list="owner-names" autocomplete="off" placeholder="every owner">
    <datalist id="owner-names">
% for name in owners:
      <option value="{{name}}"></option>
% end
    </datalist>
  </div>
  <div class="col-12 col-sm-6 col-lg-3">
    <label class="form-label" for="filter-type">Job type</label>
    <select class="form-select" id="filter-type" name="type">
      <option value="">All types</option>
% for name in all_types:
      <option value="{{name}}"{{!' selected' if name in types else ''}}>{{name}}</option>
% end
    </select>
  </div>
  <div class="col-12 col-sm-6 col-lg-3">
    <label class="form-label" for="filter-run-id">Run ID contains</label>
    <input class="form-control" type="search" id="filter-run-id" name="run_id" value="{{run_id}}">
  </div>
  <div class="col-6 col-sm-3 col-lg-1">
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
  <fieldset class="col-12">
    <legend class="form-label fs-6 mb-1">Phase</legend>
% for phase in LIST_PHASES:
    <div class="form-check form-check-inline">
      <input class="form-check-input" type="checkbox" name="phase" value="{{phase}}" id="filter-phase-{{phase}}"{{!' checked' if phase in phases else ''}}>
      <label class="form-check-label" for="filter-phase-{{phase}}">{{phase}}</label>
    </div>
% end
  </fieldset>
</form>
<form method="post" action="/jobs/actions" id="admin-job-list">
  <input type="hidden" name="csrf_token" value="{{viewer.csrf_token}}">
  <input type="hidden" name="next" value="{{list_url}}">
  <div class="table-responsive">
  <table class="table table-sm align-middle jobs-table">
    <caption class="visually-hidden">{{title}}</caption>
    <thead>
      <tr>
        <th scope="col"><input class="form-check-input js-only" type="checkbox" id="select-all" data-select-all><label class="visually-hidden" for="select-all">Select all jobs</label></th>
        <th scope="col">Owner</th>
        <th scope="col">Type</th>
        <th scope="col">Run ID</th>
        <th scope="col">Created</th>
        <th scope="col">Phase</th>
        <th scope="col">Duration</th>
      </tr>
    </thead>
    <tbody>
% for job in page.jobs:
% label = job.run_id or job.job_id
      <tr data-job="{{job.jobname}}/{{job.job_id}}" data-owner="{{job.owner}}">
        <td><input class="form-check-input" type="checkbox" name="job" value="{{job.jobname}}/{{job.job_id}}" id="select-{{job.job_id}}"><label class="visually-hidden" for="select-{{job.job_id}}">Select job {{label}} of {{job.owner}}</label></td>
        <td class="text-break" data-cell="owner"><a href="/admin/jobs{{query(owner=job.owner)}}">{{job.owner}}</a></td>
        <td>{{job.jobname}}</td>
        <td class="text-break"><a href="{{job_url(job.jobname, job.job_id)}}">{{label}}</a></td>
        <td><time datetime="{{iso(job.creation_time)}}">{{when(job.creation_time)}}</time></td>
        <td data-cell="phase">
% include('phase', phase=job.phase)
        </td>
        <td data-cell="duration">{{row_duration(job)}}</td>
      </tr>
% end
    </tbody>
  </table>
  </div>
% if not page.jobs:
  <p class="text-body-secondary" data-empty>No jobs match.</p>
% end
  <div class="d-flex flex-wrap gap-2 mb-3">
    <button type="submit" class="btn btn-outline-warning btn-sm" name="action" value="abort">Abort selected</button>
    <button type="submit" class="btn btn-outline-danger btn-sm" name="action" value="delete" data-confirm="Delete the selected jobs and their files?">Delete selected</button>
  </div>
</form>
<nav aria-label="Pages of the job list">
  <ul class="pagination">
% if page.newer_cursor:
    <li class="page-item"><a class="page-link" href="/admin/jobs{{query(**filters)}}">Newest jobs</a></li>
    <li class="page-item"><a class="page-link" href="/admin/jobs{{query(newer=page.newer_cursor, **filters)}}" rel="prev">Newer jobs</a></li>
% end
% if page.next_cursor:
    <li class="page-item"><a class="page-link" href="/admin/jobs{{query(cursor=page.next_cursor, **filters)}}" rel="next">Older jobs</a></li>
% end
  </ul>
</nav>

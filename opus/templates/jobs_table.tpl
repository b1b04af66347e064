% selectable = get('selectable', False)
<div class="table-responsive">
<table class="table table-sm align-middle jobs-table" data-live-rows{{!' data-selectable' if selectable else ''}}>
  <caption class="visually-hidden">{{get('caption', 'Jobs')}}</caption>
  <thead>
    <tr>
% if selectable:
      <th scope="col"><input class="form-check-input js-only" type="checkbox" id="select-all" data-select-all><label class="visually-hidden" for="select-all">Select all jobs</label></th>
% end
      <th scope="col">Type</th>
      <th scope="col">Run ID</th>
      <th scope="col">Created</th>
      <th scope="col">Phase</th>
      <th scope="col">Duration</th>
% if selectable:
      <th scope="col">Actions</th>
% end
    </tr>
  </thead>
  <tbody>
% include('job_rows', jobs=jobs, selectable=selectable)
  </tbody>
</table>
</div>
% if not jobs:
<p class="text-body-secondary" data-empty>{{get('empty', 'No jobs.')}}</p>
% end

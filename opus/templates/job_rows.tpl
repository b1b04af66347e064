% for job in jobs:
% url = job_url(job.jobname, job.job_id)
% label = job.run_id or job.job_id
<tr data-job="{{job.jobname}}/{{job.job_id}}" data-version="{{job.version}}">
% if get('selectable', False):
  <td><input class="form-check-input" type="checkbox" name="job" value="{{job.jobname}}/{{job.job_id}}" id="select-{{job.job_id}}"><label class="visually-hidden" for="select-{{job.job_id}}">Select job {{label}}</label></td>
% end
  <td><a href="/jobs?type={{q(job.jobname)}}">{{job.jobname}}</a></td>
  <td class="text-break"><a href="{{url}}">{{label}}</a></td>
  <td><time datetime="{{iso(job.creation_time)}}">{{when(job.creation_time)}}</time></td>
  <td data-cell="phase">
% include('phase', phase=job.phase)
  </td>
  <td data-cell="duration">{{row_duration(job)}}</td>
% if get('selectable', False):
  <td class="text-nowrap" data-cell="actions">
% if job.phase == Phase.PENDING:
    <button type="submit" class="btn btn-sm btn-outline-primary" formaction="{{url}}/run">Run<span class="visually-hidden"> job {{label}}</span></button>
% end
% if can_abort(job.phase):
    <button type="submit" class="btn btn-sm btn-outline-warning" formaction="{{url}}/abort">Abort<span class="visually-hidden"> job {{label}}</span></button>
% end
    <button type="submit" class="btn btn-sm btn-outline-danger" formaction="{{url}}/delete" data-confirm="Delete job {{label}} and its files?">Delete<span class="visually-hidden"> job {{label}}</span></button>
  </td>
% end
</tr>
% end

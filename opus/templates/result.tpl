% rebase('base', modules=('samp.js',))
<nav aria-label="Breadcrumb"><ol class="breadcrumb">
  <li class="breadcrumb-item"><a href="/jobs?type={{q(job.jobname)}}">{{job.jobname}} jobs</a></li>
  <li class="breadcrumb-item"><a href="{{job_url(job.jobname, job.id)}}">{{job.run_id or job.id}}</a></li>
  <li class="breadcrumb-item active" aria-current="page">{{shown.result.result_id}}</li>
</ol></nav>
<h1 class="h4 text-break">{{shown.result.result_id}}</h1>
% include('result_card', shown=shown, job=job, full=True)

% rebase('base')
<h1 class="h3">Job types</h1>
% if not definitions:
<p>There is no job type you may run.</p>
% end
<div class="row row-cols-1 row-cols-md-2 g-3 mb-4">
% for jdl in definitions:
  <div class="col">
    <section class="card h-100" aria-labelledby="type-{{jdl.name}}">
      <div class="card-body">
        <h2 class="h5 card-title" id="type-{{jdl.name}}">{{jdl.name}} <span class="badge text-bg-light">version {{jdl.version}}</span></h2>
        <p class="card-text annotation">{{jdl.annotation}}</p>
% if jdl.contact_name or jdl.contact_email:
        <p class="card-text small">Contact:
% if jdl.contact_email:
          <a href="mailto:{{jdl.contact_email}}">{{jdl.contact_name or jdl.contact_email}}</a>
% else:
          {{jdl.contact_name}}
% end
        </p>
% end
      </div>
      <div class="card-footer d-flex flex-wrap gap-2">
        <a class="btn btn-primary btn-sm" href="/jobs/new/{{q(jdl.name)}}">New {{jdl.name}} job</a>
        <a class="btn btn-outline-secondary btn-sm" href="/jobs?type={{q(jdl.name)}}">{{jdl.name}} jobs</a>
% if jdl.doculink.startswith(('https://', 'http://')):
        <a class="btn btn-link btn-sm" href="{{jdl.doculink}}" rel="noopener noreferrer">Documentation of {{jdl.name}}</a>
% end
      </div>
    </section>
  </div>
% end
</div>
<h2 class="h4">Your recent jobs</h2>
% include('jobs_table', jobs=jobs, selectable=False, caption='Your recent jobs', empty='You have no jobs yet.')
<p><a href="/jobs">All your jobs</a></p>

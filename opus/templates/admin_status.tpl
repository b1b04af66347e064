% rebase('base')
% disk = server.disk
% record = server.reconciler
<h1 class="h3">Server status</h1>
<div class="row g-3">
<section class="col-12 col-lg-6" aria-labelledby="status-server">
  <h2 class="h5" id="status-server">Server</h2>
  <dl class="row status-facts">
    <dt class="col-sm-5">OPUS version</dt><dd class="col-sm-7" data-fact="version">{{server.version}}</dd>
    <dt class="col-sm-5">Manager</dt><dd class="col-sm-7" data-fact="manager">{{server.manager}}</dd>
% for name, value in server.manager_settings:
    <dt class="col-sm-5"><code>{{name}}</code></dt><dd class="col-sm-7 text-break">{{value}}</dd>
% end
    <dt class="col-sm-5">Workers</dt><dd class="col-sm-7" data-fact="workers">{{server.workers}} process{{'es' if server.workers != 1 else ''}} of {{server.server_threads}} threads (<code>WORKERS</code>, <code>SERVER_THREADS</code>)</dd>
    <dt class="col-sm-5">Reconciler interval</dt><dd class="col-sm-7">{{server.reconcile_interval}} s</dd>
  </dl>
</section>
<section class="col-12 col-lg-6" aria-labelledby="status-database">
  <h2 class="h5" id="status-database">Database</h2>
  <dl class="row status-facts">
    <dt class="col-sm-5">Dialect</dt><dd class="col-sm-7" data-fact="dialect">{{server.database_dialect}}</dd>
    <dt class="col-sm-5">Database</dt><dd class="col-sm-7 text-break">{{server.database}}</dd>
    <dt class="col-sm-5">Schema revision</dt><dd class="col-sm-7" data-fact="revision">{{server.revision or 'none'}}{{'' if server.revision == server.head_revision else f' (this OPUS expects {server.head_revision})'}}</dd>
  </dl>
</section>
<section class="col-12 col-lg-6" aria-labelledby="status-jobs">
  <h2 class="h5" id="status-jobs">Active jobs</h2>
  <table class="table table-sm w-auto">
    <caption class="visually-hidden">Jobs not ended, by phase</caption>
    <thead><tr><th scope="col">Phase</th><th scope="col" class="text-end">Jobs</th></tr></thead>
    <tbody>
% for phase, count in server.job_counts:
      <tr data-phase-count="{{phase}}"><td>{{phase}}</td><td class="text-end">{{count}}</td></tr>
% end
    </tbody>
    <tfoot><tr><th scope="row">All</th><td class="text-end" data-fact="active">{{server.active_jobs}}</td></tr></tfoot>
  </table>
  <p><a href="/admin/jobs{{query(phase=[str(phase) for phase, _ in server.job_counts])}}">The active jobs</a></p>
</section>
<section class="col-12 col-lg-6" aria-labelledby="status-reconciler">
  <h2 class="h5" id="status-reconciler">Reconciler</h2>
% if record is None:
  <p data-fact="reconciler">No pass has run in this server process yet: it runs every {{server.reconcile_interval}} s in the process that holds the reconciler lock, which may be another one.</p>
% else:
  <dl class="row status-facts" data-fact="reconciler">
    <dt class="col-sm-5">Last pass</dt><dd class="col-sm-7"><time datetime="{{iso(record.started)}}">{{when(record.started)}}</time></dd>
    <dt class="col-sm-5">Duration</dt><dd class="col-sm-7">{{f'{record.seconds:.3f}'}} s</dd>
% if record.report is None:
    <dt class="col-sm-5">Outcome</dt><dd class="col-sm-7 text-danger-emphasis">failed: {{record.error}} (see the server's log)</dd>
% else:
% report = record.report
    <dt class="col-sm-5">Active jobs checked</dt><dd class="col-sm-7" data-count="checked">{{report.checked}}</dd>
    <dt class="col-sm-5">Phases changed</dt><dd class="col-sm-7" data-count="changed">{{len(report.changed)}}</dd>
    <dt class="col-sm-5">Stopped (too long)</dt><dd class="col-sm-7" data-count="timed_out">{{len(report.timed_out)}}</dd>
    <dt class="col-sm-5">Destroyed</dt><dd class="col-sm-7" data-count="destroyed">{{len(report.destroyed)}}</dd>
    <dt class="col-sm-5">Archived</dt><dd class="col-sm-7" data-count="archived">{{len(report.archived)}}</dd>
% end
  </dl>
% end
  <p class="small text-body-secondary">Kept in the memory of this server process: a pass of another process (another worker, <code>opus maintenance</code>) is not shown, and a restart forgets it.</p>
</section>
<section class="col-12 col-lg-6" aria-labelledby="status-disk">
  <h2 class="h5" id="status-disk">Disk</h2>
  <dl class="row status-facts">
    <dt class="col-sm-5"><code>VAR_PATH</code></dt><dd class="col-sm-7 text-break">{{str(disk.path)}}</dd>
    <dt class="col-sm-5">Files under it</dt><dd class="col-sm-7" data-fact="disk">{{'' if disk.complete else 'at least '}}{{size(disk.size)}} in {{disk.files}} file{{'s' if disk.files != 1 else ''}}</dd>
% if disk.free is not None:
    <dt class="col-sm-5">Free on its file system</dt><dd class="col-sm-7">{{size(disk.free)}}</dd>
% end
  </dl>
  <p class="small text-body-secondary">Measured at most a minute ago{{'' if disk.complete else '; the count stopped early (a bounded walk of the tree)'}}.</p>
</section>
</div>

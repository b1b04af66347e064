% rebase('base')
<h1 class="h3">Admin</h1>
<p>The pages for the admins of this server.</p>
<ul class="list-group col-12 col-lg-8 mb-3">
% for item in admin_pages:
  <li class="list-group-item">
    <a class="fw-semibold" href="{{item.path}}">{{item.title}}</a>
    <span class="d-block small text-body-secondary">{{item.summary}}</span>
  </li>
% end
</ul>
<p class="small">Scripts manage users with the SCIM API (<code>/scim/v2/Users</code>) and the <code>opus user</code> command.</p>

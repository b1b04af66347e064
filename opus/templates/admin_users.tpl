% rebase('base', modules=('admin_users.js',))
<div id="admin-users" data-self="{{viewer.caller.name}}" data-scim="/scim/v2">
<h1 class="h3">Users</h1>
<noscript><p class="alert alert-info">Managing users (creating them, their roles, tokens and passwords) needs JavaScript: this page only lists them without it. Scripts can use the SCIM API (<code>/scim/v2/Users</code>) or <code>opus user</code>.</p></noscript>
% if not check_permissions:
<p class="small text-body-secondary">The job type roles take effect with <code>CHECK_PERMISSIONS</code>, which is off on this server: every user may run every job type.</p>
% end
<form method="get" action="/admin/users" class="row g-2 align-items-end mb-3" role="search" aria-label="Find users" id="user-search">
  <div class="col-12 col-sm-8 col-lg-4">
    <label class="form-label" for="user-search-name">Name contains</label>
    <input class="form-control" type="search" id="user-search-name" name="q" value="{{search}}" maxlength="64" autocomplete="off">
  </div>
  <div class="col-12 col-sm-4 col-lg-2">
    <button type="submit" class="btn btn-secondary w-100">Search</button>
  </div>
</form>
<p class="alert alert-danger" role="alert" id="admin-error" hidden></p>
<section class="alert alert-warning" id="token-panel" aria-labelledby="token-title" hidden>
  <h2 class="h5" id="token-title" tabindex="-1">New API token</h2>
  <p>It is shown once: copy it now. Nobody can read it again, not even an admin; a lost token is replaced by a new one.</p>
  <label class="form-label" for="token-value">API token of <span data-token-user></span></label>
  <div class="input-group mb-2">
    <input class="form-control font-monospace" id="token-value" type="text" readonly autocomplete="off" spellcheck="false">
    <button type="button" class="btn btn-primary" id="token-copy">Copy token</button>
  </div>
  <p class="small mb-2" id="token-copy-status" aria-live="polite"></p>
  <button type="button" class="btn btn-outline-secondary btn-sm" id="token-done">Done: hide the token</button>
</section>
<p class="small text-body-secondary" data-live-status aria-live="polite">{{len(users)}} of {{total}} user{{'s' if total != 1 else ''}}</p>
<div class="table-responsive">
<table class="table table-sm align-middle users-table">
  <caption class="visually-hidden">Users</caption>
  <thead>
    <tr>
      <th scope="col">Name</th>
      <th scope="col">Status</th>
      <th scope="col">Roles</th>
      <th scope="col">Created</th>
      <th scope="col" class="js-only">Actions</th>
    </tr>
  </thead>
  <tbody id="user-rows">
% for user in users:
    <tr data-user="{{user.name}}">
      <td class="text-break" data-cell="name">{{user.name}}</td>
      <td data-cell="status">{{'active' if user.active else 'disabled'}}</td>
      <td class="text-break" data-cell="roles">{{', '.join(user.roles) or 'none'}}</td>
      <td data-cell="created"><time datetime="{{iso(user.creation_time)}}">{{when(user.creation_time)}}</time></td>
      <td class="js-only"><button type="button" class="btn btn-sm btn-outline-primary" data-manage="{{user.name}}">Manage<span class="visually-hidden"> {{user.name}}</span></button></td>
    </tr>
% end
  </tbody>
</table>
</div>
<p class="text-body-secondary" id="no-users"{{!'' if not users else ' hidden'}}>No users match.</p>
<section class="card mb-4 js-only" id="manage-user" aria-labelledby="manage-title" hidden>
  <div class="card-body">
    <h2 class="h5 card-title" id="manage-title" tabindex="-1">Manage</h2>
    <p data-manage-status></p>
    <form id="manage-roles" class="mb-3">
      <fieldset>
        <legend class="form-label fs-6" id="manage-roles-legend">Roles</legend>
% for role in roles:
        <div class="form-check">
          <input class="form-check-input" type="checkbox" name="role" value="{{role.name}}" id="manage-role-{{role.name}}">
          <label class="form-check-label" for="manage-role-{{role.name}}">{{role.name}} <span class="text-body-secondary small">({{role.meaning}})</span></label>
        </div>
% end
        <div data-extra-roles></div>
      </fieldset>
      <button type="submit" class="btn btn-outline-primary btn-sm">Save roles</button>
    </form>
    <div class="d-flex flex-wrap gap-2 mb-3">
      <button type="button" class="btn btn-outline-warning btn-sm" id="manage-active">Disable</button>
      <button type="button" class="btn btn-outline-primary btn-sm" id="manage-token">New API token</button>
    </div>
    <form id="manage-password" class="row g-2 align-items-end mb-3">
      <input type="text" name="username" autocomplete="username" hidden>
      <div class="col-12 col-sm-8 col-lg-6">
        <label class="form-label" for="manage-password-value">New password</label>
        <input class="form-control" type="password" id="manage-password-value" name="password" autocomplete="new-password" minlength="8" maxlength="1024" required>
      </div>
      <div class="col-12 col-sm-4 col-lg-3">
        <button type="submit" class="btn btn-outline-primary w-100">Set password</button>
      </div>
    </form>
    <div class="d-flex flex-wrap gap-2">
      <button type="button" class="btn btn-outline-danger btn-sm" id="manage-delete">Delete</button>
      <button type="button" class="btn btn-outline-secondary btn-sm" id="manage-close">Close</button>
    </div>
  </div>
</section>
<section class="card mb-4 js-only" aria-labelledby="create-title">
  <div class="card-body">
    <h2 class="h5 card-title" id="create-title">Create a user</h2>
    <form id="create-user">
      <div class="row g-2 mb-2">
        <div class="col-12 col-sm-6 col-lg-4">
          <label class="form-label" for="create-name">User name</label>
          <input class="form-control" type="text" id="create-name" name="userName" required maxlength="64" pattern="[A-Za-z0-9_.@\-]+" autocomplete="off" aria-describedby="create-name-help">
          <div class="form-text" id="create-name-help">Letters, digits and <code>_ . @ -</code>, at most 64.</div>
        </div>
        <div class="col-12 col-sm-6 col-lg-4">
          <label class="form-label" for="create-password">Password (optional)</label>
          <input class="form-control" type="password" id="create-password" name="password" autocomplete="new-password" minlength="8" maxlength="1024" aria-describedby="create-password-help">
          <div class="form-text" id="create-password-help">For the web pages; scripts use the API token.</div>
        </div>
      </div>
      <fieldset class="mb-2">
        <legend class="form-label fs-6">Roles</legend>
% for role in roles:
        <div class="form-check">
          <input class="form-check-input" type="checkbox" name="role" value="{{role.name}}" id="create-role-{{role.name}}">
          <label class="form-check-label" for="create-role-{{role.name}}">{{role.name}} <span class="text-body-secondary small">({{role.meaning}})</span></label>
        </div>
% end
      </fieldset>
      <button type="submit" class="btn btn-primary">Create user</button>
    </form>
  </div>
</section>
<template id="user-row-template">
  <tr>
    <td class="text-break" data-cell="name"></td>
    <td data-cell="status"></td>
    <td class="text-break" data-cell="roles"></td>
    <td data-cell="created"><time></time></td>
    <td><button type="button" class="btn btn-sm btn-outline-primary" data-manage>Manage<span class="visually-hidden"></span></button></td>
  </tr>
</template>
<template id="extra-role-template">
  <div class="form-check">
    <input class="form-check-input" type="checkbox" name="role" checked>
    <label class="form-check-label"></label>
  </div>
</template>
</div>

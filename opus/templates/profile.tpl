% rebase('base')
% errors = get('errors', {})
<h1 class="h3">{{viewer.caller.name}}</h1>
<dl class="row">
  <dt class="col-sm-3">Roles</dt><dd class="col-sm-9">{{', '.join(viewer.caller.roles) or 'none'}}</dd>
% if user:
  <dt class="col-sm-3">User since</dt><dd class="col-sm-9">{{when(user.creation_time)}}</dd>
% end
% if viewer.session:
  <dt class="col-sm-3">Signed in until</dt><dd class="col-sm-9">{{when(viewer.session.expires)}} at the latest</dd>
% end
</dl>
<section class="mb-4" aria-labelledby="token-title">
  <h2 class="h5" id="token-title">API token</h2>
  <p>Scripts (curl, pyvo, the <code>opus</code> command) authenticate with your API token. A new token replaces the old one at once, and ends your browser sessions.</p>
  <form method="post" action="/profile/token" data-confirm="Replace your API token? Scripts using the old one will stop working.">
    <input type="hidden" name="csrf_token" value="{{viewer.csrf_token}}">
    <button type="submit" class="btn btn-outline-primary">Rotate API token</button>
  </form>
</section>
% if user:
<section class="mb-4" aria-labelledby="password-title">
  <h2 class="h5" id="password-title">{{'Change password' if has_password else 'Set a password'}}</h2>
  <form method="post" action="/profile/password" class="col-12 col-md-8 col-lg-6">
    <input type="hidden" name="csrf_token" value="{{viewer.csrf_token}}">
    <input type="text" name="username" value="{{viewer.caller.name}}" autocomplete="username" hidden>
% fields = [('new_password', 'New password', 'new-password'), ('confirm_password', 'New password again', 'new-password')]
% if has_password:
% fields.insert(0, ('current_password', 'Current password', 'current-password'))
% end
% for name, text, complete in fields:
    <div class="mb-3">
      <label class="form-label" for="profile-{{name}}">{{text}}</label>
      <input class="form-control{{' is-invalid' if name in errors else ''}}" type="password" id="profile-{{name}}" name="{{name}}" autocomplete="{{complete}}" required{{!' minlength="8"' if name != 'current_password' else ''}}{{!(' aria-describedby="profile-' + name + '-error"') if name in errors else ''}}>
% if name in errors:
      <div class="invalid-feedback" id="profile-{{name}}-error">{{errors[name]}}</div>
% end
    </div>
% end
    <button type="submit" class="btn btn-outline-primary">{{'Change password' if has_password else 'Set password'}}</button>
  </form>
</section>
% end
<section aria-labelledby="signout-title">
  <h2 class="h5" id="signout-title">Sign out</h2>
  <form method="post" action="/logout">
    <input type="hidden" name="csrf_token" value="{{viewer.csrf_token}}">
    <button type="submit" class="btn btn-outline-secondary">Sign out</button>
  </form>
</section>

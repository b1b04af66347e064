% rebase('base', modules=('login.js',))
<div class="row justify-content-center">
<div class="col-12 col-sm-10 col-md-6 col-lg-5">
<h1 class="h3">Sign in</h1>
% if viewer and viewer.signed_in:
<p>You are signed in as <strong>{{viewer.caller.name}}</strong>. <a href="{{next}}">Go on</a>, or sign in as someone else below.</p>
% end
% if oidc_error:
<div class="alert alert-danger" role="alert" id="oidc-error">{{oidc_error}}</div>
% end
<div class="alert alert-danger" role="alert" id="login-error" hidden></div>
<form method="post" action="/login" data-login-form>
  <input type="hidden" name="next" value="{{next}}">
  <div class="mb-3">
    <label class="form-label" for="login-username">User name</label>
    <input class="form-control" type="text" id="login-username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required>
  </div>
  <div class="mb-3">
    <label class="form-label" for="login-secret">Password or API token</label>
    <input class="form-control" type="password" id="login-secret" name="secret" autocomplete="current-password" required>
  </div>
  <button type="submit" class="btn btn-primary">Sign in</button>
</form>
% if providers:
<section class="mt-4" aria-labelledby="login-providers">
  <h2 class="h6 text-body-secondary" id="login-providers">Or with an identity provider</h2>
  % for label, url in providers:
  <a class="btn btn-outline-primary d-block mb-2" href="{{url}}">Sign in with {{label}}</a>
  % end
</section>
% end
</div>
</div>

% rebase('base')
<h1 class="h3">Your new API token</h1>
<p>It is shown once: copy it now. The old token no longer works, and your browser sessions have ended: sign in again with your password or this token.</p>
<p><label class="form-label" for="new-token">API token of {{viewer.caller.name}}</label>
<input class="form-control font-monospace" id="new-token" type="text" value="{{token}}" readonly></p>
<p>For example: <code>curl -u {{viewer.caller.name}}:TOKEN …/rest</code></p>
<p><a class="btn btn-primary" href="/login">Sign in</a></p>

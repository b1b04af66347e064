% rebase('base')
<h1 class="h3">Password changed</h1>
<p>Your browser sessions have ended: sign in again with your new password.</p>
<p><a class="btn btn-primary" href="/login">Sign in</a></p>

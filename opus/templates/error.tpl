% rebase('base')
<h1 class="h3">{{code}} {{title}}</h1>
<p class="alert alert-danger" role="alert">{{reason}}</p>
<p><a href="/">Home</a> · <a href="/jobs">Jobs</a></p>

<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} · OPUS</title>
<link rel="icon" type="image/svg+xml" href="{{static('img/favicon.svg')}}">
<link rel="stylesheet" href="{{static('vendor/bootstrap/bootstrap.min.css')}}">
<link rel="stylesheet" href="{{static('css/opus.css')}}">
% for sheet in get('styles', ()):
<link rel="stylesheet" href="{{static('css/' + sheet)}}">
% end
<script src="{{static('vendor/bootstrap/bootstrap.bundle.min.js')}}" defer></script>
<noscript><link rel="stylesheet" href="{{static('css/nojs.css')}}"></noscript>
<script type="module" src="{{static('js/page.js')}}"></script>
% for module in get('modules', ()):
<script type="module" src="{{static('js/' + module)}}"></script>
% end
</head>
<body data-csrf-token="{{viewer.csrf_token if viewer else ''}}">
<a class="visually-hidden-focusable" href="#main">Skip to the content</a>
<nav class="navbar navbar-expand-md bg-body-tertiary border-bottom" aria-label="Main">
  <div class="container-lg">
    <a class="navbar-brand" href="/">OPUS</a>
    <button class="navbar-toggler" type="button" data-bs-toggle="collapse" data-bs-target="#navbar-menu" aria-controls="navbar-menu" aria-expanded="false"><span class="navbar-toggler-icon"></span><span class="visually-hidden">Menu</span></button>
    <div class="collapse navbar-collapse" id="navbar-menu">
      <ul class="navbar-nav me-auto">
% if viewer and viewer.job_types:
        <li class="nav-item dropdown">
          <a class="nav-link dropdown-toggle" href="/" role="button" data-bs-toggle="dropdown" aria-expanded="false">Job types</a>
          <ul class="dropdown-menu">
% for name in viewer.job_types:
            <li><a class="dropdown-item" href="/jobs/new/{{q(name)}}">{{name}}</a></li>
% end
          </ul>
        </li>
% end
        <li class="nav-item"><a class="nav-link" href="/jobs"{{!' aria-current="page"' if request_path == '/jobs' else ''}}>Jobs</a></li>
% # The admin pages (users, job definitions) come here.
% if viewer and viewer.caller.is_admin:
        <li class="nav-item"><a class="nav-link" href="/admin"{{!' aria-current="page"' if request_path == '/admin' or request_path.startswith('/admin/') else ''}}>Admin</a></li>
% elif viewer and 'jdl_author' in viewer.caller.roles:
        <li class="nav-item"><a class="nav-link" href="/admin/jdl"{{!' aria-current="page"' if request_path.startswith('/admin/jdl') else ''}}>Job definitions</a></li>
% end
      </ul>
      <ul class="navbar-nav">
% if viewer and viewer.signed_in:
        <li class="nav-item dropdown">
          <a class="nav-link dropdown-toggle" href="/profile" role="button" data-bs-toggle="dropdown" aria-expanded="false"><span class="visually-hidden">User menu of </span>{{viewer.caller.name}}</a>
          <ul class="dropdown-menu dropdown-menu-end">
            <li><a class="dropdown-item" href="/profile">Profile</a></li>
            <li>
              <form method="post" action="/logout">
                <input type="hidden" name="csrf_token" value="{{viewer.csrf_token}}">
                <button type="submit" class="dropdown-item">Sign out</button>
              </form>
            </li>
          </ul>
        </li>
% elif request_path != '/login':
        <li class="nav-item"><a class="nav-link" href="/login?next={{q(here)}}">Sign in</a></li>
% end
      </ul>
    </div>
  </div>
</nav>
<main id="main" class="container-lg py-3">
{{!base}}
</main>
</body>
</html>

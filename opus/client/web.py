"""The web client: the pages of OPUS, a bottle application of its own (merged at /).

``tree`` builds the page tree out of the page modules beside this one (account.py,
jobpages.py, newjob.py…) and opus/server/app.py merges it into the root application;
``negotiated`` shares ``/`` and ``/jobs`` with the text and JSON trees. These modules
are the server's: they import bottle and call the JobService. The Python client
library in the same package (api.py, jobs_api.py…, re-exported by __init__.py)
imports none of them.

Page routes parse the request, call the JobService with the caller (like the UWS
routes: never a store), and render templates of opus/templates; errors are HTML
pages (rendering.py). The pages:

- ``/`` home: the job types the user may run, and their recent jobs;
- ``/jobs`` the job list (filters, paging, actions on several jobs); ``/jobs/new/T``
  the form of a new job of type T; ``/jobs/T/ID`` a job, its results and output;
  ``/jobs/T/ID/results/R`` a result's preview, with its FITS quick look and the
  shared links of "Send to SAMP" beside it (astropages.py);
- ``/login`` the sign-in form (posted to the sign-in tree, routes/session.py),
  ``/profile`` the user's token and password;
- ``/admin…`` the admins' pages: users, every owner's jobs, the server's status
  (admin.py);
- ``/entities/ID`` an entity (an input or a result): what made it, what used it
  (entitypages.py; scripts get the JSON of routes/provenance.py);
- ``/static/…`` the CSS and JavaScript (static.py).

Scripts (static/js, ES modules) make the pages live: a job page waits on the job with
UWS's WAIT, a job list follows the change feed; everything is readable without them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import bottle

from opus.client import account, admin, astropages, entitypages, jdleditor, jobpages, newjob
from opus.client.context import Pages
from opus.client.rendering import (
    SECURITY_HEADERS,
    Renderer,
    Templates,
    html_error_plugin,
    security_plugin,
)
from opus.client.static import StaticFiles
from opus.client.views import HELPERS
from opus.server.auth import Authenticator, UserManager
from opus.server.routes.common import same_origin_plugin
from opus.server.routes.negotiation import quality
from opus.server.service import JobService
from opus.server.service.sharing import SharedLinks

# The paths whose unmatched requests (404, 405) get an HTML error page.
PAGE_PREFIXES = ("/jobs", "/login", "/profile", "/static/", "/admin")


def tree(
    service: JobService,
    authn: Authenticator,
    users: UserManager | None = None,
    static: StaticFiles | None = None,
    links: SharedLinks | None = None,
) -> bottle.Bottle:
    """The page tree (errors as HTML pages)."""
    settings = service.settings
    files = static or StaticFiles()
    renderer = Renderer(Templates(**HELPERS), files.url, settings.BASE_URL)
    app = bottle.Bottle()
    # The first plugin installed wraps the others: every answer gets the headers.
    app.install(security_plugin)
    app.install(html_error_plugin(renderer))
    app.install(same_origin_plugin(settings.BASE_URL))
    pages = Pages(service, authn, users, renderer, settings)
    # /jobs/new/T before /jobs/T/ID, which "/jobs/new/sleep" matches too.
    newjob.add_routes(app, pages)
    # The quick-look images and shared links of results, before their page's route.
    astropages.add_routes(app, pages, links or SharedLinks.on(service))
    jobpages.add_routes(app, pages)
    account.add_routes(app, pages)
    admin.add_routes(app, pages)
    jdleditor.add_routes(app, pages)
    entitypages.add_routes(app, pages)

    @app.get("/static/<path:path>")
    def static_file(path: str) -> bottle.HTTPResponse:
        return files.answer(path, bottle.request)

    return app


def is_page_path(path: str) -> bool:
    """Whether a path belongs to the web client (its errors are HTML pages)."""
    return path == "/" or path.startswith(PAGE_PREFIXES)


def negotiated(pages: bottle.Bottle, others: Iterable[bottle.Bottle]) -> list[bottle.Route]:
    """Routes for what both the pages and another tree answer ("/", "/jobs",
    "/entities/ID"): the page for a request that prefers HTML (a browser's), the other
    tree's answer for the others (scripts: no Accept, ``*/*``, JSON, text). Merged
    after the trees."""
    dispatcher = bottle.Bottle()
    own = {(route.rule, route.method): route for route in pages.routes}
    made = []
    for tree in others:
        for route in tree.routes:
            page = own.get((route.rule, route.method))
            if page is not None:
                made.append(
                    bottle.Route(dispatcher, route.rule, route.method, _choose(page, route))
                )
    return made


def prefers_html(accept: str | None) -> bool:
    """Whether an Accept header prefers HTML to JSON and plain text (a browser's does;
    none, or ``*/*``, does not)."""
    html = quality(accept, "text/html")
    return html > quality(accept, "application/json") and html > quality(accept, "text/plain")


def _choose(page: bottle.Route, api: bottle.Route) -> Callable[..., Any]:
    def dispatch(**kwargs: Any) -> Any:
        chosen = page if prefers_html(bottle.request.get_header("Accept")) else api
        answer = chosen.call(**kwargs)
        target = answer if isinstance(answer, bottle.HTTPResponse) else bottle.response
        target.set_header("Vary", "Accept")
        return answer

    return dispatch


@functools.cache
def _error_renderer() -> Renderer:
    """What renders the error pages of requests no route matched (no base URL needed)."""
    return Renderer(Templates(**HELPERS), StaticFiles().url, "")


def unmatched(error: bottle.HTTPError) -> str:
    """The HTML page of a request under the client's paths that no route matches."""
    answer = _error_renderer().error_page(error.status_code, _reason(error))
    for name, value in [*answer.headerlist, *SECURITY_HEADERS.items()]:
        bottle.response.set_header(name, value)
    body: str = answer.body
    return body


def _reason(error: bottle.HTTPError) -> str:
    if error.status_code == 404:
        return f"no page at {bottle.request.path}"
    if error.status_code == 405:
        return f"{bottle.request.method} is not allowed here"
    return error.status_line

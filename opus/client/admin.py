"""The admin pages: an index, the users, every owner's jobs, the server's status.

Every page asks ``admin_viewer`` first: a request without credentials goes to sign
in, like every page, and anybody signed in who is not an admin gets the 403 page
(the navigation shows them no admin link either). The pages read through the same
calls as the others (the service with the caller, the UserManager as /profile does)
and change nothing themselves:

- ``/admin/users`` is a shell: the users listed (readable without JavaScript) and the
  forms of its script, static/js/admin_users.js, which manages users through the SCIM
  API (/scim/v2/Users) with the session cookie and its CSRF token, as any SCIM client
  would. So the rules of users (admins only, a token shown once, names checked) stay
  those of one place, routes/scim.py;
- ``/admin/jobs`` is the job list of every owner, or of one (``owner=``), with the
  filters and keyset paging of /jobs; its buttons post to /jobs/actions and the job
  routes, which apply the access rules;
- ``/admin/status`` shows the figures of service/status.py.

``/admin/jdl`` (the job definition editor) is another module's; the index links to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import bottle

from opus.client.context import Pages
from opus.client.jobpages import PAGE_SIZES
from opus.client.rendering import Viewer
from opus.core.access import ADMIN_ROLE, ALL_JOB_TYPES_ROLE, JDL_AUTHOR_ROLE
from opus.core.errors import BadRequest, Forbidden, NotFound, Unauthorized
from opus.core.phases import parse_phase
from opus.core.records import User
from opus.server.auth import UserManager
from opus.server.service.status import server_status

DEFAULT_PAGE_SIZE = PAGE_SIZES[1]
# What the roles that are not job types let a user do (the role names are OPUS's).
OTHER_ROLES = (
    (ADMIN_ROLE, "every job, user and job definition"),
    (JDL_AUTHOR_ROLE, "writes drafts of job definitions"),
    (ALL_JOB_TYPES_ROLE, "runs every job type"),
)
# The owner names the job list's owner field suggests, at most.
OWNER_CHOICES_MAX = 500
# A search of the users page: at most this long (a name has at most 64 characters).
SEARCH_MAX = 64


@dataclass(frozen=True)
class RoleChoice:
    """A role the users page offers as a checkbox, and what it means."""

    name: str
    meaning: str


@dataclass(frozen=True)
class AdminPage:
    """A page of the admin index."""

    path: str
    title: str
    summary: str


ADMIN_PAGES = (
    AdminPage("/admin/users", "Users", "create users, set their roles, tokens and passwords"),
    AdminPage("/admin/jobs", "All jobs", "the jobs of every user, by owner, type and phase"),
    AdminPage("/admin/jdl", "Job definitions", "write, check and approve job definitions"),
    AdminPage("/admin/status", "Server status", "manager, database, active jobs, reconciler"),
)


def role_choices(job_types: list[str]) -> list[RoleChoice]:
    """The roles of the users page: the other roles, then the job types."""
    others = [RoleChoice(name, meaning) for name, meaning in OTHER_ROLES]
    return others + [RoleChoice(name, f"runs {name} jobs") for name in job_types]


def matching_users(users: list[User], search: str) -> list[User]:
    """The users whose name contains ``search``, in any case."""
    wanted = search.casefold()
    return [user for user in users if wanted in user.name.casefold()]


def add_routes(app: bottle.Bottle, pages: Pages) -> None:
    service = pages.service
    request = bottle.request

    def admin_viewer() -> Viewer:
        viewer = pages.viewer()
        if not viewer.signed_in:
            raise Unauthorized("sign in to see the admin pages")
        if not viewer.caller.is_admin:
            raise Forbidden("the admin pages are for admins only")
        return viewer

    def accounts() -> UserManager:
        if pages.users is None:
            raise NotFound("this server has no user accounts")
        return pages.users

    @app.get("/admin")
    def admin_index() -> bottle.HTTPResponse:
        viewer = admin_viewer()
        return pages.page("admin_index", viewer, title="Admin", admin_pages=ADMIN_PAGES)

    @app.get("/admin/users")
    def admin_users() -> bottle.HTTPResponse:
        viewer = admin_viewer()
        search = (request.query.decode().get("q") or "").strip()
        if len(search) > SEARCH_MAX:
            raise BadRequest(f"a search has at most {SEARCH_MAX} characters")
        users = accounts().all()
        shown = matching_users(users, search) if search else users
        return pages.page(
            "admin_users",
            viewer,
            title="Users",
            users=shown,
            total=len(users),
            search=search,
            roles=role_choices(service.registry.names()),
            check_permissions=pages.settings.CHECK_PERMISSIONS,
        )

    @app.get("/admin/jobs")
    def admin_jobs() -> bottle.HTTPResponse:
        viewer = admin_viewer()
        query = request.query.decode()
        owner = (query.get("owner") or "").strip()
        types = [name for name in query.getall("type") if name]
        try:
            phases = [parse_phase(value) for value in query.getall("phase") if value]
        except ValueError as exc:
            raise BadRequest(f"phase: {exc}") from None
        run_id = (query.get("run_id") or "").strip()
        cursor = query.get("cursor") or None
        newer = query.get("newer") or None
        limit = _page_size(query.get("limit"))
        page = service.list_user_jobs(
            viewer.caller,
            types=types,
            phases=phases,
            run_id=run_id or None,
            cursor=cursor,
            limit=limit,
            newer=newer,
            owner=owner or None,
        )
        title = f"Jobs of {owner}" if owner else "All jobs"
        users = pages.users.all() if pages.users is not None else []
        return pages.page(
            "admin_jobs",
            viewer,
            title=title,
            page=page,
            owner=owner,
            owners=[user.name for user in users[:OWNER_CHOICES_MAX]],
            types=types,
            all_types=service.registry.names(),
            phases=phases,
            run_id=run_id,
            limit=limit,
            list_url=request.path + (f"?{request.query_string}" if request.query_string else ""),
        )

    @app.get("/admin/status")
    def admin_status() -> bottle.HTTPResponse:
        viewer = admin_viewer()
        status = server_status(service, viewer.caller)
        return pages.page("admin_status", viewer, title="Server status", server=status)


def _page_size(text: str | None) -> int:
    """The jobs a page shows (one of PAGE_SIZES, as on /jobs)."""
    choices = ", ".join(map(str, PAGE_SIZES))
    try:
        wanted = int(text or DEFAULT_PAGE_SIZE)
    except ValueError:
        raise BadRequest(f"limit must be one of {choices}") from None
    if wanted not in PAGE_SIZES:
        raise BadRequest(f"limit must be one of {choices}")
    return wanted

"""The one place a server process is assembled: stores, service, trees, background.

``create_application(settings)`` opens the process's database (checked to be at the
schema revision of this OPUS), builds the JobService on it with the manager and the job
definitions, and merges one bottle application per HTTP tree into the root
application: UWS (/rest), synchronous runs (/sync), VOSI (/availability,
/capabilities), the result store (/store), shared links of results
(/shared), the signal handler (/handler), SCIM (/scim/v2), the OpenAPI description
(/openapi.json), signing in (/login, /logout, /session; /login/oidc/<name> with an
OpenID Connect provider), the JSON job lists and change feed (/jobs, /changes) and
the web pages (opus/client/web.py: /, /jobs…, /login, /profile, /static; / and /jobs go to
the page when the request prefers HTML). Each tree renders
its own errors (plain text, JSON when asked for or always, SCIM's JSON, or HTML pages);
the root renders requests no route matches the way the tree of their path would. The
background threads of the process belong to the application's ``Background`` (started
by `opus serve` and wsgi.py, stopped on shutdown).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import bottle

from opus.client import web
from opus.server import datadirs, schema
from opus.server.auth import Authenticator, UserManager
from opus.server.background import Background
from opus.server.jdl import JDLRegistry
from opus.server.jsonapi import JSON_CONTENT_TYPE, error_body
from opus.server.managers import make_manager
from opus.server.oidc import OpenIDSignIn
from opus.server.parking import Parker
from opus.server.routes import (
    handler,
    jdl,
    jobs,
    oidc,
    openapi,
    provenance,
    scim,
    session,
    shared,
    store,
    sync,
    uws,
    vosi,
)
from opus.server.routes.common import TEXT_CONTENT_TYPE, caller, plain_tree
from opus.server.routes.negotiation import TEXT_TYPE, prefers_json
from opus.server.routes.scim_messages import ScimError
from opus.server.service import JobService
from opus.server.service.jdlworkflow import DefinitionWorkflow
from opus.server.service.sharing import SharedLinks
from opus.server.sessions import SessionManager
from opus.server.storage import Database, UserStore
from opus.server.storage.sessions import SessionStore
from opus.server.storage.throttle import FailureStore
from opus.server.throttle import Throttle
from opus.server.uwsxml import JobDocuments
from opus.settings import Settings

log = logging.getLogger("opus.app")

EXAMPLE_JDL_DIR = Path(__file__).resolve().parents[2] / "jdl"


def init_data(settings: Settings) -> None:
    """Create the data directories, private to the server's account whatever the umask
    (datadirs.py), and seed the example definitions if JDL_PATH is empty."""
    datadirs.make_data_directories(settings)
    datadirs.tighten_database_file(schema.sqlite_file(settings.DATABASE_URL))
    jdl_path = settings.jdl_path
    if settings.SEED_EXAMPLE_JDL and EXAMPLE_JDL_DIR.is_dir() and not any(jdl_path.iterdir()):
        for source in EXAMPLE_JDL_DIR.iterdir():
            if source.is_file() and not source.name.startswith("."):
                datadirs.copy_private(source, jdl_path / source.name)
        log.info("seeded example job definitions into %s", jdl_path)


def open_database(settings: Settings) -> Database:
    """The process's stores (creates the data directories if needed).

    The database must be at the current schema revision (`opus db upgrade`):
    schema.SchemaError otherwise, whose message says so.
    """
    init_data(settings)
    database = Database.open(settings.DATABASE_URL)
    try:
        schema.check(database.engine)
    except BaseException:
        database.dispose()
        raise
    return database


def build_service(settings: Settings, database: Database | None = None) -> JobService:
    """The JobService of this process (on ``database``, or on one it opens)."""
    database = database or open_database(settings)
    return JobService(
        settings, database.jobs, make_manager(settings), JDLRegistry(settings.jdl_path)
    )


@dataclass(frozen=True)
class Application:
    """A server process: its WSGI application, its service and its background threads."""

    wsgi: bottle.Bottle
    service: JobService
    background: Background


def create_application(settings: Settings, service: JobService | None = None) -> Application:
    """The OPUS application of this process (its background threads not started)."""
    service = service or build_service(settings)
    # One engine per process: the users' store shares the jobs'.
    users = UserStore(service.store.engine)
    # Signing in and API authentication count failures on the same counters.
    throttle = Throttle(settings, FailureStore(users.engine))
    sessions = SessionManager(settings, users, SessionStore(users.engine), throttle)
    authn = Authenticator(settings, users, throttle, sessions)
    documents = JobDocuments(settings.BASE_URL)
    parker = Parker(service, documents)
    links = SharedLinks.on(service)
    root = bottle.Bottle()
    trees = (
        uws.tree(service, authn, documents, parker),
        sync.tree(service, authn, documents),
        vosi.tree(service, authn),
        jobs.tree(service, authn, parker),
        jdl.tree(service, authn, DefinitionWorkflow(service)),
        store.tree(service, authn),
        provenance.tree(service, authn),
        shared.tree(links),
        handler.tree(service),
        scim.tree(UserManager(users), authn),
        openapi.tree(settings),
        session.tree(sessions, authn),
        oidc.tree(OpenIDSignIn(settings, sessions, UserManager(users)), authn),
        _index_tree(service, authn, settings),
    )
    pages = web.tree(service, authn, UserManager(users), links=links)
    for tree in (*trees, pages):
        root.merge(tree)
    # "/" and "/jobs": the web page for a browser, the text or JSON answer for scripts.
    root.merge(web.negotiated(pages, trees))
    root.default_error_handler = _unmatched
    return Application(root, service, Background(service, parker))


def create_app(settings: Settings, service: JobService | None = None) -> bottle.Bottle:
    """The OPUS WSGI application, without background threads (tests, embedding)."""
    return create_application(settings, service).wsgi


def _index_tree(service: JobService, authn: Authenticator, settings: Settings) -> bottle.Bottle:
    """/: what this server is, and its job lists (plain text)."""
    app = plain_tree(settings.BASE_URL)

    @app.get("/")
    def index() -> bottle.HTTPResponse:
        names = service.job_types(caller(authn))
        lines = ["OPUS job server (UWS 1.1)", "", "Job types (UWS job lists):"]
        lines += [f"  {settings.BASE_URL}/rest/{name}" for name in names]
        body = "\n".join(lines) + "\n"
        return bottle.HTTPResponse(body=body, headers={"Content-Type": TEXT_CONTENT_TYPE})

    return app


def _unmatched(error: bottle.HTTPError) -> str:
    """A request no route answers (404, 405), rendered as its path's tree renders errors."""
    path = bottle.request.path
    json_tree = path in ("/changes", "/jdl", "/entities")
    json_tree = json_tree or path.startswith(("/jdl/", "/entities/"))
    if json_tree or (path.startswith("/rest") and prefers_json(TEXT_TYPE)):
        bottle.response.content_type = JSON_CONTENT_TYPE
        if path.startswith("/rest"):
            bottle.response.set_header("Vary", "Accept")
        return error_body(error.status_code, error.status_line).decode()
    if path.startswith("/scim/"):
        answer = ScimError(error.status_code, error.body or error.status_line).response()
        for name, value in answer.headerlist:
            bottle.response.set_header(name, value)
        body: str = answer.body
        return body
    if web.is_page_path(path):
        return web.unmatched(error)
    bottle.response.content_type = TEXT_CONTENT_TYPE
    return f"{error.status_line}\n"

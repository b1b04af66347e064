"""create_app(settings) → a bottle application wired to a JobService.

It builds the one engine of the process, the job store, the manager and the job
definitions, installs the route modules and turns domain errors into one-line
text/plain answers (4xx); anything unexpected is logged with its traceback and
answered 500 without details.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bottle

from opus.server import schema
from opus.server.auth import Authenticator, UserManager
from opus.server.errors import OpusError
from opus.server.jdl import JDLRegistry
from opus.server.managers import make_manager
from opus.server.notify import FeedListener
from opus.server.routes import handler, openapi, scim, store, uws
from opus.server.routes.common import TEXT_CONTENT_TYPE
from opus.server.service import JobService, Reconciler
from opus.server.storage import JobStore, UserStore, make_engine
from opus.settings import Settings

log = logging.getLogger("opus.app")

EXAMPLE_JDL_DIR = Path(__file__).resolve().parents[2] / "jdl"


def init_data(settings: Settings) -> None:
    """Create the data directories and seed the example definitions if JDL_PATH is empty."""
    settings.VAR_PATH.mkdir(parents=True, exist_ok=True)
    settings.jobs_path.mkdir(parents=True, exist_ok=True)
    jdl_path = settings.jdl_path
    jdl_path.mkdir(parents=True, exist_ok=True)
    if settings.SEED_EXAMPLE_JDL and EXAMPLE_JDL_DIR.is_dir() and not any(jdl_path.iterdir()):
        for source in EXAMPLE_JDL_DIR.iterdir():
            if source.is_file() and not source.name.startswith("."):
                shutil.copy2(source, jdl_path / source.name)
        log.info("seeded example job definitions into %s", jdl_path)


def open_store(settings: Settings) -> JobStore:
    """The process's JobStore (creates the data directories if needed).

    The database must be at the current schema revision (`opus db upgrade`):
    schema.SchemaError otherwise, whose message says so.
    """
    init_data(settings)
    engine = make_engine(settings.DATABASE_URL)
    try:
        schema.check(engine)
    except BaseException:
        engine.dispose()
        raise
    return JobStore(engine)


def build_service(settings: Settings) -> JobService:
    """The JobService of this process."""
    job_store = open_store(settings)
    return JobService(settings, job_store, make_manager(settings), JDLRegistry(settings.jdl_path))


def _plain_errors(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Bottle plugin: domain errors → 4xx one-liners, the rest → logged 500."""

    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except bottle.HTTPResponse:
            raise
        except OpusError as exc:
            return bottle.HTTPResponse(
                status=exc.status, body=f"{exc}\n", headers={"Content-Type": TEXT_CONTENT_TYPE}
            )
        except Exception:
            log.exception("%s %s failed", bottle.request.method, bottle.request.path)
            return bottle.HTTPResponse(
                status=500,
                body="internal server error\n",
                headers={"Content-Type": TEXT_CONTENT_TYPE},
            )

    return wrapper


def _error_page(error: bottle.HTTPError) -> str:
    bottle.response.content_type = TEXT_CONTENT_TYPE
    return f"{error.status_line}\n"


def create_app(
    settings: Settings, service: JobService | None = None, start_reconciler: bool = False
) -> bottle.Bottle:
    """The OPUS WSGI application."""
    service = service or build_service(settings)
    app = bottle.Bottle()
    app.install(_plain_errors)
    app.default_error_handler = _error_page  # type: ignore[method-assign]
    app.config["opus.service"] = service
    user_store = UserStore(service.store.engine)
    authn = Authenticator(settings, user_store)
    uws.install(app, service, authn)
    store.install(app, service, authn)
    scim.install(app, UserManager(user_store), authn)
    openapi.install(app, settings)
    handler.install(app, service)

    @app.get("/")
    def index():
        authn.caller(bottle.request)
        bottle.response.content_type = TEXT_CONTENT_TYPE
        names = service.registry.names()
        lines = ["OPUS job server (UWS 1.1)", "", "Job types (UWS job lists):"]
        lines += [f"  {settings.BASE_URL}/rest/{name}" for name in names]
        return "\n".join(lines) + "\n"

    if start_reconciler:
        start_background(app, service)
    return app


def start_background(app: bottle.Bottle, service: JobService) -> None:
    """The threads of a serving process: the reconciler, and (PostgreSQL) the listener
    that wakes this process's WAIT requests when another process changes a job."""
    reconciler = Reconciler(service)
    reconciler.start()
    app.config["opus.reconciler"] = reconciler
    if service.store.listens:
        listener = FeedListener(service.store.open_feed, service.notifier)  # type: ignore[arg-type]
        listener.start()
        app.config["opus.listener"] = listener

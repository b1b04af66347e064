"""Shared fixtures: settings in a temporary directory, an in-process app, a live server.

The fixtures that store anything (``settings``, ``service``, ``app``, ``live`` and the
live servers of the test_live_* modules) run each of their tests on SQLite and on
PostgreSQL (a throwaway server, tests/pg_cluster.py): ``test_x[sqlite]``,
``test_x[postgresql]``. OPUS_TEST_DATABASES=sqlite (comma-separated) restricts the
databases for a quick local run; by default both run.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest
from lxml import etree

from opus.server import schema
from opus.server.app import build_service, create_app
from opus.server.service import JobService
from opus.settings import Settings

# Fixtures of the real services the tests start: PostgreSQL and a SLURM cluster.
pytest_plugins = ["tests.pg_cluster", "tests.slurm_cluster"]

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
EXAMPLES = ROOT / "jdl"
KNOWN_DATABASES = ("sqlite", "postgresql")
DATABASES = [
    name.strip()
    for name in os.environ.get("OPUS_TEST_DATABASES", ",".join(KNOWN_DATABASES)).split(",")
    if name.strip()
]
if not DATABASES or not set(DATABASES) <= set(KNOWN_DATABASES):
    raise pytest.UsageError(f"OPUS_TEST_DATABASES: a comma-separated subset of {KNOWN_DATABASES}")


@functools.cache
def _sqlite_template() -> Path:
    """A SQLite database at the head revision, migrated once per session."""
    directory = Path(tempfile.mkdtemp(prefix="opus-sqlite-"))
    atexit.register(shutil.rmtree, directory, True)
    path = directory / "opus.db"
    schema.upgrade(f"sqlite:///{path}")
    return path


def migrated_sqlite(path: Path) -> str:
    """The URL of a SQLite database at ``path``, at the head revision.

    A new one is a copy of the session's template: migrating each test's database
    would cost more than many a test.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # The template's engine is disposed: WAL checkpointed, the file alone is whole.
        shutil.copyfile(_sqlite_template(), path)
    return f"sqlite:///{path}"


@contextlib.contextmanager
def database(kind: str, request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    """A migrated database of ``kind`` for the block; its URL. A SQLite file lives in
    ``directory``/var; a PostgreSQL database is dropped at the end."""
    if kind == "sqlite":
        yield migrated_sqlite(directory / "var" / "opus.db")
        return
    # Looked up here, not requested: a run on SQLite alone starts no PostgreSQL.
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    try:
        yield url
    finally:
        cluster.drop_database(url)


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The database of one test (its tests run once per database)."""
    with database(request.param, request, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=DATABASES)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The database of a module's live server (the module runs once per database)."""
    with database(request.param, request, tmp_path_factory.mktemp("database")) as url:
        yield url


def safe_parser() -> etree.XMLParser:
    """A parser that resolves no entity and fetches nothing (one per use: lxml's
    parsers are not to be shared between threads)."""
    return etree.XMLParser(resolve_entities=False, no_network=True)


@functools.cache
def xml_schema(name: str) -> etree.XMLSchema:
    """A schema of tests/schemas (UWS-v1.1.xsd, VOSIAvailability-v1.0.xsd…); its
    imports are its neighbours there, read from the disk."""
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / name), safe_parser()))


@pytest.fixture(scope="session")
def uws_schema() -> etree.XMLSchema:
    return xml_schema("UWS-v1.1.xsd")


@pytest.fixture
def validate(uws_schema: etree.XMLSchema):
    """Parse a UWS document, assert it is schema-valid, return its root."""

    def check(body: bytes) -> etree._Element:
        root = etree.fromstring(body)
        assert uws_schema.validate(root), uws_schema.error_log
        return root

    return check


def make_settings(tmp_path: Path, **overrides) -> Settings:
    """Settings with their data in ``tmp_path``; the database (SQLite in ``tmp_path``/var
    unless DATABASE_URL is given) is at the head revision."""
    jdl = tmp_path / "jdl"
    if not jdl.exists():
        shutil.copytree(EXAMPLES, jdl)
    values = dict(
        VAR_PATH=tmp_path / "var",
        JDL_PATH=jdl,
        # Nothing listens there: in-process tests deliver signals themselves.
        BASE_URL=f"http://127.0.0.1:{free_port()}",
        RECONCILE_INTERVAL=0.5,
        SIGNAL_RETRY_SECONDS=1,
        ALLOW_ANONYMOUS=True,
    )
    values.update(overrides)
    settings = Settings(**values)
    if "DATABASE_URL" not in overrides:
        migrated_sqlite(settings.VAR_PATH / "opus.db")
    return settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, DATABASE_URL=database_url)


@pytest.fixture
def service(settings: Settings) -> JobService:
    return build_service(settings)


@pytest.fixture
def app(settings: Settings, service: JobService) -> webtest.TestApp:
    return webtest.TestApp(create_app(settings, service))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """An `opus serve` process on a loopback port, with its own data directory.

    Its database is ``database_url`` (default: SQLite in ``tmp_path``/var), migrated
    before each start as `opus db upgrade` would: `opus serve` refuses an unmigrated one.
    """

    def __init__(self, tmp_path: Path, database_url: str | None = None, **settings: str) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url or f"sqlite:///{tmp_path / 'var' / 'opus.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        jdl = tmp_path / "jdl"
        if not jdl.exists():
            shutil.copytree(EXAMPLES, jdl)
        self.env = dict(os.environ)
        self.env.update(
            {
                "OPUS_BASE_URL": self.url,
                "OPUS_VAR_PATH": str(tmp_path / "var"),
                "OPUS_JDL_PATH": str(jdl),
                "OPUS_RECONCILE_INTERVAL": "0.5",
                "OPUS_SIGNAL_RETRY_SECONDS": "60",
                "OPUS_LOG_LEVEL": "WARNING",
                # Most live tests act as the shared anonymous owner; auth has its own.
                "OPUS_ALLOW_ANONYMOUS": "true",
                # Their URL inputs are served on loopback.
                "OPUS_ALLOW_PRIVATE_URLS": "true",
                "OPUS_DATABASE_URL": self.database_url,
            }
        )
        self.env.pop("OPUS_SETTINGS", None)
        self.env.update({f"OPUS_{k}": v for k, v in settings.items()})
        self.database_url = self.env["OPUS_DATABASE_URL"]
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tmp_path / "server.log"

    def start(self) -> None:
        schema.upgrade(self.database_url)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "opus", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/rest", timeout=2).read()
                return
            except urllib.error.HTTPError:
                return  # answering (401 when anonymous access is off)
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def live(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path, database_url)
    server.start()
    yield server
    server.stop()

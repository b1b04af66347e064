"""A throwaway PostgreSQL server started by the tests, one per test session.

``pg_cluster`` (session scope) runs initdb and pg_ctl from the PostgreSQL server binaries
(Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH; OPUS_TEST_PG_BIN names
another directory) in a temporary directory, with the durability settings off: the data
lives as long as the session. initdb refuses to run as root, so as root the server runs
as the ``postgres`` user, which owns the directory. A template database is migrated once
(`opus db upgrade`'s code); every test then gets its own database, a copy of the
template (CREATE DATABASE … TEMPLATE: a file copy, much faster than migrating), dropped
at the end of the test. Missing binaries fail the tests that need the server: a test
run must not pass by leaving PostgreSQL out.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from opus.server import schema

SUPERUSER = "postgres"
TEMPLATE = "opus_template"
START_TIMEOUT = 60
# The servers of the tests open pools of up to 60 connections, several per process.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "500",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "64MB",
    # Created per test and dropped: a checkpoint on each would cost more than the test.
    "checkpoint_timeout": "30min",
    "max_wal_size": "4GB",
    "log_min_messages": "warning",
}


def server_binaries() -> Path:
    """The directory of initdb and pg_ctl (the newest installed version)."""
    explicit = os.environ.get("OPUS_TEST_PG_BIN")
    candidates = [Path(explicit)] if explicit else []
    installed = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(installed, key=lambda p: _version(p.parent.name), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    raise RuntimeError(
        "the PostgreSQL server binaries (initdb, pg_ctl) are missing: install the Debian "
        "package postgresql (`make install-test` does), or set OPUS_TEST_PG_BIN to their "
        "directory; OPUS_TEST_DATABASES=sqlite runs the tests on SQLite only"
    )


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    """A PostgreSQL server in ``directory``, listening on 127.0.0.1:``port``."""

    def __init__(self, binaries: Path, directory: Path) -> None:
        self.binaries = binaries
        self.directory = directory
        self.data = directory / "data"
        self.logfile = directory / "server.log"
        self.port = _free_port()
        self._names = itertools.count(1)
        self._admin: Engine | None = None
        # initdb refuses root: the server runs as the postgres user, as in production.
        self.run_as = SUPERUSER if os.geteuid() == 0 else None

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.binaries / program), *args]
        if self.run_as:
            return ["runuser", "-u", self.run_as, "--", *command]
        return command

    def _run(self, program: str, *args: str, timeout: float = START_TIMEOUT) -> None:
        done = subprocess.run(
            self._command(program, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.directory,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}{self.log_tail()}"
            )

    def log_tail(self) -> str:
        try:
            return "\n--- server log ---\n" + self.logfile.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def start(self) -> None:
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            # The C locale: the same byte-wise ordering of text as SQLite.
            "--no-locale",
            "--no-sync",
        )
        settings = {**SETTINGS, "port": str(self.port), "unix_socket_directories": "''"}
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# OPUS tests: a throwaway server\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._run(
            "pg_ctl",
            "start",
            "--pgdata",
            str(self.data),
            "--log",
            str(self.logfile),
            "--wait",
            "--timeout",
            str(START_TIMEOUT),
        )
        self._admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        self._execute(f"CREATE DATABASE {TEMPLATE}")
        schema.upgrade(self.url(TEMPLATE))

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.dispose()
            self._admin = None
        if (self.data / "postmaster.pid").exists():
            # immediate: nothing of the data needs to survive.
            self._run("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", "immediate")

    def _execute(self, *statements: str) -> None:
        assert self._admin is not None, "the server is not started"
        with self._admin.connect() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)

    def create_database(self, prefix: str = "test") -> str:
        """A new database at the head revision (a copy of the template); its URL."""
        name = f"{prefix}_{next(self._names)}"
        self._execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def create_empty_database(self, prefix: str = "empty") -> str:
        """A new database without any table (for the migration tests)."""
        name = f"{prefix}_{next(self._names)}"
        self._execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a test's database, ending the connections its engines still hold."""
        name = url.rsplit("/", 1)[1]
        self._execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def running_cluster(binaries: Path) -> Iterator[PostgresCluster]:
    """A started PostgresCluster, stopped and removed at the end (also on failure)."""
    # Not under pytest's base temporary directory: that is private to root, and the
    # server runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="opus-pg-"))
    cluster = PostgresCluster(binaries, directory)
    try:
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL server (started on first use)."""
    try:
        binaries = server_binaries()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    with running_cluster(binaries) as cluster:
        yield cluster


@contextlib.contextmanager
def postgresql_database(cluster: PostgresCluster) -> Iterator[str]:
    """A fresh migrated database of ``cluster`` for the block; its URL."""
    url = cluster.create_database()
    try:
        yield url
    finally:
        cluster.drop_database(url)


@pytest.fixture
def postgresql_url(pg_cluster: PostgresCluster) -> Iterator[str]:
    """A database of its own for one test, at the head revision."""
    with postgresql_database(pg_cluster) as url:
        yield url

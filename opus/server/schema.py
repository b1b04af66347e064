"""Schema revisions of the OPUS database: migrate a database, or refuse one not migrated.

The tables are the models of storage/models.py; they change only through the Alembic migrations
in opus/server/migrations/versions, one revision per change. ``upgrade`` (`opus db
upgrade`, also run by `opus init`) brings a database to the newest revision; ``check``
runs when a process opens the database (`opus serve`, `opus maintenance`, `opus user`) and
refuses a database at another revision with a message saying what to run, so that a
server never works on tables that do not match its code.

Alembic is configured here, without an alembic.ini: the migrations run on an open
connection passed to env.py, so they always apply to the database OPUS is configured for.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

# Alembic logs at INFO as it loads and runs (plugins set up, DDL mode): noise in OPUS's
# log and on the console of `opus db upgrade`; its level is set before it loads.
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, Connection, Engine, make_url

from opus.commandline import opus_command
from opus.server.storage import make_engine

log = logging.getLogger("opus.schema")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The revision whose tables OPUS made with create_all before it had migrations.
INITIAL_REVISION = "0001"
# Any one of them marks a database made by OPUS (the others came in later versions).
INITIAL_TABLES = ("jobs", "job_parameters", "job_results", "users", "leases")
# Serialises concurrent upgrades of one PostgreSQL database (an arbitrary constant key).
UPGRADE_LOCK_KEY = 0x0F05_DB


class SchemaError(RuntimeError):
    """The database is not at the schema revision this version of OPUS works with."""


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration of OPUS; env.py runs on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest revision: the schema of the models in storage/models.py."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise RuntimeError(f"no migrations in {MIGRATIONS_DIR}")
    return head


def known_revisions() -> set[str]:
    return {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }


def display_url(url: str | URL) -> str:
    """A database URL fit for messages and logs: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite database URL (None for other databases and in-memory ones)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.database.startswith("file:"):  # pragma: no cover - URI file names
        return None
    return Path(url.database)


def sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite database URL, None for any other database."""
    return _sqlite_file(make_url(database_url))


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def current(engine: Engine) -> str | None:
    """The revision of the database behind ``engine``, without creating a SQLite file."""
    path = _sqlite_file(engine.url)
    if path is not None and not path.exists():
        return None
    with engine.connect() as connection:
        return current_revision(connection)


def check(engine: Engine) -> str:
    """Raise SchemaError unless the database is at the head revision; returns it.

    The message names the database (a SQLite file by its path, another by its URL with
    the password hidden) and the working directory: a relative VAR_PATH is taken from
    it, and a command run from another directory than `opus init` looks for another
    database, which must not be "fixed" by creating a second, empty one.
    """
    expected = head_revision()
    path = _sqlite_file(engine.url)
    if path is not None and not path.exists():
        command = opus_command()
        raise SchemaError(
            f"no OPUS database at {path.absolute()} (a relative VAR_PATH is taken from the "
            f"working directory, {Path.cwd()}): run OPUS from the directory where you ran "
            f"`{command} init`, set OPUS_VAR_PATH or OPUS_SETTINGS, or create it "
            f"with `{command} db upgrade`"
        )
    revision = current(engine)
    if revision == expected:
        return revision
    where = str(path.absolute()) if path is not None else display_url(engine.url)
    if revision is not None and revision not in known_revisions():
        raise SchemaError(
            f"the database {where} is at revision {revision}, which this version of OPUS "
            f"does not know (expected {expected}): it was migrated by a newer OPUS"
        )
    raise SchemaError(
        f"the database {where} is not migrated (at revision {revision or 'none'}, "
        f"expected {expected}; working directory {Path.cwd()}): "
        f"run `{opus_command()} db upgrade`"
    )


def upgrade(database_url: str) -> str:
    """Migrate the database to the head revision (creating it if empty); returns it.

    A database made by OPUS before it had migrations (its tables made by create_all, no
    alembic_version table) is taken over at the initial revision: the tables of that
    revision it lacks (users and leases came in later versions) are created, the ones
    it has are kept, and the revision is recorded. Newer migrations then apply as usual.
    """
    url = make_url(database_url)
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it, whatever the umask: it holds password
        # and token hashes.
        path.touch(mode=0o600, exist_ok=True)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Two `opus db upgrade` at once (several hosts, say) take turns; the
                # lock ends with the transaction, which holds the whole migration.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY}
                )
            before = current_revision(connection)
            tables = set(inspect(connection).get_table_names())
            if before is None and tables & set(INITIAL_TABLES):
                # The initial migration creates only the tables that are missing, and
                # records its revision: the database is stamped with it.
                log.info(
                    "the database %s was made before OPUS had migrations: "
                    "stamping it with revision %s",
                    display_url(url),
                    INITIAL_REVISION,
                )
            command.upgrade(alembic_config(connection), "head")
            revision = current_revision(connection)
    finally:
        engine.dispose()
    if revision is None:  # pragma: no cover - upgrade to head always records a revision
        raise SchemaError(f"the database {display_url(url)} was not migrated")
    return revision


def new_revision(database_url: str, message: str) -> Path:
    """Write a migration for what changed in the models since the head revision
    (for developers: the database must be at head); returns the new file."""
    engine = make_engine(database_url)
    try:
        check(engine)
        with engine.begin() as connection:
            script = command.revision(
                alembic_config(connection), message=message, autogenerate=True
            )
    finally:
        engine.dispose()
    if script is None or isinstance(script, list):  # pragma: no cover - one head
        raise RuntimeError("no migration was written")
    return Path(script.path)

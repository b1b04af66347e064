"""The one engine of a process, and what every store needs to know about keys.

SQLite runs in WAL mode with a busy timeout and foreign keys on; no SQLite-only SQL is
used anywhere, so PostgreSQL works with the same statements.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine


def make_engine(url: str) -> Engine:
    """The process's engine; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=20,
            max_overflow=40,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=40)


def storable(key: str) -> bool:
    """False for a key no row can have: PostgreSQL text cannot hold NUL (the driver
    refuses the query), so a look-up by such a key (from a URL, a form, credentials)
    finds nothing, on every database, instead of failing."""
    return "\x00" not in key


def raw_connection(engine: Engine) -> Any:
    """A DBAPI connection outside the pool, in autocommit mode (kept for a long time)."""
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    connection = engine.dialect.loaded_dbapi.connect(*args, **kwargs)
    connection.autocommit = True
    return connection

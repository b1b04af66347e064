"""The one engine of a process, what every store needs to know about keys, and the two
statements of the hot path that run on the driver directly.

SQLite runs in WAL mode with a busy timeout and foreign keys on; no SQLite-only SQL is
used anywhere, so PostgreSQL works with the same statements. ``HotQuery`` (the
one-row reads of every job GET and authentication) and ``HotInsert`` (the rows of a
new job) bypass SQLAlchemy's execution machinery, which costs more than the database's
work; everything else goes through SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, create_engine, event
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


def driver_time(value: Any) -> datetime | None:
    """A time read on the driver (SQLite gives text), timezone-aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) else None


def driver_marker(engine: Engine) -> str:
    """How the engine's driver marks a parameter in SQL: ``%s`` or ``?``."""
    return "%s" if engine.dialect.paramstyle in ("format", "pyformat") else "?"


def raw_connection(engine: Engine) -> Any:
    """A DBAPI connection outside the pool, in autocommit mode (kept for a long time)."""
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    connection = engine.dialect.loaded_dbapi.connect(*args, **kwargs)
    connection.autocommit = True
    return connection


class HotQuery:
    """A one-row read on the hot path of every request, run on the driver directly.

    A job GET and an authentication each cost one such read. Through SQLAlchemy's
    execution machinery (statement cache, result objects, type processing) a read
    costs several times what the database does for it, and far more under concurrent
    requests (every step of the driver hands the GIL over); these reads take a pooled
    connection and its cursor, nothing else. The SQL is plain and portable; ``?``
    marks the parameters, written as the driver wants them.
    """

    def __init__(self, engine: Engine, sql: str) -> None:
        self.engine = engine
        self.sql = sql.replace("?", driver_marker(engine))

    def one(self, parameters: Sequence[Any]) -> tuple[Any, ...] | None:
        """The first row for ``parameters``, or None."""
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self.sql, tuple(parameters))
                row = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool (rolled back there)
        return None if row is None else tuple(row)


class HotInsert:
    """Rows of one table written on the driver directly, in the caller's transaction.

    Job creation writes a job and its parameters: through SQLAlchemy's execution
    machinery that costs more than the database's work. The values go through each
    column type's own bind processor (public SQLAlchemy API), so what is stored is
    exactly what SQLAlchemy would store and read back.
    """

    def __init__(self, engine: Engine, table: Table) -> None:
        columns = list(table.columns)
        marker = driver_marker(engine)
        names = ", ".join(column.name for column in columns)
        markers = ", ".join(marker for _ in columns)
        self.sql = f"INSERT INTO {table.name} ({names}) VALUES ({markers})"  # noqa: S608 - model names
        self.keys = [column.name for column in columns]
        # The dialect's own implementation of each type: a TypeDecorator's bind_processor
        # would run the generic impl's (none for DateTime), leaving SQLite's sqlite3
        # adapter to write the text, without the fraction when it is zero — a form the
        # column's other rows and every bound time compare differently with.
        self.processors = [
            column.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
            for column in columns
        ]

    def rows(self, cursor: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (column name → value) with ``cursor``."""
        prepared = [
            tuple(
                value if process is None else process(value)
                for value, process in zip(
                    (row[key] for key in self.keys), self.processors, strict=True
                )
            )
            for row in rows
        ]
        if len(prepared) == 1:
            cursor.execute(self.sql, prepared[0])
        elif prepared:
            cursor.executemany(self.sql, prepared)

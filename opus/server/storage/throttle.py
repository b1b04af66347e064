"""FailureStore: the counters of failed authentications, shared by the server's processes.

One row per counter (``key``: a client address or a user name, as opus/server/throttle.py
makes them): how many failures since it was last forgotten, the last one, and until
when the counter's requests are refused. Only failures write (an upsert, in one
transaction for both counters of a request); a successful authentication reads the
counters with its user (UserStore.authenticate) and writes nothing. A counter without
a failure for the window is forgotten: reset by its next failure, deleted by any
failure once its refusal is over too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from opus.server.storage.models import AuthFailureRow


class FailureStore:
    """Reads and writes of the failed-authentication counters."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # INSERT … ON CONFLICT DO UPDATE: the same SQL on both, built by each dialect.
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def record(
        self,
        keys: Sequence[str],
        now: datetime,
        window: timedelta,
        refusal: Callable[[int], float],
    ) -> dict[str, tuple[int, datetime | None]]:
        """Count one failure on each counter of ``keys`` (one transaction): a counter
        without a failure for ``window`` starts again at one; each is then refused for
        ``refusal(failures)`` seconds (0: not refused). Key → (failures, refused until).
        """
        if not keys:
            return {}
        forget_before = now - window
        table = AuthFailureRow
        counted: dict[str, tuple[int, datetime | None]] = {}
        with self.engine.begin() as conn:
            for key in keys:
                statement = self._insert(table).values(
                    key=key, failures=1, last_failure=now, blocked_until=None
                )
                statement = statement.on_conflict_do_update(
                    index_elements=[table.key],
                    set_={
                        "failures": case(
                            (table.last_failure < forget_before, 1), else_=table.failures + 1
                        ),
                        "last_failure": now,
                    },
                )
                conn.execute(statement)
            rows = conn.execute(select(table.key, table.failures).where(table.key.in_(keys)))
            for key, failures in rows.all():
                seconds = refusal(failures)
                until = now + timedelta(seconds=seconds) if seconds > 0 else None
                if until is not None:
                    conn.execute(update(table).where(table.key == key).values(blocked_until=until))
                counted[key] = (failures, until)
        # The forgotten counters go in a transaction of their own: deleting them while
        # holding this request's counters could deadlock with another's (PostgreSQL).
        with self.engine.begin() as conn:
            conn.execute(
                delete(table).where(
                    table.last_failure < forget_before,
                    or_(table.blocked_until.is_(None), table.blocked_until < now),
                )
            )
        return counted

    def count(self, key: str) -> int:
        """The failures of one counter (0 if it has none)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(AuthFailureRow.failures).where(AuthFailureRow.key == key)
            ).scalar()
        return int(value or 0)

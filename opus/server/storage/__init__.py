"""Storage: every SQL statement of OPUS, behind three stores on one engine.

``JobStore`` (jobs.py) holds jobs, their parameters and results; ``UserStore``
(users.py) the users; ``Coordination`` (coordination.py) what the processes of one
server share through the database (the change feed, the reconciler lock). The tables
are the typed models of models.py, changed only through migrations (schema.py).
Nothing outside this package writes SQL or imports SQLAlchemy's query API.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from opus.server.storage.coordination import (
    AdvisoryLock,
    Coordination,
    LeaseLock,
    PhaseFeed,
    ReconcilerLock,
)
from opus.server.storage.engine import make_engine
from opus.server.storage.jobs import JobStore
from opus.server.storage.models import Base, JobRow, ParameterRow, ResultRow, UserRow
from opus.server.storage.users import UserStore


@dataclass(frozen=True)
class Database:
    """The stores of one process, on its one engine."""

    engine: Engine
    jobs: JobStore
    users: UserStore
    coordination: Coordination

    @classmethod
    def open(cls, url: str) -> Database:
        """The stores on a new engine for ``url`` (nothing is checked or created)."""
        engine = make_engine(url)
        coordination = Coordination(engine)
        return cls(engine, JobStore(engine, coordination), UserStore(engine), coordination)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


__all__ = [
    "AdvisoryLock",
    "Base",
    "Coordination",
    "Database",
    "JobRow",
    "JobStore",
    "LeaseLock",
    "ParameterRow",
    "PhaseFeed",
    "ReconcilerLock",
    "ResultRow",
    "UserRow",
    "UserStore",
    "make_engine",
]

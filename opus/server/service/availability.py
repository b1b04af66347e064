"""Whether this server can do its work now (VOSI availability): the database and the
manager, each asked the smallest question that proves it works.

The database must answer a query and be at the schema of this OPUS: the query reads
its schema revision (schema.current), which also tells an empty or foreign database
from OPUS's. The manager must be reachable (``Manager.check_reachable``: the local
manager always is; SLURM's controller must answer ``scontrol ping``).

An availability request must answer in seconds whatever is broken, and a broken
database may hang rather than fail: each check runs in a daemon thread of its own and
is waited for at most CHECK_TIMEOUT seconds. Requests that come while a check is still
running wait for that same check instead of starting another, so a database that hangs
costs one thread, not one per request of a monitor polling the service.

The notes are public (availability needs no credentials): they name what failed and
how, in OPUS's own words; the database driver's message, which may name hosts,
users and databases, goes to the log only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from opus.core.times import utcnow
from opus.server import schema
from opus.server.managers import ManagerError
from opus.server.service.jobs import JobService

log = logging.getLogger("opus.availability")

# Seconds a check may take before the service is said unavailable: longer than a SLURM
# ping may take (managers/slurm.py, PING_TIMEOUT), shorter than a monitor waits.
CHECK_TIMEOUT = 8.0


@dataclass(frozen=True)
class Availability:
    """What VOSI availability says: available or not, since when, and notes why."""

    available: bool
    notes: tuple[str, ...]
    up_since: datetime | None


class Run:
    """One run of a check: done once it has answered, with its answer."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.problem: str | None = None


class Probe:
    """One check, run in a daemon thread; callers that come while it runs share it.

    ``check()`` returns None when all is well, else a note saying what failed.
    """

    def __init__(self, name: str, check: Callable[[], str | None]) -> None:
        self.name = name
        self.check = check
        self._lock = threading.Lock()
        self._run: Run | None = None

    def start(self) -> Run:
        """The run under way, or a new one if none is."""
        with self._lock:
            run = self._run
            if run is None or run.done.is_set():
                run = self._run = Run()
                threading.Thread(
                    target=self._answer, args=(run,), name=f"opus-{self.name}-check", daemon=True
                ).start()
            return run

    def answer(self, run: Run, timeout: float, deadline: float) -> str | None:
        """The run's answer (None, or a note), or a note that it gave none by
        ``deadline`` (time.monotonic(), ``timeout`` seconds after the request began)."""
        if not run.done.wait(max(0.0, deadline - time.monotonic())):
            return f"{self.name}: no answer within {timeout:g} s"
        return run.problem

    def _answer(self, run: Run) -> None:
        try:
            run.problem = self.check()
        except Exception as exc:  # a check says what failed; it never raises
            log.exception("%s check failed", self.name)
            run.problem = f"{self.name}: the check failed ({type(exc).__name__})"
        finally:
            run.done.set()


class AvailabilityCheck:
    """The availability of one server process (``check``), and since when it is up."""

    def __init__(self, service: JobService, timeout: float = CHECK_TIMEOUT) -> None:
        self.service = service
        self.timeout = timeout
        self.head_revision = schema.head_revision()
        self.probes = (Probe("database", self._database), Probe("manager", self._manager))
        self._lock = threading.Lock()
        # The server checked its database before it started (app.open_database).
        self._up_since: datetime | None = utcnow()

    def check(self) -> Availability:
        """Ask the database and the manager (at once, each within the timeout)."""
        deadline = time.monotonic() + self.timeout
        runs = [(probe, probe.start()) for probe in self.probes]
        problems = [probe.answer(run, self.timeout, deadline) for probe, run in runs]
        notes = [problem for problem in problems if problem is not None]
        available = not notes
        with self._lock:
            if not available:
                self._up_since = None
            elif self._up_since is None:
                self._up_since = utcnow()
            up_since = self._up_since
        if available:
            manager = self.service.manager.name
            notes = ["the database answers", f"the {manager} manager is reachable"]
        return Availability(available, tuple(notes), up_since)

    def _database(self) -> str | None:
        try:
            revision = schema.current(self.service.store.engine)
        except Exception as exc:
            log.warning("availability: the database does not answer: %s", exc)
            return f"database: does not answer a query ({type(exc).__name__})"
        if revision is None:
            return "database: no OPUS schema (never migrated, or not OPUS's database)"
        if revision != self.head_revision:
            return f"database: at schema revision {revision}, this OPUS needs {self.head_revision}"
        return None

    def _manager(self) -> str | None:
        manager = self.service.manager
        try:
            manager.check_reachable()
        except ManagerError as exc:
            log.warning("availability: the %s manager is not reachable: %s", manager.name, exc)
            return f"manager: the {manager.name} manager is not reachable: {exc}"
        return None

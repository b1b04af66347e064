"""The rules of UWS WAIT, in one place for the two ways a request waits.

A WAIT request blocks while its job is active (PENDING, QUEUED, EXECUTING) and, when it
names a PHASE, while the job is in that phase; it ends at the first change of the job,
or at its deadline. ``Wait`` is that rule for one request. A request waits either in its
thread (JobService.wait, any WSGI server) or parked without one (parking.py, under
`opus serve`): both follow the same ``Wait`` and the same ``RECHECK_SECONDS``, the
interval at which a waiting request looks at its job again, to catch a change that no
notification reported (`opus maintenance` run from cron on SQLite).

All the requests one change wakes share a ``Wake``: the first to need the job reads it,
the others reuse that read, so waking a thousand clients costs one database read.

A request waiting in its thread also asks the HTTP server, every CLIENT_CHECK_SECONDS,
whether its answer is still wanted (``connected``): a client that hung up, or a server
that stops, ends the wait, so that the thread is free within a second rather than at
the deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from opus.core.phases import ACTIVE, Phase
from opus.core.records import Job, JobDetails

# How often a waiting request looks at its job without being notified.
RECHECK_SECONDS = 5.0
# How often a request waiting in its thread asks whether its client is still there.
CLIENT_CHECK_SECONDS = 0.5


class Sleeper(Protocol):
    """A subscribed request's wake-up (notify.Waiter)."""

    def wait(self, timeout: float) -> Wake | None: ...


@dataclass(frozen=True)
class Wait:
    """One WAIT request: until when, and for which phase (None: any active phase)."""

    deadline: float  # time.monotonic()
    phase: Phase | None = None

    @classmethod
    def starting_now(cls, timeout: float, phase: Phase | None = None) -> Wait:
        """A wait of ``timeout`` seconds from now."""
        return cls(time.monotonic() + timeout, phase)

    def is_over(self, job: Job) -> bool:
        """Whether the request answers now with ``job`` as it is."""
        return job.phase not in ACTIVE or (self.phase is not None and job.phase != self.phase)

    def remaining(self) -> float:
        """Seconds left before the deadline (0 or less once it has passed)."""
        return self.deadline - time.monotonic()

    def in_thread(
        self,
        waiter: Sleeper,
        details: JobDetails,
        read: Callable[[], JobDetails],
        connected: Callable[[], bool] | None = None,
    ) -> JobDetails:
        """Wait in this thread, from ``details`` (read once ``waiter`` was subscribed):
        the job as its first change left it, as it is at the deadline, or as it is when
        ``connected`` says no. ``read()`` reads it, also every RECHECK_SECONDS."""
        reread = time.monotonic() + RECHECK_SECONDS
        while not self.is_over(details.job) and self.remaining() > 0:
            until = min(self.deadline, reread)
            if connected is not None:
                until = min(until, time.monotonic() + CLIENT_CHECK_SECONDS)
            wake = waiter.wait(max(0.0, until - time.monotonic()))
            if wake is not None:
                return wake.details(read)
            gone = connected is not None and not connected()
            if gone or time.monotonic() >= min(self.deadline, reread):
                # Nothing notified: look again (a change by `opus maintenance`).
                details = read()
                reread = time.monotonic() + RECHECK_SECONDS
                if gone:
                    break
        return details


class Wake:
    """What the requests woken by one change share: the job, read once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._details: JobDetails | None = None

    def details(self, read: Callable[[], JobDetails]) -> JobDetails:
        """The job as the change left it: ``read()`` by the first caller, reused after.

        If ``read`` raises (the job was deleted), the next caller reads again.
        """
        # Once read, callers take no lock: many woken threads contending for one lock
        # each cost a context switch.
        details = self._details
        if details is not None:
            return details
        with self._lock:
            if self._details is None:
                self._details = read()
            return self._details

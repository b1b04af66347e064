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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from opus.core.phases import ACTIVE, Phase
from opus.core.records import Job, JobDetails

# How often a waiting request looks at its job without being notified.
RECHECK_SECONDS = 5.0


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

    def next_sleep(self) -> float:
        """How long to sleep before looking at the job again: the recheck interval, or
        less when the deadline comes first."""
        return min(self.remaining(), RECHECK_SECONDS)


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

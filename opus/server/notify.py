"""Wake-ups for UWS WAIT: a blocked request sleeps until its job's phase changes.

The JobService calls ``notify(job_id)`` after every phase change it makes; waiters
sleep on a per-request Event, so a change wakes them at once (no polling loop).
The number of simultaneous waiters is capped below the server's thread count, so
blocked WAIT requests can never take every thread: past the cap, WAIT returns at
once, which UWS allows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseNotifier:
    """Per-job sets of events, set when the job changes."""

    def __init__(self, max_waiters: int) -> None:
        self.max_waiters = max_waiters
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._count = 0

    @property
    def waiting(self) -> int:
        """How many requests are waiting now."""
        return self._count

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[threading.Event | None]:
        """An event set at the job's next change; None when the waiter cap is reached.

        Subscribe *before* reading the job's phase: a change between the read and the
        wait still sets the event, so no wake-up is lost.
        """
        event = threading.Event()
        with self._lock:
            if self._count >= self.max_waiters:
                event = None
            else:
                self._waiters.setdefault(job_id, set()).add(event)
                self._count += 1
        try:
            yield event
        finally:
            if event is not None:
                with self._lock:
                    waiters = self._waiters.get(job_id)
                    if waiters is not None and event in waiters:
                        waiters.discard(event)
                        if not waiters:
                            del self._waiters[job_id]
                    self._count -= 1

    def notify(self, job_id: str) -> None:
        """Wake every request waiting on this job."""
        with self._lock:
            waiters = self._waiters.pop(job_id, set())
        for event in waiters:
            event.set()

"""Wake-ups for UWS WAIT: a blocked request sleeps until its job's phase changes.

The JobService calls ``notify(job_id)`` after every phase change it makes; waiters
sleep on a per-request event, so a change wakes them at once (no polling loop). All the
waiters one change wakes share a ``Wake`` (waiting.py), so waking 200 clients costs one
database read, not 200. Requests that wait in their thread are capped below the
server's thread count, so blocked WAIT requests can never take every thread: past the
cap, WAIT returns at once, which UWS allows. Parked requests (parking.py) hold no
thread and are subscribed with ``add``, outside that cap.

The change feed's readers (GET /changes) wait the same way for any change of their
owner's jobs (``watch``, ``add_watcher``; an admin's for everybody's, owner None):
``notify(job_id, owner)`` wakes them with the job's waiters, ``notify_owner(owner)``
wakes them alone (a change that is not of the phase, which WAIT does not answer). A
watcher woken by a change it then finds none of (an owner not named) waits again.

A server of several processes (PostgreSQL) also hears the changes made by the others:
``FeedListener`` turns the announcements of a ``PhaseFeed`` (LISTEN/NOTIFY) into
``notify`` and ``notify_owner`` calls of this process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from opus.server.waiting import Wake

log = logging.getLogger("opus.notify")

# The key of the watchers of every owner's jobs (admins).
EVERYBODY = None


class Waiter:
    """One blocked request."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.wake: Wake | None = None

    def wait(self, timeout: float) -> Wake | None:
        """The Wake of the change that ended the wait, or None after ``timeout``."""
        return self.wake if self._event.wait(timeout) else None

    def set(self, wake: Wake) -> None:
        self.wake = wake
        self._event.set()


class Wakeable(Protocol):
    """What a change wakes: a blocked request's Waiter, or a parked request."""

    def set(self, wake: Wake) -> None: ...


class PhaseNotifier:
    """Per-job sets of waiters, woken when the job changes."""

    def __init__(self, max_waiters: int) -> None:
        self.max_waiters = max_waiters
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Wakeable]] = {}
        self._watchers: dict[str | None, set[Wakeable]] = {}
        self._count = 0

    @property
    def waiting(self) -> int:
        """How many requests are waiting now."""
        return self._count

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[Waiter | None]:
        """A waiter woken at the job's next change; None when the waiter cap is reached.

        Subscribe *before* reading the job's phase: a change between the read and the
        wait still wakes the waiter, so no wake-up is lost.
        """
        waiter: Waiter | None = None
        with self._lock:
            if self._count < self.max_waiters:
                waiter = Waiter()
                self._waiters.setdefault(job_id, set()).add(waiter)
                self._count += 1
        try:
            yield waiter
        finally:
            if waiter is not None:
                with self._lock:
                    self._remove(job_id, waiter)
                    self._count -= 1

    def add(self, job_id: str, waiter: Wakeable) -> None:
        """Subscribe a waiter that holds no thread (a parked request: parking.py); it
        does not count against the cap, and its ``set(wake)`` must not block."""
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(waiter)

    def discard(self, job_id: str, waiter: Wakeable) -> None:
        """Unsubscribe a waiter added with ``add`` (nothing if it was woken already)."""
        with self._lock:
            self._remove(job_id, waiter)

    def _remove(self, job_id: str, waiter: Wakeable) -> None:
        """Unsubscribe ``waiter`` if it still is (the lock is held)."""
        waiters = self._waiters.get(job_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[job_id]

    def notify(self, job_id: str, owner: str | None = None) -> None:
        """Wake every request waiting on this job, and the watchers of its owner (every
        watcher when the owner is not known)."""
        with self._lock:
            waiters = self._waiters.pop(job_id, set())
        if waiters:
            wake = Wake()
            for waiter in waiters:
                waiter.set(wake)
        self.notify_owner(owner)

    def notify_owner(self, owner: str | None) -> None:
        """Wake the watchers of ``owner``'s jobs and of everybody's (every watcher for
        None: a change of an owner not known)."""
        with self._lock:
            if owner is None:
                watchers = set().union(*self._watchers.values())
                self._watchers.clear()
            else:
                watchers = self._watchers.pop(owner, set())
                watchers |= self._watchers.pop(EVERYBODY, set())
        for watcher in watchers:
            watcher.set(Wake())

    def notify_all(self) -> None:
        """Wake every waiting request (changes may have been missed: look again)."""
        with self._lock:
            job_ids = list(self._waiters)
        for job_id in job_ids:
            self.notify(job_id)
        self.notify_owner(None)

    # -- the change feed's readers ------------------------------------------------------

    @contextmanager
    def watch(self, owner: str | None) -> Iterator[Waiter | None]:
        """A waiter woken at the next change of a job of ``owner`` (of anybody's for
        EVERYBODY); None past the cap on waiting threads (shared with ``subscribe``).

        Watch *before* reading the changes, as ``subscribe`` before reading the job.
        """
        waiter: Waiter | None = None
        with self._lock:
            if self._count < self.max_waiters:
                waiter = Waiter()
                self._watchers.setdefault(owner, set()).add(waiter)
                self._count += 1
        try:
            yield waiter
        finally:
            if waiter is not None:
                with self._lock:
                    self._unwatch(owner, waiter)
                    self._count -= 1

    def add_watcher(self, owner: str | None, watcher: Wakeable) -> None:
        """Watch without a thread (a parked request), outside the cap, as ``add``."""
        with self._lock:
            self._watchers.setdefault(owner, set()).add(watcher)

    def discard_watcher(self, owner: str | None, watcher: Wakeable) -> None:
        """Stop watching (nothing if the watcher was woken already)."""
        with self._lock:
            self._unwatch(owner, watcher)

    def _unwatch(self, owner: str | None, watcher: Wakeable) -> None:
        watchers = self._watchers.get(owner)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[owner]


class Change(Protocol):
    """A change another process announced (storage.coordination.Announcement)."""

    @property
    def job_id(self) -> str: ...
    @property
    def owner(self) -> str | None: ...
    @property
    def phase(self) -> bool: ...


class Feed(Protocol):
    """Where the job changes of other processes arrive (storage.PhaseFeed)."""

    def receive(self, timeout: float) -> Sequence[Change]: ...

    def close(self) -> None: ...


class FeedListener(threading.Thread):
    """Wakes this process's waiters when another process changes their job.

    If the feed's connection is lost, it reconnects; changes made meanwhile were not
    heard, so every waiter is woken to look again (UWS allows an early answer).
    """

    RECONNECT_DELAY = 1.0

    def __init__(self, open_feed: Callable[[], Feed], notifier: PhaseNotifier) -> None:
        super().__init__(name="opus-feed", daemon=True)
        self.open_feed = open_feed
        self.notifier = notifier
        self.stopping = threading.Event()
        self.listening = threading.Event()

    def run(self) -> None:
        feed: Feed | None = None
        missed = False
        while not self.stopping.is_set():
            try:
                if feed is None:
                    feed = self.open_feed()
                    self.listening.set()
                    if missed:
                        self.notifier.notify_all()
                for change in feed.receive(1.0):
                    if change.phase:
                        self.notifier.notify(change.job_id, change.owner)
                    else:
                        self.notifier.notify_owner(change.owner)
            except Exception as exc:
                log.warning("job change feed lost (%s); reconnecting", exc)
                if feed is not None:
                    feed.close()
                feed, missed = None, True
                self.listening.clear()
                self.stopping.wait(self.RECONNECT_DELAY)
        if feed is not None:
            with contextlib.suppress(Exception):
                feed.close()

    def stop(self) -> None:
        self.stopping.set()

"""The requests the Parker holds (parking.py), and what each waits for.

Two kinds wait without a thread under `opus serve`: a UWS WAIT on a job
(``ParkedWaiter``: woken by its job's changes, answered with the job as XML or JSON),
and a read of the change feed (``ParkedChanges``, GET /changes: woken by any change of
its owner's jobs, answered with what changed since its token, or at its deadline with
nothing and a fresh token). Both hold what the Parker needs to answer on their
connection; the HTTP server hands them over with a ``ParkTicket``.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opus.core.access import Caller
from opus.core.records import JobChanges, JobDetails
from opus.server.notify import EVERYBODY
from opus.server.waiting import Wait, Wake

if TYPE_CHECKING:
    from opus.server.parking import Parker


class ParkTicket:
    """The HTTP server's offer to park one request (in the environ under PARK_KEY).

    ``connection`` is the server's connection object: it has ``socket`` (closed,
    fileno -1, once the server drops the connection) and ``last_used`` (the server
    closes a connection idle for longer than its timeout). ``connected`` is the
    server's CONNECTED_KEY, for a request that cannot be parked after all.
    """

    def __init__(
        self, connection: Any, keep_alive: bool, connected: Callable[[], bool] | None = None
    ) -> None:
        self.connection = connection
        self.keep_alive = keep_alive
        self.connected = connected
        self.waiter: Parked | None = None


class Parked:
    """A parked request: its connection, once adopted, and how far it got."""

    def __init__(self, parker: Parker, caller: Caller, wait: Wait, json: bool) -> None:
        self.parker = parker
        self.caller = caller
        self.wait = wait
        # Answered as JSON (errors too), else as UWS XML and text.
        self.json = json
        self.connection: Any = None
        self.sock: socket.socket | None = None
        self.keep_alive = True
        self.done = False
        # A change that came before the HTTP server handed the connection over.
        self.wake: Wake | None = None
        self.counted_out = False

    def set(self, wake: Wake) -> None:
        """Called by PhaseNotifier (any thread): hand the wake to the Parker."""
        self.parker.queue.put(("wake", self, wake))

    def subscribe(self) -> None:
        """Be woken by the next change waited for."""
        raise NotImplementedError

    def unsubscribe(self) -> None:
        """Be woken no more (nothing if woken already)."""
        raise NotImplementedError


class ParkedWaiter(Parked):
    """One parked WAIT: woken like notify.Waiter, answered by the Parker."""

    def __init__(
        self,
        parker: Parker,
        caller: Caller,
        jobname: str,
        job_id: str,
        wait: Wait,
        if_none_match: str | None,
        json: bool = False,
    ) -> None:
        super().__init__(parker, caller, wait, json)
        self.jobname = jobname
        self.job_id = job_id
        self.if_none_match = if_none_match

    def read(self) -> JobDetails:
        """The job as it is now (raises like JobService.get_job)."""
        return self.parker.service.get_job(self.caller, self.jobname, self.job_id)

    def subscribe(self) -> None:
        self.parker.service.notifier.add(self.job_id, self)

    def unsubscribe(self) -> None:
        self.parker.service.notifier.discard(self.job_id, self)


class ParkedChanges(Parked):
    """One parked read of the change feed; ``token`` is how far it has looked."""

    def __init__(self, parker: Parker, caller: Caller, token: str, wait: Wait) -> None:
        super().__init__(parker, caller, wait, json=True)
        self.token = token
        self.owner = EVERYBODY if caller.is_admin else caller.name

    def read(self) -> JobChanges:
        """What changed since ``token`` (raises like JobService.changes)."""
        return self.parker.service.changes(self.caller, self.token)

    def subscribe(self) -> None:
        self.parker.service.notifier.add_watcher(self.owner, self)

    def unsubscribe(self) -> None:
        self.parker.service.notifier.discard_watcher(self.owner, self)


def park_job(
    parker: Parker,
    caller: Caller,
    jobname: str,
    job_id: str,
    wait: Wait,
    if_none_match: str | None,
    json: bool,
) -> tuple[ParkedWaiter, JobDetails | None]:
    """A subscribed WAIT waiter, and the job to answer at once if there is no need to
    wait (then the waiter is to be forgotten). Subscribed before the read: a change
    between the two still wakes it. Raises like JobService.get_job (unsubscribed)."""
    waiter = ParkedWaiter(parker, caller, jobname, job_id, wait, if_none_match, json)
    waiter.subscribe()
    try:
        details = waiter.read()
    except BaseException:
        waiter.unsubscribe()
        raise
    return waiter, details if wait.is_over(details.job) else None


def park_changes(
    parker: Parker, caller: Caller, token: str, wait: Wait
) -> tuple[ParkedChanges, JobChanges | None]:
    """A subscribed change-feed waiter, and the changes to answer at once if there are
    some (as ``park_job``). Raises like JobService.changes (unsubscribed)."""
    waiter = ParkedChanges(parker, caller, token, wait)
    waiter.subscribe()
    try:
        found = waiter.read()
    except BaseException:
        waiter.unsubscribe()
        raise
    if not found.empty:
        return waiter, found
    waiter.token = found.token
    return waiter, None


def same(details: JobDetails) -> JobDetails:
    """The job already read (a recheck answers with what it read)."""
    return details


def gone(waiters: set[Parked]) -> list[Parked]:
    """The parked requests whose client has gone."""
    found = []
    owned = {}
    for waiter in waiters:
        if waiter.connection is not None:
            # The HTTP server watches the connection and closes its side at the end.
            if waiter.connection.socket.fileno() == -1:
                found.append(waiter)
        elif waiter.sock is not None:
            owned[waiter.sock.fileno()] = waiter
    if owned:
        poller = select.poll()
        for descriptor in owned:
            poller.register(descriptor, select.POLLIN | select.POLLRDHUP)
        hung_up = select.POLLHUP | select.POLLRDHUP | select.POLLERR | select.POLLNVAL
        for descriptor, events in poller.poll(0):
            if events & hung_up:
                found.append(owned[descriptor])
    return found

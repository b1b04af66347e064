"""UWS WAIT without a thread per waiting request: parked connections, one writer.

A blocked WAIT normally holds a server thread until its job changes. Under `opus
serve`, a WAIT request is *parked* instead: the route subscribes it to its job's
changes and returns at once; the HTTP server (httpserver.ParkingGateway) writes
nothing for it, and the request's thread goes back to the pool. A keep-alive
connection stays in the HTTP server's selector as if it were idle, ready for the
client's next request; a ``Connection: close`` one is handed over to the Parker.

One thread per process (the Parker) answers every parked request: when their job
changes, it reads and renders the job once and writes the same bytes to every waiting
connection, some 40 µs each, where a thread per request costs a wake-up, a GIL
hand-over and a trip through the WSGI stack.
Parked requests hold a file descriptor and a few hundred bytes, not a thread, so they
are not capped by SERVER_THREADS.

The Parker writes on a file descriptor of its own: a duplicate of the keep-alive
connection's (if the client goes and the HTTP server closes its descriptor, the number
cannot be reused for another client's connection while the Parker may still write on
it), or the one the HTTP server gave up.

The rules are those of JobService.wait, the same ``Wait`` (waiting.py): the answer is
the job as the change left it, or as it is at the deadline; a job looked at every
RECHECK_SECONDS catches changes no notification reports (`opus maintenance` on SQLite);
a deleted job answers 404; a client whose If-None-Match names the answer's ETag gets
304. A WAIT that asked for JSON is answered as JSON, its errors too (jsonapi.py).
Parking is used for HTTP/1.1 GET requests without a body, on a server without TLS;
anything else waits in its thread.

A read of the change feed (GET /changes with WAIT) parks the same way, subscribed to
its owner's changes (parked.ParkedChanges): woken, it reads what changed since its
token and answers if anything did (else it keeps waiting, subscribed again before the
read); at its deadline, or when the server stops, it answers what it finds, maybe
nothing, with a fresh token. The rules are those of JobService.wait_changes.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import os
import queue
import resource
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING

from opus.core.access import Caller
from opus.core.errors import OpusError
from opus.core.phases import Phase
from opus.core.records import JobChanges, JobDetails
from opus.server import jsonapi
from opus.server.answers import http_date, send_answer
from opus.server.parked import (
    Parked,
    ParkedChanges,
    ParkedWaiter,
    ParkTicket,
    gone,
    park_changes,
    park_job,
    same,
)
from opus.server.routes.common import TEXT_CONTENT_TYPE, etag_matches
from opus.server.uwsxml import XML_CONTENT_TYPE
from opus.server.waiting import RECHECK_SECONDS, Wait, Wake

if TYPE_CHECKING:
    from opus.server.service import JobService
    from opus.server.uwsxml import JobDocuments

log = logging.getLogger("opus.parking")

# The WSGI environ key under which the HTTP server offers to park a request.
PARK_KEY = "opus.park"
# The WSGI environ key of the HTTP server's ``connected()``: whether the request's
# client is still there and the server not stopping (a request waiting in its thread
# ends when it says no).
CONNECTED_KEY = "opus.connected"
# Parked requests per process at most; past it, WAIT holds a thread as before. Each
# holds two descriptors (the server's and the Parker's), under the process's limit.
MAX_PARKED = 10_000
FD_HEADROOM = 512
INTERNAL_ERROR = b"internal server error\n"
# What a JSON answer says besides its type: it depends on the request's Accept, and
# a feed's answer is never to be reused.
JSON_HEADERS = ["Vary: Accept"]
CHANGES_HEADERS = ["Cache-Control: no-store"]


class Parker:
    """Answers the parked requests of one process (WAIT, the change feed), from one thread.

    ``documents`` renders a job's document and gives its ETag (uwsxml.JobDocuments).
    """

    def __init__(self, service: JobService, documents: JobDocuments) -> None:
        self.service = service
        self.documents = documents
        self.queue: queue.SimpleQueue[tuple[str, Parked | None, Wake | None]] = queue.SimpleQueue()
        self._capacity: int | None = None
        self._lock = threading.Lock()
        self._count = 0  # parked or being parked
        self._parked: set[Parked] = set()
        self._deadlines: list[tuple[float, int, Parked]] = []
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def capacity(self) -> int:
        """Parked requests at most: MAX_PARKED, within the process's descriptor limit
        (read at the first park, once `opus serve` has raised it)."""
        if self._capacity is None:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            if soft == resource.RLIM_INFINITY:
                soft = 2 * MAX_PARKED + FD_HEADROOM
            self._capacity = min(MAX_PARKED, max(0, (soft - FD_HEADROOM) // 2))
        return self._capacity

    @property
    def parked(self) -> int:
        """How many requests are parked (or being parked) now."""
        return self._count

    # -- called by request threads -----------------------------------------------------

    def park(
        self,
        ticket: ParkTicket,
        caller: Caller,
        jobname: str,
        job_id: str,
        timeout: float,
        phase: Phase | None,
        if_none_match: str | None = None,
        json: bool = False,
    ) -> JobDetails | None:
        """Park a WAIT request if it has to wait: None, or the job to answer at once
        (``json``: the Parker answers it as JSON).

        The waiter subscribes before the job is read, so that a change between the
        read and the parking still wakes it. Raises like JobService.get_job.
        """
        if not self._take_place():
            return self.service.wait(caller, jobname, job_id, timeout, phase, ticket.connected)
        wait = Wait.starting_now(timeout, phase)
        try:
            waiter, details = park_job(self, caller, jobname, job_id, wait, if_none_match, json)
        except BaseException:
            self._give_place()
            raise
        if details is not None:
            self._forget(waiter)
            return details
        ticket.waiter = waiter
        self._start()
        return None

    def park_changes(
        self, ticket: ParkTicket, caller: Caller, since: str, timeout: float
    ) -> JobChanges | None:
        """Park a read of the change feed while nothing changed: None, or the changes
        to answer at once. Raises like JobService.changes."""
        if not self._take_place():
            return self.service.wait_changes(caller, since, timeout, ticket.connected)
        try:
            waiter, found = park_changes(self, caller, since, Wait.starting_now(timeout))
        except BaseException:
            self._give_place()
            raise
        if found is not None:
            self._forget(waiter)
            return found
        ticket.waiter = waiter
        self._start()
        return None

    def _take_place(self) -> bool:
        """Count a request in, unless parking is full or stopping."""
        with self._lock:
            if self._stopping or self._count >= self.capacity:
                return False
            self._count += 1
            return True

    def _give_place(self) -> None:
        with self._lock:
            self._count -= 1

    def adopt(self, ticket: ParkTicket) -> None:
        """The HTTP server wrote nothing for a parked request: the Parker answers it."""
        waiter = ticket.waiter
        if waiter is None:
            return
        descriptor: int | None = None
        try:
            if ticket.keep_alive:
                # The HTTP server keeps the connection for the next request.
                descriptor = os.dup(ticket.connection.socket.fileno())
                waiter.connection = ticket.connection
            else:
                # Connection: close: the HTTP server lets go of it (httpserver makes it
                # leave the socket alone), so nothing of it runs after the answer.
                descriptor = ticket.connection.socket.detach()
            waiter.sock = socket.socket(fileno=descriptor)
        except OSError:
            if descriptor is not None:
                os.close(descriptor)
            # The connection is already gone: nobody to answer.
            self._forget(waiter)
            return
        waiter.keep_alive = ticket.keep_alive
        self.queue.put(("adopt", waiter, None))

    def abandon(self, ticket: ParkTicket) -> None:
        """The request was answered another way (an error after parking)."""
        if ticket.waiter is not None:
            self._forget(ticket.waiter)

    def stop(self) -> None:
        """Answer every parked request now (the server is stopping), then stop."""
        with self._lock:
            self._stopping = True
        self.queue.put(("stop", None, None))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)

    # -- the Parker's thread ------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="opus-parker", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        next_check = time.monotonic() + RECHECK_SECONDS
        while True:
            now = time.monotonic()
            until = next_check
            if self._deadlines:
                until = min(until, self._deadlines[0][0])
            items = []
            try:
                items.append(self.queue.get(timeout=max(0.0, until - now)))
                while True:
                    items.append(self.queue.get_nowait())
            except queue.Empty:
                pass
            try:
                started = time.perf_counter()
                if self._handle(items):
                    return
                if len(items) > 1:
                    log.debug(
                        "%d parking events handled in %.1f ms",
                        len(items),
                        (time.perf_counter() - started) * 1000,
                    )
                now = time.monotonic()
                self._expire(now)
                if now >= next_check:
                    self._recheck()
                    next_check = now + RECHECK_SECONDS
            except Exception:
                log.exception("answering parked WAIT requests failed")

    def _handle(self, items: list[tuple[str, Parked | None, Wake | None]]) -> bool:
        """Process queued events; True once told to stop."""
        for kind, waiter, wake in items:
            if kind == "stop":
                for waiters in self._by_job().values():
                    self._answer(waiters, waiters[0].read)
                for feed in self._feeds():
                    self._answer_changes(feed, final=True)
                return True
            if waiter is None or waiter.done:
                continue
            if kind == "adopt":
                self._parked.add(waiter)
                entry = (waiter.wait.deadline, next(self._sequence), waiter)
                heapq.heappush(self._deadlines, entry)
                if waiter.wake is not None:
                    self._answer_woken(waiter, waiter.wake)
            elif kind == "wake" and wake is not None:
                if waiter in self._parked:
                    self._answer_woken(waiter, wake)
                else:
                    waiter.wake = wake
        return False

    def _expire(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, waiter = heapq.heappop(self._deadlines)
            if not waiter.done:
                self._answer_current(waiter)
        if len(self._deadlines) > 2 * len(self._parked) + 1000:
            # Mostly answered waiters: keep the heap the size of what still waits.
            self._deadlines = [entry for entry in self._deadlines if not entry[2].done]
            heapq.heapify(self._deadlines)

    def _recheck(self) -> None:
        """Every few seconds: drop requests whose client went, keep the others' connections
        from expiring in the HTTP server, and answer those whose job changed unnoticed."""
        for waiter in gone(self._parked):
            self._finish(waiter)
        for waiter in self._parked:
            if waiter.connection is not None:
                waiter.connection.last_used = time.time()
        for waiters in self._by_job().values():
            try:
                details = waiters[0].read()
            except OpusError as exc:
                for waiter in waiters:
                    self._send_error(waiter, exc)
                continue
            over = [waiter for waiter in waiters if waiter.wait.is_over(details.job)]
            if over:
                self._answer(over, functools.partial(same, details))
        for feed in self._feeds():
            self._answer_changes(feed, final=False)

    def _by_job(self) -> dict[tuple[str, str], list[ParkedWaiter]]:
        by_job: dict[tuple[str, str], list[ParkedWaiter]] = {}
        for waiter in self._parked:
            if isinstance(waiter, ParkedWaiter):
                by_job.setdefault((waiter.jobname, waiter.job_id), []).append(waiter)
        return by_job

    def _feeds(self) -> list[ParkedChanges]:
        return [waiter for waiter in self._parked if isinstance(waiter, ParkedChanges)]

    def _answer_woken(self, waiter: Parked, wake: Wake) -> None:
        """Answer a WAIT with the job as the change left it, read once per change (and
        rendered once per version of the job); a feed with what changed, if anything."""
        if isinstance(waiter, ParkedWaiter):
            self._answer([waiter], lambda: wake.details(waiter.read))
        elif isinstance(waiter, ParkedChanges):
            # Woken, it was unsubscribed: subscribed again before it reads.
            waiter.subscribe()
            self._answer_changes(waiter, final=False)

    def _answer_current(self, waiter: Parked) -> None:
        """Answer with the job (or the changes) as it is now: the deadline has come."""
        if isinstance(waiter, ParkedWaiter):
            self._answer([waiter], waiter.read)
        elif isinstance(waiter, ParkedChanges):
            self._answer_changes(waiter, final=True)

    def _answer(self, waiters: list[ParkedWaiter], read: Callable[[], JobDetails]) -> None:
        """Answer each with the document of ``read()`` (read once; XML or JSON, each
        rendered once), a 304 to those whose copy is current, or the error the read
        raised."""
        try:
            details = read()
        except OpusError as exc:
            for waiter in waiters:
                self._send_error(waiter, exc)
            return
        except Exception:
            log.exception("WAIT on job %s: reading the job failed", waiters[0].job_id)
            for waiter in waiters:
                self._send_fault(waiter)
            return
        etag = self.documents.etag(details.job)
        bodies: dict[bool, bytes] = {}
        for waiter in waiters:
            wanted = jsonapi.json_etag(etag) if waiter.json else etag
            headers = [f"ETag: {wanted}", *(JSON_HEADERS if waiter.json else [])]
            if etag_matches(waiter.if_none_match, wanted):
                self._send(waiter, "304 Not Modified", None, b"", headers)
                continue
            if waiter.json not in bodies:
                bodies[waiter.json] = (
                    jsonapi.job_body(details, self.documents.base_url)
                    if waiter.json
                    else self.documents.job(details)
                )
            content_type = jsonapi.JSON_CONTENT_TYPE if waiter.json else XML_CONTENT_TYPE
            self._send(waiter, "200 OK", content_type, bodies[waiter.json], headers)

    def _answer_changes(self, waiter: ParkedChanges, final: bool) -> None:
        """Answer a feed with what changed since its token; if nothing did, keep it
        waiting (its token as fresh as this look) unless ``final``."""
        try:
            found = waiter.read()
        except OpusError as exc:
            self._send_error(waiter, exc)
            return
        except Exception:
            log.exception("reading the changes of %s failed", waiter.caller.name)
            self._send_fault(waiter)
            return
        if found.empty and not final:
            waiter.token = found.token
            return
        body = jsonapi.changes_body(found, self.documents.base_url)
        self._send(waiter, "200 OK", jsonapi.JSON_CONTENT_TYPE, body, CHANGES_HEADERS)

    def _send_error(self, waiter: Parked, exc: OpusError) -> None:
        status = f"{exc.status} {HTTPStatus(exc.status).phrase}"
        headers = [f"{name}: {value}" for name, value in exc.headers.items()]
        if waiter.json:
            body = jsonapi.opus_error_body(exc)
            self._send(waiter, status, jsonapi.JSON_CONTENT_TYPE, body, headers + JSON_HEADERS)
        else:
            self._send(waiter, status, TEXT_CONTENT_TYPE, f"{exc}\n".encode(), headers)

    def _send_fault(self, waiter: Parked) -> None:
        status = "500 Internal Server Error"
        if waiter.json:
            body = jsonapi.error_body(500, "internal server error")
            self._send(waiter, status, jsonapi.JSON_CONTENT_TYPE, body, JSON_HEADERS)
        else:
            self._send(waiter, status, TEXT_CONTENT_TYPE, INTERNAL_ERROR)

    def _send(
        self,
        waiter: Parked,
        status: str,
        content_type: str | None,
        body: bytes,
        headers: list[str] | None = None,
    ) -> None:
        """Write a whole HTTP answer on the waiter's connection, without blocking."""
        sock, connection = waiter.sock, waiter.connection
        close = not waiter.keep_alive
        self._finish(waiter, keep_socket=True)
        if sock is None:
            return
        head = [f"HTTP/1.1 {status}"]
        if content_type is not None:
            # A 304 has neither a body nor a length (RFC 9110 §15.4.5).
            head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        head += [f"Date: {http_date()}", "Server: OPUS", *(headers or [])]
        if close:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        if connection is not None:
            # The connection stays in the HTTP server's selector, waiting for the next
            # request: counted as used now, it is not closed as idle.
            connection.last_used = time.time()
        send_answer(sock, data, close)

    def _finish(self, waiter: Parked, keep_socket: bool = False) -> None:
        """The waiter is answered or gone: forget it (closing our descriptor unless the
        answer is being written on it)."""
        waiter.done = True
        self._parked.discard(waiter)
        if not keep_socket and waiter.sock is not None:
            waiter.sock.close()
        # Answered waiters stay in the deadline heap until their deadline: they must
        # not keep the connection objects alive that long.
        waiter.sock = waiter.connection = waiter.wake = None
        self._forget(waiter)

    def _forget(self, waiter: Parked) -> None:
        waiter.done = True
        waiter.unsubscribe()
        with self._lock:
            if not waiter.counted_out:
                waiter.counted_out = True
                self._count -= 1

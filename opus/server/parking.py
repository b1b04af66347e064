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

The semantics are those of JobService.wait: the answer is the job as the change left
it, or as it is at the deadline; a job looked at every few seconds catches changes no
notification reports (`opus maintenance` on SQLite); a deleted job answers 404.
Parking is used for HTTP/1.1 GET requests without a body, on a server without TLS;
anything else waits in its thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import queue
import resource
import select
import socket
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from opus.server.errors import OpusError
from opus.server.phases import ACTIVE, Phase
from opus.server.routes.common import TEXT_CONTENT_TYPE
from opus.server.storage import Job

log = logging.getLogger("opus.parking")

# The WSGI environ key under which the HTTP server offers to park a request.
PARK_KEY = "opus.park"
# How often parked requests are looked at without a notification (as JobService.wait).
RECHECK_SECONDS = 5.0
# A client that does not read its answer gets this long before its connection goes.
SEND_TIMEOUT = 30.0
# Parked requests per process at most; past it, WAIT holds a thread as before. Each
# holds two descriptors (the server's and the Parker's), under the process's limit.
MAX_PARKED = 10_000
FD_HEADROOM = 512
INTERNAL_ERROR = b"internal server error\n"


def raise_descriptor_limit() -> None:
    """Raise this process's soft limit on open files to its hard limit (every open
    connection, idle or parked, holds a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and soft != resource.RLIM_INFINITY:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class ParkTicket:
    """The HTTP server's offer to park one request (in the environ under PARK_KEY).

    ``connection`` is the server's connection object: it has ``socket`` (closed,
    fileno -1, once the server drops the connection) and ``last_used`` (the server
    closes a connection idle for longer than its timeout).
    """

    def __init__(self, connection: Any, keep_alive: bool) -> None:
        self.connection = connection
        self.keep_alive = keep_alive
        self.waiter: ParkedWaiter | None = None


class ParkedWaiter:
    """One parked request: woken like notify.Waiter, answered by the Parker."""

    def __init__(
        self,
        parker: Parker,
        jobname: str,
        job_id: str,
        phase: Phase | None,
        deadline: float,
    ) -> None:
        self.parker = parker
        self.jobname = jobname
        self.job_id = job_id
        self.phase = phase
        self.deadline = deadline
        self.connection: Any = None
        self.sock: socket.socket | None = None
        self.keep_alive = True
        self.done = False
        # A change that came before the HTTP server handed the connection over.
        self.wake: Any = None
        self.counted_out = False

    def set(self, wake: Any) -> None:
        """Called by PhaseNotifier.notify (any thread): hand the wake to the Parker."""
        self.parker.queue.put(("wake", self, wake))


class Parker:
    """Answers the parked WAIT requests of one process, from one thread."""

    def __init__(self, service: Any, render: Callable[[Job], bytes], content_type: str) -> None:
        self.service = service
        self.render = render
        self.content_type = content_type
        self.queue: queue.SimpleQueue[tuple[str, ParkedWaiter | None, Any]] = queue.SimpleQueue()
        self._capacity: int | None = None
        self._lock = threading.Lock()
        self._count = 0  # parked or being parked
        self._parked: set[ParkedWaiter] = set()
        self._deadlines: list[tuple[float, int, ParkedWaiter]] = []
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
        jobname: str,
        job_id: str,
        timeout: float,
        phase: Phase | None,
    ) -> Job | None:
        """Park the request if it has to wait: None, or the job to answer at once.

        The waiter subscribes before the job is read, so that a change between the
        read and the parking still wakes it. Raises like JobService.get_job.
        """
        with self._lock:
            if self._stopping or self._count >= self.capacity:
                full = True
            else:
                full = False
                self._count += 1
        if full:
            return self.service.wait(jobname, job_id, timeout, phase)[0]
        waiter = ParkedWaiter(self, jobname, job_id, phase, time.monotonic() + timeout)
        notifier = self.service.notifier
        notifier.add(job_id, waiter)
        try:
            job = self.service.get_job(jobname, job_id)
        except BaseException:
            self._forget(waiter)
            raise
        if self.wait_is_over(job, phase):
            self._forget(waiter)
            return job
        ticket.waiter = waiter
        self._start()
        return None

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

    @staticmethod
    def wait_is_over(job: Job, phase: Phase | None) -> bool:
        """Whether a WAIT on ``job`` answers at once (JobService.wait's rule)."""
        return job.phase not in ACTIVE or (phase is not None and job.phase != phase)

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

    def _handle(self, items: list[tuple[str, ParkedWaiter | None, Any]]) -> bool:
        """Process queued events; True once told to stop."""
        for kind, waiter, wake in items:
            if kind == "stop":
                for (jobname, job_id), waiters in self._by_job().items():
                    self._answer(waiters, self._reader(jobname, job_id))
                return True
            if waiter is None or waiter.done:
                continue
            if kind == "adopt":
                self._parked.add(waiter)
                heapq.heappush(self._deadlines, (waiter.deadline, next(self._sequence), waiter))
                if waiter.wake is not None:
                    self._answer_woken(waiter, waiter.wake)
            elif kind == "wake":
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
        for waiter in _gone(self._parked):
            self._finish(waiter)
        for waiter in self._parked:
            if waiter.connection is not None:
                waiter.connection.last_used = time.time()
        for (jobname, job_id), waiters in self._by_job().items():
            try:
                job = self.service.get_job(jobname, job_id)
            except OpusError as exc:
                for waiter in waiters:
                    self._send_error(waiter, exc)
                continue
            over = [waiter for waiter in waiters if self.wait_is_over(job, waiter.phase)]
            if over:
                self._answer(over, lambda job=job: self.render(job))

    def _by_job(self) -> dict[tuple[str, str], list[ParkedWaiter]]:
        by_job: dict[tuple[str, str], list[ParkedWaiter]] = {}
        for waiter in self._parked:
            by_job.setdefault((waiter.jobname, waiter.job_id), []).append(waiter)
        return by_job

    def _reader(self, jobname: str, job_id: str) -> Callable[[], bytes]:
        """The job's document as it is now."""
        return lambda: self.render(self.service.get_job(jobname, job_id))

    def _answer_woken(self, waiter: ParkedWaiter, wake: Any) -> None:
        """Answer with the job as the change left it, read and rendered once per change."""

        def document() -> bytes:
            job = wake.once("job", lambda: self.service.get_job(waiter.jobname, waiter.job_id))
            return wake.once("document", lambda: self.render(job))

        self._answer([waiter], document)

    def _answer_current(self, waiter: ParkedWaiter) -> None:
        """Answer with the job as it is now (its deadline has come)."""
        self._answer([waiter], self._reader(waiter.jobname, waiter.job_id))

    def _answer(self, waiters: list[ParkedWaiter], document: Callable[[], bytes]) -> None:
        """Answer each with ``document()`` (computed once), or with the error it raised."""
        try:
            body = document()
        except OpusError as exc:
            for waiter in waiters:
                self._send_error(waiter, exc)
            return
        except Exception:
            log.exception("WAIT on job %s: reading the job failed", waiters[0].job_id)
            for waiter in waiters:
                self._send(waiter, "500 Internal Server Error", TEXT_CONTENT_TYPE, INTERNAL_ERROR)
            return
        for waiter in waiters:
            self._send(waiter, "200 OK", self.content_type, body)

    def _send_error(self, waiter: ParkedWaiter, exc: OpusError) -> None:
        status = f"{exc.status} {HTTPStatus(exc.status).phrase}"
        self._send(waiter, status, TEXT_CONTENT_TYPE, f"{exc}\n".encode())

    def _send(self, waiter: ParkedWaiter, status: str, content_type: str, body: bytes) -> None:
        """Write a whole HTTP answer on the waiter's connection, without blocking."""
        sock, connection = waiter.sock, waiter.connection
        close = not waiter.keep_alive
        self._finish(waiter, keep_socket=True)
        if sock is None:
            return
        head = [
            f"HTTP/1.1 {status}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            f"Date: {_http_date()}",
            "Server: OPUS",
        ]
        if close:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        if connection is not None:
            # The connection stays in the HTTP server's selector, waiting for the next
            # request: counted as used now, it is not closed as idle.
            connection.last_used = time.time()
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sock.close()  # the client went
            return
        if sent < len(data):
            # A slow reader: finish in a thread of its own, not to hold the others.
            threading.Thread(
                target=_send_rest, args=(sock, data[sent:], close), daemon=True
            ).start()
            return
        _close(sock, close)

    def _finish(self, waiter: ParkedWaiter, keep_socket: bool = False) -> None:
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

    def _forget(self, waiter: ParkedWaiter) -> None:
        waiter.done = True
        self.service.notifier.discard(waiter.job_id, waiter)
        with self._lock:
            if not waiter.counted_out:
                waiter.counted_out = True
                self._count -= 1


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header's value, formatted once a second (answers go out in bursts)."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def _gone(waiters: set[ParkedWaiter]) -> list[ParkedWaiter]:
    """The parked requests whose client has gone."""
    gone = []
    owned = {}
    for waiter in waiters:
        if waiter.connection is not None:
            # The HTTP server watches the connection and closes its side at the end.
            if waiter.connection.socket.fileno() == -1:
                gone.append(waiter)
        elif waiter.sock is not None:
            owned[waiter.sock.fileno()] = waiter
    if owned:
        poller = select.poll()
        for descriptor in owned:
            poller.register(descriptor, select.POLLIN | select.POLLRDHUP)
        hung_up = select.POLLHUP | select.POLLRDHUP | select.POLLERR | select.POLLNVAL
        for descriptor, events in poller.poll(0):
            if events & hung_up:
                gone.append(owned[descriptor])
    return gone


def _close(sock: socket.socket, close_connection: bool) -> None:
    """Done with our descriptor; with Connection: close, end the connection for the
    client too (the HTTP server then sees its end of file and drops its side)."""
    if close_connection:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
    sock.close()


def _send_rest(sock: socket.socket, data: bytes, close_connection: bool) -> None:
    deadline = time.monotonic() + SEND_TIMEOUT
    try:
        while data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Never read: end the connection rather than leave a half answer.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                return
            _, writable, _ = select.select([], [sock], [], remaining)
            if writable:
                try:
                    data = data[sock.send(data) :]
                except BlockingIOError:
                    continue
    except OSError:
        return
    finally:
        if not data:
            _close(sock, close_connection)
        else:
            sock.close()

"""The HTTP server of `opus serve`: cheroot, a production multi-threaded WSGI server.

Cheroot gives each active request a worker thread that writes its answer to the socket
itself; idle keep-alive connections wait in a selector and hold no thread. A UWS WAIT
that has to wait is parked instead of holding its thread (ParkingGateway, parking.py):
cheroot keeps its connection as an idle one, and the process's Parker writes the
answer when the job changes, so thousands of blocked requests cost no thread and are
answered within milliseconds of the change (bench/bench_wait.py). The benchmarks'
reference handler is served by this same function.

A worker thread gets a connection only once its request's head has come whole, within
a size and a time limit (httpheads.py): slow or silent clients hold no thread. A
request that waits in its thread (an HTTP/1.0 WAIT) is told when its client hangs up
or the server stops (CONNECTED_KEY), so that SIGTERM stops the server within seconds
whatever its clients do.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from cheroot import wsgi

from opus.server.httpheads import GuardedConnection, HeadFirstConnections
from opus.server.parked import ParkTicket
from opus.server.parking import CONNECTED_KEY, MAX_PARKED, PARK_KEY
from opus.settings import Settings

log = logging.getLogger("opus.httpserver")

# Room for multipart boundaries and form fields around the largest upload.
BODY_OVERHEAD = 1024 * 1024
SOCKET_TIMEOUT = 60
COPY_CHUNK = 256 * 1024


def raise_descriptor_limit() -> None:
    """Raise this process's soft limit on open files to its hard limit (every open
    connection, idle or parked, holds a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and soft != resource.RLIM_INFINITY:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class ChunkedBodies:
    """WSGI middleware: a chunked request body becomes a sized one, or a 413.

    Cheroot hands the application a de-chunked body but keeps the Transfer-Encoding
    header, which would make bottle parse the chunks a second time. The body is read
    here, up to the size limit, into a spooled temporary file; past the limit the
    request is refused with 413 before the application sees it.
    """

    SPOOL_IN_MEMORY = 1024 * 1024

    def __init__(self, app: Any, max_body: int | None) -> None:
        self.app = app
        self.max_body = max_body

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return self.app(environ, start_response)
        spool = tempfile.SpooledTemporaryFile(max_size=self.SPOOL_IN_MEMORY)  # noqa: SIM115
        try:
            size = self._copy(environ["wsgi.input"], spool)
        except OSError:
            # Over the limit: cheroot's reader says so as well, with an OSError.
            spool.close()
            body = f"request body larger than {self.max_body} bytes\n".encode()
            headers = [("Content-Type", "text/plain; charset=UTF-8"), ("Connection", "close")]
            start_response("413 Payload Too Large", headers)
            return [body]
        spool.seek(0)
        environ = dict(environ, CONTENT_LENGTH=str(size))
        environ.pop("HTTP_TRANSFER_ENCODING")
        environ["wsgi.input"] = spool
        return self.app(environ, start_response)

    def _copy(self, source: Any, spool: Any) -> int:
        size = 0
        while chunk := source.read(COPY_CHUNK):
            size += len(chunk)
            if self.max_body is not None and size > self.max_body:
                raise OSError("request body too large")
            spool.write(chunk)
        return size


class ParkingGateway(wsgi.Gateway_10):
    """The WSGI gateway of `opus serve`: it can park a request (parking.py).

    A plain HTTP/1.1 GET without a body gets a ParkTicket in its environ. If the
    application parks the request (a WAIT that has to wait), the gateway writes
    nothing and keeps the connection open: cheroot puts a keep-alive one back in its
    selector as an idle connection, and lets go of a ``Connection: close`` one without
    closing it. The thread is free, and the Parker writes the answer on the connection
    later. Any other request is served as cheroot's own gateway does.
    """

    # cheroot's stubs declare Gateway.get_environ without a type (returning None);
    # Gateway_10's returns the WSGI environ.
    def get_environ(self) -> dict[str, Any]:  # type: ignore[override]
        environ: dict[str, Any] = super().get_environ()  # type: ignore[no-untyped-call]
        req = self.req
        environ[CONNECTED_KEY] = req.conn.connected
        if (
            req.method == b"GET"
            and req.response_protocol == "HTTP/1.1"
            and not req.conn.ssl_env
            and not req.chunked_read
            and int(req.inheaders.get(b"Content-Length", 0) or 0) == 0
        ):
            environ[PARK_KEY] = ParkTicket(
                req.conn, keep_alive=not req.close_connection, connected=req.conn.connected
            )
        return environ

    def respond(self) -> None:
        ticket = self.env.get(PARK_KEY)
        if ticket is None:
            super().respond()
            return
        response = self.req.server.wsgi_app(self.env, self.start_response)
        waiter = ticket.waiter
        if waiter is not None and self.req.status[:3] == b"200" and not self.req.sent_headers:
            if hasattr(response, "close"):
                response.close()
            # Nothing is sent for this request now (``ready`` False: cheroot sends no
            # headers either).
            self.req.ready = False
            if ticket.keep_alive:
                # Back in cheroot's selector as an idle connection, for the next request.
                self.req.close_connection = False
            else:
                # Cheroot forgets the connection without ending it (``linger``: it
                # neither shuts the socket down nor closes it); the Parker owns it.
                self.req.conn.linger = True
                self.req.close_connection = True
            waiter.parker.adopt(ticket)
            return
        if waiter is not None:
            waiter.parker.abandon(ticket)
        # Not parked: cheroot's own Gateway.respond, after the application was called.
        try:
            for chunk in filter(None, response):
                if not isinstance(chunk, bytes):
                    raise ValueError("WSGI Applications must yield bytes")
                self.write(chunk)
        finally:
            self.req.ensure_headers_sent()
            if hasattr(response, "close"):
                response.close()


class HeadFirstServer(wsgi.Server):
    """cheroot's WSGI server, whose workers get only whole request heads (httpheads.py)."""

    ConnectionClass = GuardedConnection
    header_timeout: float = Settings.REQUEST_HEADER_TIMEOUT
    _connections: Any

    def prepare(self) -> None:
        super().prepare()
        # cheroot's prepare made its own connection manager: replaced before any serving.
        self._connections._selector.close()
        self._connections = HeadFirstConnections(
            self, self.max_request_header_size, self.header_timeout
        )


def _shut_down(conn: Any) -> None:
    """cheroot's last resort for a worker still busy when the server stops, shutting
    writing down too (it shuts down reading only: a worker blocked sending to a client
    that reads nothing would keep the server up for a socket timeout)."""
    if conn is not None and not conn.rfile.closed:
        with contextlib.suppress(OSError):
            conn.socket.shutdown(socket.SHUT_RDWR)


def make_server(
    app: Any,
    host: str,
    port: int,
    threads: int,
    max_body: int | None = None,
    reuse_port: bool = False,
    max_header_size: int = Settings.MAX_REQUEST_HEADER_SIZE,
    header_timeout: float = Settings.REQUEST_HEADER_TIMEOUT,
) -> wsgi.Server:
    """A cheroot server for ``app`` with ``threads`` workers.

    ``reuse_port`` lets the processes of `opus serve --workers N` listen on one port.
    A request's line and headers must come within ``max_header_size`` bytes and
    ``header_timeout`` seconds of their first byte.
    """
    limit = None if max_body is None else max_body + BODY_OVERHEAD
    server = HeadFirstServer(
        (host, port),
        ChunkedBodies(app, limit),
        numthreads=threads,
        request_queue_size=2048,
        timeout=SOCKET_TIMEOUT,
        shutdown_timeout=5,
        server_name="OPUS",
        reuse_port=reuse_port,
    )
    if limit is not None:
        # Bodies larger than this are refused with 413 before the application reads them.
        server.max_request_body_size = limit
    server.gateway = ParkingGateway
    server.max_request_header_size = max_header_size
    server.header_timeout = header_timeout
    server.requests._force_close = _shut_down
    # Cheroot stops keeping connections alive past 10 open ones (its default): idle and
    # parked connections hold no thread, only a descriptor, so allow as many as WAIT
    # may park.
    server.keep_alive_conn_limit = MAX_PARKED
    return server


def serve(
    app: Any,
    host: str,
    port: int,
    threads: int,
    max_body: int | None = None,
    reuse_port: bool = False,
    on_stop: Callable[[], None] | None = None,
    max_header_size: int = Settings.MAX_REQUEST_HEADER_SIZE,
    header_timeout: float = Settings.REQUEST_HEADER_TIMEOUT,
) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully.

    ``on_stop`` runs first when the server stops: the application's background
    (Background.stop), which answers parked WAIT requests while their connections are
    still open. Requests waiting in their threads then answer within a second, and
    workers still busy after cheroot's shutdown timeout (5 s) have their connections
    shut down.
    """
    raise_descriptor_limit()
    server = make_server(
        app, host, port, threads, max_body, reuse_port, max_header_size, header_timeout
    )
    ended = threading.Event()

    def stop_all() -> None:
        if on_stop is not None:
            try:
                on_stop()
            except Exception:
                log.exception("stopping the background threads failed")
        # cheroot ignores a stop before it is ready: a signal that came during the
        # start-up stops the server once it serves (or is dropped if it never does).
        while not server.ready and not ended.wait(0.05):
            pass
        server.stop()

    def stop(_signum: int, _frame: object) -> None:
        # Stopping closes the listening socket and joins the workers: done from another
        # thread, so that the serving loop in this one sees it and returns.
        threading.Thread(target=stop_all, name="opus-stop").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.safe_start()
    finally:
        ended.set()

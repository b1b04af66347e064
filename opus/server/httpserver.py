"""The HTTP server of `opus serve`: cheroot, a production multi-threaded WSGI server.

Cheroot gives each active request a worker thread that writes its answer to the socket
itself; idle keep-alive connections wait in a selector and hold no thread. That suits
UWS WAIT: hundreds of blocked requests are answered within milliseconds of the phase
change (bench/bench_wait.py), while the request cap of PhaseNotifier keeps threads free
for everything else. The benchmarks' reference handler is served by this same function.
"""

from __future__ import annotations

import signal
import tempfile
import threading
from typing import Any

from cheroot import wsgi

# Room for multipart boundaries and form fields around the largest upload.
BODY_OVERHEAD = 1024 * 1024
SOCKET_TIMEOUT = 60
COPY_CHUNK = 256 * 1024


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


def make_server(
    app: Any,
    host: str,
    port: int,
    threads: int,
    max_body: int | None = None,
    reuse_port: bool = False,
) -> wsgi.Server:
    """A cheroot server for ``app`` with ``threads`` workers.

    ``reuse_port`` lets the processes of `opus serve --workers N` listen on one port.
    """
    limit = None if max_body is None else max_body + BODY_OVERHEAD
    server = wsgi.Server(
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
    return server


def serve(
    app: Any,
    host: str,
    port: int,
    threads: int,
    max_body: int | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully."""
    server = make_server(app, host, port, threads, max_body, reuse_port)

    def stop(_signum: int, _frame: object) -> None:
        # Stopping closes the listening socket and joins the workers: done from another
        # thread, so that the serving loop in this one sees it and returns.
        threading.Thread(target=server.stop, name="opus-stop").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.safe_start()

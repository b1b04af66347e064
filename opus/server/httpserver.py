"""The HTTP server of `opus serve`: cheroot, a production multi-threaded WSGI server.

Cheroot gives each active request a worker thread that writes its answer to the socket
itself; idle keep-alive connections wait in a selector and hold no thread. That suits
UWS WAIT: hundreds of blocked requests are answered within milliseconds of the phase
change (bench/bench_wait.py), while the request cap of PhaseNotifier keeps threads free
for everything else. The benchmarks' reference handler is served by this same function.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from cheroot import wsgi

# Room for multipart boundaries and form fields around the largest upload.
BODY_OVERHEAD = 1024 * 1024
SOCKET_TIMEOUT = 60


def make_server(
    app: Any, host: str, port: int, threads: int, max_body: int | None = None
) -> wsgi.Server:
    """A cheroot server for ``app`` with ``threads`` workers."""
    server = wsgi.Server(
        (host, port),
        app,
        numthreads=threads,
        request_queue_size=2048,
        timeout=SOCKET_TIMEOUT,
        shutdown_timeout=5,
        server_name="OPUS",
    )
    if max_body is not None:
        # Bodies larger than this are refused with 413 before the application reads them.
        server.max_request_body_size = max_body + BODY_OVERHEAD
    return server


def serve(app: Any, host: str, port: int, threads: int, max_body: int | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully."""
    server = make_server(app, host, port, threads, max_body)

    def stop(_signum: int, _frame: object) -> None:
        # Stopping closes the listening socket and joins the workers: done from another
        # thread, so that the serving loop in this one sees it and returns.
        threading.Thread(target=server.stop, name="opus-stop").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.safe_start()

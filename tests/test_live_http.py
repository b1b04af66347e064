"""The HTTP server of `opus serve` against hostile clients, over raw sockets: heads over
MAX_REQUEST_HEADER_SIZE (431, memory flat), heads slower than REQUEST_HEADER_TIMEOUT
(408), the framings of request smuggling (400, nothing after them served), hundreds of
slow or silent clients (other requests still answered within a second or so), HTTP/1.0
WAITs whose client hung up (their threads freed), and SIGTERM with all of these
connected (the server gone within seconds). Every loop is bounded in time."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.conftest import LiveServer
from tests.live_helpers import Client, parse_job, running_server

pytestmark = pytest.mark.live

HEADER_TIMEOUT = 2  # the module server's REQUEST_HEADER_TIMEOUT
THREADS = 10  # so that at most 2 WAITs hold a thread (SERVER_THREADS - 8)
# A normal request while slow clients are connected: the issue asks for a second; the
# machine is small and shared, and a server whose threads are taken never answers.
NORMAL_LATENCY = 3.0
FOLLOW_UP = b"GET /rest HTTP/1.1\r\nHost: x\r\n\r\n"
FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"


@contextmanager
def hardened_server(tmp_path: Path, **settings: str) -> Iterator[LiveServer]:
    """running_server, also failing on a traceback in the log (cheroot writes its own
    faults, such as one of its selector loop, to stderr, not through `opus` loggers)."""
    with running_server(tmp_path, **settings) as live:
        yield live
    log = live.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = {"SERVER_THREADS": str(THREADS), "REQUEST_HEADER_TIMEOUT": str(HEADER_TIMEOUT)}
    with hardened_server(tmp_path_factory.mktemp("http"), **settings) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Client:
    return Client(server)


def connect(port: int, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_until_closed(sock: socket.socket, timeout: float = 5) -> tuple[bytes, bool]:
    """What the server sends within ``timeout``, and whether it then closed."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        pass
    return data, True


def answers(data: bytes) -> list[tuple[int, bytes]]:
    """The HTTP answers (status, body) in ``data``, each with a Content-Length."""
    found = []
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        assert separator, f"an incomplete answer: {data[:300]!r}"
        lines = head.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        length = int(fields.get("content-length", "0"))
        found.append((int(lines[0].split()[1]), rest[:length]))
        data = rest[length:]
    return found


def exchange(port: int, data: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    with connect(port) as sock:
        sock.sendall(data)
        received, closed = read_until_closed(sock)
    return answers(received), closed


def timed_get(client: Client, path: str) -> float:
    started = time.monotonic()
    response = client.get(path, timeout=30)
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def server_pid(server: LiveServer) -> int:
    assert server.process is not None
    return server.process.pid


# -- the head's size -------------------------------------------------------------------


def huge_head(port: int, size: int) -> tuple[bytes, bool]:
    """Send a GET whose headers go on for ``size`` bytes; what came back (until closed)."""
    # Fields of different names: a server that reads them all keeps them all.
    lines = b"".join(b"X-Padding-%d: %s\r\n" % (i, b"a" * 1000) for i in range(size // 1024))
    with connect(port, timeout=30) as sock:
        # The server may close the connection before it has everything.
        with contextlib.suppress(OSError):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
        return read_until_closed(sock, timeout=10)


def test_a_head_over_the_limit_is_refused_and_memory_stays_flat(server: LiveServer) -> None:
    pid = server_pid(server)
    # Reset the peak (VmHWM) to the current size, to see any peak the test makes.
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = vm_kb(pid, "VmHWM")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: huge_head(server.port, 8 * 1024 * 1024), range(8)))
    for data, closed in results:
        assert data.startswith(b"HTTP/1.1 431 "), data[:200]
        assert b"Connection: close" in data and closed
    # 64 MB of headers sent: the server never held more than a few hundred kB of them.
    growth = vm_kb(pid, "VmHWM") - before
    assert growth < 24 * 1024, f"peak memory grew by {growth} kB"
    # A request line alone over the limit: 414. The server is fine.
    refused, closed = exchange(server.port, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    assert [status for status, _ in refused] == [414] and closed
    assert exchange(server.port, FOLLOW_UP)[0][0][0] == 200


# -- the head's time -------------------------------------------------------------------


def test_a_head_slower_than_the_timeout_is_refused_with_408(server: LiveServer) -> None:
    with connect(server.port) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /rest HTTP/1.1\r\n")
        sock.settimeout(0.5)
        data = b""
        # A header line every half second: each restarts a socket timeout, not the head's.
        while time.monotonic() - started < 4 * HEADER_TIMEOUT and not data:
            try:
                sock.sendall(b"X-Slow: x\r\n")
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
        elapsed = time.monotonic() - started
        received, closed = read_until_closed(sock)
    assert (data + received).startswith(b"HTTP/1.1 408 "), data + received
    assert closed
    assert HEADER_TIMEOUT - 0.5 < elapsed < 3 * HEADER_TIMEOUT, elapsed


def test_heads_in_pieces_and_pipelined_requests_are_served(server: LiveServer) -> None:
    """What the read-ahead must leave as it was: a head sent in pieces within the
    timeout, a body sent with its head, pipelined requests, a chunked body."""
    form = b"duration=1"
    post = b"POST /rest/sleep HTTP/1.1\r\nHost: x\r\n" + FORM
    with connect(server.port) as sock:
        for piece in (b"GET /rest HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
            sock.sendall(piece)
            time.sleep(0.3)
        sock.sendall(FOLLOW_UP * 2 + post + b"Content-Length: 10\r\n\r\n" + form)
        sock.sendall(
            post + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked(form)
        )
        received, closed = read_until_closed(sock)
    assert [status for status, _ in answers(received)] == [200, 200, 200, 303, 303]
    assert closed


# -- framing ---------------------------------------------------------------------------

SMUGGLING = {
    "content-length and transfer-encoding": (
        b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"duration=1")
    ),
    "two equal content-lengths": b"Content-Length: 10\r\nContent-Length: 10\r\n\r\nduration=1",
    "two content-lengths": b"Content-Length: 10\r\nContent-Length: 0\r\n\r\nduration=1",
    "a content-length list": b"Content-Length: 10, 10\r\n\r\nduration=1",
    "a signed content-length": b"Content-Length: +10\r\n\r\nduration=1",
    "an obs-folded transfer-encoding": (
        b"Transfer-Encoding:\r\n chunked\r\n\r\n" + chunked(b"duration=1")
    ),
    "an obs-folded field": b"X-Note: a\r\n\tb\r\nContent-Length: 10\r\n\r\nduration=1",
    "a space before the colon": b"Content-Length : 10\r\n\r\nduration=1",
    "chunked twice": (
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"duration=1")
    ),
}


@pytest.mark.parametrize("shape", sorted(SMUGGLING))
def test_smuggling_shapes_are_refused_with_400(server: LiveServer, shape: str) -> None:
    request = b"POST /rest/sleep HTTP/1.1\r\nHost: x\r\n" + FORM + SMUGGLING[shape]
    # The request after it on the connection is never served: the connection closes.
    found, closed = exchange(server.port, request + FOLLOW_UP)
    assert [status for status, _ in found] == [400], found
    assert closed


def test_transfer_encoding_in_http_1_0_is_refused(server: LiveServer) -> None:
    request = (
        b"POST /rest/sleep HTTP/1.0\r\nConnection: Keep-Alive\r\n"
        + FORM
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + chunked(b"duration=1")
    )
    found, closed = exchange(server.port, request + FOLLOW_UP)
    assert [status for status, _ in found] == [400], found
    assert closed


# -- WAIT in a thread ------------------------------------------------------------------


def wait_1_0(port: int, path: str) -> socket.socket:
    sock = connect(port, timeout=30)
    sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
    return sock


def timed_wait_1_0(port: int, path: str) -> float:
    started = time.monotonic()
    with wait_1_0(port, path) as sock:
        data, _ = read_until_closed(sock, timeout=30)
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    return time.monotonic() - started


def test_a_hung_up_http_1_0_wait_frees_its_thread(server: LiveServer, client: Client) -> None:
    """HTTP/1.0 WAITs hold a thread, at most SERVER_THREADS - 8 (here 2) at a time; a
    client that hangs up gives its thread back within a second or so."""
    path = f"/rest/sleep/{client.create('sleep', {'duration': '1'})}"
    holding = [wait_1_0(server.port, f"{path}?WAIT=60") for _ in range(2)]
    time.sleep(1)
    # Both threads taken: a third WAIT answers at once (UWS allows it).
    assert timed_wait_1_0(server.port, f"{path}?WAIT=5") < 3
    for sock in holding:
        sock.close()
    time.sleep(2)
    # Their threads are free again: a WAIT waits.
    assert timed_wait_1_0(server.port, f"{path}?WAIT=3") > 2.5


# -- many hostile clients ----------------------------------------------------------------


def slow_clients(port: int, stack: ExitStack, count: int) -> list[socket.socket]:
    """``count`` connections that have sent the start of a head."""
    socks = []
    for index in range(count):
        sock = stack.enter_context(connect(port))
        sock.sendall(f"GET /rest?slow={index} HTTP/1.1\r\nHost: x\r\n".encode())
        socks.append(sock)
    return socks


def test_slow_and_silent_clients_hold_no_thread(tmp_path: Path) -> None:
    with hardened_server(tmp_path, SERVER_THREADS="16") as live, ExitStack() as stack:
        client = Client(live)
        timed_get(client, "/rest")
        slow = slow_clients(live.port, stack, 500)
        silent = [stack.enter_context(connect(live.port)) for _ in range(100)]
        half_closed = slow_clients(live.port, stack, 20)
        for sock in half_closed:
            sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        latencies = []
        # For some seconds (under the head timeout, 10 s): a header line from every slow
        # client every half second or so, and normal requests in between.
        while time.monotonic() - started < 4:
            for sock in slow:
                sock.sendall(b"X-Slow: x\r\n")
            for _ in range(5):
                latencies.append(timed_get(client, "/rest"))
            time.sleep(0.5)
        assert max(latencies) < NORMAL_LATENCY, sorted(latencies)[-5:]
        # All of them still connected, and served once they finish their heads.
        for sock in slow[:3] + silent[:3]:
            sock.sendall(b"\r\n" if sock in slow else FOLLOW_UP)
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_sigterm_stops_the_server_within_seconds_whatever_its_clients_do(
    tmp_path: Path,
) -> None:
    with hardened_server(tmp_path, SERVER_THREADS=str(THREADS)) as live, ExitStack() as stack:
        client = Client(live)
        path = f"/rest/sleep/{client.create('sleep', {'duration': '1'})}"
        slow_clients(live.port, stack, 200)
        for _ in range(50):
            stack.enter_context(connect(live.port))
        threads = [stack.enter_context(wait_1_0(live.port, f"{path}?WAIT=600")) for _ in range(2)]
        for headers in ("", "Connection: close\r\n") * 3:
            sock = stack.enter_context(connect(live.port))
            sock.sendall(f"GET {path}?WAIT=600 HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        # A body that stops coming holds a worker thread reading it.
        body = stack.enter_context(connect(live.port))
        body.sendall(b"POST /rest/sleep HTTP/1.1\r\nHost: x\r\n" + FORM)
        body.sendall(b"Content-Length: 100000\r\n\r\nduration=1")
        time.sleep(1)
        assert live.process is not None
        started = time.monotonic()
        live.process.terminate()
        try:
            live.process.wait(30)
        except Exception:
            live.process.kill()
            raise
        elapsed = time.monotonic() - started
        # cheroot gives busy workers 5 s (the slow body), then shuts their connections.
        assert elapsed < 12, elapsed
        # The WAITs holding a thread were answered with the job as it was.
        for sock in threads:
            data, _ = read_until_closed(sock)
            status, document = answers(data)[0]
            assert status == 200 and parse_job(document).phase == "PENDING"

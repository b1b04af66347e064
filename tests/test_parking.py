"""Parked WAIT requests (opus/server/parking.py) against a real `opus serve`, over raw
sockets: they hold no thread, keep-alive and Connection: close are honoured, a client
that leaves is forgotten, a deleted job answers 404, and a stopping server answers
every parked request before it goes."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer
from tests.live_helpers import Client, eventually, parse_job, running_server

pytestmark = pytest.mark.live

THREADS = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # Few threads: parked requests must not need one each.
    with running_server(tmp_path_factory.mktemp("parking"), SERVER_THREADS=str(THREADS)) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Client:
    return Client(server)


def send(
    port: int, path: str, headers: tuple[str, ...] = (), version: str = "HTTP/1.1"
) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    lines = [f"GET {path} {version}", f"Host: 127.0.0.1:{port}", *headers, "", ""]
    sock.sendall("\r\n".join(lines).encode())
    return sock


def send_on(sock: socket.socket, port: int, path: str) -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer with a Content-Length: status, headers (lower-case), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the headers: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1])
    # A 304 has no body, and need not say so.
    length = (
        int(headers.get("content-length", "0")) if status == 304 else int(headers["content-length"])
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the body"
        body += chunk
    assert len(body) == length, "more bytes than Content-Length"
    return status, headers, body


def job_path(job_id: str) -> str:
    return f"/rest/sleep/{job_id}"


def aborted_while_parked(
    server: LiveServer, client: Client, headers: tuple[str, ...] = ()
) -> tuple[socket.socket, str, tuple[int, dict[str, str], bytes]]:
    """Park a WAIT on a new job, abort the job: the connection, the job's path and the
    parked request's answer."""
    path = job_path(client.create("sleep", {"duration": "1"}))
    sock = send(server.port, f"{path}?WAIT=60", headers)
    time.sleep(0.5)
    client.post(f"{path}/phase", data={"PHASE": "ABORT"})
    return sock, path, read_answer(sock)


def proc_count(pid: int, what: str) -> int:
    if what == "threads":
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise AssertionError("no Threads line")
    return len(os.listdir(f"/proc/{pid}/fd"))


def server_pid(server: LiveServer) -> int:
    assert server.process is not None
    return server.process.pid


def test_many_waiters_hold_no_thread_and_all_wake(server: LiveServer, client: Client) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    path = f"{job_path(job_id)}?WAIT=60"
    waiters = [send(server.port, path) for _ in range(100)]
    try:
        # Every request is read and parked: the server still answers at once, with
        # 8 threads for 100 waiting requests.
        started = time.monotonic()
        assert client.get("/rest/sleep").status_code == 200
        assert time.monotonic() - started < 10
        assert proc_count(server_pid(server), "threads") < 60
        for sock in waiters:
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)  # nothing answered yet
            sock.setblocking(True)
            sock.settimeout(30)
        changed = time.monotonic()
        assert client.post(f"{job_path(job_id)}/phase", data={"PHASE": "ABORT"}).ok
        for sock in waiters:
            status, headers, body = read_answer(sock)
            assert status == 200
            assert headers["content-type"].startswith("text/xml")
            assert {"date", "server"} <= headers.keys()
            assert parse_job(body).phase == "ABORTED"
        assert time.monotonic() - changed < 10
    finally:
        for sock in waiters:
            sock.close()


def test_keep_alive_connection_serves_the_next_request(
    server: LiveServer, client: Client, validate
) -> None:
    sock, path, (status, headers, body) = aborted_while_parked(server, client)
    with sock:
        assert status == 200 and "connection" not in headers
        validate(body)  # the UWS 1.1 schema
        assert parse_job(body).phase == "ABORTED"
        # The same connection, a second request: read by the server as usual.
        send_on(sock, server.port, f"{path}/phase")
        status, _, body = read_answer(sock)
        assert (status, body) == (200, b"ABORTED")


def test_parked_connections_leave_keep_alive_to_the_others(
    server: LiveServer, client: Client
) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    path = job_path(job_id)
    waiters = [send(server.port, f"{path}?WAIT=60") for _ in range(20)]
    try:
        time.sleep(1)
        # 20 open connections: an ordinary request is still answered keep-alive.
        with send(server.port, f"{path}/phase") as sock:
            status, headers, body = read_answer(sock)
            assert (status, body) == (200, b"PENDING")
            assert headers.get("connection") != "close"
            send_on(sock, server.port, f"{path}/phase")
            assert read_answer(sock)[2] == b"PENDING"
    finally:
        for sock in waiters:
            sock.close()


def test_connection_close_is_honoured(server: LiveServer, client: Client) -> None:
    sock, _, (status, headers, body) = aborted_while_parked(server, client, ("Connection: close",))
    with sock:
        assert status == 200 and headers["connection"] == "close"
        assert parse_job(body).phase == "ABORTED"
        assert sock.recv(1) == b""  # and the server ends the connection


def test_a_parked_wait_times_out_with_the_job_as_it_is(
    server: LiveServer, client: Client, validate
) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    started = time.monotonic()
    with send(server.port, f"{job_path(job_id)}?WAIT=2") as sock:
        status, _, body = read_answer(sock)
    assert 1.9 < time.monotonic() - started < 10
    assert status == 200 and parse_job(body).phase == "PENDING"
    validate(body)


def test_a_change_no_notification_reports_is_seen_within_seconds(
    server: LiveServer, client: Client
) -> None:
    # Another process (`opus maintenance` on SQLite) changes the job without waking
    # this server: the parked request still sees it at its next look (every 5 s).
    job_id = client.create("sleep", {"duration": "1"})
    with send(server.port, f"{job_path(job_id)}?WAIT=60") as sock:
        time.sleep(0.5)
        database = server.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(database) as connection:
            # As every writer of a job does, the change increments its version.
            connection.execute(
                "UPDATE jobs SET phase = 'ABORTED', version = version + 1 WHERE id = ?", (job_id,)
            )
        changed = time.monotonic()
        status, _, body = read_answer(sock)
    assert time.monotonic() - changed < 5 + 3
    assert status == 200 and parse_job(body).phase == "ABORTED"


def test_a_wait_on_a_deleted_job_answers_404(server: LiveServer, client: Client) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    path = job_path(job_id)
    with send(server.port, f"{path}?WAIT=60") as sock:
        time.sleep(0.5)
        assert client.delete(path).status_code in (200, 303)
        status, headers, body = read_answer(sock)
    assert status == 404 and headers["content-type"].startswith("text/plain")
    assert job_id.encode() in body


def test_clients_that_leave_are_forgotten(server: LiveServer, client: Client) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    path = f"{job_path(job_id)}?WAIT=60"
    pid = server_pid(server)
    before = proc_count(pid, "fds")
    keep_alive = [send(server.port, path) for _ in range(20)]
    closing = [send(server.port, path, ("Connection: close",)) for _ in range(20)]
    eventually(lambda: proc_count(pid, "fds") >= before + 40, timeout=10)
    for sock in keep_alive + closing:
        sock.close()
    # Both kinds are dropped within a recheck (5 s): none of their 60 descriptors is
    # kept (a little room for the database pool opening a connection meanwhile).
    eventually(lambda: proc_count(pid, "fds") <= before + 6, timeout=20)
    # The job's change then finds nobody to answer, and the server is fine.
    assert client.post(f"{job_path(job_id)}/phase", data={"PHASE": "ABORT"}).ok
    assert client.get("/rest/sleep").status_code == 200


def test_http_1_0_waits_in_a_thread(server: LiveServer, client: Client) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    started = time.monotonic()
    with send(server.port, f"{job_path(job_id)}?WAIT=1", version="HTTP/1.0") as sock:
        status, _, body = read_answer(sock)
    assert time.monotonic() - started > 0.9
    assert status == 200 and parse_job(body).phase == "PENDING"


def test_a_stopping_server_answers_its_parked_requests(tmp_path: Path) -> None:
    with running_server(tmp_path) as live:
        client = Client(live)
        job_id = client.create("sleep", {"duration": "1"})
        waiters = [
            send(live.port, f"{job_path(job_id)}?WAIT=600", headers)
            for headers in ((), ("Connection: close",))
        ]
        time.sleep(1)
        assert live.process is not None
        live.process.send_signal(signal.SIGTERM)
        for sock in waiters:
            with sock:
                status, _, body = read_answer(sock)
                assert status == 200 and parse_job(body).phase == "PENDING"
        live.process.wait(30)


def test_a_parked_wait_answers_304_while_the_clients_copy_is_current(
    server: LiveServer, client: Client
) -> None:
    """If-None-Match on a WAIT: a job that did not change by the deadline answers 304
    (with its ETag, no body); one that changed answers its new document and ETag."""
    path = job_path(client.create("sleep", {"duration": "1"}))
    first = client.get(path)
    etag = first.headers["ETag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    sock = send(server.port, f"{path}?WAIT=2", (f"If-None-Match: {etag}",))
    try:
        started = time.monotonic()
        status, headers, body = read_answer(sock)
        assert time.monotonic() - started > 1.5, "answered before its deadline"
        assert (status, headers["etag"], body) == (304, etag, b"")
        # The connection is kept for the next request, parked again, woken by a change.
        sock.sendall(
            f"GET {path}?WAIT=30 HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n".encode()
        )
        time.sleep(0.5)
        client.post(f"{path}/phase", data={"PHASE": "ABORT"})
        status, headers, body = read_answer(sock)
        assert status == 200 and headers["etag"] != etag
        assert parse_job(body).phase == "ABORTED"
    finally:
        sock.close()

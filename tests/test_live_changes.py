"""The change feed and JSON WAIT against a real `opus serve`, over raw sockets: a parked
GET /changes answers within a second of a change of one of the caller's jobs, nothing
for another user's, holds no thread, and an idle live page makes one request per change
plus one per WAIT; a JSON WAIT is parked and answered as JSON (304, 404 included); and
the feed is woken across two server processes on PostgreSQL."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import LiveServer
from tests.live_helpers import Client, add_user, running_server
from tests.test_live_workers import servers
from tests.test_parking import proc_count, read_answer, send, server_pid

pytestmark = pytest.mark.live

THREADS = 8
# Within a second of the change, as a live page needs.
LIVE = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # Few threads: parked requests must not need one each.
    with running_server(tmp_path_factory.mktemp("changes"), SERVER_THREADS=str(THREADS)) as live:
        yield live


@pytest.fixture(scope="module")
def users(server: LiveServer) -> dict[str, str]:
    """The Authorization header of each test user."""
    headers = {}
    for name in ("alice", "bob"):
        token = add_user(server, name)
        headers[name] = "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()
    return headers


def client_of(server: LiveServer, authorization: str) -> Client:
    client = Client(server)
    client.session.headers["Authorization"] = authorization
    return client


def feed(port: int, authorization: str, token: str, wait: int, *headers: str) -> socket.socket:
    """A GET /changes waiting up to ``wait`` seconds, sent (not yet answered)."""
    path = f"/changes?since={quote(token)}&WAIT={wait}"
    return send(port, path, (f"Authorization: {authorization}", *headers))


def answer_json(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    status, headers, body = read_answer(sock)
    assert headers["content-type"] == "application/json", headers
    return status, headers, json.loads(body)


def test_a_change_of_the_callers_job_answers_within_a_second(
    server: LiveServer, users: dict[str, str]
) -> None:
    alice = client_of(server, users["alice"])
    job_id = alice.create("sleep", {"duration": "1"})
    token = alice.get("/changes").json()["token"]
    with feed(server.port, users["alice"], token, 30) as sock:
        time.sleep(0.5)  # parked by now
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # nothing answered yet
        sock.setblocking(True)
        sock.settimeout(30)
        assert alice.post(f"/rest/sleep/{job_id}/phase", data={"PHASE": "ABORT"}).ok
        changed = time.monotonic()
        status, headers, found = answer_json(sock)
        elapsed = time.monotonic() - changed
    assert status == 200 and headers["cache-control"] == "no-store"
    assert elapsed < LIVE, elapsed
    assert [(j["jobId"], j["phase"]) for j in found["jobs"]] == [(job_id, "ABORTED")]
    assert found["token"] != token and found["deleted"] == [] and not found["reset"]
    # Nothing since: the next wait answers at its deadline, empty, with a token.
    started = time.monotonic()
    with feed(server.port, users["alice"], found["token"], 2) as sock:
        status, _, quiet = answer_json(sock)
    assert 1.9 < time.monotonic() - started < 10
    assert status == 200 and quiet["jobs"] == [] and quiet["deleted"] == [] and quiet["token"]


def test_another_users_changes_wake_nothing(server: LiveServer, users: dict[str, str]) -> None:
    alice, bob = client_of(server, users["alice"]), client_of(server, users["bob"])
    token = alice.get("/changes").json()["token"]
    started = time.monotonic()
    with feed(server.port, users["alice"], token, 3) as sock:
        time.sleep(0.5)
        for _ in range(3):
            bob.create("sleep", {"duration": "1"})
        status, _, found = answer_json(sock)
    assert time.monotonic() - started > 2.9, "answered before its deadline"
    assert status == 200 and found["jobs"] == []
    # Bob's feed did see them.
    assert len(bob.get(f"/changes?since={quote(token)}").json()["jobs"]) == 3


def test_a_deletion_is_told(server: LiveServer, users: dict[str, str]) -> None:
    alice = client_of(server, users["alice"])
    job_id = alice.create("sleep", {"duration": "1"})
    token = alice.get("/changes").json()["token"]
    with feed(server.port, users["alice"], token, 30) as sock:
        time.sleep(0.5)
        assert alice.delete(f"/rest/sleep/{job_id}").status_code == 303
        _, _, found = answer_json(sock)
    assert found["deleted"] == [job_id] and found["jobs"] == []


def test_parked_feeds_hold_no_thread(server: LiveServer, users: dict[str, str]) -> None:
    alice = client_of(server, users["alice"])
    token = alice.get("/changes").json()["token"]
    waiting = [feed(server.port, users["alice"], token, 60) for _ in range(100)]
    try:
        time.sleep(1)
        # 100 pages waiting, 8 threads: the server still answers at once.
        started = time.monotonic()
        assert alice.get("/jobs").status_code == 200
        assert time.monotonic() - started < 5
        assert proc_count(server_pid(server), "threads") < 60
        alice.create("sleep", {"duration": "1"})
        changed = time.monotonic()
        for sock in waiting:
            status, _, found = answer_json(sock)
            assert status == 200 and len(found["jobs"]) == 1
        assert time.monotonic() - changed < 5
    finally:
        for sock in waiting:
            sock.close()


def test_an_idle_live_page_makes_one_request_per_change(
    server: LiveServer, users: dict[str, str]
) -> None:
    """The page's loop (static/js/jobs.js): GET /changes?since=TOKEN&WAIT=N, again with
    the token of each answer. Over 7 s with WAIT=2 and two changes: one request per
    change, one per WAIT that passed without any, each change seen within a second."""
    alice = client_of(server, users["alice"])
    job_ids = [alice.create("sleep", {"duration": "1"}) for _ in range(2)]
    token = alice.get("/changes").json()["token"]
    changes_at: list[float] = []

    def change_later() -> None:
        for job_id in job_ids:
            time.sleep(2.5)
            changes_at.append(time.monotonic())
            alice.post(f"/rest/sleep/{job_id}/phase", data={"PHASE": "ABORT"})

    changer = threading.Thread(target=change_later)
    requests, seen = 0, []
    started = time.monotonic()
    changer.start()
    while time.monotonic() - started < 7:
        answer = alice.get(f"/changes?since={quote(token)}&WAIT=2").json()
        requests += 1
        if answer["jobs"]:
            seen.append(time.monotonic())
        token = answer["token"]
    changer.join()
    assert len(seen) == 2
    for changed, answered in zip(changes_at, seen, strict=True):
        assert answered - changed < LIVE
    # 7 s: at most 4 answers of a WAIT that passed, and the two changes.
    assert requests <= 2 + 4, requests


def test_a_json_wait_is_parked_and_answered_as_json(
    server: LiveServer, users: dict[str, str]
) -> None:
    alice = client_of(server, users["alice"])
    path = f"/rest/sleep/{alice.create('sleep', {'duration': '1'})}"
    auth = f"Authorization: {users['alice']}"
    etag = alice.get(path, headers={"Accept": "application/json"}).headers["ETag"]
    started = time.monotonic()
    with send(
        server.port, f"{path}?WAIT=2", (auth, "Accept: application/json", f"If-None-Match: {etag}")
    ) as sock:
        status, headers, body = read_answer(sock)
    assert time.monotonic() - started > 1.5
    assert (status, headers["etag"], body) == (304, etag, b"")
    waiters = [send(server.port, f"{path}?WAIT=30", (auth, "Accept: application/json"))]
    waiters.append(send(server.port, f"{path}?WAIT=30", (auth,)))  # XML, the same change
    try:
        time.sleep(0.5)
        assert proc_count(server_pid(server), "threads") < 60
        alice.post(f"{path}/phase", data={"PHASE": "ABORT"})
        status, headers, document = answer_json(waiters[0])
        assert status == 200 and document["phase"] == "ABORTED"
        assert headers["etag"].endswith('-json"') and headers["vary"] == "Accept"
        status, headers, body = read_answer(waiters[1])
        assert headers["content-type"].startswith("text/xml") and b"ABORTED" in body
    finally:
        for sock in waiters:
            sock.close()
    # A job deleted while a JSON WAIT is parked: a JSON 404.
    path = f"/rest/sleep/{alice.create('sleep', {'duration': '1'})}"
    with send(server.port, f"{path}?WAIT=30", (auth, "Accept: application/json")) as sock:
        time.sleep(0.5)
        alice.delete(path)
        status, _, error = answer_json(sock)
    assert status == 404 and error["error"]["status"] == 404


def test_the_feed_is_woken_across_processes(tmp_path: Path, postgresql_url: str) -> None:
    with servers(tmp_path, 2, DATABASE_URL=postgresql_url) as (first, second):
        token = add_user(first, "carol")
        authorization = "Basic " + base64.b64encode(f"carol:{token}".encode()).decode()
        here, there = client_of(first, authorization), client_of(second, authorization)
        job_id = here.create("sleep", {"duration": "30"})
        since = here.get("/changes").json()["token"]
        with feed(first.port, authorization, since, 30) as sock:
            time.sleep(0.5)  # parked in the first server
            aborted = there.post(f"/rest/sleep/{job_id}/phase", data={"PHASE": "ABORT"})
            assert aborted.status_code == 303
            changed = time.monotonic()
            _, _, found = answer_json(sock)
            elapsed = time.monotonic() - changed
        assert [(j["jobId"], j["phase"]) for j in found["jobs"]] == [(job_id, "ABORTED")]
        # Woken by the other process's NOTIFY, not by the 5 s look at the feed.
        assert elapsed < LIVE, elapsed
        # A creation in the other process wakes it too.
        with feed(first.port, authorization, found["token"], 30) as sock:
            time.sleep(0.5)
            there.create("sleep", {"duration": "1"})
            changed = time.monotonic()
            _, _, created = answer_json(sock)
            assert time.monotonic() - changed < LIVE
        assert len(created["jobs"]) == 1

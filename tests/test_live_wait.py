"""UWS WAIT (blocking job GET) against a real `opus serve`, with generous time bounds:
it wakes on the phase change, returns at once when there is nothing to wait for, times
out on a PENDING job, leaves the server responsive, and refuses malformed values."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from tests.conftest import LiveServer
from tests.live_helpers import Client, parse_job, running_server

pytestmark = pytest.mark.live

# How late a WAIT may return after the phase changed (the machine is slow and shared).
WAKE_SLACK = 3.0


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory.mktemp("live_wait"), module_database_url) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Client:
    return Client(server)


def timed_get(client: Client, url: str, **params: object) -> tuple[float, requests.Response]:
    start = time.monotonic()
    response = client.get(url, params=params)
    return time.monotonic() - start, response


def server_time(text: str) -> float:
    """A UWS time as a POSIX timestamp (the server runs on this host: same clock)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def test_wait_returns_soon_after_the_job_finishes(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "3"}, run=True)
    url = client.job_url("sleep", job_id)
    client.wait_for("sleep", job_id, {"EXECUTING"}, timeout=30)

    elapsed, response = timed_get(client, url, WAIT=30)
    returned_at = time.time()
    assert response.status_code == 200
    doc = parse_job(response.content)
    assert doc.phase == "COMPLETED", doc.body
    ended = server_time(doc.root.findtext("{http://www.ivoa.net/xml/UWS/v1.0}endTime"))
    assert returned_at - ended < WAKE_SLACK, (returned_at - ended, elapsed)
    assert elapsed < 20, elapsed


def test_wait_on_a_queued_job_wakes_on_each_change(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "2"})
    url = client.job_url("sleep", job_id)
    client.run("sleep", job_id)
    phases = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        elapsed, response = timed_get(client, url, WAIT=30)
        phase = parse_job(response.content).phase
        phases.append((phase, round(elapsed, 2)))
        assert elapsed < 2 + WAKE_SLACK + 5, phases
        if phase == "COMPLETED":
            break
    assert phases[-1][0] == "COMPLETED", phases
    assert len(phases) <= 3, phases


def test_wait_on_a_finished_job_returns_at_once(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "0"}, run=True)
    assert client.wait_for("sleep", job_id).phase == "COMPLETED"
    url = client.job_url("sleep", job_id)
    for params in ({"WAIT": 30}, {"WAIT": -1}, {"WAIT": 30, "PHASE": "COMPLETED"}):
        elapsed, response = timed_get(client, url, **params)
        assert response.status_code == 200
        assert parse_job(response.content).phase == "COMPLETED"
        assert elapsed < 2, (params, elapsed)


def test_wait_on_a_pending_job_times_out(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    elapsed, response = timed_get(client, client.job_url("sleep", job_id), WAIT=2)
    assert response.status_code == 200
    assert parse_job(response.content).phase == "PENDING"
    assert 1.5 <= elapsed <= 6, elapsed

    elapsed, response = timed_get(client, client.job_url("sleep", job_id), WAIT=0)
    assert parse_job(response.content).phase == "PENDING"
    assert elapsed < 2, elapsed


def test_wait_for_another_phase_returns_at_once(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    url = client.job_url("sleep", job_id)
    for phase in ("EXECUTING", "QUEUED", "executing"):
        elapsed, response = timed_get(client, url, WAIT=30, PHASE=phase)
        assert response.status_code == 200
        assert parse_job(response.content).phase == "PENDING"
        assert elapsed < 2, (phase, elapsed)


def test_wait_on_a_pending_job_wakes_when_it_is_run(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "30"})
    url = client.job_url("sleep", job_id)
    answers: list[tuple[float, str]] = []

    def waiter() -> None:
        elapsed, response = timed_get(client, url, WAIT=30, PHASE="PENDING")
        answers.append((elapsed, parse_job(response.content).phase))

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(1)
    client.run("sleep", job_id)
    thread.join(40)
    assert answers, "the WAIT did not return"
    elapsed, phase = answers[0]
    assert phase in {"QUEUED", "EXECUTING"}
    assert elapsed < 1 + WAKE_SLACK, elapsed
    assert client.delete(url).status_code == 303


def test_many_waiters_do_not_block_the_server(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "60"}, run=True)
    client.wait_for("sleep", job_id, {"EXECUTING"}, timeout=30)
    url = client.job_url("sleep", job_id)
    other = client.create("sleep", {"duration": "1"})
    results: list[tuple[float, str] | BaseException] = []
    lock = threading.Lock()

    def waiter() -> None:
        try:
            with requests.Session() as session:
                start = time.monotonic()
                response = session.get(url, params={"WAIT": 60}, timeout=90)
                outcome = (time.monotonic() - start, parse_job(response.content).phase)
        except BaseException as exc:  # reported by the main thread
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=waiter) for _ in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(2)  # let them all block
    assert results == [], results

    for path in (client.job_url("sleep", other), "/rest/sleep", "/rest"):
        elapsed, response = timed_get(client, path)
        assert response.status_code == 200
        assert elapsed < 2, (path, elapsed)
    assert results == [], results

    aborted_at = time.monotonic()
    response = client.post(url + "/phase", data={"PHASE": "ABORT"})
    assert response.status_code == 303
    for thread in threads:
        thread.join(60)
    woken_after = time.monotonic() - aborted_at
    assert len(results) == 20
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert {phase for _, phase in results} == {"ABORTED"}
    assert woken_after < WAKE_SLACK + 2, woken_after


@pytest.mark.parametrize(
    "value", ["abc", "-2", "1.5", "", " ", "1e3", "0x10", "99999999999999999999x"]
)
def test_invalid_wait_values_are_refused(client: Client, value: str) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    elapsed, response = timed_get(client, client.job_url("sleep", job_id), WAIT=value)
    assert response.status_code == 400, (value, response.text)
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "WAIT" in response.text
    assert elapsed < 2


def test_invalid_phase_with_wait_is_refused(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    elapsed, response = timed_get(client, client.job_url("sleep", job_id), WAIT=5, PHASE="RUNNING")
    assert response.status_code == 400, response.text
    assert elapsed < 2

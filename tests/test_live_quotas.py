"""Per-owner limits against concurrent requests on a live server (two worker processes
on PostgreSQL): 90 RUNs at once never leave more than NJOBS_MAX active jobs, and
creations at once never keep more than JOBS_PER_USER_MAX jobs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import LiveServer
from tests.live_helpers import HTTP_TIMEOUT, job_list_ids, running_server

pytestmark = pytest.mark.live

ACTIVE_MAX = 10
KEPT_MAX = 100


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[LiveServer]:
    workers = "2" if module_database_url.startswith("postgresql") else "1"
    with running_server(
        tmp_path_factory.mktemp("live_quotas"),
        module_database_url,
        NJOBS_MAX=str(ACTIVE_MAX),
        JOBS_PER_USER_MAX=str(KEPT_MAX),
        WORKERS=workers,
    ) as live:
        yield live


def at_once(count: int, request) -> list[requests.Response]:
    """``request(session, index)`` from ``count`` threads released together."""
    barrier = threading.Barrier(count)
    answers: list[requests.Response | None] = [None] * count

    def run(index: int) -> None:
        with requests.Session() as session:
            barrier.wait()
            answers[index] = request(session, index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HTTP_TIMEOUT * 2)
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def listed(server: LiveServer, query: str = "") -> list[str]:
    answer = requests.get(f"{server.url}/rest/sleep{query}", timeout=HTTP_TIMEOUT)
    assert answer.status_code == 200
    return job_list_ids(answer.content)


def delete_all(server: LiveServer) -> None:
    for job_id in listed(server):
        requests.delete(f"{server.url}/rest/sleep/{job_id}", timeout=HTTP_TIMEOUT)


def test_ninety_runs_at_once_stay_within_njobs_max(server: LiveServer) -> None:
    created = [
        requests.post(
            f"{server.url}/rest/sleep",
            {"duration": "30"},
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
        for _ in range(90)
    ]
    urls = [answer.headers["Location"] for answer in created]
    try:
        answers = at_once(
            90,
            lambda session, index: session.post(
                f"{urls[index]}/phase",
                {"PHASE": "RUN"},
                allow_redirects=False,
                timeout=HTTP_TIMEOUT,
            ),
        )
        statuses = [answer.status_code for answer in answers]
        assert statuses.count(303) == ACTIVE_MAX, statuses
        refused = [answer for answer in answers if answer.status_code != 303]
        assert all(a.status_code == 403 and "NJOBS_MAX" in a.text for a in refused)
        active = listed(server, "?PHASE=QUEUED&PHASE=EXECUTING")
        assert len(active) == ACTIVE_MAX
    finally:
        delete_all(server)


def test_creations_at_once_stay_within_jobs_per_user_max(server: LiveServer) -> None:
    try:
        answers = at_once(
            KEPT_MAX + 20,
            lambda session, _index: session.post(
                f"{server.url}/rest/sleep", {}, allow_redirects=False, timeout=HTTP_TIMEOUT
            ),
        )
        statuses = [answer.status_code for answer in answers]
        assert statuses.count(303) == KEPT_MAX, statuses
        refused = [answer for answer in answers if answer.status_code != 303]
        assert all(a.status_code == 403 and "JOBS_PER_USER_MAX" in a.text for a in refused)
        assert len(listed(server)) == KEPT_MAX
        jobs = server.tmp_path / "var" / "jobs"
        assert sum(1 for _ in jobs.iterdir()) == KEPT_MAX
    finally:
        delete_all(server)

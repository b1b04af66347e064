"""Several server processes on one PostgreSQL database: `opus serve --workers N`, WAIT
woken across processes, one reconciler at a time, and jobs that outlive a server killed
with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import LiveServer
from tests.live_helpers import Client, assert_clean_log, eventually

pytestmark = pytest.mark.live

LEADER_LINE = "this process runs the reconciler"


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@contextmanager
def servers(tmp_path: Path, count: int, **settings: str) -> Iterator[list[LiveServer]]:
    """``count`` single-process servers sharing one data directory and database."""
    started = []
    try:
        for index in range(count):
            live = LiveServer(tmp_path, **settings)
            live.log = tmp_path / f"server-{index}.log"
            live.start()
            started.append(live)
        yield started
    finally:
        for live in started:
            live.stop()


def answers(live: LiveServer) -> bool:
    """True if the server answers a request (the connections a worker had accepted or
    queued when it crashed are lost: their clients see a reset and try again)."""
    try:
        return Client(live).get("/rest").status_code == 200
    except requests.ConnectionError:
        return False


def kill_everything(live: LiveServer) -> None:
    """SIGKILL the supervisor and its workers at once (a crash, not a shutdown)."""
    assert live.process is not None
    supervisor = live.process.pid
    os.kill(supervisor, signal.SIGSTOP)  # it must not restart the workers meanwhile
    for worker in children_of(supervisor):
        os.kill(worker, signal.SIGKILL)
    os.kill(supervisor, signal.SIGKILL)
    live.process.wait(10)


def timed_wait(client: Client, jobname: str, job_id: str, results: list, index: int) -> None:
    started = time.monotonic()
    doc = client.job(jobname, job_id, WAIT=30)
    results[index] = (doc.phase, time.monotonic() - started)


def test_several_workers_need_postgresql(tmp_path: Path) -> None:
    live = LiveServer(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "opus", "serve", "--workers", "2", "--port", str(live.port)],
        env=live.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "several workers need PostgreSQL" in done.stderr


def test_wait_wakes_in_another_process(tmp_path: Path, postgresql_url: str) -> None:
    with servers(tmp_path, 2, DATABASE_URL=postgresql_url) as (first, second):
        here, there = Client(first), Client(second)
        job_id = here.create("sleep", {"duration": "30"})
        results: list = [None]
        waiting = threading.Thread(target=timed_wait, args=(here, "sleep", job_id, results, 0))
        waiting.start()
        time.sleep(0.5)  # the WAIT is blocked in the first server
        aborted = there.post(there.job_url("sleep", job_id) + "/phase", data={"PHASE": "ABORT"})
        assert aborted.status_code == 303
        waiting.join(30)
        phase, elapsed = results[0]
        assert phase == "ABORTED"
        # Woken by the other process's NOTIFY, not by the 5 s re-check of the phase.
        assert elapsed < 0.5 + 2.0, elapsed
    for live in (first, second):
        assert_clean_log(live)


def test_workers_share_the_port_and_wake_each_other(tmp_path: Path, postgresql_url: str) -> None:
    live = LiveServer(tmp_path, DATABASE_URL=postgresql_url, WORKERS="2")
    live.start()
    try:
        assert live.process is not None
        workers = eventually(
            lambda: len(children_of(live.process.pid)) == 2 and children_of(live.process.pid),
            timeout=30,
            what="two workers",
        )
        job_id = Client(live).create("sleep", {"duration": "30"})
        # Separate connections, spread over the workers by the kernel (SO_REUSEPORT).
        clients = [Client(live) for _ in range(16)]
        results: list = [None] * len(clients)
        threads = [
            threading.Thread(target=timed_wait, args=(c, "sleep", job_id, results, i))
            for i, c in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        other = Client(live)
        response = other.post(other.job_url("sleep", job_id) + "/phase", data={"PHASE": "ABORT"})
        assert response.status_code == 303
        for thread in threads:
            thread.join(30)
        assert all(r is not None and r[0] == "ABORTED" for r in results), results
        assert max(r[1] for r in results) < 1.0 + 2.0, results

        # A worker that dies is replaced; the server keeps answering meanwhile.
        os.kill(workers[0], signal.SIGKILL)
        eventually(lambda: answers(live), timeout=5, what="an answer from the other worker")
        eventually(
            lambda: (
                len(children_of(live.process.pid)) == 2
                and workers[0] not in children_of(live.process.pid)
            ),
            timeout=30,
            what="a new worker",
        )
    finally:
        live.stop()
    # The supervisor stopped its workers with it.
    assert not any(alive(pid) for pid in workers)


def test_exactly_one_reconciler_runs(tmp_path: Path, postgresql_url: str) -> None:
    settings = dict(DATABASE_URL=postgresql_url, LOG_LEVEL="INFO", RECONCILE_INTERVAL="0.2")
    with servers(tmp_path, 2, **settings) as group:

        def leaders() -> list[LiveServer]:
            return [s for s in group if LEADER_LINE in s.log.read_text()]

        eventually(leaders, timeout=30, what="a reconciler")
        time.sleep(2.0)  # many passes of both: still one leader
        (leader,) = leaders()
        (follower,) = [s for s in group if s is not leader]

        maintenance = subprocess.run(
            [sys.executable, "-m", "opus", "maintenance"],
            env=follower.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert maintenance.returncode == 0, maintenance.stderr
        assert "another OPUS process is reconciling" in maintenance.stdout

        # The leader dies without a word: its connection closes, the lock is freed,
        # and the other process takes over at its next try.
        leader.stop(kill=True)
        eventually(lambda: LEADER_LINE in follower.log.read_text(), timeout=15, what="a new leader")


def test_maintenance_waits_for_the_server_reconciler_on_sqlite(tmp_path: Path) -> None:
    live = LiveServer(tmp_path, LOG_LEVEL="INFO", RECONCILE_INTERVAL="0.2")
    live.start()
    try:
        eventually(lambda: LEADER_LINE in live.log.read_text(), timeout=30, what="a leader")
        done = subprocess.run(
            [sys.executable, "-m", "opus", "maintenance"],
            env=live.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "another OPUS process is reconciling" in done.stdout
    finally:
        live.stop()
    done = subprocess.run(
        [sys.executable, "-m", "opus", "maintenance"],
        env=live.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.startswith("checked "), done.stdout


def test_jobs_survive_every_worker_killed(tmp_path: Path, postgresql_url: str) -> None:
    live = LiveServer(tmp_path, DATABASE_URL=postgresql_url, WORKERS="2")
    # A job that fails only once the server is down: a callback in flight at the very
    # moment of the kill gets its connection reset and is lost (the reconciler would
    # find the job's end; it is off here, to show what callbacks alone deliver).
    (tmp_path / "jdl" / "late_fail.yml").write_text(
        "name: late_fail\nannotation: Fails after two seconds.\nexecution_duration: 60\n"
    )
    (tmp_path / "jdl" / "late_fail.sh").write_text("sleep 2\necho failed late >&2\nexit 1\n")
    live.start()
    client = Client(live)
    completing = client.create("sleep", {"duration": "3"}, run=True)
    failing = client.create("late_fail", run=True)
    client.wait_for("sleep", completing, {"EXECUTING"}, timeout=30)
    kill_everything(live)
    with pytest.raises(requests.ConnectionError):
        client.get("/rest")

    status = client.job_dir(completing) / ".opus" / "status"
    eventually(status.exists, timeout=30, what="the job to finish while the server is down")
    # Restarted without a reconciler: only the jobs' own callbacks, retried while the
    # server was down, can bring the news.
    live.env["OPUS_RECONCILE_INTERVAL"] = "3600"
    live.start()
    try:
        client = Client(live)
        doc = client.wait_for("sleep", completing, timeout=90)
        assert doc.phase == "COMPLETED", doc.body
        result = client.get(doc.results["output"]["href"])
        assert result.status_code == 200
        assert f"job {completing} slept for 3" in result.text
        failed = client.wait_for("late_fail", failing, timeout=90)
        assert failed.phase == "ERROR", failed.body
        assert failed.error_message
    finally:
        live.stop()


def test_a_definition_approved_on_one_process_is_served_by_the_other_within_a_second(
    tmp_path: Path, postgresql_url: str
) -> None:
    from opus.core.access import ADMIN_ROLE
    from opus.server.auth import UserManager
    from opus.server.storage import UserStore
    from opus.server.storage.engine import make_engine

    with servers(tmp_path, 2, DATABASE_URL=postgresql_url) as (first, second):
        engine = make_engine(postgresql_url)
        try:
            _user, token = UserManager(UserStore(engine)).add("root", [ADMIN_ROLE])
        finally:
            engine.dispose()
        auth = {"Authorization": f"Bearer {token}"}
        here, there = Client(first), Client(second)
        definition = yaml.safe_load(there.get("/jdl/sleep", headers=auth).text)
        assert definition["version"] != "2"
        changed = yaml.safe_dump({**definition, "version": "2"})
        saved = here.session.put(
            f"{here.url}/jdl/sleep/draft",
            data=changed.encode(),
            headers={**auth, "Content-Type": "application/yaml"},
            timeout=30,
        )
        assert saved.status_code == 200 and saved.json()["problems"] == []
        approved = here.post("/jdl/sleep/draft/approve", headers=auth)
        assert approved.status_code == 200, approved.text
        started = time.monotonic()
        while yaml.safe_load(there.get("/jdl/sleep", headers=auth).text)["version"] != "2":
            assert time.monotonic() - started < 5, "the other process still serves version 1"
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        # Its registry looks at JDL_PATH twice a second (plus the requests' own time).
        assert elapsed < 1.5, elapsed
        job_id = there.create("sleep", {"duration": "0"})
        detail = there.get(there.job_url("sleep", job_id), headers={"Accept": "application/json"})
        assert detail.json()["definition"]["revision"] == 2
    for live in (first, second):
        assert_clean_log(live)

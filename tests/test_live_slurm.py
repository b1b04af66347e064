"""Jobs end to end through SLURM: a real `opus serve` with MANAGER=slurm submitting to
the single-node cluster of tests/slurm_cluster.py.

The same job stories as tests/test_live_jobs.py tells for the local manager (results,
errors, abort, time limits, lost callbacks, a server killed while jobs run), plus what
is SLURM's own: jobs cancelled with scancel, SLURM's TIMEOUT ending a job that
exceeded its executionDuration, slurm_* options reaching sbatch (and unsafe ones
refused), and the SLURM commands run through ssh (SLURM_COMMAND_PREFIX).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from lxml import etree

from opus.core.phases import Phase
from opus.server.managers import JobState, ManagedJob, ManagerError
from opus.server.managers.slurm import SlurmManager
from opus.settings import Settings
from tests.conftest import LiveServer
from tests.live_helpers import (
    Client,
    assert_clean_log,
    eventually,
    processes_in,
)
from tests.slurm_cluster import LoopbackSSH, SlurmCluster

pytestmark = pytest.mark.live

# A SLURM job ends within a second or two here; a job's whole story within a minute.
JOB_TIMEOUT = 60


@contextmanager
def slurm_server(
    tmp_path: Path, cluster: SlurmCluster, env: dict[str, str] | None = None, **settings: str
) -> Iterator[LiveServer]:
    """A started `opus serve` with MANAGER=slurm on the test cluster (``env`` added to
    its environment); its log must stay free of errors."""
    server = LiveServer(tmp_path, MANAGER="slurm", **settings)
    # The server (and the sbatch it runs, and so the jobs) find the cluster here.
    server.env.update(SLURM_CONF=str(cluster.conf), PATH=cluster.env["PATH"])
    server.env.update(env or {})
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert_clean_log(server)


def slurm_job(cluster: SlurmCluster, jobname: str, job_id: str) -> tuple[str, str]:
    """(SLURM job id, SLURM state) of an OPUS job, found by its SLURM job name."""
    out = cluster.run(
        "squeue",
        "--noheader",
        "--states=all",
        f"--name=opus-{jobname}-{job_id}",
        "--format=%i|%T",
    ).stdout
    lines = out.split()
    assert len(lines) == 1, f"expected one SLURM job named opus-{jobname}-{job_id}: {out!r}"
    slurm_id, state = lines[0].split("|")
    return slurm_id, state


def slurm_state_becomes(cluster: SlurmCluster, jobname: str, job_id: str, state: str) -> str:
    """Wait for the SLURM job of an OPUS job to be in ``state``; return its SLURM id."""
    found = eventually(
        lambda: (ids := slurm_job(cluster, jobname, job_id))[1] == state and ids[0],
        timeout=JOB_TIMEOUT,
        what=f"SLURM job of {job_id} to be {state}",
    )
    return str(found)


@pytest.fixture(scope="module")
def server(
    slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with slurm_server(tmp_path_factory.mktemp("live_slurm"), slurm_cluster) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Client:
    return Client(server)


@pytest.fixture(scope="module", autouse=True)
def time_limited_job(server: LiveServer) -> tuple[str, float]:
    """A job that outlives its executionDuration of 1 s, started with the module:
    SLURM takes 60 to 100 s to end it, and the other tests run meanwhile."""
    client = Client(server)
    job_id = client.create("sleep", {"duration": "300", "EXECUTIONDURATION": "1"}, run=True)
    return job_id, time.monotonic()


# -- the example job types ---------------------------------------------------------------


def test_sleep_job_runs_to_completion_with_a_text_result(
    client: Client, slurm_cluster: SlurmCluster
) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    assert client.phase("sleep", job_id) == "PENDING"
    client.run("sleep", job_id)
    assert client.phase("sleep", job_id) in {"QUEUED", "EXECUTING", "COMPLETED"}

    doc = client.wait_for("sleep", job_id, timeout=JOB_TIMEOUT)
    assert doc.phase == "COMPLETED", doc.body
    assert doc.root.findtext("{http://www.ivoa.net/xml/UWS/v1.0}startTime")
    assert doc.root.findtext("{http://www.ivoa.net/xml/UWS/v1.0}endTime")
    assert list(doc.results) == ["output"]
    result = doc.results["output"]
    assert result["mime-type"] == "text/plain"
    response = client.get(result["href"])
    assert response.status_code == 200
    assert re.search(rf"job {job_id} slept for 1(\.0*)? seconds", response.text), response.text
    assert int(result["size"]) == len(response.content)

    # It ran as a SLURM batch job (named after the job), with its time limit.
    slurm_id = slurm_state_becomes(slurm_cluster, "sleep", job_id, "COMPLETED")
    assert slurm_cluster.job_field(slurm_id, "TimeLimit") == "00:01:00"
    assert slurm_cluster.job_field(slurm_id, "WorkDir") == str(client.job_dir(job_id))
    assert slurm_cluster.job_field(slurm_id, "Requeue") == "0"
    assert (client.job_dir(job_id) / ".opus" / "batch.log").exists()


def test_failing_job_ends_in_error_with_its_message(client: Client) -> None:
    message = "custom failure: the flux capacitor is empty"
    job_id = client.create("fail", {"message": message}, run=True)
    doc = client.wait_for("fail", job_id, timeout=JOB_TIMEOUT)
    assert doc.phase == "ERROR", doc.body
    assert doc.error_type == "fatal"
    assert message in doc.error_message
    stderr = client.get(client.job_url("fail", job_id) + "/stderr")
    assert stderr.status_code == 200
    assert stderr.text == message + "\n"


def test_append_text_with_an_uploaded_file(client: Client) -> None:
    job_id = client.create(
        "append_text",
        {"text": "the end"},
        files={"input": ("notes.txt", b"first line\nsecond line", "text/plain")},
        run=True,
    )
    doc = client.wait_for("append_text", job_id, timeout=JOB_TIMEOUT)
    assert doc.phase == "COMPLETED", doc.body
    response = client.get(doc.results["output"]["href"])
    assert response.status_code == 200
    assert response.content == b"first line\nsecond line\nthe end\n"


def test_plot_job_gives_an_svg_image(client: Client) -> None:
    job_id = client.create(
        "plot", {"function": "square", "cycles": "3", "color": "crimson"}, run=True
    )
    doc = client.wait_for("plot", job_id, timeout=JOB_TIMEOUT)
    assert doc.phase == "COMPLETED", doc.body
    result = doc.results["image"]
    assert result["mime-type"] == "image/svg+xml"
    svg = etree.fromstring(client.get(result["href"]).content)
    assert svg.findtext("{http://www.w3.org/2000/svg}title") == "square, 3 cycles"


# -- stopping jobs ---------------------------------------------------------------------------


def test_abort_cancels_the_slurm_job(client: Client, slurm_cluster: SlurmCluster) -> None:
    job_id = client.create("sleep", {"duration": "300"}, run=True)
    client.wait_for("sleep", job_id, {"EXECUTING"}, timeout=JOB_TIMEOUT)
    assert slurm_job(slurm_cluster, "sleep", job_id)[1] == "RUNNING"
    eventually(lambda: processes_in(client.job_dir(job_id)), what="the job's processes")

    response = client.post(client.job_url("sleep", job_id) + "/phase", data={"PHASE": "ABORT"})
    assert response.status_code == 303
    assert client.phase("sleep", job_id) == "ABORTED"
    slurm_state_becomes(slurm_cluster, "sleep", job_id, "CANCELLED")
    eventually(
        lambda: not processes_in(client.job_dir(job_id)), timeout=30, what="the job's processes"
    )
    # Neither the cancelled batch script nor the reconciler changes the verdict.
    time.sleep(1.5)
    doc = client.job("sleep", job_id)
    assert doc.phase == "ABORTED"
    assert doc.results == {}
    assert doc.error_message is None


def test_a_job_cancelled_outside_opus_ends_aborted(
    client: Client, slurm_cluster: SlurmCluster
) -> None:
    job_id = client.create("sleep", {"duration": "300"}, run=True)
    client.wait_for("sleep", job_id, {"EXECUTING"}, timeout=JOB_TIMEOUT)
    slurm_id, state = slurm_job(slurm_cluster, "sleep", job_id)
    assert state == "RUNNING"
    slurm_cluster.run("scancel", slurm_id)

    doc = client.wait_for("sleep", job_id, timeout=JOB_TIMEOUT)
    assert doc.phase == "ABORTED", doc.body
    assert doc.error_message == f"the SLURM job {slurm_id} was cancelled"
    assert not (client.job_dir(job_id) / ".opus" / "status").exists()


# -- slurm_* options -------------------------------------------------------------------------


def test_slurm_options_reach_the_slurm_job(client: Client, slurm_cluster: SlurmCluster) -> None:
    job_id = client.create(
        "sleep",
        {"duration": "300", "slurm_cpus_per_task": "3", "SLURM_MEM": "100m"},
        run=True,
    )
    client.wait_for("sleep", job_id, {"EXECUTING"}, timeout=JOB_TIMEOUT)
    slurm_id, _ = slurm_job(slurm_cluster, "sleep", job_id)
    assert slurm_cluster.job_field(slurm_id, "CPUs/Task") == "3"
    assert slurm_cluster.job_field(slurm_id, "MinMemoryNode") == "100M"
    assert client.delete(client.job_url("sleep", job_id)).status_code == 303
    slurm_state_becomes(slurm_cluster, "sleep", job_id, "CANCELLED")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("slurm_cpus_per_task", "1 --wrap=x"),
        ("slurm_partition", "-p x"),
        ("slurm_account", "$(id)"),
        ("slurm_partition", "a;b"),
        ("slurm_mem", "1G --wrap=id"),
        ("slurm_qos", "high"),
    ],
)
def test_unsafe_slurm_options_are_refused(client: Client, name: str, value: str) -> None:
    before = client.list_ids("sleep")
    response = client.post("/rest/sleep", data={"duration": "1", name: value, "PHASE": "RUN"})
    assert response.status_code == 400, response.text
    assert name in response.text
    assert "\n" not in response.text.strip()
    assert client.list_ids("sleep") == before


# -- a server that goes away -----------------------------------------------------------------


def test_callback_lost_while_the_server_was_down(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    with slurm_server(tmp_path, slurm_cluster, SIGNAL_RETRY_SECONDS="1") as live:
        client = Client(live)
        job_id = client.create("sleep", {"duration": "3"}, run=True)
        client.wait_for("sleep", job_id, {"EXECUTING"}, timeout=JOB_TIMEOUT)
        live.stop(kill=True)

        # The batch script gives up its callback after a second and ends: only the
        # reconciler (squeue and the status file) can tell the server.
        slurm_state_becomes(slurm_cluster, "sleep", job_id, "COMPLETED")
        status = client.job_dir(job_id) / ".opus" / "status"
        assert status.read_text().startswith("COMPLETED")
        # What the batch script said when it gave up (curl's or python's error).
        assert (client.job_dir(job_id) / ".opus" / "signal.log").read_text().strip()

        live.start()
        client = Client(live)
        doc = client.wait_for("sleep", job_id, timeout=JOB_TIMEOUT)
        assert doc.phase == "COMPLETED", doc.body
        response = client.get(doc.results["output"]["href"])
        assert response.status_code == 200
        assert f"job {job_id} slept for 3" in response.text


def test_a_job_survives_the_server_being_killed(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    with slurm_server(tmp_path, slurm_cluster) as live:
        client = Client(live)
        job_id = client.create("sleep", {"duration": "4"}, run=True)
        client.wait_for("sleep", job_id, {"EXECUTING"}, timeout=JOB_TIMEOUT)
        live.stop(kill=True)

        # The job finishes while the server is down; its batch script keeps retrying
        # the COMPLETED callback (for SIGNAL_RETRY_SECONDS), so SLURM still runs it.
        status = client.job_dir(job_id) / ".opus" / "status"
        eventually(status.exists, timeout=JOB_TIMEOUT, what="the job's status file")
        assert slurm_job(slurm_cluster, "sleep", job_id)[1] == "RUNNING"

        live.start()
        client = Client(live)
        doc = client.wait_for("sleep", job_id, timeout=JOB_TIMEOUT)
        assert doc.phase == "COMPLETED", doc.body
        assert f"job {job_id} slept for 4" in client.get(doc.results["output"]["href"]).text
        # The retried callback got through (accepted as a repeat if the reconciler
        # was first) and the batch script ended well.
        slurm_state_becomes(slurm_cluster, "sleep", job_id, "COMPLETED")
        assert client.phase("sleep", job_id) == "COMPLETED"


# -- SLURM commands through ssh ----------------------------------------------------------------


def test_jobs_run_through_an_ssh_command_prefix(
    slurm_cluster: SlurmCluster, loopback_sshd: LoopbackSSH, tmp_path: Path
) -> None:
    # The remote shell does not inherit SLURM_CONF: the prefix sets it there.
    prefix = shlex.join([*loopback_sshd.client_argv(), "env", f"SLURM_CONF={slurm_cluster.conf}"])
    logins_before = loopback_sshd.log.read_text().count("Accepted publickey for root")
    # Without it, SLURM commands run on the server's host would find no cluster.
    nowhere = {"SLURM_CONF": "/nonexistent/slurm.conf"}
    with slurm_server(tmp_path, slurm_cluster, nowhere, SLURM_COMMAND_PREFIX=prefix) as live:
        client = Client(live)
        job_id = client.create("sleep", {"duration": "1", "slurm_cpus_per_task": "2"}, run=True)
        doc = client.wait_for("sleep", job_id, timeout=JOB_TIMEOUT)
        assert doc.phase == "COMPLETED", doc.body
        assert f"job {job_id} slept for 1" in client.get(doc.results["output"]["href"]).text
        slurm_id = slurm_state_becomes(slurm_cluster, "sleep", job_id, "COMPLETED")
        assert slurm_cluster.job_field(slurm_id, "CPUs/Task") == "2"

        # Abort goes through ssh too.
        running = client.create("sleep", {"duration": "300"}, run=True)
        client.wait_for("sleep", running, {"EXECUTING"}, timeout=JOB_TIMEOUT)
        response = client.post(client.job_url("sleep", running) + "/phase", data={"PHASE": "ABORT"})
        assert response.status_code == 303
        slurm_state_becomes(slurm_cluster, "sleep", running, "CANCELLED")
    logins = loopback_sshd.log.read_text().count("Accepted publickey for root")
    # sbatch twice, scancel, and squeue passes of the reconciler.
    assert logins - logins_before >= 4


# -- the manager's commands against the cluster -------------------------------------------


def test_the_manager_against_the_real_slurm_commands(
    slurm_cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the unit tests fake: sbatch, squeue (also when it has forgotten every id
    asked about), scontrol's accounting answer, scancel of running and unknown jobs."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    manager = SlurmManager(Settings(VAR_PATH=tmp_path / "var", MANAGER="slurm"))

    def job_dir(name: str) -> Path:
        directory = tmp_path / "jobs" / name
        (directory / ".opus").mkdir(parents=True)
        return directory

    running = ManagedJob("j1", None, job_dir("j1"), 120, "test", {"slurm_ntasks": "2"})
    script = running.job_dir / ".opus" / "batch.sh"
    script.write_text("#!/bin/bash\nsleep 300\n")
    slurm_id = manager.submit(running, script)
    assert slurm_cluster.job_field(slurm_id, "JobName") == "opus-test-j1"
    assert slurm_cluster.job_field(slurm_id, "NumTasks") == "2"
    running = dataclasses.replace(running, external_id=slurm_id)
    # Ids slurmctld does not know, as for jobs it forgot (MinJobAge passed).
    reported = ManagedJob("j2", "99999998", job_dir("j2"))
    (reported.job_dir / ".opus" / "status").write_text("COMPLETED\n\n")
    silent = ManagedJob("j3", "99999999", job_dir("j3"))

    states = manager.states([running, reported, silent])
    assert states["j1"].phase in {Phase.QUEUED, Phase.EXECUTING}
    assert states["j2"] == JobState(Phase.COMPLETED)
    assert states["j3"] == JobState(Phase.ERROR, "the SLURM job 99999999 ended without reporting")
    assert manager.accounting() is False
    # squeue refuses a list of nothing but unknown ids: the same answers.
    assert manager.states([reported, silent]) == {k: states[k] for k in ("j2", "j3")}

    manager.abort(running)
    eventually(
        lambda: (
            manager.states([running]).get("j1")
            == JobState(Phase.ABORTED, f"the SLURM job {slurm_id} was cancelled")
        ),
        what="the cancelled job",
    )
    manager.abort(running)  # already ended
    manager.abort(silent)  # unknown to SLURM

    with pytest.raises(ManagerError, match="Invalid partition name"):
        manager.submit(dataclasses.replace(running, options={"slurm_partition": "nowhere"}), script)


# -- time limits -----------------------------------------------------------------------------


def test_slurm_ends_a_job_that_exceeds_its_execution_duration(
    client: Client, slurm_cluster: SlurmCluster, time_limited_job: tuple[str, float]
) -> None:
    # Last in the module: the job started with the module, SLURM ends it 60-100 s
    # after it started, while the other tests ran.
    job_id, started = time_limited_job
    doc = client.wait_for("sleep", job_id, timeout=max(10, 200 - (time.monotonic() - started)))
    assert doc.phase == "ABORTED", doc.body
    assert doc.execution_duration == "1"
    # SLURM's TIMEOUT ended it (OPUS's own limit waits for time_limit_grace).
    assert doc.error_type == "fatal"
    assert doc.error_message == "the job exceeded its time limit and SLURM stopped it"
    assert client.get(client.job_url("sleep", job_id) + "/error").text == doc.error_message
    slurm_id, state = slurm_job(slurm_cluster, "sleep", job_id)
    assert state == "TIMEOUT"
    assert slurm_cluster.job_field(slurm_id, "TimeLimit") == "00:01:00"
    assert not processes_in(client.job_dir(job_id))
    assert doc.results == {}

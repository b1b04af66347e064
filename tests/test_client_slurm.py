"""The client's job-running calls and commands through SLURM: a real `opus serve` with
MANAGER=slurm on the single-node cluster of tests/slurm_cluster.py.

The library's submit, wait (server-side WAIT), progress, results, download, logs,
abort, rerun and provenance, and the commands `opus submit --wait --download`,
`opus wait` with its progress, `opus logs --follow`, `opus abort`, `opus rerun` and
`opus batch` over datasets with a report. Each job is looked for in SLURM's queue too:
what ran, ran there. The same calls on the local manager are in test_client_api.py,
test_client_commands.py and test_client_batch.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from opus.cli import main
from opus.client import Client, JobFailed, Phase
from tests.conftest import EXAMPLES, LiveServer
from tests.live_helpers import add_user, eventually
from tests.slurm_cluster import SlurmCluster
from tests.test_client_commands import TALK_SH, TALK_YML, command
from tests.test_live_slurm import slurm_job, slurm_server

pytestmark = pytest.mark.live
# A SLURM job ends within a few seconds here.
JOB_TIMEOUT = 90


@pytest.fixture(scope="module")
def server(
    slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("client_slurm")
    shutil.copytree(EXAMPLES, directory / "jdl")
    (directory / "jdl" / "talk.yml").write_text(TALK_YML)
    (directory / "jdl" / "talk.sh").write_text(TALK_SH)
    with slurm_server(directory, slurm_cluster, ALLOW_ANONYMOUS="false") as live:
        yield live


@pytest.fixture(scope="module")
def token(server: LiveServer) -> str:
    return add_user(server, "dora")


@pytest.fixture
def dora(server: LiveServer, token: str) -> Client:
    return Client(server.url, token, "dora")


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "config"
    monkeypatch.setenv("OPUS_CONFIG_DIR", str(directory))
    return directory


@pytest.fixture
def opus(capsys: pytest.CaptureFixture[str], server: LiveServer, token: str, config: Path):
    """`opus ARGS…` in this process, logged in as dora: (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    token_file = config.parent / "token"
    token_file.write_text(token + "\n")
    code, _, err = run("login", server.url, "--user", "dora", "--token-file", str(token_file))
    assert code == 0, err
    return run


def ran_on_slurm(cluster: SlurmCluster, job_type: str, url: str, state: str) -> None:
    """The OPUS job at ``url`` was a SLURM job, which ended in ``state``."""
    job_id = url.rstrip("/").rsplit("/", 1)[1]
    eventually(
        lambda: slurm_job(cluster, job_type, job_id)[1] == state,
        timeout=JOB_TIMEOUT,
        what=f"SLURM job of {job_id} to be {state}",
    )


# -- the library -------------------------------------------------------------------------


def test_a_job_from_submission_to_deletion(
    dora: Client, token: str, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("first line\n")
    seen: list[Phase] = []
    job = dora.submit("append_text", {"text": "from SLURM"}, {"input": notes})
    final = job.wait(timeout=JOB_TIMEOUT, on_change=lambda j: seen.append(j.info.phase))
    assert final == Phase.COMPLETED, job.info
    assert seen[-1] == Phase.COMPLETED and len(seen) == len(set(seen))
    ran_on_slurm(slurm_cluster, "append_text", job.url, "COMPLETED")
    [result] = job.results()
    assert job.read(result) == b"first line\nfrom SLURM\n"
    assert job.download(tmp_path / "out") == [tmp_path / "out" / "output.txt"]
    assert (tmp_path / "out" / "output.txt").read_bytes() == job.read(result)
    assert job.stdout == "" and job.stderr == ""
    document = job.provenance()
    assert f"opus_job:job_{job.id}" in document["activity"]

    again = job.rerun({"text": "again"})
    assert again.wait(timeout=JOB_TIMEOUT, raise_on_error=True) == Phase.COMPLETED
    assert again.read("output") == b"first line\nagain\n"  # the same input, reused
    for done in (job, again):
        done.delete()
        assert requests.get(done.url, auth=("dora", token), timeout=60).status_code == 404


def test_progress_failure_and_abort(dora: Client, slurm_cluster: SlurmCluster) -> None:
    percents: list[float | None] = []
    job = dora.submit("progress_demo", {"steps": 3, "step_duration": 1})
    job.wait(
        timeout=JOB_TIMEOUT,
        on_change=lambda j: percents.append(j.progress.percent if j.progress else None),
    )
    assert job.info.phase == Phase.COMPLETED
    assert job.progress is not None and job.progress.percent == 100
    assert job.progress.message == "step 3/3"
    assert percents[-1] == 100

    failing = dora.submit("fail", {"message": "broken on SLURM"})
    with pytest.raises(JobFailed) as failed:
        failing.wait(timeout=JOB_TIMEOUT, raise_on_error=True)
    assert "broken on SLURM" in str(failed.value)
    assert failing.info.phase == Phase.ERROR

    sleeping = dora.submit("sleep", {"duration": 300})
    eventually(lambda: sleeping.phase == Phase.EXECUTING, timeout=JOB_TIMEOUT)
    sleeping.abort()
    assert sleeping.wait(timeout=JOB_TIMEOUT) == Phase.ABORTED
    # Aborting cancelled the SLURM job: nothing goes on running on the cluster.
    ran_on_slurm(slurm_cluster, "sleep", sleeping.url, "CANCELLED")


# -- the commands ------------------------------------------------------------------------


def test_submit_wait_download_and_exit_statuses(
    opus, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    code, out, err = opus(
        "submit", "plot", "--wait", "cycles=2", "--download", str(tmp_path / "plot")
    )
    assert code == 0, err
    url, *lines = out.splitlines()
    assert f"{url.split('/rest/', 1)[1]} COMPLETED" in lines
    assert lines[-1] == str(tmp_path / "plot" / "plot.svg")
    assert (tmp_path / "plot" / "plot.svg").read_bytes().lstrip().startswith(b"<")
    ran_on_slurm(slurm_cluster, "plot", url, "COMPLETED")

    code, out, err = opus("submit", "progress_demo", "steps=2", "step_duration=0.5")
    assert code == 0, err
    code, shown, err = opus("wait", out.strip())
    assert code == 0, err
    assert shown.splitlines()[-1].endswith("COMPLETED 100% step 2/2")

    code, _, err = opus("submit", "fail", "message=broken on purpose", "--wait")
    assert code == 1 and "broken on purpose" in err

    code, out, _ = opus("submit", "sleep", "duration=300")
    sleeping = out.strip()
    code, _, err = opus("wait", sleeping, "--timeout", "1")
    assert code == 5 and "still" in err
    code, out, _ = opus("abort", sleeping)
    assert code == 0 and out.startswith("aborted sleep/")
    code, _, _ = opus("wait", sleeping, "--quiet")
    assert code == 3
    ran_on_slurm(slurm_cluster, "sleep", sleeping, "CANCELLED")

    code, out, err = opus("rerun", url, "cycles=3", "--wait")
    assert code == 0, err
    code, status, _ = opus("status", out.splitlines()[0], "--json")
    values = {p["id"]: p["value"] for p in json.loads(status)["parameters"]}
    assert json.loads(status)["phase"] == "COMPLETED" and values["cycles"] == "3"


def test_logs_follow_a_slurm_job(opus, config: Path) -> None:
    code, out, err = opus("submit", "talk", "lines=4")
    assert code == 0, err
    followed = command("logs", out.strip(), "--follow", config=config)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "".join(f"line {i}\n" for i in range(1, 5))
    errors = command("logs", out.strip(), "--stderr", config=config)
    assert errors.stdout == "".join(f"err {i}\n" for i in range(1, 5))


def test_a_batch_over_datasets(opus, slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    paths = [data / f"d{i}.txt" for i in range(8)]
    for i, path in enumerate(paths):
        path.write_text(f"dataset {i}\n")
    report_file = tmp_path / "report.json"
    code, out, err = opus(
        "batch",
        "append_text",
        "--over",
        str(data / "*.txt"),
        "--as",
        "input",
        "text=on SLURM",
        "--parallel",
        "3",
        "--report",
        str(report_file),
        "--download",
        str(tmp_path / "results"),
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["counts"] == {"COMPLETED": 8}
    assert [line["dataset"] for line in report["datasets"]] == [str(p) for p in paths]
    for path, line in zip(paths, report["datasets"], strict=True):
        ran_on_slurm(slurm_cluster, "append_text", line["job_url"], "COMPLETED")
        downloaded = tmp_path / "results" / path.stem / "output.txt"
        assert downloaded.read_text() == path.read_text() + "on SLURM\n"

    # Resumed, a finished batch submits nothing again.
    code, out, err = opus("batch", "--resume", str(report_file), "--json")
    assert code == 0, err
    resumed = json.loads(out)
    assert [line["job_id"] for line in resumed["datasets"]] == [
        line["job_id"] for line in report["datasets"]
    ]

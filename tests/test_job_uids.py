"""Local jobs under uids of their own (LOCAL_JOB_UIDS), against a real `opus serve` run as
root: a job cannot read the server's environment, another running job's token or
files, the database or the definitions, nor write outside its directory; its results
are served, and abort, the execution-duration limit and deletion still stop everything
it started; a uid serves one job at a time and is given back. Without the privileges
to switch uids, `opus serve` refuses to start."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.server.managers.jobusers import kill_processes_of, parse_uids, startup_problem
from opus.settings import Settings, SettingsError
from tests.conftest import EXAMPLES, LiveServer
from tests.live_helpers import Client, assert_clean_log, eventually

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="jobs under other uids need the tests to run as root"
    ),
]

UIDS = "61000-61009"
OLD_JOB = "oldjobmadebyanolderopus"
# Root without any capability: what a server not run as root has.
NO_CAPABILITIES = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"]
SERVER_SECRET = "a secret in the server's environment"
PROBES = r"""
check() {
  name=$1; shift
  if "$@" > /dev/null 2>&1; then echo "$name=yes"; else echo "$name=no"; fi
}
jobs=$(dirname "$JOB_DIR")
{
  check environ cat "/proc/$server_pid/environ"
  check signal_server kill -0 "$server_pid"
  check token cat "$other/.opus/token"
  check other_files ls "$other"
  check list_jobs ls "$jobs"
  check list_var ls "$var"
  check database cat "$var/opus.db"
  check database_write sh -c 'echo x >> "$1"' sh "$var/opus.db"
  check definitions ls "$(dirname "$var")/jdl"
  check write_jobs touch "$jobs/pwned"
  check write_var touch "$var/pwned"
  check write_own touch "$JOB_DIR/mine"
} > "$JOB_OUTPUT_DIR/probes.txt"
id -u > "$JOB_OUTPUT_DIR/uid.txt"
env > "$JOB_OUTPUT_DIR/env.txt"
"""
DEFINITIONS = {
    "probe": (
        "parameters:\n"
        "  - {name: server_pid, datatype: xs:string, default: '1'}\n"
        "  - {name: other, datatype: xs:string, default: /nonexistent}\n"
        "  - {name: var, datatype: xs:string, default: /nonexistent}\n",
        PROBES,
    ),
    "escape": ("", "setsid sleep 300 > /dev/null 2>&1 < /dev/null &\necho started\n"),
}


def processes_of(uid: int) -> list[int]:
    """Live processes whose real uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields["Uid"].split()[0] == str(uid) and not fields["State"].strip().startswith("Z"):
            found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def server(module_database_url: str) -> Iterator[LiveServer]:
    # Under /tmp, not pytest's 0700 directories: the jobs' uids must reach JOBS_PATH.
    top = Path(tempfile.mkdtemp(prefix="opus-job-uids-"))
    top.chmod(0o711)
    jdl = top / "jdl"
    shutil.copytree(EXAMPLES, jdl)
    for name, (parameters, script) in DEFINITIONS.items():
        (jdl / f"{name}.yml").write_text(
            f"name: {name}\nannotation: a test job\nexecution_duration: 60\n{parameters}"
        )
        (jdl / f"{name}.sh").write_text(script)
    # A job directory of an older OPUS, made with umask 022.
    (top / "var" / "jobs" / OLD_JOB).mkdir(parents=True)
    (top / "var" / "jobs" / OLD_JOB).chmod(0o755)
    live = LiveServer(top, module_database_url, LOCAL_JOB_UIDS=UIDS)
    live.env["SERVER_SECRET"] = SERVER_SECRET
    live.start()
    try:
        yield live
        live.stop()
        assert_clean_log(live)
    finally:
        live.stop()
        for uid in parse_uids(UIDS):
            kill_processes_of(uid)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def client(server: LiveServer) -> Client:
    return Client(server)


def owner(path: Path) -> int:
    return path.lstat().st_uid


def test_a_job_reads_nothing_of_the_server_nor_of_another_job(client: Client) -> None:
    other = client.create("sleep", {"duration": "300"}, run=True)
    client.wait_for("sleep", other, {"EXECUTING"}, timeout=30)
    other_dir = client.job_dir(other)
    other_uid = owner(other_dir)
    assert other_uid in parse_uids(UIDS)
    assert stat.S_IMODE(other_dir.stat().st_mode) == 0o700

    var = client.server.tmp_path / "var"
    values = {
        "server_pid": str(client.server.process.pid),
        "other": str(other_dir),
        "var": str(var),
    }
    job_id = client.create("probe", values, run=True)
    doc = client.wait_for("probe", job_id, timeout=60)
    assert doc.phase == "COMPLETED", doc.body

    probes = dict(
        line.split("=") for line in client.get(doc.results["probes.txt"]["href"]).text.split()
    )
    assert probes.pop("write_own") == "yes"
    assert probes == dict.fromkeys(probes, "no"), probes
    uid = int(client.get(doc.results["uid.txt"]["href"]).text)
    assert uid in parse_uids(UIDS) and uid != other_uid
    environment = client.get(doc.results["env.txt"]["href"]).text
    assert SERVER_SECRET not in environment and "OPUS_" not in environment
    assert not (var / "pwned").exists() and not (client.jobs_path / "pwned").exists()

    # Ended: the directory is the server's again, the uid free, nothing left of it.
    job_dir = client.job_dir(job_id)
    assert owner(job_dir) == 0 and stat.S_IMODE(job_dir.stat().st_mode) == 0o700
    assert not (var / "job-uids" / str(uid)).exists()
    assert processes_of(uid) == []
    assert (var / "job-uids" / str(other_uid)).read_text() == str(other_dir)

    response = client.post(client.job_url("sleep", other) + "/phase", data={"PHASE": "ABORT"})
    assert response.status_code == 303
    assert client.phase("sleep", other) == "ABORTED"
    eventually(lambda: processes_of(other_uid) == [], timeout=15, what="the aborted job gone")
    eventually(lambda: owner(other_dir) == 0, timeout=15, what="the directory given back")
    assert not (var / "job-uids" / str(other_uid)).exists()


def test_the_way_to_the_job_directories_is_passed_through_not_listed(client: Client) -> None:
    var = client.server.tmp_path / "var"
    assert stat.S_IMODE(var.stat().st_mode) == 0o711
    assert stat.S_IMODE(client.jobs_path.stat().st_mode) == 0o711
    assert stat.S_IMODE((client.server.tmp_path / "jdl").stat().st_mode) == 0o700
    url = client.server.database_url
    if url.startswith("sqlite:///"):
        assert stat.S_IMODE(Path(url.removeprefix("sqlite:///")).stat().st_mode) == 0o600
    assert stat.S_IMODE((client.jobs_path / OLD_JOB).stat().st_mode) == 0o700


def test_a_process_that_left_the_job_is_killed_when_it_ends(client: Client) -> None:
    job_id = client.create("escape", run=True)
    uid = owner(client.job_dir(job_id))
    doc = client.wait_for("escape", job_id, timeout=60)
    assert doc.phase == "COMPLETED", doc.body
    eventually(lambda: processes_of(uid) == [], timeout=15, what="the escaped sleep killed")
    assert owner(client.job_dir(job_id)) == 0


def test_execution_duration_and_deletion_stop_the_job(client: Client) -> None:
    limited = client.create("sleep", {"duration": "30", "EXECUTIONDURATION": "1"}, run=True)
    deleted = client.create("sleep", {"duration": "300"}, run=True)
    client.wait_for("sleep", deleted, {"EXECUTING"}, timeout=30)
    limited_uid, deleted_uid = owner(client.job_dir(limited)), owner(client.job_dir(deleted))
    assert limited_uid != deleted_uid

    doc = client.wait_for("sleep", limited, timeout=30)
    assert doc.phase == "ABORTED", doc.body
    assert "execution duration" in doc.error_message
    eventually(lambda: processes_of(limited_uid) == [], timeout=15, what="the job stopped")

    assert client.delete(client.job_url("sleep", deleted)).status_code == 303
    assert not client.job_dir(deleted).exists()
    eventually(lambda: processes_of(deleted_uid) == [], timeout=15, what="the job stopped")


def test_uids_are_given_back_and_used_again(client: Client) -> None:
    # More jobs, one after the other, than the range has uids.
    for _ in range(len(parse_uids(UIDS)) + 2):
        job_id = client.create("sleep", {"duration": "0"}, run=True)
        doc = client.wait_for("sleep", job_id, timeout=60)
        assert doc.phase == "COMPLETED", doc.body
        assert client.get(doc.results["output"]["href"]).text.startswith("OPUS job")
    leases = client.server.tmp_path / "var" / "job-uids"
    eventually(
        lambda: not [p for p in leases.iterdir() if p.name.isdigit()],
        timeout=15,
        what="every uid given back",
    )


def test_serve_refuses_to_start_without_the_privileges(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPUS_")}
    env.update(OPUS_VAR_PATH=str(tmp_path / "var"), OPUS_LOCAL_JOB_UIDS=UIDS)
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop the capabilities")
    done = subprocess.run(
        [*NO_CAPABILITIES, sys.executable, "-m", "opus", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opus: LOCAL_JOB_UIDS needs"), lines
    assert "CAP_SETUID" in lines[0]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "FIRST-LAST"),
        ("20-10", "FIRST <= LAST"),
        ("0-10", "from 1 up"),
        ("0", "from 1 up"),
    ],
)
def test_bad_ranges_are_refused(value: str, reason: str) -> None:
    with pytest.raises(SettingsError, match=reason):
        parse_uids(value)
    assert reason in (startup_problem(Settings(LOCAL_JOB_UIDS=value)) or "")


def test_a_server_not_run_as_root_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    problem = startup_problem(Settings(LOCAL_JOB_UIDS=UIDS))
    monkeypatch.undo()
    assert problem == (
        "LOCAL_JOB_UIDS needs the server to run as root (it runs as uid 1000): "
        "see docs/deployment.md"
    )


def test_the_setting_is_for_the_local_manager() -> None:
    problem = startup_problem(Settings(LOCAL_JOB_UIDS=UIDS, MANAGER="slurm"))
    assert problem is not None and "local manager" in problem
    assert startup_problem(Settings()) is None


def test_jobs_path_must_be_reachable(tmp_path: Path) -> None:
    # pytest's own directories are 0700: jobs under other uids could not get through.
    problem = startup_problem(Settings(VAR_PATH=tmp_path / "var", LOCAL_JOB_UIDS=UIDS))
    assert problem is not None and "not searchable" in problem

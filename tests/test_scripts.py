"""Batch scripts: values reach the job script as literal text, results are collected."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from opus.core.layout import (
    INTERNAL_DIR,
    JOB_SCRIPT,
    RESULTS_DIR,
    STATUS_FILE,
    STDERR_FILE,
    TOKEN_FILE,
)
from opus.server.scripts import BatchJob, check_name, render_batch_script
from tests.conftest import free_port

HOSTILE_VALUES = [
    "$(touch PWNED)",
    "`touch PWNED`",
    '"; touch PWNED; "',
    "'; touch PWNED; '",
    "line one\ntouch PWNED",
    "$HOME ${PATH} $$ $0",
    "* ? [a-z]",
    "\\'\\\"",
    "--help",
    "",
    "unicode: été ✓",
]


def run_batch(tmp_path: Path, script: str, parameters: dict[str, str], patterns=()) -> Path:
    job_dir = tmp_path / "job"
    internal = job_dir / INTERNAL_DIR
    internal.mkdir(parents=True)
    (internal / TOKEN_FILE).write_text("secret")
    (internal / JOB_SCRIPT).write_text(script)
    batch = internal / "batch.sh"
    batch.write_text(
        render_batch_script(
            BatchJob(
                job_id="testjob",
                job_dir=job_dir,
                # Nothing listens there: callbacks fail at once (no retry time).
                signal_url=f"http://127.0.0.1:{free_port()}/handler/job_event",
                parameters=parameters,
                result_patterns=list(patterns),
                signal_retry_seconds=0,
            )
        )
    )
    subprocess.run(["bash", str(batch)], cwd=tmp_path, timeout=60, check=False)
    return job_dir


def test_hostile_values_arrive_literally(tmp_path: Path) -> None:
    params = {f"p{i}": value for i, value in enumerate(HOSTILE_VALUES)}
    dump = (
        "import json, os; json.dump({k: os.environ[k] for k in os.environ "
        "if k.startswith('p')}, open('values.json', 'w'))"
    )
    job_dir = run_batch(tmp_path, f'python3 -c "{dump}"\n', params, ["values.json"])
    seen = json.loads((job_dir / RESULTS_DIR / "values.json").read_text())
    assert seen == params
    assert not list(tmp_path.rglob("PWNED"))


def test_environment_and_status_file(tmp_path: Path) -> None:
    script = 'echo "$JOB_ID|$JOB_DIR|$JOB_OUTPUT_DIR|$PWD|${OPUS_TOKEN:-none}" > env.txt\n'
    job_dir = run_batch(tmp_path, script, {}, ["env.txt"])
    job_id, jdir, out, cwd, token = (
        (job_dir / RESULTS_DIR / "env.txt").read_text().strip().split("|")
    )
    assert (job_id, jdir, out, cwd) == (
        "testjob",
        str(job_dir),
        str(job_dir / RESULTS_DIR),
        str(job_dir),
    )
    assert token == "none"  # the signal token is not handed to the job's script
    assert (job_dir / INTERNAL_DIR / STATUS_FILE).read_text().splitlines()[0] == "COMPLETED"


def test_failure_is_recorded_with_stderr_captured(tmp_path: Path) -> None:
    job_dir = run_batch(tmp_path, "echo broken >&2\nexit 3\n", {})
    status = (job_dir / INTERNAL_DIR / STATUS_FILE).read_text().splitlines()
    assert status == ["ERROR", "the job script exited with status 3"]
    assert (job_dir / INTERNAL_DIR / STDERR_FILE).read_text() == "broken\n"


def test_globs_collect_only_matching_files(tmp_path: Path) -> None:
    script = "touch a.png b.png c.txt\n"
    job_dir = run_batch(tmp_path, script, {}, ["*.png"])
    assert sorted(p.name for p in (job_dir / RESULTS_DIR).iterdir()) == ["a.png", "b.png"]
    assert (job_dir / "c.txt").exists()


@pytest.mark.parametrize("name", ["a;b", "$(x)", "1abc", "a b", "a-b", "", "x\n"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        check_name(name)


@pytest.mark.parametrize("pattern", ["a;b", "../x", "$(x)", "a b", ".hidden", "-rf", "x\n"])
def test_unsafe_patterns_are_refused(pattern: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        render_batch_script(BatchJob("j", tmp_path, "http://127.0.0.1:1/", {}, [pattern], 0))

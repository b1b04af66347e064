"""`opus batch` and the library's run_batch against a real `opus serve` (local manager):
50 datasets at --parallel 5 on a server whose NJOBS_MAX is 3 (the limit kept, its
refusals retried), failing and unreadable datasets, results and entity ids given by
reference, an interruption then --resume (nothing run twice), JOBS_PER_USER_MAX
stopping the batch with a resumable report, the WAIT way (no change feed), and the
report's forms (JSON, CSV). The parts that need no server come first.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from opus.cli import main
from opus.client import Client
from opus.client.batch import BatchProgress, BatchReport, Entry, resume_batch, run_batch
from opus.client.batchcmd import exit_status
from opus.client.batchreport import download_folders, is_reference, read_list, read_report
from opus.client.batchwatch import refusal_kind
from opus.client.errors import BadRequest, PermissionDenied, ServerError, Unreachable
from tests.conftest import EXAMPLES, LiveServer
from tests.live_helpers import assert_clean_log, file_server

ROOT = Path(__file__).resolve().parents[1]
NJOBS_MAX = 3
# append_text, a fifth of a second slower: jobs that overlap, so NJOBS_MAX bites.
SLOW_YML = """name: slow_append
annotation: Appends a line of text to a text file, a fifth of a second later.
execution_duration: 60
parameters:
  - {name: text, datatype: xs:string, default: more}
used:
  - {name: input, content_type: text/plain, url: "file://$ID"}
generated:
  - {name: output, default: output.txt, content_type: text/plain}
"""
SLOW_SH = """sleep 0.2
cp -- "$input" output.txt || exit 1
printf '%s\\n' "$text" >> output.txt
"""
# Fails on a dataset that says "bad".
PICKY_YML = """name: picky
annotation: Copies a text file, unless it says bad.
execution_duration: 60
used:
  - {name: input, content_type: text/plain, url: "file://$ID"}
generated:
  - {name: output, default: output.txt, content_type: text/plain}
"""
PICKY_SH = """if grep -q bad "$input"; then echo "bad data" >&2; exit 1; fi
cp -- "$input" output.txt
"""


# -- without a server ---------------------------------------------------------------


def test_report_round_trips_as_json_and_csv(tmp_path: Path) -> None:
    report = BatchReport(
        "http://h", "append_text", "input", [("text", "x")], [("calib", "c.dat")], run_id="r"
    )
    report.entries = [
        Entry(
            "a.txt",
            "j1",
            "http://h/rest/append_text/j1",
            "COMPLETED",
            None,
            {"output": "http://h/store/j1/output"},
            ["out/a/output.txt", "out/a/b c.txt"],
        ),
        Entry("b.txt", phase="UNREADABLE", error="No such file or directory: b.txt"),
        Entry("c.txt"),
    ]
    report.write(tmp_path / "r.json")
    again = read_report(tmp_path / "r.json")
    assert isinstance(again, BatchReport)
    assert again.entries == report.entries and again.params == [("text", "x")]
    assert (again.job_type, again.as_input, again.run_id) == ("append_text", "input", "r")
    assert json.loads((tmp_path / "r.json").read_text())["counts"] == {
        "COMPLETED": 1,
        "UNREADABLE": 1,
        "NOT_SUBMITTED": 1,
    }
    report.write(tmp_path / "r.csv")
    assert read_report(tmp_path / "r.csv") == [
        Entry(e.dataset, e.job_id, e.job_url, e.phase, e.error, e.results, e.downloaded)
        for e in report.entries
    ]
    assert not list(tmp_path.glob(".*.part"))  # written through a temporary file


def test_datasets_lists_and_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_list(["# data", "", "  a.fits  ", "https://h/x.fits", "#b"]) == [
        "a.fits",
        "https://h/x.fits",
    ]
    monkeypatch.chdir(tmp_path)
    entity = "5f0e" * 8
    assert is_reference("https://h/store/x") and is_reference(entity)
    assert not is_reference("data/a.fits")
    Path(entity).write_text("a local file of that name")
    assert not is_reference(entity)
    assert download_folders(
        ["d/a.fits", "e/a.fits", "a-2.txt", "http://h/s/b%20c.fits", "../"]
    ) == ["a", "a-2", "a-2-2", "b c", "dataset"]


def test_refusals_and_exit_statuses() -> None:
    assert (
        refusal_kind(PermissionDenied("anonymous already has 3 active jobs (NJOBS_MAX is 3)"))
        == "busy"
    )
    assert (
        refusal_kind(PermissionDenied("alice already keeps 9 jobs (JOBS_PER_USER_MAX is 9)"))
        == "full"
    )
    assert refusal_kind(PermissionDenied("you may not use this job type")) == "fatal"
    assert refusal_kind(BadRequest("parameter 'x': not a number")) == "dataset"
    assert refusal_kind(Unreachable("down")) == "down"
    assert refusal_kind(ServerError("500", status=500)) == "fault"
    report = BatchReport("http://h", "t", "input", entries=[Entry("a", phase="COMPLETED")])
    assert exit_status(report) == 0
    report.entries.append(Entry("b", phase="ERROR"))
    assert exit_status(report) == 1
    report.stopped = "timeout"
    assert exit_status(report) == 5
    report.stopped, report.error = "refused", PermissionDenied("JOBS_PER_USER_MAX")
    assert exit_status(report) == 6
    report.stopped = "interrupted"
    assert exit_status(report) == 130


# -- against a server ---------------------------------------------------------------


def _jdl(directory: Path) -> Path:
    jdl = directory / "jdl"
    if not jdl.exists():
        import shutil

        shutil.copytree(EXAMPLES, jdl)
    for name, text in [
        ("slow_append.yml", SLOW_YML),
        ("slow_append.sh", SLOW_SH),
        ("picky.yml", PICKY_YML),
        ("picky.sh", PICKY_SH),
    ]:
        (jdl / name).write_text(text)
    return jdl


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("client_batch")
    _jdl(directory)
    live = LiveServer(directory, NJOBS_MAX=str(NJOBS_MAX))
    live.start()
    try:
        yield live
    finally:
        live.stop()
    assert_clean_log(live)


@pytest.fixture
def opus(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`opus ARGS…` in this process: (exit status, stdout, stderr)."""
    monkeypatch.setenv("OPUS_CONFIG_DIR", str(tmp_path / "config"))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def datasets(directory: Path, count: int, text: str = "dataset {i}") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = directory / f"d{i:03d}.txt"
        path.write_text(text.format(i=i) + "\n")
        paths.append(path)
    return paths


def server_jobs(server: LiveServer, run_id: str) -> list[dict]:
    """The jobs of a run id, as the server lists them (newest first)."""
    answer = requests.get(
        f"{server.url}/jobs",
        params={"RUNID": run_id, "LAST": "500"},
        headers={"Accept": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return [j for j in answer.json()["jobs"] if j["runId"] == run_id]


def most_active_at_once(jobs: list[dict]) -> int:
    """The most jobs active together: each from its creation (created to run: QUEUED at
    once) to its end; an end before a start at the same time."""
    moments = sorted([(j["creationTime"], 1) for j in jobs] + [(j["endTime"], -1) for j in jobs])
    active = most = 0
    for _, change in moments:
        active += change
        most = max(most, active)
    return most


def test_fifty_datasets_within_the_servers_limit(opus, server: LiveServer, tmp_path: Path) -> None:
    paths = datasets(tmp_path / "data", 50)
    code, out, err = opus(
        "batch",
        "slow_append",
        "--server",
        server.url,
        "--over",
        str(tmp_path / "data" / "*.txt"),
        "--as",
        "input",
        "text=hello",
        "--parallel",
        "5",
        "--run-id",
        "fifty",
        "--report",
        str(tmp_path / "report.json"),
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report == json.loads((tmp_path / "report.json").read_text())
    assert report["counts"] == {"COMPLETED": 50}
    assert [line["dataset"] for line in report["datasets"]] == [str(p) for p in paths]
    # The server refused what passed NJOBS_MAX; the batch waited and tried again.
    assert report["retries"] >= 1 and "NJOBS_MAX" in err
    session = requests.Session()
    for path, line in zip(paths, report["datasets"], strict=True):
        assert line["job_url"] == f"{server.url}/rest/slow_append/{line['job_id']}"
        answer = session.get(line["results"]["output"], timeout=60)
        assert answer.text == path.read_text() + "hello\n"
    jobs = server_jobs(server, "fifty")
    assert len(jobs) == 50 and {j["phase"] for j in jobs} == {"COMPLETED"}
    assert {j["jobId"] for j in jobs} == {line["job_id"] for line in report["datasets"]}
    assert most_active_at_once(jobs) <= NJOBS_MAX


def test_failed_and_unreadable_datasets_are_reported(
    opus, server: LiveServer, tmp_path: Path
) -> None:
    good = datasets(tmp_path / "data", 2, "good {i}")
    bad = tmp_path / "data" / "bad.txt"
    bad.write_text("bad\n")
    listing = tmp_path / "list.txt"
    missing, directory = tmp_path / "missing.txt", tmp_path / "data"
    listing.write_text(
        "# datasets\n"
        + "".join(f"{p}\n" for p in [good[0], bad, missing, directory, good[1]])
        + "\n"
    )
    code, out, err = opus(
        "batch",
        "picky",
        "--server",
        server.url,
        "--over-file",
        str(listing),
        "--as",
        "input",
        "--report",
        str(tmp_path / "report.csv"),
        "--download",
        str(tmp_path / "out"),
    )
    assert code == 1, err
    rows = {r["dataset"]: r for r in csv.DictReader((tmp_path / "report.csv").open())}
    assert [rows[str(p)]["phase"] for p in good] == ["COMPLETED", "COMPLETED"]
    assert rows[str(bad)]["phase"] == "ERROR" and rows[str(bad)]["error"]
    assert rows[str(missing)]["phase"] == "UNREADABLE"
    assert "No such file" in rows[str(missing)]["error"]
    assert rows[str(directory)]["phase"] == "UNREADABLE"
    assert "directory" in rows[str(directory)]["error"].lower()
    # The results of each completed dataset in a folder named after it.
    assert (tmp_path / "out" / "d000" / "output.txt").read_text() == "good 0\n"
    assert rows[str(good[1])]["downloaded"] == str(tmp_path / "out" / "d001" / "output.txt")
    assert rows[str(good[0])]["results"].startswith(f"output={server.url}/store/")
    assert "ERROR" in out and "UNREADABLE" in out  # the table on stdout
    assert "5 datasets: 2 COMPLETED" in err


def test_results_and_entities_given_by_reference(opus, server: LiveServer, tmp_path: Path) -> None:
    first = run_batch(
        Client(server.url),
        "append_text",
        [str(p) for p in datasets(tmp_path / "d", 2)],
        "input",
        {"text": "one"},
    )
    assert first.completed
    result_url = first.entries[0].results["output"]
    entity = Client(server.url).job(str(first.entries[1].job_url)).results()[0].entity
    assert entity
    with file_server({"/remote.txt": b"remote\n"}) as base:
        listing = tmp_path / "list.txt"
        listing.write_text(f"# earlier results\n{result_url}\n\n{entity}\n{base}/remote.txt\n")
        code, out, err = opus(
            "batch",
            "append_text",
            "--server",
            server.url,
            "--over-file",
            str(listing),
            "--as",
            "input",
            "text=two",
            "--json",
        )
    assert code == 0, err
    lines = json.loads(out)["datasets"]
    contents = [requests.get(line["results"]["output"], timeout=60).text for line in lines]
    assert contents == ["dataset 0\none\ntwo\n", "dataset 1\none\ntwo\n", "remote\ntwo\n"]
    jobs = [Client(server.url).job(line["job_url"]) for line in lines]
    given = [next(p for p in job.info.parameters if p.id == "input") for job in jobs]
    assert [p.by_reference for p in given[:2]] == [True, True]  # nothing copied


def command(*args: str, config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OPUS_CONFIG_DIR": str(config), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "opus", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_interrupted_then_resumed(opus, server: LiveServer, tmp_path: Path) -> None:
    datasets(tmp_path / "data", 16)
    report_path = tmp_path / "report.json"
    process = command(
        "batch",
        "slow_append",
        "--server",
        server.url,
        "--over",
        str(tmp_path / "data" / "*"),
        "--as",
        "input",
        "--parallel",
        "2",
        "--run-id",
        "halfway",
        "--report",
        str(report_path),
        config=tmp_path / "config",
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if report_path.exists():
                counts = json.loads(report_path.read_text())["counts"]
                if counts.get("COMPLETED", 0) >= 4:
                    break
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    before = json.loads(report_path.read_text())
    assert before["stopped"] == "interrupted"
    completed = {e["dataset"]: e["job_id"] for e in before["datasets"] if e["phase"] == "COMPLETED"}
    assert 4 <= len(completed) < 16
    running = [e for e in before["datasets"] if e["phase"] in ("QUEUED", "EXECUTING")]
    assert running  # left running, to be followed by --resume
    made = {e["job_id"] for e in before["datasets"] if e["job_id"]}
    assert {j["jobId"] for j in server_jobs(server, "halfway")} == made  # every job recorded

    code, out, err = opus("batch", "--resume", str(report_path), "--server", server.url, "--json")
    assert code == 0, err
    after = json.loads(out)
    assert after["counts"] == {"COMPLETED": 16} and after["stopped"] is None
    for line in after["datasets"]:
        if line["dataset"] in completed:
            assert line["job_id"] == completed[line["dataset"]]  # not run again
    # One job per dataset on the server: those running at the interruption followed.
    assert len(server_jobs(server, "halfway")) == 16


def test_values_progress_and_the_wait_way(server: LiveServer) -> None:
    seen: list[BatchProgress] = []
    report = Client(server.url).batch("sleep", ["0", "0.1", "0"], "duration", progress=seen.append)
    assert report.completed  # "0" named twice: one line, one job
    assert [e.dataset for e in report.entries] == ["0", "0.1"]
    assert {e.entry.dataset for e in seen if e.entry} == {"0", "0.1"}
    # Without the change feed (XML only): a thread per job, waiting with WAIT.
    xml = Client(server.url, json=False)
    report = run_batch(xml, "sleep", ["0", "0.2"], "duration", parallel=2)
    assert report.counts() == {"COMPLETED": 2}
    assert all(e.results.get("output", "").startswith(server.url) for e in report.entries)


def test_jobs_per_user_max_stops_the_batch_then_resume(opus, tmp_path: Path) -> None:
    _jdl(tmp_path)
    live = LiveServer(tmp_path, JOBS_PER_USER_MAX="4")
    live.start()
    try:
        datasets(tmp_path / "data", 6)
        report_path = tmp_path / "report.json"
        code, _, err = opus(
            "batch",
            "append_text",
            "--server",
            live.url,
            "--over",
            str(tmp_path / "data" / "*"),
            "--as",
            "input",
            "--report",
            str(report_path),
            "--parallel",
            "2",
        )
        assert code == 6, err
        assert "JOBS_PER_USER_MAX" in err
        report = read_report(report_path)
        assert isinstance(report, BatchReport)
        assert report.counts() == {"COMPLETED": 4, "NOT_SUBMITTED": 2}
        assert report.stopped == "refused" and "JOBS_PER_USER_MAX" in str(report.stop_reason)
        for entry in report.entries:
            if entry.job_url:
                Client(live.url).job(entry.job_url).delete()
        again = resume_batch(Client(live.url), report_path)
        assert again.counts() == {"COMPLETED": 6} and again.stopped is None
    finally:
        live.stop()
    assert_clean_log(live)


def test_usage_mistakes(opus, server: LiveServer, tmp_path: Path) -> None:
    (data,) = datasets(tmp_path / "data", 1)

    def refused(*args: str) -> str:
        """What `opus batch ARGS…` says when it refuses them (exit status 2)."""
        code, _, err = opus("batch", *args, "--server", server.url)
        assert code == 2, (args, err)
        return err

    assert "no datasets" in refused("append_text", "--as", "input")
    assert "no input or parameter 'nope'" in refused(
        "append_text", "--over", str(data), "--as", "nope"
    )
    assert "no file matches" in refused(
        "append_text", "--over", str(tmp_path / "none*"), "--as", "input"
    )
    assert "not for a batch" in refused(
        "append_text", "--over", str(data), "--as", "input", "text=@-"
    )
    assert "input is given by each dataset" in refused(
        "append_text", "--over", str(data), "--as", "input", f"input=@{data}"
    )
    assert "cannot read the report" in refused("--resume", str(tmp_path / "none.json"))


def test_an_unwritable_report_fails_first_and_a_timeout_stops(
    opus, server: LiveServer, tmp_path: Path
) -> None:
    data = datasets(tmp_path / "data", 3)
    before = len(server_jobs(server, "unwritable"))
    code, _, err = opus(
        "batch", "slow_append", "--server", server.url, "--over", str(tmp_path / "data" / "*"),
        "--as", "input", "--run-id", "unwritable", "--report", str(tmp_path / "no" / "r.json"),
    )  # fmt: skip
    assert code == 2 and "No such file or directory" in err
    assert len(server_jobs(server, "unwritable")) == before  # nothing submitted

    code, out, err = opus(
        "batch", "slow_append", "--server", server.url, "--over", str(data[0]), "--over",
        str(data[1]), "--as", "input", "--parallel", "1", "--timeout", "0.1", "--json",
    )  # fmt: skip
    assert code == 5, err
    report = json.loads(out)
    assert report["stopped"] == "timeout"
    assert report["counts"].get("COMPLETED", 0) < 2

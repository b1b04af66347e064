"""Live progress: a job's script reports how far it got (``opus_progress``), the server
keeps the latest report (/handler/job_progress), and the job shows it.

- in process: a report is taken with the job's token while the job is QUEUED or
  EXECUTING; it is in the XML's jobInfo (schema-valid) and the JSON, and stays once
  the job has ended; refused: a wrong token, an ended job, a value that is not a
  percentage, a report too soon after the last one; its message is cleaned; it changes
  the ETag and wakes no WAIT;
- the batch script's opus_progress, against a recording server: at most one post a
  second, the last report delivered before the end, bad values ignored, messages
  verbatim, a script under ``set -euo pipefail`` that waits for its children, a server
  that refuses, fails or is down (the job still COMPLETED), no curl;
- real jobs of the shipped progress_demo: on the local manager (a live server: seen
  while the job runs and after; in process with no server to report to) and on SLURM.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import webtest
from lxml import etree

from opus.core.layout import (
    INTERNAL_DIR,
    JOB_SCRIPT,
    PROGRESS_LOCK,
    SIGNAL_LOG,
    STATUS_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    TOKEN_FILE,
)
from opus.core.phases import Phase
from opus.core.times import parse_time, utcnow
from opus.server.auth import hash_token
from opus.server.scripts import BatchJob, render_batch_script
from opus.server.service import JobService, reconcile
from opus.server.service import progress as progress_module
from opus.server.uwsxml import OPUS_NS, UWS_NS
from tests.conftest import LiveServer, free_port
from tests.live_helpers import TERMINAL, Client, running_server

UWS = f"{{{UWS_NS}}}"
OPUS = f"{{{OPUS_NS}}}"
JSON = {"Accept": "application/json"}
TOKEN = "a-test-token-of-the-job"
# Text a shell would run, were it ever pasted into a script unquoted.
HOSTILE = (
    "$(touch PWNED) `touch PWNED` \"; touch PWNED; \" '; touch PWNED; ' $HOME ${PATH} $$ "
    "* ? [a-z] \\'\\\" --help & | ; < > été ✓"
)


# -- in process: the endpoint and the job's documents ----------------------------------


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """No minimum interval between two reports (the test of that interval has one)."""
    monkeypatch.setattr(progress_module, "MIN_INTERVAL", timedelta(0))


def queued(app: webtest.TestApp, service: JobService, jobname: str = "sleep") -> tuple[str, str]:
    """A QUEUED job whose token is TOKEN (no process runs it): (its path, its id)."""
    path = urlsplit(app.post(f"/rest/{jobname}", status=303).location).path
    job_id = path.rsplit("/", 1)[1]
    assert service.change_phase(
        job_id, Phase.QUEUED, allowed_from={Phase.PENDING}, token_hash=hash_token(TOKEN)
    )
    return path, job_id


def report(
    app: webtest.TestApp,
    job_id: str,
    percent: str,
    message: str | None = None,
    token: str = TOKEN,
    status: int = 200,
) -> webtest.TestResponse:
    form = {"jobid": job_id, "percent": percent, "token": token}
    if message is not None:
        form["message"] = message
    return app.post("/handler/job_progress", form, status=status)


def progress_in_xml(root: etree._Element) -> etree._Element | None:
    return root.find(f"{UWS}jobInfo/{OPUS}progress")


def test_a_report_is_the_jobs_latest_progress(app, service, validate, quick) -> None:
    path, job_id = queued(app, service)
    none = validate(app.get(path).body)
    assert none.find(f"{UWS}jobInfo") is None
    assert app.get(path, headers=JSON).json["progress"] is None

    # QUEUED: EXECUTING is reported in the background, a first report may come first.
    before = utcnow()
    assert report(app, job_id, "10", "starting").text == f"{job_id} 10\n"
    assert service.change_phase(job_id, Phase.EXECUTING, start_time=utcnow())
    answer = report(app, job_id, " 40.5 ", "fitting spectrum 4/10")
    assert answer.text == f"{job_id} 40.5\n"
    assert answer.content_type == "text/plain"

    root = validate(app.get(path).body)
    shown = progress_in_xml(root)
    assert shown is not None
    assert shown.get("percent") == "40.5"
    assert shown.text == "fitting spectrum 4/10"
    received = parse_time(shown.get("time"))
    assert before <= received <= utcnow()
    # jobInfo is the document's last element (the schema's order).
    assert root[-1].tag == f"{UWS}jobInfo"
    json_progress = app.get(path, headers=JSON).json["progress"]
    assert json_progress == {
        "percent": 40.5,
        "message": "fitting spectrum 4/10",
        "time": shown.get("time"),
    }

    # A report without a message has none; a percentage keeps two decimals.
    report(app, job_id, "66.66666")
    root = validate(app.get(path).body)
    assert progress_in_xml(root).get("percent") == "66.67"
    assert progress_in_xml(root).text is None
    assert app.get(path, headers=JSON).json["progress"]["message"] is None
    report(app, job_id, "100", "done")

    # The job keeps its last report once it has ended, and takes no more.
    assert service.change_phase(job_id, Phase.COMPLETED, end_time=utcnow())
    refused = report(app, job_id, "100", "again", status=409)
    assert "COMPLETED" in refused.text
    root = validate(app.get(path).body)
    assert (progress_in_xml(root).get("percent"), progress_in_xml(root).text) == ("100", "done")
    assert app.get(path, headers=JSON).json["progress"]["percent"] == 100


def test_only_the_jobs_token_reports(app, service, quick) -> None:
    path, job_id = queued(app, service)
    assert "token" in report(app, job_id, "10", token="wrong", status=403).text
    report(app, job_id, "10", token="", status=403)
    report(app, "nosuchjob", "10", status=404)
    app.post("/handler/job_progress", {"percent": "10", "token": TOKEN}, status=400)
    app.post("/handler/job_progress", {"jobid": job_id, "token": TOKEN}, status=400)
    # A PENDING job has no token yet: nothing is its token.
    pending = urlsplit(app.post("/rest/sleep", status=303).location).path.rsplit("/", 1)[1]
    report(app, pending, "10", token="", status=403)
    report(app, pending, "10", token=TOKEN, status=403)
    # Forwarded headers give no identity here either.
    app.post(
        "/handler/job_progress",
        {"jobid": job_id, "percent": "10"},
        headers={"X-Forwarded-For": "127.0.0.1"},
        status=403,
    )
    assert app.get(path, headers=JSON).json["progress"] is None
    # Garbage is a 400 or 404, never a 500.
    for body in (b"jobid=%00&percent=%00", b"\xff\xfe=\x00", b"jobid=a&jobid=b&percent=1"):
        answer = app.post(
            "/handler/job_progress",
            body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            expect_errors=True,
        )
        assert answer.status_int in (400, 403, 404), (body, answer.status_int)


@pytest.mark.parametrize(
    "percent",
    ["abc", "-1", "-0", "+5", "101", "100.01", "1e2", "nan", "inf", "40%", "50,5", "0x10", "1 2"],
)
def test_what_is_not_a_percentage_is_refused(app, service, quick, percent: str) -> None:
    path, job_id = queued(app, service)
    refused = report(app, job_id, percent, status=400)
    assert "from 0 to 100" in refused.text
    assert app.get(path, headers=JSON).json["progress"] is None


@pytest.mark.parametrize(
    ("percent", "shown"),
    [("0", "0"), ("007", "7"), ("100.", "100"), (".5", "0.5"), ("99.999", "100")],
)
def test_percentages_as_written(app, service, quick, percent: str, shown: str) -> None:
    _path, job_id = queued(app, service)
    assert report(app, job_id, percent).text == f"{job_id} {shown}\n"


def test_the_message_is_one_line_of_text(app, service, validate, quick) -> None:
    path, job_id = queued(app, service)
    report(app, job_id, "5", "  first\tline\r\nsecond\x00\x07 line\x1b[31m red\ufffe ")
    root = validate(app.get(path).body)
    assert progress_in_xml(root).text == "first line second line[31m red"
    report(app, job_id, "6", "é" * 300)
    assert app.get(path, headers=JSON).json["progress"]["message"] == "é" * 200
    report(app, job_id, "7", HOSTILE + " <b>&amp;</b> ]]>")
    root = validate(app.get(path).body)
    assert progress_in_xml(root).text == HOSTILE + " <b>&amp;</b> ]]>"
    # Nothing but what XML cannot carry: an empty message is no message.
    report(app, job_id, "8", "\x01\x02 \n")
    assert app.get(path, headers=JSON).json["progress"]["message"] is None


def test_reports_too_close_together_are_refused(app, service) -> None:
    path, job_id = queued(app, service)
    report(app, job_id, "10", "first")
    refused = report(app, job_id, "20", "too soon", status=429)
    assert refused.headers["Retry-After"] == "1"
    assert app.get(path, headers=JSON).json["progress"]["message"] == "first"
    time.sleep(progress_module.MIN_INTERVAL.total_seconds() + 0.05)
    report(app, job_id, "20", "later")
    assert app.get(path, headers=JSON).json["progress"]["message"] == "later"


def test_a_report_changes_the_etag_and_wakes_no_wait(app, service, quick) -> None:
    path, job_id = queued(app, service)
    assert service.change_phase(job_id, Phase.EXECUTING, start_time=utcnow())
    xml_tag = app.get(path).headers["ETag"]
    json_tag = app.get(path, headers=JSON).headers["ETag"]
    version = service.store.get_job(job_id).version
    report(app, job_id, "30", "a third")
    assert service.store.get_job(job_id).version == version + 1
    changed = app.get(path, headers={"If-None-Match": xml_tag}, status=200)
    assert changed.headers["ETag"] != xml_tag
    assert progress_in_xml(etree.fromstring(changed.body)).text == "a third"
    again = app.get(path, headers={**JSON, "If-None-Match": json_tag}, status=200)
    assert again.json["progress"]["percent"] == 30
    app.get(path, headers={**JSON, "If-None-Match": again.headers["ETag"]}, status=304)

    # WAIT waits for a phase change: a report meanwhile does not end it; the answer
    # at the deadline has the report.
    timer = threading.Timer(0.3, lambda: service_report(service, job_id, "60"))
    timer.start()
    started = time.monotonic()
    answer = app.get(f"{path}?WAIT=2&PHASE=EXECUTING", headers=JSON)
    timer.join()
    assert time.monotonic() - started >= 1.9
    assert answer.json["progress"]["percent"] == 60


def service_report(service: JobService, job_id: str, percent: str) -> None:
    progress_module.report_progress(service, job_id, TOKEN, percent, "")


# -- the batch script's opus_progress --------------------------------------------------


@dataclass
class Recorder:
    """A stand-in for the server: every post (time, path, form), answered ``status``
    (per path: a list is used up one answer per post, then 200)."""

    posts: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def progress(self) -> list[tuple[float, dict[str, str]]]:
        with self.lock:
            return [(when, form) for when, path, form in self.posts if path.endswith("progress")]

    def events(self) -> list[tuple[float, dict[str, str]]]:
        with self.lock:
            return [(when, form) for when, path, form in self.posts if path.endswith("event")]


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, str]]:
    """A recording server and its signal URL (…/handler/job_event)."""
    recorded = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
            with recorded.lock:
                recorded.posts.append((time.monotonic(), self.path, form))
                queue = recorded.answers.get(self.path) or [200]
                status = queue.pop(0) if len(queue) > 1 else queue[0]
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recorded, f"http://127.0.0.1:{server.server_address[1]}/handler/job_event"
    server.shutdown()
    server.server_close()


@dataclass
class Ran:
    """What a batch script run left: its job directory, how long it took, its exit."""

    job_dir: Path
    seconds: float
    returncode: int

    def read(self, name: str) -> str:
        path = self.job_dir / INTERNAL_DIR / name
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def status(self) -> str:
        return self.read(STATUS_FILE).split("\n")[0]


def run_batch(
    tmp_path: Path,
    signal_url: str,
    script: str,
    parameters: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    name: str = "job",
) -> Ran:
    job_dir = tmp_path / name
    internal = job_dir / INTERNAL_DIR
    internal.mkdir(parents=True)
    (internal / TOKEN_FILE).write_text("secret")
    (internal / JOB_SCRIPT).write_text(script)
    batch = internal / "batch.sh"
    job = BatchJob("testjob", job_dir, signal_url, parameters or {}, [], 1)
    batch.write_text(render_batch_script(job))
    started = time.monotonic()
    done = subprocess.run(["bash", str(batch)], cwd=tmp_path, env=env, timeout=60, check=False)
    return Ran(job_dir, time.monotonic() - started, done.returncode)


def test_posts_come_at_most_once_a_second_and_the_last_one_arrives(
    tmp_path: Path, recorder: tuple[Recorder, str]
) -> None:
    recorded, url = recorder
    script = 'for i in $(seq 1 40); do opus_progress "$i" "step $i"; sleep 0.05; done\n'
    ran = run_batch(tmp_path, url, script)
    assert ran.returncode == 0 and ran.status == "COMPLETED"
    posts = recorded.progress()
    times = [when for when, _form in posts]
    assert 2 <= len(posts) <= 4, posts
    assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(times))
    assert posts[0][1]["percent"] == "1"  # the first report goes at once
    assert posts[-1][1] == {
        "jobid": "testjob",
        "percent": "40",
        "message": "step 40",
        "token": "secret",
    }
    # The last report reaches the server before the job's end does.
    (completed,) = [when for when, form in recorded.events() if form["phase"] == "COMPLETED"]
    assert times[-1] < completed
    # Flushing it took at most about a second and a post (the script takes 2 s).
    assert ran.seconds < 6, ran.seconds


def test_what_is_not_a_percentage_is_ignored_and_never_fails_the_job(
    tmp_path: Path, recorder: tuple[Recorder, str]
) -> None:
    recorded, url = recorder
    bad = ["abc", "-5", "101", "", "1e2", "50,5", "+3", "4 2", "$(touch PWNED)", "100.0.1"]
    script = "set -euo pipefail\n"
    script += "".join(f"opus_progress {value!r} bad\n" for value in bad)
    script += "opus_progress\nopus_progress 42 good\necho survived\n"
    ran = run_batch(tmp_path, url, script)
    assert ran.returncode == 0 and ran.status == "COMPLETED"
    assert ran.read(STDOUT_FILE) == "survived\n"
    ignored = ran.read(STDERR_FILE).splitlines()
    assert len(ignored) == len(bad) + 1
    assert all(line.startswith("opus_progress: ") and "ignored" in line for line in ignored)
    assert [form["percent"] for _when, form in recorded.progress()] == ["42"]
    assert not list(tmp_path.rglob("PWNED"))


def test_messages_arrive_as_written(tmp_path: Path, recorder: tuple[Recorder, str]) -> None:
    recorded, url = recorder
    message = HOSTILE + "\nline two\ttabbed"
    script = 'opus_progress 50 "$label"\nopus_progress 60.5 "$label"\n'
    ran = run_batch(tmp_path, url, script, {"label": message})
    assert ran.status == "COMPLETED"
    posts = recorded.progress()
    assert [form["message"] for _when, form in posts] == [message] * len(posts)
    assert posts[-1][1]["percent"] == "60.5"
    assert not list(tmp_path.rglob("PWNED"))


def test_a_job_directory_with_an_awkward_name(
    tmp_path: Path, recorder: tuple[Recorder, str]
) -> None:
    recorded, url = recorder
    name = 'a job\'s "dir" $(touch PWNED) *'
    ran = run_batch(tmp_path, url, "opus_progress 12.5 awkward\n", name=name)
    assert ran.status == "COMPLETED"
    assert [form["percent"] for _when, form in recorded.progress()] == ["12.5"]
    assert (tmp_path / name / INTERNAL_DIR / PROGRESS_LOCK / "done").exists()
    assert not list(tmp_path.rglob("PWNED"))


def test_a_strict_script_that_waits_for_its_children(
    tmp_path: Path, recorder: tuple[Recorder, str]
) -> None:
    """set -euo pipefail, noclobber, an ERR trap, a ``wait`` for every child, a report
    in a command substitution and in a pipeline: none of them trips on opus_progress."""
    recorded, url = recorder
    script = "\n".join(
        [
            "set -Eeuo pipefail -C",
            "trap 'echo trapped >&2' ERR",
            "opus_progress 10 first",
            "sleep 0.2 &",
            "wait",
            "out=$(opus_progress 20 second)",
            '[ -z "$out" ]',
            "opus_progress 30 third | cat",
            "bash -c 'opus_progress 90 \"from a child bash\"'",
            "wait",
            "echo done",
            "",
        ]
    )
    ran = run_batch(tmp_path, url, script)
    assert ran.returncode == 0 and ran.status == "COMPLETED"
    assert ran.read(STDOUT_FILE) == "done\n"
    assert "trapped" not in ran.read(STDERR_FILE)
    assert ran.seconds < 5, ran.seconds  # no wait for the sender
    assert recorded.progress()[-1][1]["message"] == "from a child bash"


def test_a_server_that_is_down_never_fails_the_job(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/handler/job_event"
    script = 'set -e\nfor i in 10 20 30; do opus_progress $i "step $i"; sleep 0.3; done\n'
    ran = run_batch(tmp_path, url, script)
    assert ran.returncode == 0 and ran.status == "COMPLETED"
    # The callbacks retry for SIGNAL_RETRY_SECONDS (1 s here), twice.
    assert ran.seconds < 8, ran.seconds
    assert "opus_progress" not in ran.read(STDERR_FILE)
    assert (ran.job_dir / INTERNAL_DIR / PROGRESS_LOCK / "done").exists()


def test_a_refusal_is_not_posted_again_and_a_failure_is(
    tmp_path: Path, recorder: tuple[Recorder, str]
) -> None:
    recorded, url = recorder
    recorded.answers["/handler/job_progress"] = [409, 503, 200]
    script = "opus_progress 10 refused\nsleep 1.2\nopus_progress 20 retried\nsleep 2.5\n"
    ran = run_batch(tmp_path, url, script)
    assert ran.status == "COMPLETED"
    sent = [(form["percent"]) for _when, form in recorded.progress()]
    assert sent == ["10", "20", "20"], sent
    assert "progress 10 not taken: HTTP 409" in ran.read(SIGNAL_LOG)


def test_without_curl_python_posts(tmp_path: Path, recorder: tuple[Recorder, str]) -> None:
    recorded, url = recorder
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("bash", "sleep", "cat", "mkdir", "mv", "seq"):
        found = shutil.which(name)
        assert found, name
        (tools / name).symlink_to(found)
    (tools / "python3").symlink_to(os.path.realpath(sys.executable))
    script = "opus_progress 25 'no curl here'\nsleep 0.2\nopus_progress 75 'still none'\n"
    ran = run_batch(tmp_path, url, script, env={"PATH": str(tools)})
    assert ran.status == "COMPLETED"
    posts = [form for _when, form in recorded.progress()]
    assert posts[-1] == {
        "jobid": "testjob",
        "percent": "75",
        "message": "still none",
        "token": "secret",
    }
    assert [form["phase"] for _when, form in recorded.events()] == ["EXECUTING", "COMPLETED"]


def test_a_script_that_reports_nothing_costs_nothing(
    tmp_path: Path, recorder: tuple[Recorder, str]
) -> None:
    recorded, url = recorder
    ran = run_batch(tmp_path, url, "true\n")
    assert ran.status == "COMPLETED"
    assert recorded.progress() == []
    assert not (ran.job_dir / INTERNAL_DIR / PROGRESS_LOCK).exists()
    assert ran.seconds < 2, ran.seconds


# -- real jobs of progress_demo --------------------------------------------------------


def test_the_demo_ends_completed_with_no_server_to_report_to(app, service) -> None:
    """In process, nothing listens at the signal URL: no report arrives, the job still
    ends COMPLETED (the reconciler reads its status file), soon."""
    started = time.monotonic()
    form = {"steps": "3", "step_duration": "0.1", "PHASE": "RUN"}
    path = urlsplit(app.post("/rest/progress_demo", form, status=303).location).path
    job_id = path.rsplit("/", 1)[1]
    status = service.files.directory(job_id) / INTERNAL_DIR / STATUS_FILE
    while not status.exists():
        assert time.monotonic() - started < 30, "the job did not end"
        time.sleep(0.05)
    assert time.monotonic() - started < 15
    reconcile(service)
    answer = app.get(path, headers=JSON).json
    assert answer["phase"] == "COMPLETED"
    assert answer["progress"] is None
    output = service.files.directory(job_id) / "results" / "output.txt"
    assert output.read_text().splitlines() == [f"step {i} of 3 done" for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory.mktemp("progress"), module_database_url) as live:
        yield live


def follow(client: Client, jobname: str, job_id: str, timeout: float = 60) -> list[dict]:
    """The job's JSON, read every 0.2 s until it has ended: every answer, in order."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(client.job_url(jobname, job_id), headers=JSON)
        assert response.status_code == 200, response.text
        seen.append(response.json())
        if seen[-1]["phase"] in TERMINAL:
            return seen
        assert time.monotonic() < deadline, seen[-1]
        time.sleep(0.2)


@pytest.mark.live
def test_the_demo_reports_its_progress_while_it_runs(live_server: LiveServer, validate) -> None:
    client = Client(live_server)
    label = HOSTILE
    values = {"steps": "4", "step_duration": "0.7", "label": label}
    job_id = client.create("progress_demo", values, run=True)
    seen = follow(client, "progress_demo", job_id)
    running = [job["progress"] for job in seen if job["phase"] == "EXECUTING" and job["progress"]]
    assert running, "no progress seen while the job executed"
    expected = {0: "starting"} | {25 * i: f"{label} {i}/4" for i in (1, 2, 3, 4)}
    for shown in running:
        assert expected[int(shown["percent"])] == shown["message"], shown
    final = seen[-1]
    assert final["phase"] == "COMPLETED", final
    assert final["progress"]["percent"] == 100
    assert final["progress"]["message"] == f"{label} 4/4"
    assert final["startTime"] <= final["progress"]["time"] <= final["endTime"]
    response = client.get(client.job_url("progress_demo", job_id))
    root = validate(response.content)
    shown = progress_in_xml(root)
    assert (shown.get("percent"), shown.text) == ("100", f"{label} 4/4")
    assert not list(client.job_dir(job_id).rglob("PWNED"))


@pytest.mark.live
def test_the_demo_reports_its_progress_on_slurm(slurm_cluster, tmp_path: Path) -> None:
    from tests.test_live_slurm import slurm_server

    with slurm_server(tmp_path, slurm_cluster) as server:
        client = Client(server)
        values = {"steps": "3", "step_duration": "0.5", "label": "slurm's step"}
        job_id = client.create("progress_demo", values, run=True)
        seen = follow(client, "progress_demo", job_id, timeout=90)
        final = seen[-1]
        assert final["phase"] == "COMPLETED", final
        assert final["progress"]["percent"] == 100
        assert final["progress"]["message"] == "slurm's step 3/3"
        signals = (client.job_dir(job_id) / INTERNAL_DIR / SIGNAL_LOG).read_text()
        assert "not taken" not in signals, signals

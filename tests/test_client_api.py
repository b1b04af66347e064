"""The Python client library (opus.client) against a real `opus serve`: every call, with
real jobs (sleep, append_text with an input file, fail, plot, progress_demo), its
failures (a refused value, an unknown job, a wrong token, another user's job, no
server), UWS XML only (json=False), its XML read the same as pyvo reads it, and the
library imported in an interpreter where the server's packages cannot be imported.

One server (SQLite: the client sees HTTP only, whatever the database) with anonymous
access off, and users alice and bob.
"""

from __future__ import annotations

import http.server
import io
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from pyvo.io import uws as pyvo_uws

from opus.client import (
    AuthenticationFailed,
    BadRequest,
    Client,
    Conflict,
    JobFailed,
    NotFound,
    PermissionDenied,
    Phase,
    Unreachable,
    WaitTimeout,
    jobs_api,
)
from opus.client.uwsdoc import job_from_xml, jobrefs_from_xml, results_from_xml
from tests.conftest import LiveServer, free_port
from tests.live_helpers import add_user, running_server

pytestmark = pytest.mark.live
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory.mktemp("client_api"), ALLOW_ANONYMOUS="false") as live:
        yield live


@pytest.fixture(scope="module")
def tokens(server: LiveServer) -> dict[str, str]:
    return {name: add_user(server, name) for name in ("alice", "bob")}


@pytest.fixture
def alice(server: LiveServer, tokens: dict[str, str]) -> Client:
    return Client(server.url, tokens["alice"], "alice")


@pytest.fixture
def alice_xml(server: LiveServer, tokens: dict[str, str]) -> Client:
    return Client(server.url, tokens["alice"], "alice", json=False)


def test_types_and_definitions(alice: Client) -> None:
    types = {t.name: t for t in alice.types()}
    assert {"sleep", "fail", "append_text", "plot"} <= set(types)
    assert types["sleep"].annotation.startswith("Waits for")
    assert types["sleep"].version == "1.0"
    assert set(alice.type_names()) == set(types)

    plot = alice.definition("plot")
    cycles = plot.parameter("cycles")
    assert cycles is not None
    assert (cycles.datatype, cycles.default, cycles.min, cycles.max) == ("xs:int", "2", "1", "20")
    function = plot.parameter("function")
    assert function is not None and "cos" in function.options
    assert [(r.name, r.file, r.content_type) for r in plot.results] == [
        ("image", "plot.svg", "image/svg+xml")
    ]
    append = alice.definition("append_text")
    assert [(i.name, i.upload, i.content_type) for i in append.inputs] == [
        ("input", True, "text/plain")
    ]
    assert append.file_inputs() == ["input"]
    sleep = alice.definition("sleep")
    duration = sleep.parameter("duration")
    assert duration is not None and (duration.unit, duration.default) == ("s", "1")
    assert sleep.execution_duration == 60
    with pytest.raises(NotFound) as refused:
        alice.definition("nosuch")
    assert refused.value.status == 404 and "nosuch" in str(refused.value)


def test_a_job_from_submission_to_deletion(alice: Client, tmp_path: Path) -> None:
    seen: list[Phase] = []
    job = alice.submit("sleep", {"duration": 0.5}, run_id="client test")
    assert job.url.startswith(f"{alice.url}/rest/sleep/") and job.type == "sleep"
    assert job.wait(timeout=60, on_change=lambda j: seen.append(j.info.phase)) == Phase.COMPLETED
    assert seen[-1] == Phase.COMPLETED and len(seen) == len(set(seen))
    assert job.phase == Phase.COMPLETED
    assert job.parameters == {"duration": "0.5"}
    assert job.run_id == "client test" and job.error is None
    info = job.info
    assert info.owner == "alice" and info.type == "sleep"
    assert info.creation_time is not None and info.end_time is not None
    assert info.end_time >= info.creation_time

    [result] = job.results()
    assert (result.id, result.mime_type) == ("output", "text/plain")
    assert result.size == len(job.read("output"))
    assert job.read(result).startswith(b"OPUS job ")
    written = job.download(tmp_path / "out")
    assert written == [tmp_path / "out" / "output.txt"]
    assert written[0].read_bytes() == job.read("output")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["output.txt"]  # no .part
    calls: list[tuple[str, int, int | None]] = []
    job.download(tmp_path / "again", progress=lambda r, t, d, n: calls.append((r.id, d, n)))
    assert calls[0] == ("output", 0, result.size) and calls[-1][1] == result.size

    assert job.stdout == "" and job.stderr == ""
    document = job.provenance()
    assert f"opus_job:job_{job.id}" in document["activity"]
    assert job.provenance("provn").startswith(b"document")

    # The same job, named every way.
    for name in (job.url, f"sleep/{job.id}", job.id, f"{alice.url}/jobs/sleep/{job.id}"):
        assert alice.job(name).url == job.url, name
    assert alice.job("sleep", job.id).url == job.url

    job.delete()
    with pytest.raises(NotFound):
        job.refresh()
    with pytest.raises(NotFound):
        alice.job(job.id)


def test_input_files_every_way_and_rerun_by_reference(alice: Client, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"first line\n")
    given = [notes, str(notes), b"first line\n", io.BytesIO(b"first line\n")]
    jobs = [alice.submit("append_text", {"text": "more"}, {"input": spec}) for spec in given]
    for job in jobs:
        job.wait(timeout=60, raise_on_error=True)
        assert job.read("output") == b"first line\nmore\n"
    assert jobs[0].parameters["input"] == "notes.txt"

    again = jobs[0].rerun({"text": "again"})
    again.wait(timeout=60, raise_on_error=True)
    assert again.read("output") == b"first line\nagain\n"
    [used] = [p for p in again.info.parameters if p.id == "input"]
    # The server's copy of the first job's upload, by reference: nothing uploaded again.
    assert used.by_reference and f"{alice.url}/store/" in used.value
    assert again.parameters["text"] == "again"
    replaced = jobs[1].rerun(files={"input": b"other\n"})
    replaced.wait(timeout=60, raise_on_error=True)
    assert replaced.read("output") == b"other\nmore\n"

    pending = alice.submit("append_text", {}, {"input": b"x"}, run=False)
    assert pending.phase == Phase.PENDING
    with pytest.raises(Conflict, match="has not ended"):
        pending.rerun()
    pending.run().wait(timeout=60)
    assert pending.phase == Phase.COMPLETED


def test_a_failing_job(alice: Client) -> None:
    job = alice.submit("fail", {"message": "broken on purpose"})
    assert job.wait(timeout=60) == Phase.ERROR
    assert job.error is not None and "broken on purpose" in job.error.message
    assert "broken on purpose" in job.stderr
    with pytest.raises(JobFailed) as failed:
        job.wait(timeout=60, raise_on_error=True)
    assert failed.value.phase == Phase.ERROR
    assert failed.value.summary is not None
    assert "broken on purpose" in str(failed.value)


def test_an_image_result(alice: Client, tmp_path: Path) -> None:
    job = alice.submit("plot", {"function": "cos", "cycles": 3})
    job.wait(timeout=60, raise_on_error=True)
    [image] = job.results()
    assert image.mime_type == "image/svg+xml"
    [path] = job.download(tmp_path)
    assert path.name == "plot.svg" and path.read_bytes().lstrip().startswith(b"<")


def test_refusals_carry_the_servers_reason(
    alice: Client, server: LiveServer, tokens: dict[str, str]
) -> None:
    with pytest.raises(BadRequest) as refused:
        alice.submit("sleep", {"duration": "x"})
    assert refused.value.status == 400 and refused.value.field == "duration"
    assert str(refused.value) == "parameter 'duration': 'x' is not a number (xs:float)"
    with pytest.raises(NotFound, match="no job type named 'nosuch'"):
        alice.submit("nosuch", {})
    with pytest.raises(NotFound):
        alice.job("sleep", "nosuchjob").refresh()
    with pytest.raises(NotFound, match="name it as TYPE/ID"):
        alice.job("nosuchjob")

    for wrong in (
        Client(server.url, "wrong", "alice"),
        Client(server.url),
        Client(server.url, "x"),
    ):
        with pytest.raises(AuthenticationFailed) as failed:
            wrong.types()
        assert failed.value.status == 401

    job = alice.submit("sleep", {"duration": 0}, run=False)
    bob = Client(server.url, tokens["bob"])  # a Bearer token
    with pytest.raises(PermissionDenied) as denied:
        bob.job(job.url).refresh()
    assert denied.value.status == 403
    with pytest.raises(PermissionDenied):
        bob.job(job.id)  # found, and refused
    job.delete()

    with pytest.raises(Unreachable, match="Connection refused"):
        Client(f"http://127.0.0.1:{free_port()}").types()
    with pytest.raises(ValueError):
        Client("ftp://example.org")


def test_abort_and_a_wait_that_times_out(alice: Client) -> None:
    job = alice.submit("sleep", {"duration": 30})
    assert job.wait(timeout=30, until=Phase.EXECUTING) == Phase.EXECUTING
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as late:
        job.wait(timeout=1.5)
    assert 1 <= time.monotonic() - started < 10
    assert late.value.phase == Phase.EXECUTING
    job.abort()
    assert job.wait(timeout=30) == Phase.ABORTED
    with pytest.raises(JobFailed):
        job.raise_if_error()
    with pytest.raises(PermissionDenied, match="ABORTED"):
        job.abort()
    job.delete()


def test_wait_leaves_the_waiting_to_the_server(
    alice: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No sleeping and no polling on the client's side: one WAIT per phase change."""
    answered: list[str] = []
    alice.transport.session.hooks["response"].append(
        lambda response, *args, **kwargs: answered.append(response.url)
    )

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"the client slept {seconds} s")

    monkeypatch.setattr(jobs_api.time, "sleep", no_sleep)
    job = alice.submit("sleep", {"duration": 2})
    answered.clear()
    assert job.wait(timeout=60) == Phase.COMPLETED
    waits = [url for url in answered if "WAIT=" in url]
    # QUEUED → EXECUTING → COMPLETED: at most one WAIT per change (and none when the
    # job had already started when wait() first read it).
    assert 1 <= len(waits) <= 2, answered
    assert len(answered) <= 3, answered


def test_progress(alice: Client, alice_xml: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    if "progress_demo" not in alice.type_names():
        pytest.skip("this server has no progress_demo job type")
    # Watched, an EXECUTING job is read again every few seconds: here every second.
    monkeypatch.setattr(jobs_api, "PROGRESS_FIRST", 1)
    monkeypatch.setattr(jobs_api, "PROGRESS_INTERVAL", 1)
    seen = []
    job = alice.submit("progress_demo", {"steps": 3, "step_duration": 1})
    job.wait(timeout=60, on_change=lambda j: seen.append(j.progress))
    assert job.progress is not None and job.progress.percent == 100
    assert job.progress.message == "step 3/3" and job.progress.time is not None
    assert any(p is not None and 0 < (p.percent or 0) < 100 for p in seen), seen
    assert alice_xml.job(job.url).refresh().progress == job.progress


def test_job_lists_page_by_page(alice: Client) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    made = [alice.submit("sleep", {"duration": 0}, run_id=f"listed {i}") for i in range(5)]
    for job in made:
        job.wait(timeout=60)
    newest_first = [job.id for job in reversed(made)]
    listed = list(alice.jobs("sleep", after=before, page_size=2))
    assert [job.id for job in listed] == newest_first
    assert all(job.listed is not None and job.listed.phase == Phase.COMPLETED for job in listed)
    assert [j.id for j in alice.jobs("sleep", after=before, last=3, page_size=2)] == (
        newest_first[:3]
    )
    everything = [j.id for j in alice.jobs(after=before.isoformat())]
    assert everything[:5] == newest_first
    assert not list(alice.jobs("sleep", phase=["ERROR", "ABORTED"], after=before))
    assert [j.id for j in alice.jobs(phase=Phase.COMPLETED, run_id="listed 4")] == [made[4].id]
    with pytest.raises(BadRequest):
        list(alice.jobs(phase="FINISHED"))


def test_plain_uws_xml_only(alice_xml: Client, tmp_path: Path) -> None:
    """json=False: what any UWS 1.1 client does, with no JSON asked for nor answered."""
    kinds: list[str] = []
    alice_xml.transport.session.hooks["response"].append(
        lambda response, *args, **kwargs: kinds.append(response.headers.get("Content-Type", ""))
    )
    list_url = f"{alice_xml.url}/rest/sleep"
    job = alice_xml.submit(list_url, {"duration": 0.2})  # a job list's URL, as for any server
    assert job.wait(timeout=60) == Phase.COMPLETED
    assert job.phase == Phase.COMPLETED
    assert [r.id for r in job.results()] == ["output"]
    assert job.download(tmp_path) == [tmp_path / "output.txt"]
    assert job.id in [j.id for j in alice_xml.jobs(list_url, last=5)]
    assert job.id in [j.id for j in alice_xml.jobs("sleep", phase="COMPLETED")]
    running = alice_xml.submit("sleep", {"duration": 30})
    running.wait(timeout=30, until="EXECUTING")
    running.abort()
    assert running.wait(timeout=30) == Phase.ABORTED
    for done in (job, running):
        done.delete()
        with pytest.raises(NotFound):
            done.refresh()
    assert not [kind for kind in kinds if "json" in kind], kinds
    assert any(kind.startswith("text/xml") for kind in kinds)


def _pyvo(parse, body: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return parse(io.BytesIO(body), pedantic=True)


def test_the_xml_reads_as_pyvo_reads_it(alice: Client, tokens: dict[str, str]) -> None:
    session = requests.Session()
    session.auth = ("alice", tokens["alice"])
    done = alice.submit("append_text", {"text": "pyvo"}, {"input": b"x\n"}, run_id="a <&> b")
    done.wait(timeout=60)
    failed = alice.submit("fail", {"message": "pyvo reads this"})
    failed.wait(timeout=60)
    pending = alice.submit("sleep", {"duration": 1}, run=False)
    by_reference = alice.submit("append_text", {"input": done.results()[0].href}, run=False)
    assert (
        job_from_xml(session.get(by_reference.url, timeout=60).content).parameters[0].by_reference
    )
    for job in (done, failed, pending, by_reference):
        body = session.get(job.url, timeout=60).content
        ours, theirs = job_from_xml(body), _pyvo(pyvo_uws.parse_job, body)
        assert ours.id == theirs.jobid and ours.phase.value == theirs.phase
        assert (ours.run_id, ours.owner) == (theirs.runid, theirs.ownerid)
        assert ours.execution_duration == theirs.executionduration.value
        assert [(p.id, p.value, p.by_reference) for p in ours.parameters] == [
            (p.id_, p.content or "", bool(p.byreference)) for p in theirs.parameters
        ]
        assert [(r.id, r.href) for r in ours.results] == [(r.id_, r.href) for r in theirs.results]
        if theirs.errorsummary is None:
            assert ours.error is None
        else:
            assert ours.error is not None
            assert ours.error.message == theirs.errorsummary.message.content
            assert ours.error.type == theirs.errorsummary.type_
        assert ours.creation_time == theirs.creationtime.to_datetime(timezone=UTC)
        results = session.get(f"{job.url}/results", timeout=60).content
        assert [r.id for r in results_from_xml(results)] == [r.id for r in ours.results]
    listing = session.get(f"{alice.url}/rest/sleep", params={"LAST": 3}, timeout=60).content
    refs = jobrefs_from_xml(listing, f"{alice.url}/rest/sleep", "sleep")
    theirs_list = _pyvo(pyvo_uws.parse_job_list, listing)
    assert [(r.id, r.phase.value) for r in refs] == [(r.jobid, r.phase) for r in theirs_list]
    pending.delete()
    by_reference.delete()


BLOCKER = """
import sys

BLOCKED = {"bottle", "sqlalchemy", "lxml", "yaml", "voprov", "prov", "alembic", "cheroot"}


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the client must not import {name}")
        return None


sys.meta_path.insert(0, Refuse())
"""


def test_the_library_runs_without_the_servers_packages(
    server: LiveServer, tokens: dict[str, str], tmp_path: Path
) -> None:
    code = BLOCKER + textwrap.dedent(
        """
        import opus.client
        from opus.client import Client, Phase

        url, token, where = sys.argv[1:]
        for json in (True, False):
            client = Client(url, token, "alice", json=json)
            assert "sleep" in [t.name for t in client.types()]
            job = client.submit("sleep", {"duration": 0})
            assert job.wait(timeout=60) == Phase.COMPLETED, job.info
            print(job.download(where)[0].read_text().strip())
            job.delete()
        # The `opus` client verbs too, with a saved login.
        from opus.cli import main
        from opus.client import Login, Logins

        Logins().save(Login("here", url, "alice", token))
        assert main(["types", "--names"]) == 0
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        server = sorted(m for m in sys.modules if m.startswith("opus.server"))
        print(loaded, server)
        """
    )
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "OPUS_CONFIG_DIR": str(tmp_path / "cfg")}
    done = subprocess.run(
        [sys.executable, "-c", code, server.url, tokens["alice"], str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=environ,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("OPUS job ") and lines[1].startswith("OPUS job ")
    assert "sleep" in lines[2:-1]
    assert lines[-1] == "[] []"


def test_a_saved_login(
    server: LiveServer, tokens: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opus.client import LoginError, Logins
    from opus.client.config import Login

    monkeypatch.setenv("OPUS_CONFIG_DIR", str(tmp_path))
    with pytest.raises(LoginError):
        Client.from_login()
    Logins().save(Login("here", server.url, None, tokens["bob"]))
    client = Client.from_login()
    assert client.url == server.url and "sleep" in client.type_names()
    assert Client.from_login("here", json=False).transport.json is False
    with pytest.raises(LoginError, match="'there'"):
        Client.from_login("there")


OTHER_JOB = b"""<?xml version="1.0" encoding="UTF-8"?>
<uws:job xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" version="1.1"
    xmlns:xlink="http://www.w3.org/1999/xlink">
  <uws:jobId>job1</uws:jobId><uws:phase>COMPLETED</uws:phase>
  <uws:results><uws:result id="out" xlink:href="/files/out.txt" size="3"/></uws:results>
</uws:job>"""
OTHER_RESULTS = b"""<uws:results xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0"
    xmlns:xlink="http://www.w3.org/1999/xlink">
  <uws:result id="out" xlink:href="/files/out.txt" size="3"/></uws:results>"""


@contextmanager
def another_uws_server() -> Iterator[tuple[str, list[str | None]]]:
    """A minimal UWS server elsewhere (XML only), recording each request's credentials."""
    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            if self.path.startswith("/files/"):
                body, kind = b"abc", "text/plain"
            elif self.path.endswith("/results"):
                body, kind = OTHER_RESULTS, "text/xml"
            else:
                body, kind = OTHER_JOB, "text/xml"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_credentials_go_to_their_server_only(alice: Client, tmp_path: Path) -> None:
    """A job elsewhere (a plain UWS server) is read, and its results fetched, without
    the credentials of the client's own server."""
    with another_uws_server() as (url, seen):
        elsewhere = alice.job(f"{url}/uws/async/job1")
        assert elsewhere.refresh().phase == Phase.COMPLETED
        assert elsewhere.wait(timeout=5) == Phase.COMPLETED
        [result] = elsewhere.results()
        assert result.href == f"{url}/files/out.txt"
        [path] = elsewhere.download(tmp_path)
        assert (path.name, path.read_bytes()) == ("out.txt", b"abc")
        assert len(seen) == 5 and all(header is None for header in seen)
    own: list[str | None] = []
    alice.transport.session.hooks["response"].append(
        lambda response, *args, **kwargs: own.append(response.request.headers.get("Authorization"))
    )
    alice.types()
    assert own and own[-1] is not None and own[-1].startswith("Basic ")

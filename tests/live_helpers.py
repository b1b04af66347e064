"""Helpers for the live-server tests (tests/test_live_*.py): an HTTP client for one
`opus serve` process, UWS XML reading, and process look-ups in /proc."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
from lxml import etree

from tests.conftest import LiveServer

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
XLINK = "{http://www.w3.org/1999/xlink}"
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
TERMINAL = {"COMPLETED", "ERROR", "ABORTED", "ARCHIVED"}
# Per HTTP request; generous because the machine has two shared cores.
HTTP_TIMEOUT = 60


@dataclass
class JobDoc:
    """The parts of a uws:job document the tests look at."""

    root: etree._Element
    body: bytes
    job_id: str
    phase: str
    run_id: str | None
    execution_duration: str
    destruction: str
    quote: str | None
    owner: str | None
    parameters: dict[str, str] = field(default_factory=dict)
    results: dict[str, dict[str, str]] = field(default_factory=dict)
    error_type: str | None = None
    error_has_detail: str | None = None
    error_message: str | None = None


def parse_job(body: bytes) -> JobDoc:
    root = etree.fromstring(body)
    assert root.tag == UWS + "job", body

    def leaf(name: str) -> str | None:
        element = root.find(UWS + name)
        return None if element is None else (element.text or "")

    doc = JobDoc(
        root=root,
        body=body,
        job_id=leaf("jobId") or "",
        phase=leaf("phase") or "",
        run_id=leaf("runId"),
        execution_duration=leaf("executionDuration") or "",
        destruction=leaf("destruction") or "",
        quote=leaf("quote"),
        owner=leaf("ownerId"),
    )
    for param in root.iterfind(f"{UWS}parameters/{UWS}parameter"):
        doc.parameters[param.get("id")] = param.text or ""
    for result in root.iterfind(f"{UWS}results/{UWS}result"):
        doc.results[result.get("id")] = {
            "href": result.get(XLINK + "href"),
            "mime-type": result.get("mime-type"),
            "size": result.get("size"),
        }
    summary = root.find(UWS + "errorSummary")
    if summary is not None:
        doc.error_type = summary.get("type")
        doc.error_has_detail = summary.get("hasDetail")
        doc.error_message = summary.findtext(UWS + "message")
    return doc


def job_list_ids(body: bytes) -> list[str]:
    root = etree.fromstring(body)
    assert root.tag == UWS + "jobs", body
    return [ref.get("id") for ref in root.iterfind(UWS + "jobref")]


class Client:
    """HTTP calls to one live server (redirects are never followed implicitly)."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.session = requests.Session()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def jobs_path(self) -> Path:
        return self.server.tmp_path / "var" / "jobs"

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_path / job_id

    def job_url(self, jobname: str, job_id: str) -> str:
        return f"{self.url}/rest/{jobname}/{job_id}"

    def get(self, path_or_url: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        kwargs.setdefault("allow_redirects", False)
        return self.session.get(self._absolute(path_or_url), **kwargs)

    def post(self, path_or_url: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        kwargs.setdefault("allow_redirects", False)
        return self.session.post(self._absolute(path_or_url), **kwargs)

    def delete(self, path_or_url: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        kwargs.setdefault("allow_redirects", False)
        return self.session.delete(self._absolute(path_or_url), **kwargs)

    def _absolute(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else self.url + path_or_url

    def create(
        self,
        jobname: str,
        data: dict[str, str] | list[tuple[str, str]] | None = None,
        files: dict | None = None,
        run: bool = False,
    ) -> str:
        """Create a job (and run it); return its id. Asserts the 303 to the job."""
        fields = list(data.items()) if isinstance(data, dict) else list(data or [])
        if run:
            fields.append(("PHASE", "RUN"))
        response = self.post(f"/rest/{jobname}", data=fields, files=files)
        assert response.status_code == 303, (response.status_code, response.text)
        location = response.headers["Location"]
        prefix = f"{self.url}/rest/{jobname}/"
        assert location.startswith(prefix), location
        return location[len(prefix) :]

    def job(self, jobname: str, job_id: str, **params: str | int) -> JobDoc:
        response = self.get(self.job_url(jobname, job_id), params=params)
        assert response.status_code == 200, (response.status_code, response.text)
        assert response.headers["Content-Type"].startswith("text/xml"), response.headers
        return parse_job(response.content)

    def phase(self, jobname: str, job_id: str) -> str:
        response = self.get(self.job_url(jobname, job_id) + "/phase")
        assert response.status_code == 200, (response.status_code, response.text)
        return response.text

    def run(self, jobname: str, job_id: str) -> None:
        response = self.post(self.job_url(jobname, job_id) + "/phase", data={"PHASE": "RUN"})
        assert response.status_code == 303, (response.status_code, response.text)

    def wait_for(
        self,
        jobname: str,
        job_id: str,
        phases: Iterable[str] = TERMINAL,
        timeout: float = 60,
    ) -> JobDoc:
        """Block (with UWS WAIT) until the job is in one of ``phases``.

        Each WAIT names the phase last seen (WAIT=n&PHASE=p): a plain WAIT on a job
        that already reached an active target phase (EXECUTING) would block until
        the job left it.
        """
        wanted = set(phases)
        deadline = time.monotonic() + timeout
        doc = self.job(jobname, job_id)
        while True:
            if doc.phase in wanted:
                return doc
            remaining = deadline - time.monotonic()
            if doc.phase in TERMINAL or remaining <= 0:
                raise AssertionError(f"job {job_id} is {doc.phase}, expected one of {wanted}")
            wait = max(1, min(10, int(remaining)))
            doc = self.job(jobname, job_id, WAIT=wait, PHASE=doc.phase)

    def list_ids(self, jobname: str, **params: str) -> list[str]:
        response = self.get(f"/rest/{jobname}", params=params)
        assert response.status_code == 200, (response.status_code, response.text)
        return job_list_ids(response.content)


def eventually(
    check: Callable[[], object], timeout: float = 30, interval: float = 0.2, what: str = ""
) -> object:
    """Call ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(interval)


# -- processes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    pgid: int
    state: str
    cmdline: str


def _read_proc(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return Proc(pid, int(fields[2]), fields[0], cmdline.replace(b"\0", b" ").decode().strip())


def processes_in(directory: Path) -> list[Proc]:
    """Live (non-zombie) processes of this user whose working directory is ``directory``."""
    target = str(directory.resolve())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd != target:
            continue
        proc = _read_proc(int(entry))
        if proc is not None and proc.state != "Z":
            found.append(proc)
    return found


def group_members(pgid: int) -> list[Proc]:
    """Live (non-zombie) processes of the process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = _read_proc(int(entry))
            if proc is not None and proc.pgid == pgid and proc.state != "Z":
                members.append(proc)
    return members


# -- a tiny HTTP server for URL inputs ---------------------------------------------


@contextmanager
def file_server(files: dict[str, bytes]) -> Iterator[str]:
    """Serve ``files`` (path → content) on a loopback port; yields the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def running_server(
    tmp_path: Path, database_url: str | None = None, **settings: str
) -> Iterator[LiveServer]:
    """A started LiveServer on ``database_url`` (default: SQLite in ``tmp_path``), stopped
    at the end; fails if the server logged an error (an unexpected fault: a request
    answered 500, a failed reconciliation pass)."""
    server = LiveServer(tmp_path, database_url, **settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert_clean_log(server)


FAULT_LINE = re.compile(r"^.* (ERROR|CRITICAL) opus[.\w]*: .*$", re.MULTILINE)


def assert_clean_log(server: LiveServer) -> None:
    log = server.log.read_text(errors="replace")
    faults = FAULT_LINE.findall(log)
    assert not faults, f"the server logged errors:\n{log[-5000:]}"


def add_user(server: LiveServer, name: str, *options: str) -> str:
    """Create a user of the live server with `opus user add`; returns its token."""
    done = subprocess.run(
        [sys.executable, "-m", "opus", "user", "add", name, *options],
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip().splitlines()[-1]

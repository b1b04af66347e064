"""The parts of the Python client that need no server: reading untrusted XML, writing
downloads inside their directory and whole, the saved-logins file and its modes, the
reading of a server's refusals, and the exit statuses of the commands."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import requests

from opus.client import exits, uwsdoc
from opus.client.config import Login, Logins, config_dir, default_name
from opus.client.downloads import disposition_name, safe_name, target_in, write_atomically
from opus.client.errors import (
    AuthenticationFailed,
    BadRequest,
    JobFailed,
    LoginError,
    NotFound,
    PayloadTooLarge,
    RequestRefused,
    ServerError,
    TooManyRequests,
    Unreachable,
    WaitTimeout,
)
from opus.client.models import JobInfo, Progress, Source, job_from_json
from opus.client.output import shown_source
from opus.client.transport import refusal
from opus.core.phases import Phase

JOB = b"""<?xml version="1.0" encoding="UTF-8"?>
<uws:job xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" xmlns:xlink="http://www.w3.org/1999/xlink"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1.1">
  <uws:jobId>abc</uws:jobId><uws:runId>r &amp; d</uws:runId><uws:ownerId>alice</uws:ownerId>
  <uws:phase>EXECUTING</uws:phase><uws:quote xsi:nil="true"/>
  <uws:creationTime>2026-12-02T10:15:03.271Z</uws:creationTime>
  <uws:startTime>2026-12-02T10:15:04Z</uws:startTime><uws:endTime xsi:nil="true"/>
  <uws:executionDuration>60</uws:executionDuration>
  <uws:parameters><uws:parameter id="x">1</uws:parameter>
    <uws:parameter id="f" byReference="true">http://h/f</uws:parameter></uws:parameters>
  <uws:results><uws:result id="o" xlink:href="http://h/o" size="12" mime-type="text/plain"/>
  </uws:results>
  <uws:jobInfo><opus:progress xmlns:opus="http://opus.obspm.fr/xml/uws/v1" percent="40"
    time="2026-12-02T10:15:05Z">fitting 4/10</opus:progress>
    <opus:source xmlns:opus="http://opus.obspm.fr/xml/uws/v1" git="https://h/code.git" ref="v1"
    /></uws:jobInfo>
</uws:job>"""


@pytest.fixture(params=["expat", "defusedxml"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both parsers: the client's own, and defusedxml's when it is installed."""
    if request.param == "expat":
        monkeypatch.setattr(uwsdoc, "_DEFUSED", None)
    elif uwsdoc._load_defused() is None:
        pytest.skip("defusedxml is not installed")
    else:
        monkeypatch.setattr(uwsdoc, "_DEFUSED", uwsdoc._load_defused())
    return str(request.param)


def test_a_job_document_is_read_whole(parser: str) -> None:
    job = uwsdoc.job_from_xml(JOB)
    assert (job.id, job.phase, job.run_id, job.owner) == ("abc", Phase.EXECUTING, "r & d", "alice")
    assert job.quote is None and job.end_time is None and job.execution_duration == 60
    assert job.creation_time is not None and job.creation_time.microsecond == 271000
    assert [(p.id, p.value, p.by_reference) for p in job.parameters] == [
        ("x", "1", False),
        ("f", "http://h/f", True),
    ]
    assert [(r.id, r.href, r.size, r.mime_type) for r in job.results] == [
        ("o", "http://h/o", 12, "text/plain")
    ]
    assert job.progress is not None
    assert (job.progress.percent, job.progress.message) == (40, "fitting 4/10")
    assert job.progress.time is not None
    # A git source whose commit is not known yet (the job has not cloned it).
    assert job.source == Source("https://h/code.git", "v1", None)
    assert shown_source(job.source) == "https://h/code.git @ v1"
    assert job_from_json({"jobId": "a", "phase": "PENDING", "source": None}).source is None
    done = {"git": "https://h/code.git", "ref": "main", "commit": "c0ffee"}
    source = job_from_json({"jobId": "a", "phase": "COMPLETED", "source": done}).source
    assert source == Source("https://h/code.git", "main", "c0ffee")
    assert shown_source(source) == "https://h/code.git @ main (c0ffee)"


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<uws:job xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0"><uws:jobId>&lol2;</uws:jobId></uws:job>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE job [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<uws:job xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0"><uws:jobId>&secret;</uws:jobId></uws:job>"""


@pytest.mark.parametrize("body", [BOMB, EXTERNAL, b'<!DOCTYPE job SYSTEM "http://x/d.dtd"><a/>'])
def test_documents_with_a_doctype_are_refused(parser: str, body: bytes) -> None:
    with pytest.raises(uwsdoc.UnsafeXML):
        uwsdoc.parse_xml(body)


def test_documents_that_are_not_uws_are_refused(parser: str) -> None:
    with pytest.raises(ServerError, match="not well-formed"):
        uwsdoc.parse_xml(b"<uws:job")
    with pytest.raises(ServerError, match="not a uws:job"):
        uwsdoc.job_from_xml(b"<html/>")
    with pytest.raises(ServerError, match="no jobId"):
        uwsdoc.job_from_xml(b'<job xmlns="http://www.ivoa.net/xml/UWS/v1.0"/>')
    # An undeclared entity is an error, not a silent blank.
    with pytest.raises(ServerError):
        uwsdoc.parse_xml(b"<a>&nope;</a>")


def test_job_lists_and_unknown_phases() -> None:
    body = b"""<uws:jobs xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0"
        xmlns:xlink="http://www.w3.org/1999/xlink">
      <uws:jobref id="a" xlink:href="http://h/rest/t/a"><uws:phase>QUEUED</uws:phase></uws:jobref>
      <uws:jobref id="b"><uws:phase>WEIRD</uws:phase></uws:jobref></uws:jobs>"""
    refs = uwsdoc.jobrefs_from_xml(body, "http://h/rest/t/", "t")
    assert [(r.id, r.url, r.phase) for r in refs] == [
        ("a", "http://h/rest/t/a", Phase.QUEUED),
        ("b", "http://h/rest/t/b", Phase.UNKNOWN),
    ]


@pytest.mark.parametrize(
    ("given", "safe"),
    [
        ("output.txt", "output.txt"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("..", "fallback"),
        (".hidden", "hidden"),
        ("a\x00b\nc\x1b.txt", "abc.txt"),
        ("", "fallback"),
        ("/", "fallback"),
        ('what?"*<>|.fits', "what.fits"),
    ],
)
def test_file_names_stay_names(given: str, safe: str) -> None:
    assert safe_name(given, "fallback") == safe


def test_long_names_keep_their_suffix() -> None:
    name = safe_name("é" * 300 + ".fits")
    assert name.endswith(".fits") and len(name.encode()) <= 200


def test_content_disposition_names() -> None:
    assert disposition_name("inline; filename*=UTF-8''caf%C3%A9.txt") == "café.txt"
    assert disposition_name('attachment; filename="a \\"b\\".svg"') == 'a "b".svg'
    assert disposition_name("attachment; filename=plain.csv") == "plain.csv"
    assert disposition_name("inline") is None and disposition_name(None) is None


def test_targets_lie_in_their_directory(tmp_path: Path) -> None:
    taken: set[str] = set()
    assert target_in(tmp_path, "a.txt", taken) == tmp_path / "a.txt"
    assert target_in(tmp_path, "a.txt", taken) == tmp_path / "a (2).txt"
    assert target_in(tmp_path, "README", taken) == tmp_path / "README"
    for path in ("../x", "a/b", "..", "a\\b", ""):
        with pytest.raises(ServerError, match="outside"):
            target_in(tmp_path, path, set())


class FakeAnswer:
    """What write_atomically reads of a requests answer."""

    def __init__(self, chunks: list[bytes], length: int | None, broken: bool = False) -> None:
        self.headers = {"Content-Length": str(length)} if length is not None else {}
        self.url = "http://h/store/j/r"
        self.chunks = chunks
        self.broken = broken
        self.closed = False

    def iter_content(self, size: int):
        yield from self.chunks
        if self.broken:
            raise requests.exceptions.ChunkedEncodingError("connection reset")

    def close(self) -> None:
        self.closed = True


def test_downloads_appear_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "r.bin"
    seen: list[tuple[int, int | None]] = []
    answer = FakeAnswer([b"ab", b"cd"], 4)
    assert write_atomically(answer, target, lambda d, t: seen.append((d, t))) == 4  # type: ignore[arg-type]
    assert target.read_bytes() == b"abcd" and answer.closed
    assert seen == [(0, 4), (2, 4), (4, 4)]
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()
    with pytest.raises(Unreachable, match="broke off after 2 bytes"):
        write_atomically(FakeAnswer([b"xy"], 4, broken=True), target)  # type: ignore[arg-type]
    with pytest.raises(ServerError, match="stopped at 2 of 9 bytes"):
        write_atomically(FakeAnswer([b"xy"], 9), target)  # type: ignore[arg-type]
    # The old file is still there, whole, and no temporary file is left.
    assert target.read_bytes() == b"abcd"
    assert [p.name for p in tmp_path.iterdir()] == ["r.bin"]
    # A link in the way is replaced by the file, never written through.
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(b"keep")
    (tmp_path / "l.bin").symlink_to(outside)
    write_atomically(FakeAnswer([b"new"], 3), tmp_path / "l.bin")  # type: ignore[arg-type]
    assert outside.read_bytes() == b"keep" and (tmp_path / "l.bin").read_bytes() == b"new"
    assert not (tmp_path / "l.bin").is_symlink()


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def test_saved_logins_are_private_and_written_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "umask", os.umask)
    old = os.umask(0o000)  # the widest umask: the modes must not depend on it
    try:
        directory = tmp_path / "config" / "opus"
        logins = Logins(directory)
        with pytest.raises(LoginError, match="opus login"):
            logins.get()
        logins.save(Login("one", "https://one.example.org", "alice", "secret-1"))
        logins.save(Login("two", "http://127.0.0.1:8080", None, "secret-2"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "logins.json").stat().st_mode) == 0o600
    assert [p.name for p in directory.iterdir()] == ["logins.json"]
    again = Logins(directory)
    assert again.default == "two" and again.get().token == "secret-2"
    assert again.get("one") == Login("one", "https://one.example.org", "alice", "secret-1")
    assert "secret" not in repr(again.get("one"))
    assert again.matching("https://one.example.org/rest/sleep/x") == again.get("one")
    assert again.matching("https://one.example.org.evil/rest") is None
    with pytest.raises(LoginError, match="no saved login named 'three'"):
        again.get("three")
    assert again.remove().name == "two"
    assert Logins(directory).default == "one"
    (directory / "logins.json").write_text("[1, 2]")
    with pytest.raises(LoginError, match="not a logins file"):
        Logins(directory)


def test_where_logins_are_kept(tmp_path: Path) -> None:
    assert config_dir({"OPUS_CONFIG_DIR": str(tmp_path)}) == tmp_path
    assert config_dir({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "opus"
    assert config_dir({}) == Path.home() / ".config" / "opus"
    assert default_name("https://opus.example.org/base") == "opus.example.org"
    assert default_name("http://localhost:8080") == "localhost:8080"


def answer(status: int, body: bytes, kind: str, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers.update({"Content-Type": kind, **headers})
    response.url = "http://h/rest/sleep"
    response.reason = "Reason"
    return response


def test_refusals_are_read_from_json_and_text() -> None:
    error = refusal(
        answer(
            400, b'{"error": {"status": 400, "message": "bad x", "field": "x"}}', "application/json"
        )
    )
    assert isinstance(error, BadRequest) and (str(error), error.field) == ("bad x", "x")
    error = refusal(answer(404, b"no job 'q' of type 'sleep'\n", "text/plain; charset=UTF-8"))
    assert isinstance(error, NotFound) and str(error) == "no job 'q' of type 'sleep'"
    assert isinstance(refusal(answer(401, b"", "text/plain")), AuthenticationFailed)
    assert isinstance(refusal(answer(413, b"too big", "text/plain")), PayloadTooLarge)
    throttled = refusal(answer(429, b"wait", "text/plain", **{"Retry-After": "7"}))
    assert isinstance(throttled, TooManyRequests) and throttled.retry_after == 7
    teapot = refusal(answer(418, b"<html>no</html>", "text/html"))
    assert type(teapot) is RequestRefused and str(teapot) == "418 Reason"
    fault = refusal(answer(500, b"internal server error\n", "text/plain"))
    assert isinstance(fault, ServerError) and fault.status == 500


def test_exit_statuses() -> None:
    assert [exits.for_phase(p) for p in (Phase.COMPLETED, Phase.ERROR, Phase.ABORTED)] == [0, 1, 3]
    assert exits.for_phase(Phase.ARCHIVED) == 4
    job = JobInfo("j", Phase.ABORTED, progress=Progress(10))
    assert exits.for_error(JobFailed("ended", job)) == 3
    assert exits.for_error(WaitTimeout("late", Phase.EXECUTING)) == 5
    assert exits.for_error(NotFound("gone", status=404)) == 6
    assert exits.for_error(AuthenticationFailed("who", status=401)) == 6
    assert exits.for_error(ServerError("fault", status=500)) == 7
    assert exits.for_error(Unreachable("down")) == 7
    assert exits.for_error(LoginError("no login")) == 2


def test_the_json_of_records_is_plain(tmp_path: Path) -> None:
    from opus.client.output import plain

    job = uwsdoc.job_from_xml(JOB)
    value = json.loads(json.dumps(plain(job)))
    assert value["phase"] == "EXECUTING" and value["creation_time"] == "2026-12-02T10:15:03.271Z"
    assert value["progress"] == {
        "percent": 40.0,
        "message": "fitting 4/10",
        "time": "2026-12-02T10:15:05.000Z",
    }

"""Files of job directories, in process: how they are served (headers, types a browser
runs, ranges, conditional requests), what a hostile job can plant (links, hard links,
FIFOs, a results/ that is a link), and result names that are not UTF-8 (the job still
ends, by its signal or by the reconciler, which never loops on a job)."""

from __future__ import annotations

import logging
import os
import shutil
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import webtest

from opus.core.layout import INTERNAL_DIR, STATUS_FILE
from opus.core.phases import Phase
from opus.server.app import build_service, create_app
from opus.server.service import JobService, reconcile
from opus.server.uwsxml import UWS_NS
from tests.conftest import EXAMPLES, make_settings
from tests.test_rest import create, finish_for_real, job_id_of, signal, webtest_xml

U = f"{{{UWS_NS}}}"
XLINK = "{http://www.w3.org/1999/xlink}href"
SECRET = "the server's secret\n"


def write_definition(jdl: Path, name: str, script: str, generated: str = "") -> None:
    """A job definition for the test (its script is admin-written code: anything goes)."""
    (jdl / f"{name}.yml").write_text(
        f"name: {name}\nannotation: a test job\nexecution_duration: 60\n{generated}"
    )
    (jdl / f"{name}.sh").write_text(textwrap.dedent(script))


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file of the server's account outside every job directory (same filesystem)."""
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


@pytest.fixture
def hostile(tmp_path: Path, database_url: str, secret: Path) -> tuple[webtest.TestApp, JobService]:
    """An application whose job types plant links where OPUS reads and serves files."""
    jdl = tmp_path / "jdl"
    shutil.copytree(EXAMPLES, jdl)
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "private.txt").write_text(SECRET)
    write_definition(
        jdl,
        "links",
        f"""\
        printf 'fine\\n' > "$JOB_OUTPUT_DIR/ok.txt"
        ln -s {secret} "$JOB_OUTPUT_DIR/link.txt"
        ln {secret} "$JOB_OUTPUT_DIR/hard.txt"
        mkfifo "$JOB_OUTPUT_DIR/fifo.txt"
        echo "a line of the job's own" >&2
        ln -sf {secret} "$JOB_DIR/.opus/stdout"
        ln -sf {secret} "$JOB_DIR/.opus/stderr"
        exit 1
        """,
    )
    write_definition(
        jdl,
        "linked_results",
        f"""\
        rm -rf "$JOB_OUTPUT_DIR"
        ln -s {other} "$JOB_OUTPUT_DIR"
        """,
    )
    settings = make_settings(tmp_path, DATABASE_URL=database_url)
    service = build_service(settings)
    return webtest.TestApp(create_app(settings, service)), service


def register(service: JobService, job_id: str) -> None:
    """Register the files of the job's results/ (as the end of a job does)."""
    job = service.store.get_job(job_id)
    results = service.collect_results(job)
    service.store.change_phase(job_id, {job.phase}, job.phase, results=results)


def finished_sleep(app: webtest.TestApp, service: JobService) -> str:
    path = create(app, duration="0", PHASE="RUN")
    finish_for_real(service, job_id_of(path))
    return path


def result_href(app: webtest.TestApp, path: str, result_id: str) -> str:
    element = webtest_xml(app.get(f"{path}/results")).find(f"{U}result[@id='{result_id}']")
    assert element is not None, result_id
    return urlsplit(element.get(XLINK)).path


def assert_protected(response: webtest.TestResponse) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox"


# -- 10: what a browser is given ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "body", "media"),
    [
        ("evil.html", "<script>alert(document.cookie)</script>", "text/html"),
        ("evil.svg", '<svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>', None),
        ("evil.xml", "<a xmlns:h='http://www.w3.org/1999/xhtml'><h:script/></a>", None),
        ("evil.js", "alert(1)", None),
        ("evil.xhtml", "<html xmlns='http://www.w3.org/1999/xhtml'/>", None),
    ],
)
def test_active_result_types_are_attachments(app, service, name, body, media) -> None:
    path = finished_sleep(app, service)
    job_id = job_id_of(path)
    (service.files.directory(job_id) / "results" / name).write_text(body)
    register(service, job_id)
    response = app.get(result_href(app, path, name))
    assert_protected(response)
    assert response.headers["Content-Disposition"] == f"attachment; filename*=UTF-8''{name}"
    if media:
        assert response.headers["Content-Type"].startswith(media)
    assert response.text == body


def test_plain_results_are_inline_with_a_charset(app, service) -> None:
    path = finished_sleep(app, service)
    response = app.get(result_href(app, path, "output"))
    assert_protected(response)
    assert response.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert response.headers["Content-Disposition"] == "inline; filename*=UTF-8''output.txt"
    assert response.headers["Content-Length"] == str(len(response.body))
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"].startswith('"')
    assert response.headers["Last-Modified"].endswith("GMT")


def test_streams_are_protected_too(app, service) -> None:
    path = create(app, "fail", message="an error", PHASE="RUN")
    finish_for_real(service, job_id_of(path))
    for which in ("stdout", "stderr"):
        response = app.get(f"{path}/{which}")
        assert_protected(response)
        assert response.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert "an error" in app.get(f"{path}/stderr").text
    # Before the job ran there is nothing, protected as well.
    pending = create(app)
    empty = app.get(f"{pending}/stdout")
    assert empty.body == b""
    assert_protected(empty)


def test_ranges_and_conditional_requests(app, service) -> None:
    path = finished_sleep(app, service)
    job_id = job_id_of(path)
    content = bytes(range(256)) * 4
    (service.files.directory(job_id) / "results" / "data.bin").write_bytes(content)
    register(service, job_id)
    href = result_href(app, path, "data.bin")
    size = len(content)

    part = app.get(href, headers={"Range": "bytes=10-19"}, status=206)
    assert part.body == content[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{size}"
    assert part.headers["Content-Length"] == "10"
    assert_protected(part)
    assert app.get(href, headers={"Range": "bytes=-5"}, status=206).body == content[-5:]
    assert app.get(href, headers={"Range": f"bytes={size - 3}-"}, status=206).body == content[-3:]
    tail = app.get(href, headers={"Range": f"bytes=100-{size * 2}"}, status=206)
    assert tail.body == content[100:]

    outside = app.get(href, headers={"Range": f"bytes={size}-"}, status=416)
    assert outside.headers["Content-Range"] == f"bytes */{size}"
    assert outside.content_type == "text/plain"
    assert len(outside.text.strip().splitlines()) == 1
    # Several ranges, a malformed one, or an If-Range that is not current: the whole file.
    for headers in (
        {"Range": "bytes=0-1,5-6"},
        {"Range": "lines=1-2"},
        {"Range": "bytes=9-3"},
        {"Range": "bytes=0-1", "If-Range": '"stale"'},
    ):
        assert app.get(href, headers=headers, status=200).body == content

    whole = app.get(href)
    etag, modified = whole.headers["ETag"], whole.headers["Last-Modified"]
    assert (
        app.get(href, headers={"Range": "bytes=0-1", "If-Range": etag}, status=206).body
        == (content[:2])
    )
    not_modified = app.get(href, headers={"If-None-Match": etag}, status=304)
    assert not_modified.body == b""
    assert not_modified.headers["ETag"] == etag
    app.get(href, headers={"If-None-Match": f'W/{etag}, "other"'}, status=304)
    app.get(href, headers={"If-Modified-Since": modified}, status=304)
    app.get(href, headers={"If-None-Match": '"other"', "If-Modified-Since": modified}, status=200)
    app.get(href, headers={"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, status=200)

    head = app.head(href)
    assert head.body == b""
    assert head.headers["Content-Length"] == str(size)
    assert_protected(head)


def test_a_large_file_is_streamed_and_closed(app, service) -> None:
    path = finished_sleep(app, service)
    job_id = job_id_of(path)
    big = service.files.directory(job_id) / "results" / "big.bin"
    with open(big, "wb") as out:
        out.truncate(8 * 1024 * 1024)
    register(service, job_id)
    before = len(os.listdir("/proc/self/fd"))
    response = app.get(result_href(app, path, "big.bin"))
    assert len(response.body) == 8 * 1024 * 1024
    assert len(os.listdir("/proc/self/fd")) <= before


# -- 11: links and hard links planted by a job ----------------------------------------


def test_links_planted_by_a_job_are_not_followed(hostile, secret: Path) -> None:
    app, service = hostile
    path = create(app, "links", PHASE="RUN")
    job_id = job_id_of(path)
    finish_for_real(service, job_id)
    root = webtest_xml(app.get(path))
    assert root.findtext(f"{U}phase") == "ERROR"
    message = root.findtext(f"{U}errorSummary/{U}message")
    assert "secret" not in message
    for which in ("stdout", "stderr"):
        refused = app.get(f"{path}/{which}", status=403)
        assert "secret" not in refused.text
    # Only the plain file is a result: not the link, the hard link or the FIFO.
    results = [r.get("id") for r in webtest_xml(app.get(f"{path}/results"))]
    assert results == ["ok.txt"]
    assert app.get(result_href(app, path, "ok.txt")).text == "fine\n"
    assert secret.read_text() == SECRET


def test_a_file_linked_after_registration_is_refused(app, service, secret: Path) -> None:
    path = finished_sleep(app, service)
    job_id = job_id_of(path)
    href = result_href(app, path, "output")
    output = service.files.directory(job_id) / "results" / "output.txt"
    output.unlink()
    output.symlink_to(secret)
    assert "secret" not in app.get(href, status=403).text
    output.unlink()
    os.link(secret, output)
    assert "secret" not in app.get(href, status=403).text
    output.unlink()
    app.get(href, status=404)


def test_a_results_directory_that_is_a_link_has_no_results(hostile) -> None:
    app, service = hostile
    path = create(app, "linked_results", PHASE="RUN")
    finish_for_real(service, job_id_of(path))
    root = webtest_xml(app.get(path))
    assert root.findtext(f"{U}phase") == "COMPLETED"
    assert list(webtest_xml(app.get(f"{path}/results"))) == []


def test_a_status_file_that_is_a_link_is_not_read(app, service, secret: Path) -> None:
    from opus.server.managers.base import read_status_file

    job_dir = service.files.directory(job_id_of(create(app)))
    (job_dir / INTERNAL_DIR).mkdir()
    secret.write_text("COMPLETED\n")
    (job_dir / INTERNAL_DIR / STATUS_FILE).symlink_to(secret)
    assert read_status_file(job_dir) is None


# -- 12: result names that are not UTF-8 ----------------------------------------------


def plant_undecodable_name(service: JobService, job_id: str) -> None:
    results = os.fsencode(service.files.directory(job_id) / "results")
    with open(os.path.join(results, b"bad\xffname.txt"), "wb") as out:
        out.write(b"x")


def wait_for_status(service: JobService, job_id: str) -> None:
    status = service.files.directory(job_id) / INTERNAL_DIR / STATUS_FILE
    deadline = time.monotonic() + 30
    while not status.exists():
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)


def test_a_name_that_is_not_utf8_does_not_stop_the_signal(app, service, caplog) -> None:
    path = create(app, duration="0", PHASE="RUN")
    job_id = job_id_of(path)
    wait_for_status(service, job_id)
    plant_undecodable_name(service, job_id)
    with caplog.at_level(logging.WARNING, "opus"):
        answer = signal(app, service, job_id, "COMPLETED")
    assert answer.text.split() == [job_id, "COMPLETED"]
    assert [r.get("id") for r in webtest_xml(app.get(f"{path}/results"))] == ["output"]
    assert any("not named in UTF-8" in r.getMessage() for r in caplog.records)


def test_a_name_that_is_not_utf8_does_not_stop_the_reconciler(app, service) -> None:
    path = create(app, duration="0", PHASE="RUN")
    job_id = job_id_of(path)
    wait_for_status(service, job_id)
    plant_undecodable_name(service, job_id)
    report = reconcile(service)
    assert job_id in report.changed
    assert service.store.get_job(job_id).phase == Phase.COMPLETED


def test_the_reconciler_never_loops_on_a_job(app, service, monkeypatch, caplog) -> None:
    path = create(app, duration="0", PHASE="RUN")
    job_id = job_id_of(path)
    wait_for_status(service, job_id)

    def broken(*_args, **_kwargs):
        raise RuntimeError("something OPUS did not expect\nwith two lines")

    monkeypatch.setattr(service, "finish", broken)
    with caplog.at_level(logging.WARNING, "opus"):
        reconcile(service)
    assert len([r for r in caplog.records if r.exc_info]) == 1
    job = service.store.get_job(job_id)
    assert job.phase == Phase.ERROR
    assert job.error_message.startswith("OPUS could not finish the job (something OPUS")
    assert "\n" not in job.error_message
    caplog.clear()
    with caplog.at_level(logging.WARNING, "opus"):
        reconcile(service)
    assert caplog.records == []
    app.get(path)  # the document renders

"""The synchronous tree (/sync/{jobname}), in process, on real jobs of the local manager.

The application's background threads run (the reconciler ends the jobs from the status
files their batch scripts write: nothing listens at BASE_URL for their signals), so a
synchronous request waits for a real end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import webtest
from lxml import etree

from opus.server.app import build_service, create_application
from opus.server.auth import UserManager
from opus.server.service import JobService
from opus.server.storage import UserStore
from opus.server.uwsxml import UWS_NS
from opus.settings import Settings
from tests.conftest import make_settings, safe_parser, xml_schema
from tests.test_auth import basic
from tests.test_rest import count_jobs

U = f"{{{UWS_NS}}}"

# Two job types of the tests': one that leaves two results, one that leaves none.
TWO_RESULTS = """\
name: two_results
annotation: Writes two files.
version: "1.0"
execution_duration: 60
generated:
  - name: first
    default: first.txt
    content_type: text/plain
  - name: second
    default: second.txt
    content_type: text/plain
script: |
  printf 'one\\n' > first.txt
  printf 'two\\n' > second.txt
"""
NO_RESULT = """\
name: no_result
annotation: Writes nothing.
version: "1.0"
execution_duration: 60
script: |
  true
"""


class SyncSite:
    """An in-process OPUS with its background threads, for one test."""

    def __init__(self, tmp_path: Path, database_url: str, **settings: object) -> None:
        self.settings = make_settings(tmp_path, DATABASE_URL=database_url, **settings)
        (self.settings.jdl_path / "two_results.yml").write_text(TWO_RESULTS)
        (self.settings.jdl_path / "no_result.yml").write_text(NO_RESULT)
        self.service: JobService = build_service(self.settings)
        self.application = create_application(self.settings, self.service)
        self.app = webtest.TestApp(self.application.wsgi)

    def job_path(self, location: str) -> str:
        return urlsplit(location).path

    def document(self, response: webtest.TestResponse) -> etree._Element:
        """A uws:job answer: text/xml, valid UWS 1.1; its root."""
        assert response.status_int == 200, response
        assert response.content_type == "text/xml"
        root = etree.fromstring(response.body, safe_parser())
        schema = xml_schema("UWS-v1.1.xsd")
        assert schema.validate(root), schema.error_log
        assert root.tag == f"{U}job"
        job_id = root.findtext(f"{U}jobId")
        jobname = self.service.store.get_job(job_id).jobname
        location = response.headers["Content-Location"]
        assert location == f"{self.settings.BASE_URL}/rest/{jobname}/{job_id}"
        return root


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[SyncSite]:
    made = SyncSite(tmp_path, database_url)
    made.application.background.start()
    yield made
    made.application.background.stop()


def result_path(site: SyncSite, response: webtest.TestResponse, result: str) -> str:
    """The /store path a 303 sends to, checked to be the job's one result."""
    assert response.status_int == 303, response
    path = urlsplit(response.location).path
    assert response.location == f"{site.settings.BASE_URL}{path}"
    store, _, result_id = path.lstrip("/").split("/")
    assert (store, result_id) == ("store", result)
    return path


# -- the answers ----------------------------------------------------------------------


def test_post_with_one_result_sends_to_its_bytes(site: SyncSite) -> None:
    response = site.app.post("/sync/sleep", {"duration": "0", "RUNID": "sync run"})
    path = result_path(site, response, "output")
    job_id = path.split("/")[2]
    body = site.app.get(path).text
    assert body == f"OPUS job {job_id} slept for 0 seconds.\n"
    # An ordinary job, kept, with what the async tree shows of it.
    job = site.app.get(f"/rest/sleep/{job_id}")
    assert job.xml.findtext(f"{U}phase") == "COMPLETED"
    assert job.xml.findtext(f"{U}runId") == "sync run"


def test_get_takes_the_query_string(site: SyncSite) -> None:
    response = site.app.get("/sync/sleep?duration=0&runid=from-get")
    path = result_path(site, response, "output")
    job_id = path.split("/")[2]
    assert site.app.get(f"/rest/sleep/{job_id}/parameters/duration").text == "0"
    assert site.app.get(f"/rest/sleep/{job_id}").xml.findtext(f"{U}runId") == "from-get"


def test_multipart_upload(site: SyncSite) -> None:
    response = site.app.post(
        "/sync/append_text",
        {"text": "second line"},
        upload_files=[("input", "notes.txt", b"first line")],
    )
    path = result_path(site, response, "output")
    assert site.app.get(path).text == "first line\nsecond line\n"


def test_several_results_answer_the_job_document(site: SyncSite) -> None:
    root = site.document(site.app.post("/sync/two_results"))
    assert root.findtext(f"{U}phase") == "COMPLETED"
    results = {r.get("id"): r for r in root.iter(f"{U}result")}
    assert sorted(results) == ["first", "second"]
    href = results["second"].get("{http://www.w3.org/1999/xlink}href")
    assert site.app.get(urlsplit(href).path).text == "two\n"


def test_no_result_answers_the_job_document(site: SyncSite) -> None:
    root = site.document(site.app.get("/sync/no_result"))
    assert root.findtext(f"{U}phase") == "COMPLETED"
    assert list(root.iter(f"{U}result")) == []


def test_a_failed_job_answers_its_document_with_the_error(site: SyncSite) -> None:
    root = site.document(site.app.post("/sync/fail", {"message": "sync went wrong"}))
    assert root.findtext(f"{U}phase") == "ERROR"
    summary = root.find(f"{U}errorSummary")
    assert summary.get("type") == "fatal"
    assert "sync went wrong" in summary.findtext(f"{U}message")


def test_a_job_running_past_the_timeout_is_followed_asynchronously(
    tmp_path: Path, database_url: str
) -> None:
    made = SyncSite(tmp_path, database_url, SYNC_TIMEOUT=1)
    made.application.background.start()
    try:
        response = made.app.post("/sync/sleep", {"duration": "3"}, status=303)
        path = made.job_path(response.location)
        assert path.startswith("/rest/sleep/")
        assert response.location == f"{made.settings.BASE_URL}{path}"
        phase = made.app.get(f"{path}/phase").text
        assert phase in ("QUEUED", "EXECUTING")
        for _ in range(10):  # WAIT answers at each phase change
            phase = made.app.get(f"{path}?WAIT=30").xml.findtext(f"{U}phase")
            if phase not in ("QUEUED", "EXECUTING"):
                break
        assert phase == "COMPLETED"
        assert made.app.get(f"{path}/results/output", status=303)
    finally:
        made.application.background.stop()


def test_past_the_cap_on_waiting_threads_it_answers_at_once(site: SyncSite) -> None:
    notifier = site.service.notifier
    with ExitStack() as held:
        # Every place taken (by waits on jobs that do not exist): sync cannot wait.
        for number in range(notifier.max_waiters - notifier.waiting):
            held.enter_context(notifier.subscribe(f"held{number}"))
        response = site.app.post("/sync/sleep", {"duration": "1"}, status=303)
    path = site.job_path(response.location)
    assert path.startswith("/rest/sleep/")
    site.app.delete(path, status=303)


# -- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "form", "reason"),
    [
        ("POST", {"duration": "abc"}, "not a number"),
        ("GET", {"duration": "-1"}, "duration"),
        ("POST", {"nosuch": "1"}, "unknown parameter"),
        ("POST", {"PHASE": "ABORT"}, "PHASE"),
        ("GET", {"EXECUTIONDURATION": "soon"}, "EXECUTIONDURATION"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_kept(
    site: SyncSite, method: str, form: dict[str, str], reason: str
) -> None:
    if method == "GET":
        response = site.app.get("/sync/sleep", form, status=400)
    else:
        response = site.app.post("/sync/sleep", form, status=400)
    assert response.content_type == "text/plain"
    assert reason in response.text
    assert len(response.text.strip().splitlines()) == 1
    assert count_jobs(site.app) == 0
    assert list(site.settings.jobs_path.iterdir()) == []


def test_unknown_type_and_missing_input(site: SyncSite) -> None:
    site.app.post("/sync/nosuch", {}, status=404)
    site.app.get("/sync/nosuch", status=404)
    assert "input" in site.app.post("/sync/append_text", {"text": "x"}, status=400).text
    assert count_jobs(site.app, "append_text") == 0


def test_a_cross_site_get_runs_nothing(site: SyncSite) -> None:
    for header in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        refused = site.app.get("/sync/sleep?duration=0", headers=header, status=403)
        assert "cross-site" in refused.text
    assert count_jobs(site.app) == 0


def test_head_runs_nothing(site: SyncSite) -> None:
    response = site.app.head("/sync/sleep?duration=0", status=405)
    assert response.headers["Allow"] == "GET, POST"
    assert count_jobs(site.app) == 0


# -- who may -------------------------------------------------------------------------


def test_the_job_is_the_callers_and_nobody_elses(tmp_path: Path, database_url: str) -> None:
    made = SyncSite(tmp_path, database_url, ALLOW_ANONYMOUS=False, CHECK_PERMISSIONS=True)
    users = UserManager(UserStore(made.service.store.engine))
    alice = basic("alice", users.add("alice", ["sleep"])[1])
    bob = basic("bob", users.add("bob", ["fail"])[1])
    made.application.background.start()
    try:
        made.app.post("/sync/sleep", {"duration": "0"}, status=401)  # no credentials
        response = made.app.post("/sync/sleep", {"duration": "0"}, headers=alice)
        path = result_path(made, response, "output")
        job_id = path.split("/")[2]
        assert made.app.get(f"/rest/sleep/{job_id}/owner", headers=alice).text == "alice"
        assert made.app.get(path, headers=alice).text.startswith(f"OPUS job {job_id}")
        # Another user can neither see the job nor read its result.
        made.app.get(f"/rest/sleep/{job_id}", headers=bob, status=403)
        made.app.get(path, headers=bob, status=403)
        # A type the caller's roles do not grant: 403, before anything is made.
        refused = made.app.post("/sync/sleep", {"duration": "0"}, headers=bob, status=403)
        assert "no role grants it" in refused.text
        made.app.get("/sync/plot", headers=alice, status=403)
        assert made.service.store.get_job(job_id) is not None
        assert len(list(made.settings.jobs_path.iterdir())) == 1
    finally:
        made.application.background.stop()


def test_sync_timeout_setting_is_checked(tmp_path: Path) -> None:
    from opus.settings import SettingsError

    with pytest.raises(SettingsError, match="SYNC_TIMEOUT"):
        Settings(VAR_PATH=tmp_path, SYNC_TIMEOUT=-1)
    assert Settings(VAR_PATH=tmp_path).SYNC_TIMEOUT == 60

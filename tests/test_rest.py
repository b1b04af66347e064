"""The UWS REST tree, in process (webtest): documents, filters, status codes."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import webtest
from pyvo.io.uws import parse_job, parse_job_list

from opus.core.layout import INTERNAL_DIR, STATUS_FILE, TOKEN_FILE
from opus.core.times import format_time
from opus.server.service import JobService, reconcile
from opus.server.uwsxml import UWS_NS

U = f"{{{UWS_NS}}}"


def path_of(response: webtest.TestResponse) -> str:
    assert response.status_int == 303, response
    return urlsplit(response.location).path


def create(app: webtest.TestApp, jobname: str = "sleep", **values: str) -> str:
    return path_of(app.post(f"/rest/{jobname}", values))


def job_id_of(path: str) -> str:
    return path.rsplit("/", 1)[1]


def token_of(service: JobService, job_id: str) -> str:
    return (service.files.directory(job_id) / INTERNAL_DIR / TOKEN_FILE).read_text()


def signal(app, service, job_id, phase, token=None, status=200, **extra):
    form = {"jobid": job_id, "phase": phase, "token": token or token_of(service, job_id)}
    form.update(extra)
    return app.post("/handler/job_event", form, status=status)


def finish_for_real(service: JobService, job_id: str, timeout: float = 30) -> None:
    """Wait until the job's process wrote its status, then let the reconciler apply it."""
    status = service.files.directory(job_id) / INTERNAL_DIR / STATUS_FILE
    deadline = time.monotonic() + timeout
    while not status.exists():
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)
    reconcile(service)


def count_jobs(app: webtest.TestApp, jobname: str = "sleep", query: str = "") -> int:
    root = webtest_xml(app.get(f"/rest/{jobname}{query}"))
    return len(root)


def webtest_xml(response):
    from lxml import etree

    return etree.fromstring(response.body)


# -- creation and the job document --------------------------------------------------


def test_job_types_listed(app) -> None:
    names = app.get("/rest").text.split()
    assert {"sleep", "fail", "append_text", "plot"} <= set(names)


def test_create_gives_valid_pending_job(app, validate) -> None:
    path = create(app, duration="2.5", RUNID="my run")
    response = app.get(path)
    assert response.content_type == "text/xml"
    root = validate(response.body)
    assert root.findtext(f"{U}phase") == "PENDING"
    assert root.findtext(f"{U}runId") == "my run"
    assert root.findtext(f"{U}ownerId") == "anonymous"
    assert root.find(f".//{U}parameter[@id='duration']").text == "2.5"
    job = parse_job(io.BytesIO(response.body))
    assert job.jobid == job_id_of(path)
    assert job.phase == "PENDING"


def test_defaults_are_filled_in(app) -> None:
    path = create(app)
    # The definition's default, as the definition writes it (default: 1).
    assert app.get(f"{path}/parameters/duration").text == "1"


def test_text_resources_equal_xml_values(app) -> None:
    path = create(app, EXECUTIONDURATION="30")
    root = webtest_xml(app.get(path))
    for resource, element in [
        ("phase", "phase"),
        ("executionduration", "executionDuration"),
        ("destruction", "destruction"),
        ("quote", "quote"),
        ("owner", "ownerId"),
    ]:
        response = app.get(f"{path}/{resource}")
        assert response.content_type == "text/plain"
        assert response.text == (root.findtext(f"{U}{element}") or ""), resource
    assert app.get(f"{path}/executionduration").text == "30"
    assert app.get(f"{path}/destruction").text.endswith("Z")


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"duration": "abc"}, "not a number"),
        ({"duration": "-1"}, "duration"),
        ({"nosuch": "1"}, "unknown parameter"),
        ({"a;b": "1"}, "unknown parameter"),
        ({"duration": "1", "DURATION": "2"}, "more than once"),
        ({"EXECUTIONDURATION": "soon"}, "EXECUTIONDURATION"),
        ({"EXECUTIONDURATION": "-5"}, "EXECUTIONDURATION"),
        ({"DESTRUCTION": "tomorrow"}, "DESTRUCTION"),
        ({"PHASE": "ABORT"}, "PHASE"),
    ],
)
def test_bad_creation_is_refused_and_stores_nothing(app, service, form, reason) -> None:
    response = app.post("/rest/sleep", form, status=400)
    assert response.content_type == "text/plain"
    assert reason in response.text
    assert len(response.text.strip().splitlines()) == 1
    assert count_jobs(app) == 0
    assert list(service.settings.jobs_path.iterdir()) == []


def test_missing_required_input_is_refused(app) -> None:
    response = app.post("/rest/append_text", {"text": "x"}, status=400)
    assert "input" in response.text
    assert count_jobs(app, "append_text") == 0


def test_unknown_job_type_and_job(app) -> None:
    app.get("/rest/nosuch", status=404)
    app.post("/rest/nosuch", {"a": "1"}, status=404)
    app.get("/rest/sleep/aaaaaaaaaaaaaaaaaaaaaaaa", status=404)
    app.get("/rest/sleep/not-an-id!", status=404)
    path = create(app)
    # A job is only found under its own job type.
    app.get(path.replace("/sleep/", "/fail/"), status=404)
    app.get(f"{path}/parameters/nosuch", status=404)
    app.get(f"{path}/results/nosuch", status=404)


def test_execution_duration_is_capped(app, service) -> None:
    maximum = service.settings.EXECUTION_DURATION_MAX
    path = create(app, EXECUTIONDURATION=str(maximum * 10))
    assert app.get(f"{path}/executionduration").text == str(maximum)
    path = create(app, EXECUTIONDURATION="0")  # unlimited is not granted either
    assert app.get(f"{path}/executionduration").text == str(maximum)


def test_destruction_is_capped_and_changeable(app) -> None:
    path = create(app, DESTRUCTION="2999-01-01T00:00:00Z")
    assert app.get(f"{path}/destruction").text < "2999"
    soon = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    app.post(f"{path}/destruction", {"DESTRUCTION": soon.isoformat()}, status=303)
    assert app.get(f"{path}/destruction").text == format_time(soon)
    app.post(f"{path}/destruction", {"DESTRUCTION": "garbage"}, status=400)
    app.post(f"{path}/destruction", {}, status=400)


# -- phases -------------------------------------------------------------------------


def test_run_queues_before_answering(app, service) -> None:
    path = create(app, duration="0")
    response = app.post(f"{path}/phase", {"PHASE": "RUN"})
    assert path_of(response) == path
    assert app.get(f"{path}/phase").text in {"QUEUED", "EXECUTING", "COMPLETED"}
    finish_for_real(service, job_id_of(path))
    assert app.get(f"{path}/phase").text == "COMPLETED"
    # Finished: RUN, ABORT and parameter changes are illegal in this phase.
    app.post(f"{path}/phase", {"PHASE": "RUN"}, status=403)
    app.post(f"{path}/phase", {"PHASE": "ABORT"}, status=403)
    app.post(f"{path}/parameters", {"duration": "3"}, status=403)
    app.post(f"{path}/executionduration", {"EXECUTIONDURATION": "3"}, status=403)


def test_phase_run_at_creation(app, service) -> None:
    path = create(app, duration="0", PHASE="RUN")
    assert app.get(f"{path}/phase").text != "PENDING"
    finish_for_real(service, job_id_of(path))
    root = webtest_xml(app.get(path))
    assert root.findtext(f"{U}phase") == "COMPLETED"
    assert root.findtext(f"{U}startTime")
    assert root.findtext(f"{U}endTime")
    result = root.find(f".//{U}result")
    assert result.get("id") == "output"
    assert result.get("mime-type") == "text/plain"
    redirect = app.get(f"{path}/results/output", status=303)
    content = app.get(urlsplit(redirect.location).path)
    assert content.content_type == "text/plain"
    assert "slept" in content.text
    assert int(result.get("size")) == len(content.body)


def test_bad_phase_values(app) -> None:
    path = create(app)
    app.post(f"{path}/phase", {"PHASE": "SUSPEND"}, status=400)
    app.post(f"{path}/phase", {}, status=400)


def test_abort_pending_job(app) -> None:
    path = create(app)
    app.post(f"{path}/phase", {"PHASE": "ABORT"}, status=303)
    assert app.get(f"{path}/phase").text == "ABORTED"
    app.post(f"{path}/phase", {"PHASE": "RUN"}, status=403)


def test_parameters_change_only_while_pending(app, validate) -> None:
    path = create(app)
    app.post(f"{path}/parameters", {"duration": "7"}, status=303)
    assert app.get(f"{path}/parameters/duration").text == "7"  # as the client sent it
    app.post(f"{path}/parameters", {"duration": "x"}, status=400)
    app.post(f"{path}/parameters", {"nosuch": "1"}, status=400)
    assert app.get(f"{path}/parameters/duration").text == "7"
    root = validate(app.get(f"{path}/parameters").body)
    assert root.tag == f"{U}parameters"


def test_delete_and_action_delete(app, service) -> None:
    path = create(app)
    job_dir = service.files.directory(job_id_of(path))
    assert job_dir.is_dir()
    assert path_of(app.delete(path)) == "/rest/sleep"
    app.get(path, status=404)
    assert not job_dir.exists()
    path = create(app)
    app.post(path, {"ACTION": "DELETE"}, status=303)
    app.get(path, status=404)
    path = create(app)
    app.post(path, {"ACTION": "EXPLODE"}, status=400)
    app.get(path, status=200)


# -- signals -------------------------------------------------------------------------


def test_signal_needs_the_job_token(app, service) -> None:
    path = create(app)
    job_id = job_id_of(path)
    app.post(f"{path}/phase", {"PHASE": "RUN"})
    before = app.get(f"{path}/phase").text
    signal(app, service, job_id, "COMPLETED", token="wrong", status=403)
    app.post("/handler/job_event", {"jobid": job_id, "phase": "COMPLETED"}, status=403)
    # Forwarded or real-IP headers give no trust.
    app.post(
        "/handler/job_event",
        {"jobid": job_id, "phase": "COMPLETED"},
        headers={"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"},
        status=403,
    )
    assert app.get(f"{path}/phase").text == before
    signal(app, service, "aaaaaaaaaaaaaaaaaaaaaaaa", "COMPLETED", token="x", status=404)
    signal(app, service, job_id, "DANCING", status=400)
    signal(app, service, job_id, "PENDING", status=400)
    app.post("/handler/job_event", {"phase": "COMPLETED"}, status=400)


def test_signals_follow_the_phase_table(app, service) -> None:
    path = create(app, duration="30")
    job_id = job_id_of(path)
    app.post(f"{path}/phase", {"PHASE": "RUN"})
    signal(app, service, job_id, "EXECUTING")
    signal(app, service, job_id, "EXECUTING")  # a retried signal is harmless
    assert app.get(f"{path}/phase").text == "EXECUTING"
    signal(app, service, job_id, "ERROR", message="it broke")
    assert app.get(f"{path}/phase").text == "ERROR"
    assert app.get(f"{path}/error").text.startswith("it broke")
    response = signal(app, service, job_id, "EXECUTING", status=409)
    assert "ERROR" in response.text
    assert app.get(f"{path}/phase").text == "ERROR"
    app.delete(path)


# -- job lists -------------------------------------------------------------------------


def make_jobs(app, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        ids.append(job_id_of(create(app)))
        time.sleep(0.002)  # distinct creation times (millisecond precision)
    return ids


def listed(app, query: str) -> list[str]:
    return [ref.get("id") for ref in webtest_xml(app.get(f"/rest/sleep?{query}"))]


def test_job_list_filters(app, validate) -> None:
    ids = make_jobs(app, 5)
    app.post(f"/rest/sleep/{ids[1]}/phase", {"PHASE": "ABORT"})
    app.post(f"/rest/sleep/{ids[3]}/phase", {"PHASE": "ABORT"})
    response = app.get("/rest/sleep")
    root = validate(response.body)
    assert root.get("version") == "1.1"
    assert [r.get("id") for r in root] == ids
    jobs = parse_job_list(io.BytesIO(response.body))
    assert [j.jobid for j in jobs] == ids
    assert listed(app, "PHASE=ABORTED") == [ids[1], ids[3]]
    assert listed(app, "PHASE=ABORTED&PHASE=PENDING") == ids
    assert listed(app, "LAST=2") == [ids[4], ids[3]]
    created = webtest_xml(app.get(f"/rest/sleep/{ids[2]}")).findtext(f"{U}creationTime")
    assert listed(app, f"AFTER={created}") == [ids[3], ids[4]]
    assert listed(app, f"AFTER={created}&PHASE=PENDING") == [ids[4]]
    assert listed(app, f"AFTER={created}&PHASE=PENDING&LAST=5") == [ids[4]]
    assert listed(app, "PHASE=COMPLETED") == []


@pytest.mark.parametrize(
    "query", ["PHASE=RUNNING", "AFTER=yesterday", "LAST=0", "LAST=-3", "LAST=x", "LAST=1&LAST=2"]
)
def test_bad_list_filters(app, query) -> None:
    response = app.get(f"/rest/sleep?{query}", status=400)
    assert response.content_type == "text/plain"


def test_archived_jobs_hidden_unless_asked(app, service) -> None:
    ids = make_jobs(app, 2)
    service.store.change_phase(ids[0], {service.store.get_job(ids[0]).phase}, _archived())
    assert listed(app, "") == [ids[1]]
    assert listed(app, "PHASE=ARCHIVED") == [ids[0]]


def _archived():
    from opus.core.phases import Phase

    return Phase.ARCHIVED


# -- files ----------------------------------------------------------------------------


def test_upload_runs_append_text(app, service) -> None:
    response = app.post(
        "/rest/append_text",
        {"text": "second line", "PHASE": "RUN"},
        upload_files=[("input", "../../etc/my notes;.txt", b"first line")],
    )
    path = path_of(response)
    job_id = job_id_of(path)
    names = [p.name for p in service.files.directory(job_id).iterdir()]
    assert "my_notes_.txt" in names
    finish_for_real(service, job_id)
    assert app.get(f"{path}/phase").text == "COMPLETED"
    redirect = app.get(f"{path}/results/output", status=303)
    assert app.get(urlsplit(redirect.location).path).text == "first line\nsecond line\n"
    assert app.get(f"{path}/parameters/input").text == "my_notes_.txt"


def test_upload_to_unknown_field_is_refused(app, service) -> None:
    app.post("/rest/sleep", {}, upload_files=[("other", "x.txt", b"x")], status=400)
    assert list(service.settings.jobs_path.iterdir()) == []


def test_upload_over_limit_is_refused(tmp_path: Path) -> None:
    from opus.server.app import build_service, create_app
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, MAX_UPLOAD_SIZE=1000)
    service = build_service(settings)
    app = webtest.TestApp(create_app(settings, service))
    response = app.post(
        "/rest/append_text", {}, upload_files=[("input", "big.txt", b"x" * 5000)], status=413
    )
    assert "larger" in response.text
    assert list(settings.jobs_path.iterdir()) == []


def test_stdout_and_stderr(app, service) -> None:
    path = create(app, "fail", message="custom failure", PHASE="RUN")
    finish_for_real(service, job_id_of(path))
    root = webtest_xml(app.get(path))
    assert root.findtext(f"{U}phase") == "ERROR"
    summary = root.find(f"{U}errorSummary")
    assert summary.get("type") == "fatal"
    assert "custom failure" in summary.findtext(f"{U}message")
    assert app.get(f"{path}/error").text == summary.findtext(f"{U}message")
    stderr = app.get(f"{path}/stderr")
    assert stderr.content_type == "text/plain"
    assert "custom failure" in stderr.text
    assert app.get(f"{path}/stdout").status_int == 200


def test_broken_definition_does_not_stop_the_others(tmp_path: Path) -> None:
    from opus.server.app import build_service, create_app
    from tests.conftest import make_settings

    settings = make_settings(tmp_path)
    (settings.jdl_path / "broken.yml").write_text("name: broken\nparameters: 12\n")
    service = build_service(settings)
    app = webtest.TestApp(create_app(settings, service))
    names = app.get("/rest").text.split()
    assert "broken" not in names and "sleep" in names
    assert "broken.yml" in service.registry.errors
    app.post("/rest/broken", {}, status=404)
    create(app)


def test_client_garbage_never_gives_500(app) -> None:
    path = create(app)
    for method, url, body in [
        ("POST", "/rest/sleep", b"\xff\xfe=\x00"),
        ("POST", f"{path}/phase", b"PHASE=%ZZ"),
        ("POST", "/handler/job_event", b"jobid=%00&phase=%00"),
        ("GET", f"{path}?WAIT=abc", b""),
        ("GET", f"{path}?WAIT=-7", b""),
        ("PUT", path, b""),
    ]:
        response = app.request(
            url,
            method=method,
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            expect_errors=True,
        )
        assert 400 <= response.status_int < 500, (method, url, response.status)


def test_active_job_limit(tmp_path: Path, database_url: str) -> None:
    from opus.server.app import build_service, create_app
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, DATABASE_URL=database_url, NJOBS_MAX=1)
    service = build_service(settings)
    app = webtest.TestApp(create_app(settings, service))
    running = create(app, duration="30", PHASE="RUN")
    refused = app.post("/rest/sleep", {"duration": "1", "PHASE": "RUN"}, status=403)
    assert "NJOBS_MAX" in refused.text
    assert count_jobs(app) == 1  # the refused creation stored nothing
    pending = create(app)
    app.post(f"{pending}/phase", {"PHASE": "RUN"}, status=403)
    assert app.get(f"{pending}/phase").text == "PENDING"
    app.post(f"{running}/phase", {"PHASE": "ABORT"}, status=303)
    app.post(f"{pending}/phase", {"PHASE": "RUN"}, status=303)
    app.delete(pending)


def test_unnamed_result_files_are_served_under_their_name(app, service) -> None:
    """Files the script leaves in JOB_OUTPUT_DIR are results too, whatever their name."""
    path = create(app, duration="0", PHASE="RUN")
    job_id = job_id_of(path)
    finish_for_real(service, job_id)
    job = service.store.get_job(job_id)
    extra = service.files.directory(job_id) / "results" / "extra notes.csv"
    extra.write_text("a,b\n")
    results = {r.result_id: r for r in service.collect_results(job)}
    assert results["extra notes.csv"].content_type == "text/csv"
    assert results["output"].size > 0
    service.store.change_phase(job_id, {job.phase}, job.phase, results=results.values())
    href = webtest_xml(app.get(f"{path}/results")).find(f"{U}result[@id='extra notes.csv']")
    assert href.get("{http://www.w3.org/1999/xlink}href").endswith("/extra%20notes.csv")
    content = app.get(urlsplit(href.get("{http://www.w3.org/1999/xlink}href")).path)
    assert content.text == "a,b\n"
    assert content.headers["Content-Disposition"] == "inline; filename*=UTF-8''extra%20notes.csv"
    redirect = app.get(f"{path}/results/extra%20notes.csv", status=303)
    assert redirect.location.endswith("/extra%20notes.csv")


def test_result_file_names_with_control_characters(app, service, validate) -> None:
    path = create(app, duration="0", PHASE="RUN")
    job_id = job_id_of(path)
    finish_for_real(service, job_id)
    job = service.store.get_job(job_id)
    (service.files.directory(job_id) / "results" / "bad\x1bname\n.txt").write_text("x")
    results = service.collect_results(job)
    service.store.change_phase(job_id, {job.phase}, job.phase, results=results)
    root = validate(app.get(f"{path}/results").body)
    assert "bad_name_.txt" in [r.get("id") for r in root]
    validate(app.get(path).body)

"""JSON on the UWS tree (opus/server/jsonapi.py, routes/negotiation.py), in-process: the
same values as the XML, field for field; errors as JSON objects naming the parameter;
XML by default, JSON only for a client that prefers it; the ETag and 304 rules and WAIT
(in a thread here; parked: test_live_changes.py) in JSON too."""

from __future__ import annotations

import base64
import threading
import time
from urllib.parse import urlsplit

import pytest
import webtest
from lxml import etree

from opus.core.phases import Phase
from opus.core.records import Parameter, Result
from opus.core.times import utcnow
from opus.server.app import create_app
from opus.server.auth import UserManager
from opus.server.routes.negotiation import quality
from opus.server.service import JobService
from opus.server.storage import UserStore
from opus.server.storage.entities import result_entity_id
from tests.conftest import make_settings

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
XLINK = "{http://www.w3.org/1999/xlink}"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
OPUS = "{http://opus.obspm.fr/xml/uws/v1}"
JSON = {"Accept": "application/json"}


def create(app: webtest.TestApp, jobname: str = "sleep", **values: str) -> str:
    return urlsplit(app.post(f"/rest/{jobname}", values, status=303).location).path


def finished(service: JobService, path: str) -> None:
    """The job of ``path`` COMPLETED with two results (as a batch script's signal would)."""
    job_id = path.rsplit("/", 1)[1]
    results = [
        Result("output", "results/out.txt", "text/plain", 12, "0" * 64),
        Result("raw", "results/raw.bin", "", 3, "1" * 64),
    ]
    now = utcnow()
    assert service.change_phase(
        job_id, Phase.EXECUTING, allowed_from={Phase.PENDING}, start_time=now
    )
    assert service.change_phase(job_id, Phase.COMPLETED, end_time=now, results=results)


def xml_time(element: etree._Element | None) -> str | None:
    """A time element of a UWS document as its JSON value (nil and absent: None)."""
    if element is None or element.get(XSI_NIL) == "true":
        return None
    return element.text


def job_as_json(root: etree._Element) -> dict:
    """What the JSON job must say, read from the XML document."""

    def text(name: str) -> str | None:
        element = root.find(UWS + name)
        return None if element is None else element.text

    summary = root.find(UWS + "errorSummary")
    progress = root.find(f"{UWS}jobInfo/{OPUS}progress")
    source = root.find(f"{UWS}jobInfo/{OPUS}source")
    return {
        "jobId": text("jobId"),
        "runId": text("runId"),
        "ownerId": text("ownerId"),
        "phase": text("phase"),
        "quote": text("quote"),
        "creationTime": text("creationTime"),
        "startTime": xml_time(root.find(UWS + "startTime")),
        "endTime": xml_time(root.find(UWS + "endTime")),
        "executionDuration": int(text("executionDuration") or "0"),
        "destruction": xml_time(root.find(UWS + "destruction")),
        "parameters": parameters_as_json(root.find(UWS + "parameters")),
        "results": results_as_json(root.find(UWS + "results"), text("jobId") or ""),
        "errorSummary": None
        if summary is None
        else {
            "type": summary.get("type"),
            "hasDetail": summary.get("hasDetail") == "true",
            "message": summary.findtext(UWS + "message"),
        },
        # Not in UWS: the jobInfo's progress.
        "progress": None
        if progress is None
        else {
            "percent": float(progress.get("percent")),
            "message": progress.text,
            "time": progress.get("time"),
        },
        # Not in UWS: the jobInfo's git source (tests/test_job_source.py has jobs with one).
        "source": None
        if source is None
        else {"git": source.get("git"), "ref": source.get("ref"), "commit": source.get("commit")},
    }


def parameters_as_json(element: etree._Element) -> list[dict]:
    return [
        {"id": p.get("id"), "value": p.text or "", "byReference": p.get("byReference") == "true"}
        for p in element.iterfind(UWS + "parameter")
    ]


def results_as_json(element: etree._Element, job_id: str) -> list[dict]:
    return [
        {
            "id": r.get("id"),
            "href": r.get(XLINK + "href"),
            "size": int(r.get("size")),
            "mimeType": r.get("mime-type"),
            # Not in UWS: the result as a provenance entity, named by its job and id.
            "entity": result_entity_id(job_id, r.get("id")),
        }
        for r in element.iterfind(UWS + "result")
    ]


# -- the same values ---------------------------------------------------------------------


@pytest.mark.parametrize("state", ["pending", "reporting", "completed", "error", "aborted"])
def test_the_json_job_says_what_the_xml_says(app, service, state: str) -> None:
    path = create(app, duration="2", RUNID="run-é", DESTRUCTION="2030-01-01T00:00:00Z")
    job_id = path.rsplit("/", 1)[1]
    if state == "completed":
        finished(service, path)
    elif state == "error":
        assert service.finish(service.store.get_job(job_id), Phase.ERROR, "it failed")
    elif state == "aborted":
        app.post(f"{path}/phase", {"PHASE": "ABORT"}, status=303)
    elif state == "reporting":
        assert service.change_phase(job_id, Phase.EXECUTING, allowed_from={Phase.PENDING})
        now = utcnow()
        assert service.store.progress.record(
            job_id, 40.5, "fitting <4/10> & more", now, {Phase.EXECUTING}, now
        )
    root = etree.fromstring(app.get(path).body)
    answer = app.get(path, headers=JSON)
    assert answer.content_type == "application/json"
    assert answer.headers["Vary"] == "Accept"
    job = service.store.get_job(job_id)
    # Beyond UWS: the job type, and the definition the job was created with.
    definition = {"revision": job.definition_revision, "hash": job.definition_hash}
    assert job.definition_revision == 1 and len(job.definition_hash) == 64
    assert answer.json == {**job_as_json(root), "jobType": "sleep", "definition": definition}
    if state == "completed":
        assert answer.json["results"][0]["mimeType"] == "text/plain"
        assert answer.json["results"][1]["mimeType"] is None  # no mime-type attribute
        assert answer.json["endTime"] and answer.json["startTime"]
    if state == "error":
        assert answer.json["errorSummary"]["message"].startswith("it failed")


def test_parameters_results_and_phase_say_what_the_xml_says(app, service) -> None:
    path = create(app, duration="3")
    # An input given by URL, as its fetch leaves it (the fetch itself: test_inputs.py).
    url = Parameter("input", "http://example.invalid/in.txt", by_reference=True)
    assert service.store.set_parameters(path.rsplit("/", 1)[1], [url], {Phase.PENDING})
    xml_parameters = etree.fromstring(app.get(f"{path}/parameters").body)
    parameters = app.get(f"{path}/parameters", headers=JSON).json
    assert parameters == {"parameters": parameters_as_json(xml_parameters)}
    assert {"id": "input", "value": "http://example.invalid/in.txt", "byReference": True} in (
        parameters["parameters"]
    )
    plain = create(app)
    finished(service, plain)
    results = app.get(f"{plain}/results", headers=JSON).json
    assert results == {
        "results": results_as_json(
            etree.fromstring(app.get(f"{plain}/results").body), plain.rsplit("/", 1)[1]
        )
    }
    assert len(results["results"]) == 2
    assert app.get(f"{plain}/phase", headers=JSON).json == {"phase": app.get(f"{plain}/phase").text}


def test_the_json_list_says_what_the_xml_list_says(app) -> None:
    paths = [create(app, RUNID=f"r{n}") if n % 2 else create(app) for n in range(5)]
    app.post(f"{paths[1]}/phase", {"PHASE": "ABORT"}, status=303)
    xml_list = etree.fromstring(app.get("/rest/sleep").body)
    page = app.get("/rest/sleep", headers=JSON).json
    assert page["next"] is None and page["changes"]
    by_id = {entry["jobId"]: entry for entry in page["jobs"]}
    refs = list(xml_list.iterfind(UWS + "jobref"))
    assert len(refs) == len(by_id) == 5
    for ref in refs:
        entry = by_id[ref.get("id")]
        assert entry["href"] == ref.get(XLINK + "href")
        assert entry["phase"] == ref.findtext(UWS + "phase")
        assert entry["runId"] == ref.findtext(UWS + "runId")
        assert entry["ownerId"] == ref.findtext(UWS + "ownerId")
        assert entry["creationTime"] == ref.findtext(UWS + "creationTime")
        document = app.get(entry["href"], headers=JSON).json
        for key in ("jobType", "startTime", "endTime"):
            assert entry[key] == document[key], key
    # Newest first, as the XML list with LAST.
    newest = [ref.get("id") for ref in etree.fromstring(app.get("/rest/sleep?LAST=5").body)]
    assert [entry["jobId"] for entry in page["jobs"]] == newest


# -- errors ----------------------------------------------------------------------------


def test_errors_are_json_objects_naming_the_parameter(app) -> None:
    refused = app.post("/rest/sleep", {"duration": "soon"}, headers=JSON, status=400)
    assert refused.content_type == "application/json"
    error = refused.json["error"]
    assert error["status"] == 400 and error["field"] == "duration"
    assert "soon" in error["message"] and not error["message"].endswith("\n")
    for fields, name in (
        ({"RUNID": "a\x00b"}, "RUNID"),
        ({"EXECUTIONDURATION": "x"}, "EXECUTIONDURATION"),
        ({"DESTRUCTION": "never"}, "DESTRUCTION"),
        ({"nosuch": "1"}, "nosuch"),
    ):
        answer = app.post("/rest/sleep", fields, headers=JSON, status=400)
        assert answer.json["error"]["field"] == name, fields
    assert (
        app.get("/rest/sleep?PHASE=NOPE", headers=JSON, status=400).json["error"]["field"]
        == "PHASE"
    )
    missing = app.get("/rest/sleep/nosuchjob", headers=JSON, status=404).json
    assert missing == {
        "error": {"status": 404, "message": "no job 'nosuchjob' of type 'sleep'", "field": None}
    }
    unmatched = app.get("/rest/sleep/nosuchjob/nothing/here", headers=JSON, status=404)
    assert unmatched.json["error"]["status"] == 404
    # Without a preference for JSON: the one text line, as before.
    plain = app.post("/rest/sleep", {"duration": "soon"}, status=400)
    assert plain.content_type == "text/plain" and plain.text.endswith("\n")


def test_a_401_in_json_keeps_its_challenge(tmp_path, database_url: str) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=database_url, ALLOW_ANONYMOUS=False)
    app = webtest.TestApp(create_app(settings))
    refused = app.get("/rest/sleep", headers=JSON, status=401)
    assert refused.json["error"]["status"] == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    assert app.get("/jobs", status=401).json["error"]["status"] == 401


def test_another_users_job_is_refused_in_json(app, service) -> None:
    path = create(app)
    _user, token = UserManager(UserStore(service.store.engine)).add("mallory")
    credentials = base64.b64encode(f"mallory:{token}".encode()).decode()
    headers = {**JSON, "Authorization": f"Basic {credentials}"}
    for resource in ("", "/phase", "/parameters", "/results"):
        refused = app.get(path + resource, headers=headers, status=403)
        assert refused.json["error"]["status"] == 403 and "ETag" not in refused.headers


# -- negotiation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", True),
        ("application/json, text/xml", False),  # equal: the default
        ("text/xml, application/json;q=0.9", False),
        ("text/xml;q=0.5, application/json", True),
        ("application/*", True),
        ("application/json;q=0, */*", False),
        ("text/*;q=0.2, application/json;q=0.3", True),
        ("text/html, application/xhtml+xml, */*;q=0.8", False),  # a browser
        ("image/png", False),  # nothing acceptable: the default
    ],
)
def test_xml_stays_the_default(app, accept: str | None, json: bool) -> None:
    path = create(app)
    headers = {} if accept is None else {"Accept": accept}
    answer = app.get(path, headers=headers)
    assert answer.content_type == ("application/json" if json else "text/xml")


def test_quality_takes_the_most_specific_range() -> None:
    assert quality("application/*;q=0.2, application/json;q=0.7", "application/json") == 0.7
    assert quality("application/json;q=0.7, */*;q=1", "application/json") == 0.7
    assert quality("text/plain;q=0.1, */*", "application/json") == 1.0
    assert quality("text/plain;q=oops", "text/plain") == 0.0
    assert quality("", "text/xml") == 1.0


# -- ETags and WAIT --------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["", "/phase", "/parameters", "/results"])
def test_json_answers_have_their_own_etag_and_304(app, resource: str) -> None:
    path = create(app) + resource
    xml_tag = app.get(path).headers["ETag"]
    json_tag = app.get(path, headers=JSON).headers["ETag"]
    assert json_tag != xml_tag
    current = app.get(path, headers={**JSON, "If-None-Match": json_tag}, status=304)
    assert current.headers["ETag"] == json_tag and current.body == b""
    # The XML copy's tag does not stand for the JSON answer, nor the other way round.
    assert app.get(path, headers={**JSON, "If-None-Match": xml_tag}).status_int == 200
    assert app.get(path, headers={"If-None-Match": json_tag}).status_int == 200
    app.post(f"{path.removesuffix(resource)}/phase", {"PHASE": "ABORT"}, status=303)
    changed = app.get(path, headers={**JSON, "If-None-Match": json_tag})
    assert changed.status_int == 200 and changed.headers["ETag"] != json_tag


def test_a_json_wait_in_a_thread(app) -> None:
    path = create(app)
    tag = app.get(path, headers=JSON).headers["ETag"]
    started = time.monotonic()
    current = app.get(f"{path}?WAIT=1", headers={**JSON, "If-None-Match": tag}, status=304)
    assert time.monotonic() - started >= 0.9 and current.headers["ETag"] == tag
    threading.Timer(0.5, lambda: app.post(f"{path}/phase", {"PHASE": "ABORT"})).start()
    started = time.monotonic()
    woken = app.get(f"{path}?WAIT=30", headers=JSON)
    assert time.monotonic() - started < 10
    assert woken.content_type == "application/json" and woken.json["phase"] == "ABORTED"
    refused = app.get(f"{path}?WAIT=x", headers=JSON, status=400)
    assert refused.json["error"]["message"].startswith("WAIT")


def test_text_resources_stay_text(app) -> None:
    path = create(app)
    for resource in ("/executionduration", "/destruction", "/quote", "/error", "/owner"):
        assert app.get(path + resource, headers=JSON).content_type == "text/plain", resource

"""Interoperability against a real `opus serve`: every UWS document validates against the
UWS 1.1 schema and parses with pyvo; pyvo's job client and curl drive whole jobs."""

from __future__ import annotations

import io
import re
import subprocess
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from lxml import etree
from pyvo.dal.exceptions import DALQueryError, DALServiceError
from pyvo.dal.tap import AsyncTAPJob
from pyvo.io import uws as pyvo_uws

from tests.conftest import LiveServer
from tests.live_helpers import Client, eventually, parse_job, running_server

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[LiveServer]:
    with running_server(
        tmp_path_factory.mktemp("live_pyvo"), module_database_url, ARCHIVE_ON_DESTRUCTION="true"
    ) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Client:
    return Client(server)


@pytest.fixture
def check(uws_schema: etree.XMLSchema):
    """Fetch a UWS document, assert it is text/xml and schema-valid; return its bytes."""

    def fetch(client: Client, url: str, **params: object) -> bytes:
        response = client.get(url, params=params)
        assert response.status_code == 200, (url, response.status_code, response.text)
        assert response.headers["Content-Type"].startswith("text/xml"), response.headers
        root = etree.fromstring(response.content)
        assert uws_schema.validate(root), (uws_schema.error_log, response.content)
        return response.content

    return fetch


def pyvo_job(body: bytes):
    """Parse with pyvo, pedantically: any spec warning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return pyvo_uws.parse_job(io.BytesIO(body), pedantic=True)


def pyvo_job_list(body: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return pyvo_uws.parse_job_list(io.BytesIO(body), pedantic=True)


def assert_same_job(body: bytes) -> None:
    """pyvo reads the same phase, id, parameters, results and error as lxml."""
    ours = parse_job(body)
    theirs = pyvo_job(body)
    assert theirs.jobid == ours.job_id
    assert theirs.phase == ours.phase
    assert theirs.runid == ours.run_id
    assert theirs.ownerid == ours.owner
    assert {p.id_: p.content for p in theirs.parameters} == ours.parameters
    assert {r.id_: r.href for r in theirs.results} == {
        rid: r["href"] for rid, r in ours.results.items()
    }
    if ours.error_message is None:
        assert theirs.errorsummary is None
    else:
        assert theirs.errorsummary.message.content == ours.error_message
        assert theirs.errorsummary.type_ == ours.error_type


def test_documents_in_every_reachable_phase_validate_and_parse(client: Client, check) -> None:
    seen: dict[str, bytes] = {}

    def record(jobname: str, job_id: str, **params: object) -> bytes:
        body = check(client, client.job_url(jobname, job_id), **params)
        assert_same_job(body)
        seen[parse_job(body).phase] = body
        return body

    pending = client.create("sleep", {"duration": "1", "RUNID": "pending <&> job"})
    record("sleep", pending)
    assert pyvo_job(seen["PENDING"]).runid == "pending <&> job"

    running = client.create("sleep", {"duration": "30"}, run=True)
    record("sleep", running)  # QUEUED or already EXECUTING
    client.wait_for("sleep", running, {"EXECUTING"}, timeout=30)
    record("sleep", running)
    aborted = client.post(client.job_url("sleep", running) + "/phase", data={"PHASE": "ABORT"})
    assert aborted.status_code == 303
    record("sleep", running)

    done = client.create("append_text", files={"input": ("in.txt", b"x")}, run=True)
    client.wait_for("append_text", done)
    body = record("append_text", done)
    assert [r.id_ for r in pyvo_job(body).results] == ["output"]
    params = {p.id_: p for p in pyvo_job(body).parameters}
    assert params["text"].content == "appended by OPUS"

    failed = client.create("fail", {"message": "pyvo sees this"}, run=True)
    client.wait_for("fail", failed)
    body = record("fail", failed)
    assert "pyvo sees this" in pyvo_job(body).errorsummary.message.content

    archived = client.create("sleep", {"duration": "0"}, run=True)
    client.wait_for("sleep", archived)
    soon = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    client.post(client.job_url("sleep", archived) + "/destruction", data={"DESTRUCTION": soon})
    eventually(lambda: client.phase("sleep", archived) == "ARCHIVED", timeout=20)
    record("sleep", archived)

    assert {"PENDING", "EXECUTING", "COMPLETED", "ERROR", "ABORTED", "ARCHIVED"} <= set(seen)

    # The parameters and results documents of a job validate on their own.
    for jobname, job_id in (("append_text", done), ("fail", failed), ("sleep", pending)):
        base = client.job_url(jobname, job_id)
        params_root = etree.fromstring(check(client, base + "/parameters"))
        results_root = etree.fromstring(check(client, base + "/results"))
        job_root = etree.fromstring(check(client, base))
        uws = "{http://www.ivoa.net/xml/UWS/v1.0}"
        assert [p.get("id") for p in params_root] == [
            p.get("id") for p in job_root.find(uws + "parameters")
        ]
        assert [r.get("id") for r in results_root] == [
            r.get("id") for r in job_root.find(uws + "results")
        ]


def test_job_lists_validate_and_parse(client: Client, check) -> None:
    created = [client.create("plot", {"cycles": str(n)}) for n in (1, 2, 3)]
    client.create("plot", {"RUNID": "run & <id>"})
    body = check(client, "/rest/plot")
    jobs = pyvo_job_list(body)
    ids = [job.jobid for job in jobs]
    assert ids[: len(created)] == created
    assert all(job.phase == "PENDING" for job in jobs)
    assert any(job.runid == "run & <id>" for job in jobs)

    newest = pyvo_job_list(check(client, "/rest/plot", LAST=2))
    assert len(newest) == 2
    assert newest[0].jobid == ids[-1]
    assert pyvo_job_list(check(client, "/rest/plot", PHASE="COMPLETED")) == []
    assert pyvo_job_list(check(client, "/rest/fail", PHASE="EXECUTING")) == []
    empty = check(client, "/rest/plot", AFTER="2999-01-01T00:00:00Z")
    assert pyvo_job_list(empty) == []
    for bad in ({"PHASE": "RUNNING"}, {"LAST": "0"}, {"LAST": "x"}, {"AFTER": "yesterday"}):
        assert client.get("/rest/plot", params=bad).status_code == 400, bad


def test_pyvo_job_client_drives_a_generic_uws_job(client: Client) -> None:
    """pyvo's AsyncTAPJob works on any UWS job URL (only its ``create`` is TAP-specific)."""
    session = requests.Session()
    job_id = client.create("sleep", {"duration": "1"})
    url = client.job_url("sleep", job_id)
    job = AsyncTAPJob(url, session=session)
    assert job.job_id == job_id
    assert job.phase == "PENDING"
    assert job.uws_version == "1.1"
    assert job.owner == "anonymous"

    job.execution_duration = 30
    assert float(job.execution_duration.to_value("s")) == 30
    destruction = datetime.now(UTC) + timedelta(days=1)
    job.destruction = destruction
    assert abs(job.destruction.to_datetime(timezone=UTC) - destruction) < timedelta(seconds=1)

    job.run()
    job.wait(timeout=60)
    assert job.phase == "COMPLETED"
    job.raise_if_error()
    assert job.result_uris == [f"{client.url}/store/{job_id}/output"]
    assert [r.id_ for r in job.results] == ["output"]
    text = session.get(job.result_uris[0], timeout=30).text
    assert f"job {job_id} slept for 1" in text

    job.delete()
    assert client.get(url).status_code == 404
    with pytest.raises(DALServiceError):
        job.phase  # noqa: B018 - the property fetches the job


def test_pyvo_job_client_reports_errors_and_aborts(client: Client) -> None:
    failing = AsyncTAPJob(client.job_url("fail", client.create("fail", {"message": "no luck"})))
    with pytest.raises(DALServiceError):
        failing.wait(timeout=10)  # pyvo refuses to wait on a PENDING job
    failing.run().wait(timeout=60)
    assert failing.phase == "ERROR"
    with pytest.raises(DALQueryError, match="no luck"):
        failing.raise_if_error()

    with AsyncTAPJob(client.job_url("sleep", client.create("sleep", {"duration": "60"}))) as job:
        job.run()
        # Not job.wait(phases={"EXECUTING"}): a UWS WAIT on an EXECUTING job blocks until
        # the phase changes, so pyvo would sit out the whole job if it started too soon.
        client.wait_for("sleep", job.job_id, {"EXECUTING"}, timeout=30)
        job.abort()
        assert job.phase == "ABORTED"
        job_url = job.url
    assert client.get(job_url).status_code == 404  # deleted when the context exited


def curl(*args: str) -> str:
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "60", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    return result.stdout


def test_curl_walkthrough(client: Client, uws_schema: etree.XMLSchema) -> None:
    base = client.url
    # Create and start a job in one request: the answer is a 303 to the new job.
    head = curl("-si", "-X", "POST", "-d", "duration=1", "-d", "PHASE=RUN", f"{base}/rest/sleep")
    status_line = head.splitlines()[0]
    assert " 303 " in status_line, head
    location = re.search(r"^Location: (\S+)\r?$", head, re.MULTILINE | re.IGNORECASE).group(1)
    assert location.startswith(f"{base}/rest/sleep/")

    # Block until the phase changes, until the job is done.
    deadline = time.monotonic() + 60
    while True:
        document = curl(f"{location}?WAIT=30").encode()
        assert uws_schema.validate(etree.fromstring(document))
        phase = parse_job(document).phase
        if phase not in {"QUEUED", "EXECUTING"} or time.monotonic() > deadline:
            break
    assert phase == "COMPLETED", document
    assert curl(f"{location}/phase") == "COMPLETED"

    # Fetch the result (the results/output URL redirects to the file).
    text = curl("-L", f"{location}/results/output")
    assert re.fullmatch(r"OPUS job \w+ slept for 1(\.0*)? seconds\.\n", text), text

    # Delete the job: 303 to the job list, then the job is gone.
    deleted = curl("-si", "-X", "DELETE", location)
    assert " 303 " in deleted.splitlines()[0], deleted
    assert curl("-o", "/dev/null", "-w", "%{http_code}", location) == "404"

"""Jobs end to end against a real `opus serve`: the example job types, results, errors,
deletion, abort, time limits, dead processes, lost callbacks and destruction."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import LiveServer
from tests.live_helpers import (
    Client,
    assert_clean_log,
    eventually,
    file_server,
    group_members,
    processes_in,
    running_server,
)

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory.mktemp("live_jobs"), module_database_url) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Client:
    return Client(server)


def iso_in(seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sleep_processes(client: Client, job_id: str) -> list:
    """The job's `sleep` processes (running in its directory)."""
    return [p for p in processes_in(client.job_dir(job_id)) if p.cmdline.startswith("sleep ")]


def job_group(client: Client, job_id: str) -> int:
    """The process group of a running job, found from its `sleep` process."""
    procs = eventually(
        lambda: sleep_processes(client, job_id), timeout=30, what="the job's sleep process"
    )
    (proc,) = procs
    assert proc.pgid != os.getpgid(0), "the job must run in its own process group"
    return proc.pgid


def assert_group_gone(client: Client, job_id: str, pgid: int) -> None:
    eventually(
        lambda: not group_members(pgid) and not processes_in(client.job_dir(job_id)),
        timeout=20,
        what=f"process group {pgid} to end",
    )


# -- the example job types ------------------------------------------------------------


def test_sleep_job_runs_to_completion_with_a_text_result(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    assert client.phase("sleep", job_id) == "PENDING"
    client.run("sleep", job_id)
    assert client.phase("sleep", job_id) in {"QUEUED", "EXECUTING", "COMPLETED"}

    doc = client.wait_for("sleep", job_id, timeout=60)
    assert doc.phase == "COMPLETED", doc.body
    assert doc.job_id == job_id
    assert doc.root.findtext("{http://www.ivoa.net/xml/UWS/v1.0}startTime")
    assert doc.root.findtext("{http://www.ivoa.net/xml/UWS/v1.0}endTime")
    assert list(doc.results) == ["output"]
    result = doc.results["output"]
    assert result["href"] == f"{client.url}/store/{job_id}/output"
    assert result["mime-type"] == "text/plain"

    response = client.get(result["href"])
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert re.search(rf"job {job_id} slept for 1(\.0*)? seconds", response.text), response.text
    assert int(result["size"]) == len(response.content)

    # {job}/results/{id} sends the client to the same file.
    redirect = client.get(client.job_url("sleep", job_id) + "/results/output")
    assert redirect.status_code == 303
    assert redirect.headers["Location"] == result["href"]
    assert client.get(client.job_url("sleep", job_id) + "/results/nothing").status_code == 404
    assert client.get(f"/store/{job_id}/nothing").status_code == 404


def test_failing_job_ends_in_error_with_its_message(client: Client) -> None:
    message = "custom failure: the flux capacitor is empty"
    job_id = client.create("fail", {"message": message}, run=True)
    doc = client.wait_for("fail", job_id, timeout=60)
    assert doc.phase == "ERROR", doc.body
    assert doc.error_type == "fatal"
    assert doc.error_has_detail in {"true", "false"}
    assert message in doc.error_message

    error = client.get(client.job_url("fail", job_id) + "/error")
    assert error.status_code == 200
    assert error.headers["Content-Type"].startswith("text/plain")
    assert error.text == doc.error_message

    stderr = client.get(client.job_url("fail", job_id) + "/stderr")
    assert stderr.status_code == 200
    assert stderr.headers["Content-Type"].startswith("text/plain")
    assert stderr.text == message + "\n"
    stdout = client.get(client.job_url("fail", job_id) + "/stdout")
    assert stdout.status_code == 200
    assert stdout.headers["Content-Type"].startswith("text/plain")
    assert stdout.text == ""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"first line\nsecond line", b"first line\nsecond line\nthe end\n"),
        (b"ends with a newline\n", b"ends with a newline\nthe end\n"),
    ],
    ids=["no-final-newline", "final-newline"],
)
def test_append_text_with_an_uploaded_file(client: Client, content: bytes, expected: bytes) -> None:
    job_id = client.create(
        "append_text",
        {"text": "the end"},
        files={"input": ("notes.txt", content, "text/plain")},
        run=True,
    )
    doc = client.wait_for("append_text", job_id, timeout=60)
    assert doc.phase == "COMPLETED", doc.body
    assert doc.parameters["input"] == "notes.txt"
    assert (client.job_dir(job_id) / "notes.txt").read_bytes() == content
    response = client.get(doc.results["output"]["href"])
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.content == expected


def test_append_text_with_an_input_url(client: Client) -> None:
    content = b"fetched over http\nby the server"
    with file_server({"/data/remote.txt": content}) as base:
        url = f"{base}/data/remote.txt"
        job_id = client.create("append_text", {"input": url, "text": "appended"}, run=True)
        missing = client.post("/rest/append_text", data={"input": f"{base}/data/missing.txt"})
    assert missing.status_code == 400, missing.text
    assert "404" in missing.text

    doc = client.wait_for("append_text", job_id, timeout=60)
    assert doc.phase == "COMPLETED", doc.body
    assert doc.parameters["input"] == url
    by_reference = doc.root.find(
        "{http://www.ivoa.net/xml/UWS/v1.0}parameters/{http://www.ivoa.net/xml/UWS/v1.0}"
        "parameter[@id='input']"
    )
    assert by_reference.get("byReference") == "true"
    response = client.get(doc.results["output"]["href"])
    assert response.content == content + b"\nappended\n"


def test_append_text_refuses_missing_input_and_bad_urls(client: Client) -> None:
    before = client.list_ids("append_text")
    for data in ({"text": "x"}, {"input": "file:///etc/passwd"}, {"input": "ftp://x/y"}):
        response = client.post("/rest/append_text", data=data)
        assert response.status_code == 400, (data, response.text)
        assert response.headers["Content-Type"].startswith("text/plain")
    assert client.list_ids("append_text") == before


def test_plot_job_gives_an_svg_image(client: Client) -> None:
    job_id = client.create(
        "plot", {"function": "square", "cycles": "3", "color": "crimson"}, run=True
    )
    doc = client.wait_for("plot", job_id, timeout=60)
    assert doc.phase == "COMPLETED", doc.body
    result = doc.results["image"]
    assert result["mime-type"] == "image/svg+xml"
    response = client.get(result["href"])
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == "image/svg+xml"
    svg = etree.fromstring(response.content)
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert svg.findtext("{http://www.w3.org/2000/svg}title") == "square, 3 cycles"
    assert svg.find("{http://www.w3.org/2000/svg}polyline").get("stroke") == "crimson"


def test_invalid_parameters_are_refused(client: Client) -> None:
    before = client.list_ids("plot")
    for data in (
        {"cycles": "0"},
        {"cycles": "many"},
        {"function": "tan"},
        {"unknown_parameter": "1"},
        {"PHASE": "ABORT"},
        {"EXECUTIONDURATION": "soon"},
        {"DESTRUCTION": "tomorrow"},
    ):
        response = client.post("/rest/plot", data=data)
        assert response.status_code == 400, (data, response.text)
        assert response.text.strip() and "\n" not in response.text.strip()
    assert client.list_ids("plot") == before
    assert client.post("/rest/no_such_type", data={}).status_code == 404
    assert client.get("/rest/plot/aaaaaaaaaaaaaaaaaaaaaaaa").status_code == 404


def test_text_resources_equal_the_xml_values(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "0.5", "RUNID": "resources"})
    base = client.job_url("sleep", job_id)
    doc = client.job("sleep", job_id)
    expected = {
        "phase": doc.phase,
        "executionduration": doc.execution_duration,
        "destruction": doc.destruction,
        "quote": doc.quote,
        "owner": doc.owner,
        "error": "",
        "parameters/duration": doc.parameters["duration"],
    }
    for resource, value in expected.items():
        response = client.get(f"{base}/{resource}")
        assert response.status_code == 200, resource
        assert response.headers["Content-Type"].startswith("text/plain"), resource
        assert response.text == value, resource
    assert doc.run_id == "resources"
    assert client.get(f"{base}/parameters/nothing").status_code == 404


# -- deletion ---------------------------------------------------------------------------


def test_delete_removes_the_job_and_its_directory(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "0"}, run=True)
    doc = client.wait_for("sleep", job_id)
    assert doc.phase == "COMPLETED"
    href = doc.results["output"]["href"]
    assert client.job_dir(job_id).is_dir()

    response = client.delete(client.job_url("sleep", job_id))
    assert response.status_code == 303
    assert response.headers["Location"] == f"{client.url}/rest/sleep"
    assert client.get(client.job_url("sleep", job_id)).status_code == 404
    assert client.get(client.job_url("sleep", job_id) + "/phase").status_code == 404
    assert client.get(href).status_code == 404
    assert not client.job_dir(job_id).exists()
    assert job_id not in client.list_ids("sleep")
    assert client.delete(client.job_url("sleep", job_id)).status_code == 404


def test_post_action_delete_removes_a_running_job(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "300"}, run=True)
    pgid = job_group(client, job_id)

    bad = client.post(client.job_url("sleep", job_id), data={"ACTION": "NOTHING"})
    assert bad.status_code == 400
    response = client.post(client.job_url("sleep", job_id), data={"ACTION": "DELETE"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"{client.url}/rest/sleep"
    assert client.get(client.job_url("sleep", job_id)).status_code == 404
    assert job_id not in client.list_ids("sleep")
    assert_group_gone(client, job_id, pgid)
    assert not client.job_dir(job_id).exists()


# -- stopping jobs ------------------------------------------------------------------------


def test_abort_stops_the_whole_process_group(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "300"}, run=True)
    client.wait_for("sleep", job_id, {"EXECUTING"}, timeout=30)
    pgid = job_group(client, job_id)
    assert any(p.cmdline in {"sleep 300", "sleep 300.0"} for p in group_members(pgid))

    response = client.post(client.job_url("sleep", job_id) + "/phase", data={"PHASE": "ABORT"})
    assert response.status_code == 303
    assert client.phase("sleep", job_id) == "ABORTED"
    assert_group_gone(client, job_id, pgid)

    # The batch script did not come back to change anything.
    time.sleep(1.5)
    doc = client.job("sleep", job_id)
    assert doc.phase == "ABORTED"
    assert doc.results == {}
    assert (
        client.post(client.job_url("sleep", job_id) + "/phase", data={"PHASE": "ABORT"}).status_code
        == 403
    )


def test_abort_of_a_pending_job(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    response = client.post(client.job_url("sleep", job_id) + "/phase", data={"PHASE": "ABORT"})
    assert response.status_code == 303
    assert client.phase("sleep", job_id) == "ABORTED"
    bad = client.post(client.job_url("sleep", job_id) + "/phase", data={"PHASE": "SUSPEND"})
    assert bad.status_code == 400


def test_execution_duration_exceeded_aborts_the_job(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "30"})
    base = client.job_url("sleep", job_id)
    response = client.post(f"{base}/executionduration", data={"EXECUTIONDURATION": "1"})
    assert response.status_code == 303
    assert client.get(f"{base}/executionduration").text == "1"
    assert client.job("sleep", job_id).execution_duration == "1"
    client.run("sleep", job_id)
    pgid = job_group(client, job_id)

    doc = client.wait_for("sleep", job_id, timeout=30)
    assert doc.phase == "ABORTED", doc.body
    assert doc.error_message is not None
    assert "execution duration" in doc.error_message
    assert "exceeded" in doc.error_message
    assert client.get(f"{base}/error").text == doc.error_message
    assert_group_gone(client, job_id, pgid)
    assert (
        client.post(f"{base}/executionduration", data={"EXECUTIONDURATION": "100"}).status_code
        == 403
    )


def test_killed_batch_process_is_reported_as_error(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "300"}, run=True)
    client.wait_for("sleep", job_id, {"EXECUTING"}, timeout=30)
    pgid = job_group(client, job_id)
    os.killpg(pgid, signal.SIGKILL)

    doc = client.wait_for("sleep", job_id, timeout=30)
    assert doc.phase == "ERROR", doc.body
    assert doc.error_type == "fatal"
    assert "ended without reporting" in doc.error_message
    assert client.get(client.job_url("sleep", job_id) + "/error").text == doc.error_message
    assert not (client.job_dir(job_id) / ".opus" / "status").exists()


# -- phase rules ----------------------------------------------------------------------


def test_run_on_a_finished_job_is_forbidden(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "0"}, run=True)
    assert client.wait_for("sleep", job_id).phase == "COMPLETED"
    response = client.post(client.job_url("sleep", job_id) + "/phase", data={"PHASE": "RUN"})
    assert response.status_code == 403, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    assert client.phase("sleep", job_id) == "COMPLETED"


def test_parameters_change_only_while_pending(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "1"})
    base = client.job_url("sleep", job_id)
    response = client.post(f"{base}/parameters", data={"duration": "0.2"})
    assert response.status_code == 303
    assert client.get(f"{base}/parameters/duration").text == "0.2"
    assert client.post(f"{base}/parameters", data={"duration": "-3"}).status_code == 400
    assert client.post(f"{base}/parameters", data={"PHASE": "RUN"}).status_code == 400
    assert client.phase("sleep", job_id) == "PENDING"

    client.run("sleep", job_id)
    doc = client.wait_for("sleep", job_id)
    assert doc.phase == "COMPLETED"
    response = client.post(f"{base}/parameters", data={"duration": "5"})
    assert response.status_code == 403, response.text
    assert client.get(f"{base}/parameters/duration").text == "0.2"

    running = client.create("sleep", {"duration": "30"}, run=True)
    client.wait_for("sleep", running, {"EXECUTING"}, timeout=30)
    response = client.post(client.job_url("sleep", running) + "/parameters", data={"duration": "1"})
    assert response.status_code == 403, response.text
    assert client.delete(client.job_url("sleep", running)).status_code == 303


# -- destruction ----------------------------------------------------------------------


def test_destruction_time_passed_deletes_the_job(client: Client) -> None:
    job_id = client.create("sleep", {"duration": "0"}, run=True)
    assert client.wait_for("sleep", job_id).phase == "COMPLETED"
    base = client.job_url("sleep", job_id)
    when = iso_in(1.5)
    response = client.post(f"{base}/destruction", data={"DESTRUCTION": when})
    assert response.status_code == 303
    assert client.get(f"{base}/destruction").text == when
    assert client.job("sleep", job_id).destruction == when

    eventually(
        lambda: client.get(base).status_code == 404, timeout=20, what="the job to be destroyed"
    )
    assert job_id not in client.list_ids("sleep")
    assert not client.job_dir(job_id).exists()


def test_destruction_archives_when_configured(tmp_path: Path, database_url: str) -> None:
    with running_server(tmp_path, database_url, ARCHIVE_ON_DESTRUCTION="true") as live:
        client = Client(live)
        job_id = client.create("sleep", {"duration": "0"}, run=True)
        doc = client.wait_for("sleep", job_id)
        assert doc.phase == "COMPLETED"
        href = doc.results["output"]["href"]
        kept = client.create("sleep", {"duration": "0"})
        base = client.job_url("sleep", job_id)
        assert (
            client.post(f"{base}/destruction", data={"DESTRUCTION": iso_in(1)}).status_code == 303
        )

        eventually(lambda: client.phase("sleep", job_id) == "ARCHIVED", timeout=20, what="ARCHIVED")
        doc = client.job("sleep", job_id)
        assert doc.phase == "ARCHIVED"
        assert doc.results == {}
        assert client.get(href).status_code == 404
        assert not client.job_dir(job_id).exists()
        assert client.list_ids("sleep") == [kept]
        assert client.list_ids("sleep", PHASE="ARCHIVED") == [job_id]
        assert set(client.list_ids("sleep", PHASE=["ARCHIVED", "PENDING"])) == {job_id, kept}
        # An archived job is final.
        assert client.post(f"{base}/phase", data={"PHASE": "RUN"}).status_code == 403
        assert (
            client.post(f"{base}/destruction", data={"DESTRUCTION": iso_in(60)}).status_code == 403
        )


# -- a server that goes away --------------------------------------------------------------


def test_callback_lost_while_the_server_was_down(tmp_path: Path, database_url: str) -> None:
    live = LiveServer(tmp_path, database_url)
    live.start()
    try:
        client = Client(live)
        job_id = client.create("sleep", {"duration": "4"}, run=True)
        client.wait_for("sleep", job_id, {"EXECUTING"}, timeout=30)
        live.stop(kill=True)

        status = client.job_dir(job_id) / ".opus" / "status"
        eventually(status.exists, timeout=30, what="the job's status file")
        assert status.read_text().startswith("COMPLETED")

        # Same data directory, same port, same environment: the job's callback URL.
        live.start()
        client = Client(live)
        doc = client.wait_for("sleep", job_id, timeout=60)
        assert doc.phase == "COMPLETED", doc.body
        response = client.get(doc.results["output"]["href"])
        assert response.status_code == 200
        assert f"job {job_id} slept for 4" in response.text
        # A callback retried after the reconciler's change is accepted as a repeat.
        eventually(
            lambda: not processes_in(client.job_dir(job_id)),
            timeout=60,
            what="the batch script to finish its callbacks",
        )
        assert client.phase("sleep", job_id) == "COMPLETED"
    finally:
        live.stop()
    assert_clean_log(live)

"""Sync and VOSI against a real `opus serve`, with curl and pyvo: a synchronous run
followed to its bytes, a run past SYNC_TIMEOUT followed as a UWS job, and the VOSI
documents a VO client reads."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyvo.io import vosi

from tests.conftest import LiveServer
from tests.live_helpers import Client, parse_job, running_server

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[LiveServer]:
    with running_server(
        tmp_path_factory.mktemp("live_sync"), module_database_url, SYNC_TIMEOUT="2"
    ) as live:
        yield live


def curl(*args: str) -> str:
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "60", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=90,
    )
    return done.stdout


def test_curl_follows_a_synchronous_run_to_its_result(server: LiveServer, tmp_path: Path) -> None:
    body = curl("-L", f"{server.url}/sync/sleep?duration=0")
    assert body.startswith("OPUS job ") and body.endswith(" slept for 0 seconds.\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("first\n")
    form = ["-F", "text=second", "-F", f"input=@{notes}"]
    assert curl("-L", *form, f"{server.url}/sync/append_text") == "first\nsecond\n"


def test_a_long_run_is_followed_as_a_uws_job(server: LiveServer) -> None:
    client = Client(server)
    response = client.post("/sync/sleep", data={"duration": "4"}, allow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["Location"]
    assert location.startswith(f"{server.url}/rest/sleep/")
    job = parse_job(client.get(location).content)
    assert job.phase in ("QUEUED", "EXECUTING")
    for _ in range(10):
        job = parse_job(client.get(location, params={"WAIT": "30"}).content)
        if job.phase not in ("QUEUED", "EXECUTING"):
            break
    assert job.phase == "COMPLETED"


def test_vosi_documents_read_by_pyvo(server: LiveServer) -> None:
    client = Client(server)
    state = vosi.parse_availability(io.BytesIO(client.get("/availability").content))
    assert state.available
    found = vosi.parse_capabilities(io.BytesIO(client.get("/capabilities").content))
    urls = {cap.standardid: cap.interfaces[0].accessurls[0].content for cap in found}
    assert urls["ivo://ivoa.net/std/VOSI#availability"] == f"{server.url}/availability"
    assert f"{server.url}/sync/sleep" in [
        cap.interfaces[0].accessurls[0].content for cap in found if cap.standardid is None
    ]

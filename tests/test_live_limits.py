"""Limits enforced by the live server: request size, and authentication on the wire."""

from __future__ import annotations

import http.client
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveServer
from tests.live_helpers import add_user, running_server

pytestmark = pytest.mark.live

LIMIT = 10_000


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[LiveServer]:
    with running_server(
        tmp_path_factory.mktemp("live_limits"),
        module_database_url,
        MAX_UPLOAD_SIZE=str(LIMIT),
        ALLOW_ANONYMOUS="false",
    ) as live:
        yield live


@pytest.fixture(scope="module")
def token(server: LiveServer) -> str:
    return add_user(server, "alice")


def jobs_on_disk(server: LiveServer) -> list[Path]:
    jobs = server.tmp_path / "var" / "jobs"
    return list(jobs.iterdir()) if jobs.exists() else []


def test_upload_over_the_limit_is_413_and_nothing_is_kept(server: LiveServer, token) -> None:
    before = jobs_on_disk(server)
    # Under the HTTP server's body limit (upload limit + form overhead), over the upload
    # limit: refused while the file is copied.
    small = requests.post(
        f"{server.url}/rest/append_text",
        files={"input": ("big.txt", b"x" * (LIMIT * 3))},
        auth=("alice", token),
        allow_redirects=False,
        timeout=60,
    )
    assert small.status_code == 413, small.text
    # Far over: refused by the HTTP server before the application reads the body.
    big = requests.post(
        f"{server.url}/rest/append_text",
        files={"input": ("big.txt", b"x" * (3 * 1024 * 1024))},
        auth=("alice", token),
        allow_redirects=False,
        timeout=60,
    )
    assert big.status_code == 413
    assert jobs_on_disk(server) == before


def test_chunked_body_over_the_limit_is_refused(server: LiveServer, token) -> None:
    before = jobs_on_disk(server)

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"text=" + b"x" * 65536

    response = requests.post(
        f"{server.url}/rest/sleep",
        data=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=("alice", token),
        allow_redirects=False,
        timeout=60,
    )
    assert response.status_code == 413
    assert jobs_on_disk(server) == before


def test_credentials_on_the_wire(server: LiveServer, token) -> None:
    anonymous = requests.get(f"{server.url}/rest/sleep", timeout=30)
    assert anonymous.status_code == 401
    assert "Basic" in anonymous.headers["WWW-Authenticate"]
    wrong = requests.get(f"{server.url}/rest/sleep", auth=("alice", "nope"), timeout=30)
    assert wrong.status_code == 401
    good = requests.get(
        f"{server.url}/rest/sleep", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert good.status_code == 200
    # curl, as the README shows it.
    done = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            f"alice:{token}",
            f"{server.url}/rest/sleep",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout == "200"


def test_malformed_request_line_is_a_client_error(server: LiveServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("GET", "/rest/sleep?WAIT=%ZZ", skip_accept_encoding=True)
    connection.endheaders()
    assert 400 <= connection.getresponse().status < 500


def test_chunked_body_under_the_limit_is_read(server: LiveServer, token) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"duration=0"
        yield b".5&RUNID=chunked"

    response = requests.post(
        f"{server.url}/rest/sleep",
        data=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=("alice", token),
        allow_redirects=False,
        timeout=60,
    )
    assert response.status_code == 303, response.text
    job = requests.get(response.headers["Location"], auth=("alice", token), timeout=30)
    assert "<uws:runId>chunked</uws:runId>" in job.text
    assert '<uws:parameter id="duration">0.5</uws:parameter>' in job.text

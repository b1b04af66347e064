"""Regression tests for the weaknesses of the original OPUS, one by one."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import webtest

from opus.server.app import build_service, create_app
from tests.conftest import make_settings


@pytest.fixture
def strict_app(tmp_path: Path) -> webtest.TestApp:
    """No anonymous access, as a server runs by default."""
    settings = make_settings(tmp_path, ALLOW_ANONYMOUS=False)
    return webtest.TestApp(create_app(settings, build_service(settings)))


@pytest.mark.parametrize(
    "path",
    [
        "/rest/..%2F..%2Fetc%2Fpasswd",
        "/rest/../../etc/passwd",
        "/rest/%2e%2e",
        "/rest/sleep/..%2F..%2Fopus.db",
        "/store/..%2F..%2Fopus.db/x",
        "/store/aaaaaaaaaaaaaaaaaaaaaaaa/..%2F..%2F..%2Fopus.db",
    ],
)
def test_path_traversal_in_names_finds_nothing(app: webtest.TestApp, path: str) -> None:
    response = app.get(path, expect_errors=True)
    assert response.status_int == 404
    assert b"sqlite" not in response.body.lower()


def test_job_definition_named_with_dots_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    (settings.jdl_path / "evil.yml").write_text('name: ../evil\nscript: "true"\n')
    service = build_service(settings)
    assert "evil.yml" in service.registry.errors
    assert all("/" not in name for name in service.registry.names())


@pytest.mark.parametrize(
    "path", ["/rest/<script>alert(1)</script>", "/rest/sleep/<b>x</b>", "/<img src=x>"]
)
def test_error_pages_never_render_html(app: webtest.TestApp, path: str) -> None:
    response = app.get(path, expect_errors=True)
    assert response.status_int == 404
    assert response.content_type == "text/plain"


def test_reflected_values_come_back_as_plain_text(app: webtest.TestApp) -> None:
    response = app.post("/rest/sleep", {"duration": "<script>alert(1)</script>"}, status=400)
    assert response.content_type == "text/plain"


def test_forwarded_headers_give_no_identity(strict_app: webtest.TestApp) -> None:
    for header in ["X-Forwarded-For", "X-Real-IP", "X-Forwarded-User", "Remote-User"]:
        strict_app.get("/rest/sleep", headers={header: "127.0.0.1"}, status=401)
    strict_app.get(
        "/rest/sleep", extra_environ={"REMOTE_ADDR": "127.0.0.1", "REMOTE_USER": "x"}, status=401
    )


def test_self_asserted_names_give_no_identity(strict_app: webtest.TestApp) -> None:
    """The original OPUS believed a user name sent by the client; OPUS wants its token."""
    for name in ["admin", "anonymous", "root"]:
        credentials = base64.b64encode(f"{name}:".encode()).decode()
        strict_app.get("/rest/sleep", headers={"Authorization": f"Basic {credentials}"}, status=401)
        strict_app.get(f"/rest/sleep?user={name}", status=401)


def test_signal_endpoint_trusts_only_the_job_token(app: webtest.TestApp) -> None:
    response = app.post(
        "/handler/job_event",
        {"jobid": "aaaaaaaaaaaaaaaaaaaaaaaa", "phase": "COMPLETED"},
        headers={"X-Forwarded-For": "127.0.0.1"},
        expect_errors=True,
    )
    assert response.status_int in (403, 404)


def test_redirects_go_to_base_url_whatever_the_request_says(app, settings) -> None:
    """A Location is never built from Host or X-Forwarded-*: the client chooses those."""
    forged = {
        "Host": "evil.example",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
    }
    created = app.post("/rest/sleep", {"duration": "1"}, headers=forged, status=303)
    assert created.location.startswith(f"{settings.BASE_URL}/rest/sleep/")
    path = created.location.removeprefix(settings.BASE_URL)
    for answer in (
        app.post(f"{path}/phase", {"PHASE": "ABORT"}, headers=forged, status=303),
        app.delete(path, headers=forged, status=303),
    ):
        assert answer.location.startswith(settings.BASE_URL + "/rest/sleep")
        assert "evil" not in answer.location

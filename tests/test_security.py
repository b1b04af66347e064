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


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=["other-origin", "null-origin", "cross-site", "same-site"],
)
def test_cross_site_changes_are_refused_whatever_the_credentials(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    """A form posted from another site carries the browser's cached Basic credentials:
    refused (403) on every tree, and nothing changes."""
    settings = make_settings(tmp_path, ALLOW_ANONYMOUS=False)
    service = build_service(settings)
    app = webtest.TestApp(create_app(settings, service))
    from opus.server.auth import UserManager
    from opus.server.storage import UserStore

    _user, token = UserManager(UserStore(service.store.engine)).add("root", ["admin"])
    auth = {"Authorization": "Basic " + base64.b64encode(f"root:{token}".encode()).decode()}
    job = app.post("/rest/sleep", {"duration": "1"}, headers=auth, status=303).location
    path = job.removeprefix(settings.BASE_URL)
    forged = {**auth, **headers}
    refused = app.post("/rest/sleep", {"duration": "1"}, headers=forged, status=403)
    assert "cross-site request refused" in refused.text
    app.post(f"{path}/phase", {"PHASE": "RUN"}, headers=forged, status=403)
    app.delete(path, headers=forged, status=403)
    app.post(path, {"ACTION": "DELETE"}, headers=forged, status=403)
    scim = app.post_json(
        "/scim/v2/Users",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "eve"},
        headers=forged,
        status=403,
    )
    assert scim.content_type == "application/scim+json"
    # Nothing changed, and reads from another site are not refused (CORS guards them).
    assert app.get(f"{path}/phase", headers=forged).text == "PENDING"
    assert len(app.get("/rest/sleep", headers=auth).body.split(b"<uws:jobref")) == 2
    # The same requests from OPUS's own pages, or from API clients, are accepted.
    own = {**auth, "Origin": settings.BASE_URL, "Sec-Fetch-Site": "same-origin"}
    app.post(f"{path}/phase", {"PHASE": "ABORT"}, headers=own, status=303)
    app.delete(path, headers=auth, status=303)

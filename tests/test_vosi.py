"""VOSI, in process: /availability and /capabilities, valid against the VOSI schemas.

Availability is checked with real failures: a database that refuses connections (its
file gone on SQLite, connections forbidden on PostgreSQL) and a SLURM manager whose
command is missing or hangs; and with a real SLURM controller that answers.
"""

from __future__ import annotations

import io
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import webtest
from lxml import etree
from pyvo.io import vosi

from opus.core.times import parse_time
from opus.server.app import build_service, create_app
from opus.server.auth import UserManager
from opus.server.service import JobService
from opus.server.service.availability import AvailabilityCheck
from opus.server.storage import UserStore
from opus.settings import Settings
from tests.conftest import make_settings, safe_parser, xml_schema
from tests.test_auth import basic

AVAILABILITY = "{http://www.ivoa.net/xml/VOSIAvailability/v1.0}"
UWS_REST = "ivo://ivoa.net/std/UWS#rest-1.1"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def availability(app: webtest.TestApp) -> tuple[bool, list[str], datetime | None]:
    """GET /availability (no credentials), checked against its schema."""
    response = app.get("/availability")
    assert response.content_type == "text/xml"
    assert response.headers["Cache-Control"] == "no-store"
    root = etree.fromstring(response.body, safe_parser())
    schema = xml_schema("VOSIAvailability-v1.0.xsd")
    assert schema.validate(root), schema.error_log
    up_since = root.findtext(f"{AVAILABILITY}upSince")
    notes = [note.text or "" for note in root.iter(f"{AVAILABILITY}note")]
    available = root.findtext(f"{AVAILABILITY}available") == "true"
    return available, notes, parse_time(up_since) if up_since else None


def capabilities(app: webtest.TestApp, **headers: str) -> list[etree._Element]:
    """GET /capabilities, checked against its schema: the capability elements."""
    response = app.get("/capabilities", headers=headers)
    assert response.content_type == "text/xml"
    assert "Authorization" in response.headers["Vary"]
    root = etree.fromstring(response.body, safe_parser())
    schema = xml_schema("VOSICapabilities-v1.0.xsd")
    assert schema.validate(root), schema.error_log
    return list(root.iter("capability"))


def access_urls(found: list[etree._Element], standard_id: str | None) -> list[str]:
    return [
        cap.findtext("interface/accessURL") or ""
        for cap in found
        if cap.get("standardID") == standard_id
    ]


def job_lists(found: list[etree._Element]) -> list[str]:
    """The job types of the UWS capabilities."""
    return [url.rsplit("/", 1)[1] for url in access_urls(found, UWS_REST)]


def app_for(settings: Settings) -> tuple[webtest.TestApp, JobService]:
    service = build_service(settings)
    return webtest.TestApp(create_app(settings, service)), service


# -- availability -------------------------------------------------------------------


def test_available_without_credentials(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=database_url, ALLOW_ANONYMOUS=False)
    app, _ = app_for(settings)
    available, notes, up_since = availability(app)
    assert available
    assert notes == ["the database answers", "the local manager is reachable"]
    assert up_since is not None
    app.get("/rest", status=401)  # the API itself still wants credentials


@contextmanager
def database_refusing(
    service: JobService, request: pytest.FixtureRequest, database_url: str
) -> Iterator[None]:
    """The service's database refuses connections for real during the block."""
    engine = service.store.engine
    if database_url.startswith("sqlite"):
        path = Path(engine.url.database or "")
        moved = path.with_name("moved-away.db")
        path.rename(moved)
        # A directory where the file was: nothing can open it, nothing creates it.
        path.mkdir()
        engine.dispose()  # the pooled connections still had the file open
        try:
            yield
        finally:
            path.rmdir()
            moved.rename(path)
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = database_url.rsplit("/", 1)[1]
    cluster._execute(
        f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false",
        # The name is the test database's own (pg_cluster.py), not input.
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",  # noqa: S608
    )
    engine.dispose()
    try:
        yield
    finally:
        cluster._execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")


def test_unavailable_while_the_database_refuses(
    app: webtest.TestApp, service: JobService, request: pytest.FixtureRequest, database_url: str
) -> None:
    available, _, up_since = availability(app)
    assert available and up_since is not None
    with database_refusing(service, request, database_url):
        available, notes, gone_since = availability(app)
        assert not available
        assert gone_since is None
        assert len(notes) == 1 and notes[0].startswith("database: "), notes
        # The driver's own message (paths, hosts, users) stays in the log.
        assert database_url.rsplit("/", 1)[1] not in notes[0]
    available, notes, back_since = availability(app)
    assert available, notes
    assert back_since is not None and back_since > up_since


def test_unavailable_when_the_slurm_command_is_missing(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path,
        DATABASE_URL=database_url,
        MANAGER="slurm",
        SLURM_COMMAND_PREFIX="/nonexistent/opus-test-prefix",
    )
    app, _ = app_for(settings)
    available, notes, up_since = availability(app)
    assert not available and up_since is None
    assert len(notes) == 1, notes
    assert notes[0].startswith("manager: the slurm manager is not reachable: could not run ")
    assert "/nonexistent/opus-test-prefix" in notes[0]


def test_a_hanging_check_is_answered_in_time_and_shared(tmp_path: Path) -> None:
    """A controller that never answers: availability says so within its timeout, and
    requests that come meanwhile wait for the same check, not for new threads."""
    settings = make_settings(
        tmp_path, MANAGER="slurm", SLURM_COMMAND_PREFIX="sh -c 'sleep 20' hanging"
    )
    service = build_service(settings)
    check = AvailabilityCheck(service, timeout=0.5)
    started = time.monotonic()
    first = check.check()
    assert time.monotonic() - started < 5
    assert not first.available
    assert first.notes == ("manager: no answer within 0.5 s",)
    assert not check.check().available
    # The second request waited for the hanging check; it did not start another.
    checks = [t for t in threading.enumerate() if t.name == "opus-manager-check"]
    assert len(checks) == 1


def test_available_with_a_slurm_controller_that_answers(tmp_path: Path, slurm_cluster: Any) -> None:
    conf = slurm_cluster.env["SLURM_CONF"]
    settings = make_settings(
        tmp_path, MANAGER="slurm", SLURM_COMMAND_PREFIX=f"env SLURM_CONF={conf}"
    )
    app, _ = app_for(settings)
    available, notes, _ = availability(app)
    assert available, notes
    assert notes[1] == "the slurm manager is reachable"


# -- capabilities -------------------------------------------------------------------


def test_capabilities_of_an_anonymous_server(app: webtest.TestApp, settings: Settings) -> None:
    found = capabilities(app)
    base = settings.BASE_URL
    assert access_urls(found, "ivo://ivoa.net/std/VOSI#capabilities") == [f"{base}/capabilities"]
    assert access_urls(found, "ivo://ivoa.net/std/VOSI#availability") == [f"{base}/availability"]
    assert access_urls(found, "ivo://ivoa.net/std/ProvSAP") == [f"{base}/provsap"]
    names = job_lists(found)
    assert {"sleep", "fail", "append_text", "plot"} <= set(names)
    assert names == app.get("/rest").text.split()
    assert access_urls(found, None) == [f"{base}/sync/{name}" for name in names]
    for cap in found:
        interface = cap.find("interface")
        assert interface.get(XSI_TYPE) == "vr:WebService"
        assert interface.find("securityMethod") is None  # anonymous access works
        if cap.get("standardID") == UWS_REST:
            assert interface.find("accessURL").get("use") == "base"
            assert interface.get("role") == "std"
    sleep = next(cap for cap in found if cap.findtext("interface/accessURL").endswith("/sleep"))
    assert "Waits for a given number of seconds" in sleep.findtext("description")


def test_capabilities_list_only_the_types_a_caller_may_run(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(
        tmp_path, DATABASE_URL=database_url, CHECK_PERMISSIONS=True, ALLOW_ANONYMOUS=False
    )
    app, service = app_for(settings)
    users = UserManager(UserStore(service.store.engine))
    alice = basic("alice", users.add("alice", ["sleep"])[1])
    bob = basic("bob", users.add("bob")[1])
    root = basic("root", users.add("root", ["admin"])[1])
    assert job_lists(capabilities(app, **alice)) == ["sleep"]
    assert access_urls(capabilities(app, **alice), None) == [f"{settings.BASE_URL}/sync/sleep"]
    assert job_lists(capabilities(app, **bob)) == []
    assert set(job_lists(capabilities(app, **root))) >= {"sleep", "fail", "plot"}
    # Without credentials: public, but nobody's job types.
    anonymous = capabilities(app)
    assert job_lists(anonymous) == [] and access_urls(anonymous, None) == []
    provsap = access_urls(anonymous, "ivo://ivoa.net/std/ProvSAP")
    assert provsap == [f"{settings.BASE_URL}/provsap"]
    # What needs credentials says so (IVOA SSO, HTTP Basic); VOSI itself needs none.
    for cap in capabilities(app, **alice):
        method = cap.find("interface/securityMethod")
        if cap.get("standardID", "").startswith("ivo://ivoa.net/std/VOSI"):
            assert method is None
        else:
            assert method.get("standardID") == "ivo://ivoa.net/sso#BasicAA"
    # Credentials that are wrong are refused, as everywhere.
    app.get("/capabilities", headers=basic("alice", "wrong"), status=401)


def test_capabilities_with_permissions_and_anonymous_access(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=database_url, CHECK_PERMISSIONS=True)
    app, _ = app_for(settings)
    # anonymous has no role: it may run no type, and none is listed.
    assert job_lists(capabilities(app)) == []


def test_capability_urls_come_from_base_url(app: webtest.TestApp, settings: Settings) -> None:
    headers = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    body = app.get("/capabilities", headers=headers).text
    assert "evil.example" not in body
    assert f"{settings.BASE_URL}/rest/sleep" in body


def test_pyvo_reads_both_documents_without_a_warning(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=database_url, ALLOW_ANONYMOUS=False)
    app, service = app_for(settings)
    alice = basic("alice", UserManager(UserStore(service.store.engine)).add("alice")[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any deviation pyvo notices fails the test
        state = vosi.parse_availability(io.BytesIO(app.get("/availability").body))
        found = vosi.parse_capabilities(io.BytesIO(app.get("/capabilities", headers=alice).body))
    assert state.available
    uws = [cap for cap in found if cap.standardid == UWS_REST]
    assert {cap.interfaces[0].accessurls[0].content for cap in uws} >= {
        f"{settings.BASE_URL}/rest/sleep"
    }
    methods = uws[0].interfaces[0].securitymethods
    assert [method.standardid for method in methods] == ["ivo://ivoa.net/sso#BasicAA"]

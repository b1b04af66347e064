"""Browser sessions across processes: two `opus serve --workers 2` servers on one
PostgreSQL database know every session, whichever process signed in, and a sign-out
anywhere ends it everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from opus.server.auth import UserManager
from opus.server.sessions import SESSION_COOKIE, session_cookie
from opus.server.storage import UserStore, make_engine
from tests.conftest import LiveServer
from tests.live_helpers import HTTP_TIMEOUT, assert_clean_log

pytestmark = pytest.mark.live

PASSWORD = "a password of carol's"
# Fresh connections per server: the kernel spreads them over its workers (SO_REUSEPORT).
CONNECTIONS = 8


@contextmanager
def two_servers(tmp_path: Path, database_url: str) -> Iterator[list[LiveServer]]:
    started: list[LiveServer] = []
    try:
        for index in range(2):
            live = LiveServer(
                tmp_path, database_url, WORKERS="2", ALLOW_ANONYMOUS="false", LOG_LEVEL="INFO"
            )
            live.log = tmp_path / f"server-{index}.log"
            live.start()
            started.append(live)
        yield started
    finally:
        for live in started:
            live.stop()


def fresh_get(server: LiveServer, path: str, cookie: str) -> requests.Response:
    """A GET on a connection of its own, with the session cookie."""
    with requests.Session() as session:
        return session.get(
            server.url + path,
            headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
            timeout=HTTP_TIMEOUT,
            allow_redirects=False,
        )


def test_sessions_are_shared_by_every_process(tmp_path: Path, postgresql_url: str) -> None:
    engine = make_engine(postgresql_url)
    try:
        UserManager(UserStore(engine)).add("carol", ["sleep"], PASSWORD)
    finally:
        engine.dispose()
    with two_servers(tmp_path, postgresql_url) as (one, two):
        signed_in = requests.post(
            f"{one.url}/login",
            data={"username": "carol", "secret": PASSWORD, "next": "/rest/sleep"},
            timeout=HTTP_TIMEOUT,
            allow_redirects=False,
        )
        assert signed_in.status_code == 303, signed_in.text
        assert signed_in.headers["Location"] == f"{one.url}/rest/sleep"
        cookie = session_cookie(signed_in.headers["Set-Cookie"].split(";")[0])
        assert cookie is not None
        # Every worker of both servers knows the session.
        for server in (one, two):
            for _ in range(CONNECTIONS):
                about = fresh_get(server, "/session", cookie)
                assert about.status_code == 200 and about.json()["user_name"] == "carol"
        csrf = about.json()["csrf_token"]
        # A change made with the cookie on the other server: the token it needs.
        browser = {"Cookie": f"{SESSION_COOKIE}={cookie}", "Origin": two.url}
        refused = requests.post(
            f"{two.url}/rest/sleep", data={"duration": "1"}, headers=browser, timeout=HTTP_TIMEOUT
        )
        assert refused.status_code == 403 and refused.text == "missing or wrong CSRF token\n"
        created = requests.post(
            f"{two.url}/rest/sleep",
            data={"duration": "1"},
            headers={**browser, "X-CSRF-Token": csrf},
            timeout=HTTP_TIMEOUT,
            allow_redirects=False,
        )
        assert created.status_code == 303, created.text
        path = created.headers["Location"].removeprefix(two.url)
        owner = fresh_get(one, f"{path}/owner", cookie)
        assert owner.status_code == 200 and owner.text == "carol"
        # Signing out on one server ends the session on every process of both.
        out = requests.post(
            f"{two.url}/logout",
            headers={**browser, "X-CSRF-Token": csrf},
            timeout=HTTP_TIMEOUT,
            allow_redirects=False,
        )
        assert out.status_code == 303 and "Max-Age=0" in out.headers["Set-Cookie"]
        for server in (one, two):
            for _ in range(CONNECTIONS):
                assert fresh_get(server, "/rest/sleep", cookie).status_code == 401
    log = one.log.read_text() + two.log.read_text()
    assert "user carol signed in from 127.0.0.1" in log
    assert cookie not in log and csrf not in log and PASSWORD not in log
    for server in (one, two):
        assert_clean_log(server)

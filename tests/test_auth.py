"""Users, tokens and permissions: who may see and change which job."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import webtest
from lxml import etree

from opus.server.app import build_service, create_app
from opus.server.auth import UserError, UserManager, hash_password, verify_password
from opus.server.storage import UserStore
from tests.conftest import make_settings

LIST = "{http://www.ivoa.net/xml/UWS/v1.0}jobref"


def basic(name: str, token: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{name}:{token}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Site:
    """An in-process OPUS with three users: alice, bob and the admin root."""

    def __init__(self, tmp_path: Path, database_url: str | None = None, **settings) -> None:
        if database_url is not None:
            settings["DATABASE_URL"] = database_url
        self.settings = make_settings(tmp_path, **settings)
        self.service = build_service(self.settings)
        self.app = webtest.TestApp(create_app(self.settings, self.service))
        self.users = UserManager(UserStore(self.service.store.engine))
        self.tokens = {
            "alice": self.users.add("alice", ["sleep"])[1],
            "bob": self.users.add("bob")[1],
            "root": self.users.add("root", ["admin"])[1],
        }

    def auth(self, name: str) -> dict[str, str]:
        return basic(name, self.tokens[name])

    def create(self, name: str, **values: str) -> str:
        response = self.app.post("/rest/sleep", values, headers=self.auth(name), status=303)
        return urlsplit(response.location).path

    def listed(self, name: str | None) -> list[str]:
        headers = self.auth(name) if name else {}
        body = self.app.get("/rest/sleep", headers=headers).body
        return [ref.get("id") for ref in etree.fromstring(body).iter(LIST)]


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Site:
    return Site(tmp_path, database_url)


def test_user_names_no_user_can_have_get_401(site: Site) -> None:
    """A NUL (which PostgreSQL text cannot hold) or a name longer than any user's."""
    for name in ["alice\x00", "\x00", "a" * 300]:
        site.app.get("/rest/sleep", headers=basic(name, site.tokens["alice"]), status=401)


def test_basic_and_bearer_identify_the_owner(site: Site) -> None:
    path = site.create("alice")
    assert site.app.get(f"{path}/owner", headers=site.auth("alice")).text == "alice"
    owner = site.app.get(f"{path}/owner", headers=bearer(site.tokens["alice"])).text
    assert owner == "alice"


@pytest.mark.parametrize(
    "headers",
    [
        basic("alice", "wrong"),
        basic("nobody", "wrong"),
        bearer("wrong"),
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"alice").decode()},
        {"Authorization": "Digest whatever"},
        {"Authorization": "Bearer"},
    ],
)
def test_wrong_credentials_get_401_saying_nothing_more(site: Site, headers) -> None:
    response = site.app.get("/rest/sleep", headers=headers, status=401)
    assert "Basic" in response.headers["WWW-Authenticate"]
    assert response.text == "invalid credentials\n"  # the same for unknown users


def test_disabled_user_and_rotated_token(site: Site) -> None:
    old = site.tokens["bob"]
    new = site.users.rotate_token("bob")
    site.app.get("/rest/sleep", headers=basic("bob", old), status=401)
    site.app.get("/rest/sleep", headers=basic("bob", new), status=200)
    site.users.set_active("bob", False)
    site.app.get("/rest/sleep", headers=basic("bob", new), status=401)
    site.users.set_active("bob", True)
    site.app.get("/rest/sleep", headers=basic("bob", new), status=200)


def test_another_users_job_is_out_of_reach(site: Site) -> None:
    path = site.create("alice", duration="0", PHASE="RUN")
    bob = site.auth("bob")
    for resource in [
        "",
        "/phase",
        "/parameters",
        "/parameters/duration",
        "/results",
        "/results/output",
        "/stdout",
        "/stderr",
        "/error",
        "/owner",
        "/quote",
        "/destruction",
        "/executionduration",
    ]:
        site.app.get(f"{path}{resource}", headers=bob, status=403)
    job_id = path.rsplit("/", 1)[1]
    site.app.get(f"/store/{job_id}/output", headers=bob, status=403)
    site.app.post(f"{path}/phase", {"PHASE": "ABORT"}, headers=bob, status=403)
    site.app.post(f"{path}/parameters", {"duration": "3"}, headers=bob, status=403)
    site.app.post(f"{path}", {"ACTION": "DELETE"}, headers=bob, status=403)
    site.app.delete(path, headers=bob, status=403)
    # Identity never comes from forwarded headers.
    spoofed = dict(bob, **{"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"})
    site.app.get(path, headers=spoofed, status=403)
    assert site.app.get(f"{path}/phase", headers=site.auth("alice")).status_int == 200
    assert job_id not in site.listed("bob")
    assert job_id not in site.listed(None)  # anonymous callers see anonymous jobs only


def test_admin_sees_and_manages_every_job(site: Site) -> None:
    alice_job = site.create("alice")
    bob_job = site.create("bob")
    ids = {p.rsplit("/", 1)[1] for p in (alice_job, bob_job)}
    assert ids <= set(site.listed("root"))
    assert site.listed("alice") == [alice_job.rsplit("/", 1)[1]]
    assert site.app.get(f"{bob_job}/owner", headers=site.auth("root")).text == "bob"
    site.app.delete(bob_job, headers=site.auth("root"), status=303)
    site.app.get(bob_job, headers=site.auth("bob"), status=404)


def test_anonymous_refused_when_not_allowed(tmp_path: Path, database_url: str) -> None:
    site = Site(tmp_path, database_url, ALLOW_ANONYMOUS=False)
    for url in ["/", "/rest", "/rest/sleep"]:
        response = site.app.get(url, status=401)
        assert response.headers["WWW-Authenticate"]
    site.app.post("/rest/sleep", {"duration": "1"}, status=401)
    assert list(site.settings.jobs_path.iterdir()) == []
    path = site.create("alice")
    site.app.get(path, status=401)
    site.app.get(path, headers=site.auth("alice"), status=200)


def test_user_names_and_roles_are_checked(site: Site) -> None:
    for name in ["", "anonymous", "ANONYMOUS", "a b", "a:b", "../x", "x" * 65]:
        with pytest.raises(UserError):
            site.users.add(name)
    with pytest.raises(UserError, match="already exists"):
        site.users.add("alice")
    with pytest.raises(UserError, match="role"):
        site.users.add("carol", ["bad role"])
    with pytest.raises(UserError, match="no user"):
        site.users.rotate_token("nobody")


def test_tokens_and_passwords_are_stored_hashed(site: Site) -> None:
    site.users.set_password("alice", "correct horse")
    stored = site.users.users.get("alice")
    assert site.tokens["alice"] not in (stored.token_hash, stored.password_hash)
    assert stored.password_hash.startswith("scrypt$")
    assert verify_password("correct horse", stored.password_hash)
    assert not verify_password("wrong horse", stored.password_hash)
    assert not verify_password("x", None)
    assert not verify_password("x", "md5$abc")
    assert hash_password("same") != hash_password("same")  # salted


def test_job_type_permissions(tmp_path: Path, database_url: str) -> None:
    site = Site(tmp_path, database_url, CHECK_PERMISSIONS=True)
    site.users.add("carol", ["all"])
    carol = basic("carol", site.users.rotate_token("carol"))
    assert site.app.get("/rest", headers=site.auth("alice")).text.split() == ["sleep"]
    assert site.app.get("/rest", headers=site.auth("bob")).text == ""
    assert "plot" in site.app.get("/rest", headers=carol).text.split()
    assert "plot" in site.app.get("/rest", headers=site.auth("root")).text.split()
    site.create("alice")
    refused = site.app.post("/rest/fail", {}, headers=site.auth("alice"), status=403)
    assert "no role grants it" in refused.text
    site.app.post("/rest/sleep", {}, headers=site.auth("bob"), status=403)
    site.app.post("/rest/sleep", {}, status=403)  # anonymous has no role
    site.app.post("/rest/plot", {}, headers=carol, status=303)
    site.app.post("/rest/fail", {}, headers=site.auth("root"), status=303)
    site.app.post("/rest/nosuch", {}, headers=site.auth("bob"), status=404)

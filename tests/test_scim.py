"""SCIM 2.0 user management: admins only, RFC 7643/7644 shapes, tokens shown once,
externalId kept, attribute selection, PATCH semantics and what is not offered (501)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import webtest

from opus.server.app import build_service, create_app
from opus.server.auth import UserManager, hash_token, verify_password
from opus.server.storage import UserStore
from tests.conftest import make_settings

USERS = "/scim/v2/Users"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
EXT = "urn:opus:params:scim:schemas:extension:2.0:User"
TOKEN_PATH = f"{EXT}:token"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_TYPE = "application/scim+json"
PASSWORDS = ["correct horse battery", "tr0ub4dor&3", "another secret"]
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def basic(name: str, token: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{name}:{token}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


class RecordingApp(webtest.TestApp):
    """A TestApp that keeps every response and every hash the database ever held."""

    def __init__(self, app: Any, store: UserStore) -> None:
        super().__init__(app)
        self.store = store
        self.responses: list[webtest.TestResponse] = []
        self.hashes: set[str] = set()

    def snapshot(self) -> None:
        for user in self.store.all():
            self.hashes.add(user.token_hash)
            if user.password_hash:
                self.hashes.add(user.password_hash)

    def do_request(self, req, status=None, expect_errors=None):
        self.snapshot()
        response = super().do_request(req, status=status, expect_errors=expect_errors)
        self.responses.append(response)
        self.snapshot()
        return response


class Site:
    """An in-process OPUS with alice (role sleep) and the admin root."""

    def __init__(self, tmp_path: Path, database_url: str | None = None, **settings: Any) -> None:
        if database_url is not None:
            settings["DATABASE_URL"] = database_url
        self.settings = make_settings(tmp_path, **settings)
        self.service = build_service(self.settings)
        store = UserStore(self.service.store.engine)
        self.app = RecordingApp(create_app(self.settings, self.service), store)
        self.users = UserManager(store)
        self.tokens = {
            "alice": self.users.add("alice", ["sleep"])[1],
            "root": self.users.add("root", ["admin"])[1],
        }
        self.app.snapshot()

    def auth(self, name: str = "root") -> dict[str, str]:
        return basic(name, self.tokens[name])

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        status: int = 200,
        who: str | None = "root",
        content_type: str = SCIM_TYPE,
    ) -> webtest.TestResponse:
        headers = self.auth(who) if who else {}
        if body is None:
            return self.app.request(path, method=method, headers=headers, status=status)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
        return self.app.request(path, method=method, body=raw, headers=headers, status=status)

    def create(self, name: str, roles: Sequence[str] = (), **values: Any) -> dict[str, Any]:
        body = {"schemas": [CORE], "userName": name, "roles": [{"value": r} for r in roles]}
        body.update(values)
        document = self.call("POST", USERS, body, status=201).json
        self.tokens[name] = document[EXT]["token"]
        return document

    def patch(self, name: str, *operations: dict[str, Any], status: int = 200):
        body = {"schemas": [PATCH_OP], "Operations": list(operations)}
        return self.call("PATCH", f"{USERS}/{name}", body, status=status)

    def check_no_leaks(self) -> None:
        """Tokens appear once (in the answer that made them); hashes and passwords never."""
        shown: list[str] = []
        for response in self.app.responses:
            request = response.request
            text = response.body.decode("utf-8", "replace") + repr(response.headerlist)
            for secret in self.app.hashes | set(PASSWORDS) | {"scrypt$"}:
                assert secret not in text, (request.method, request.path)
            given = None
            if response.content_type == SCIM_TYPE and response.body:
                document = response.json
                if EXT in document:
                    assert (request.method, response.status_int) in {("POST", 201), ("PATCH", 200)}
                    given = document[EXT]["token"]
                    assert EXT in document["schemas"]
                    shown.append(given)
            for token in {*self.tokens.values(), *shown}:
                if token != given:
                    assert token not in text, (request.method, request.path)
        assert len(shown) == len(set(shown))
        assert {hash_token(t) for t in shown} <= self.app.hashes


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    site = Site(tmp_path, database_url, ALLOW_ANONYMOUS=False)
    yield site
    site.check_no_leaks()


def assert_error(response: webtest.TestResponse, status: int, scim_type: str | None = None):
    assert response.content_type == SCIM_TYPE
    document = response.json
    assert document["schemas"] == [ERROR]
    assert document["status"] == str(status)
    assert document["detail"]
    assert document.get("scimType") == scim_type
    return document


def test_crud_round_trip(site: Site) -> None:
    created = site.call(
        "POST",
        USERS,
        {
            "schemas": [CORE],
            "userName": "carol",
            "active": True,
            "roles": [{"value": "sleep"}, {"value": "plot"}],
            "password": PASSWORDS[0],
        },
        status=201,
    )
    assert created.content_type == SCIM_TYPE
    location = f"{site.settings.BASE_URL}{USERS}/carol"
    assert created.headers["Location"] == location
    document = created.json
    token = document[EXT]["token"]
    site.tokens["carol"] = token
    assert document["schemas"] == [CORE, EXT]
    assert document["id"] == document["userName"] == "carol"
    assert document["active"] is True
    assert document["roles"] == [{"value": "sleep"}, {"value": "plot"}]
    assert document["meta"]["resourceType"] == "User"
    assert document["meta"]["location"] == location
    assert TIME.fullmatch(document["meta"]["created"])
    assert "password" not in document
    assert verify_password(PASSWORDS[0], site.users.users.get("carol").password_hash)

    fetched = site.call("GET", f"{USERS}/carol").json
    expected = {k: v for k, v in document.items() if k != EXT}
    expected["schemas"] = [CORE]
    assert fetched == expected

    replaced = site.call(
        "PUT",
        f"{USERS}/carol",
        dict(fetched, roles=[{"value": "sleep"}], active=False, password=PASSWORDS[1]),
    ).json
    assert replaced["roles"] == [{"value": "sleep"}]
    assert replaced["active"] is False
    assert replaced["meta"]["created"] == document["meta"]["created"]
    assert verify_password(PASSWORDS[1], site.users.users.get("carol").password_hash)
    # A PUT without roles and active resets them; the password stays.
    replaced = site.call("PUT", f"{USERS}/carol", {"userName": "carol"}).json
    assert (replaced["roles"], replaced["active"]) == ([], True)
    assert verify_password(PASSWORDS[1], site.users.users.get("carol").password_hash)

    patched = site.patch(
        "carol",
        {"op": "replace", "path": "active", "value": False},
        {"op": "replace", "path": "roles", "value": [{"value": "admin"}]},
    ).json
    assert (patched["active"], patched["roles"]) == (False, [{"value": "admin"}])
    assert EXT not in patched
    assert site.call("GET", f"{USERS}/carol").json == patched

    deleted = site.call("DELETE", f"{USERS}/carol", status=204)
    assert deleted.body == b""
    assert site.users.users.get("carol") is None
    for method in ["GET", "DELETE"]:
        assert_error(site.call(method, f"{USERS}/carol", status=404), 404)
    assert_error(site.call("PUT", f"{USERS}/carol", {"userName": "carol"}, status=404), 404)
    patch = {"op": "replace", "path": "active", "value": True}
    assert_error(site.patch("carol", patch, status=404), 404)


def test_application_json_is_accepted(site: Site) -> None:
    body = {"userName": "dave", "active": False}
    document = site.call("POST", USERS, body, status=201, content_type="application/json").json
    site.tokens["dave"] = document[EXT]["token"]
    assert (document["active"], document["roles"]) == (False, [])
    site.app.get("/rest/sleep", headers=basic("dave", site.tokens["dave"]), status=401)


def test_admins_only(site: Site, tmp_path: Path) -> None:
    requests = [
        ("GET", USERS, None),
        ("POST", USERS, {"userName": "mallory", "roles": [{"value": "admin"}]}),
        ("GET", f"{USERS}/root", None),
        ("PUT", f"{USERS}/alice", {"userName": "alice", "roles": [{"value": "admin"}]}),
        ("PATCH", f"{USERS}/alice", {"schemas": [PATCH_OP], "Operations": []}),
        ("DELETE", f"{USERS}/root", None),
        ("GET", "/scim/v2/ServiceProviderConfig", None),
        ("GET", "/scim/v2/Groups", None),
    ]
    for method, path, body in requests:
        assert_error(site.call(method, path, body, status=403, who="alice"), 403)
        refused = site.call(method, path, body, status=401, who=None)
        assert "Basic" in refused.headers["WWW-Authenticate"]
    wrong = {"Authorization": "Bearer not-a-token"}
    site.app.get(USERS, headers=wrong, status=401)
    assert {u.name for u in site.users.users.all()} == {"alice", "root"}
    assert site.users.users.get("alice").roles == ("sleep",)

    anonymous = Site(tmp_path / "anonymous", ALLOW_ANONYMOUS=True)
    for method, path, body in requests:
        assert_error(anonymous.call(method, path, body, status=403, who=None), 403)
    anonymous.check_no_leaks()


def test_created_token_works_and_rotation_replaces_it(site: Site) -> None:
    created = site.create("erin", ["sleep"])
    first = created[EXT]["token"]
    site.app.get("/rest/sleep", headers=basic("erin", first), status=200)
    site.app.get("/rest/sleep", headers={"Authorization": f"Bearer {first}"}, status=200)

    rotated = site.patch("erin", {"op": "replace", "path": TOKEN_PATH, "value": "anything"}).json
    second = rotated[EXT]["token"]
    assert second not in (first, "anything")
    assert rotated["schemas"] == [CORE, EXT]
    site.tokens["erin-1"] = first
    site.tokens["erin"] = second
    site.app.get("/rest/sleep", headers=basic("erin", first), status=401)
    site.app.get("/rest/sleep", headers=basic("erin", second), status=200)
    assert EXT not in site.call("GET", f"{USERS}/erin").json
    assert EXT not in site.call("GET", USERS).json["Resources"][1]

    # The same through a path-less replace of the extension.
    again = site.patch("erin", {"op": "Replace", "value": {EXT: {"token": ""}}}).json
    third = again[EXT]["token"]
    site.tokens["erin-2"] = second
    site.tokens["erin"] = third
    site.app.get("/rest/sleep", headers=basic("erin", second), status=401)
    site.app.get("/rest/sleep", headers=basic("erin", third), status=200)
    # An ordinary PATCH shows no token.
    plain = site.patch("erin", {"op": "replace", "path": "roles", "value": []}).json
    assert EXT not in plain


def test_deactivated_users_get_401(site: Site) -> None:
    site.create("frank", ["sleep"])
    frank = basic("frank", site.tokens["frank"])
    site.app.get("/rest/sleep", headers=frank, status=200)
    assert (
        site.patch("frank", {"op": "replace", "path": "active", "value": False}).json["active"]
        is False
    )
    refused = site.app.get("/rest/sleep", headers=frank, status=401)
    assert refused.text == "invalid credentials\n"
    site.patch("frank", {"op": "replace", "value": {"active": True}})
    site.app.get("/rest/sleep", headers=frank, status=200)
    site.call("PUT", f"{USERS}/frank", {"userName": "frank", "active": False})
    site.app.get("/rest/sleep", headers=frank, status=401)
    # A deactivated admin loses SCIM access too.
    site.patch("root", {"op": "replace", "path": "active", "value": False})
    site.call("GET", USERS, status=401)


def test_patch_operations(site: Site) -> None:
    site.create("gina", ["sleep"])
    path = f"{USERS}/gina"

    def roles() -> list[str]:
        return [r["value"] for r in site.call("GET", path).json["roles"]]

    site.patch("gina", {"op": "add", "path": "roles", "value": [{"value": "plot"}]})
    site.patch("gina", {"op": "add", "path": "roles", "value": [{"value": "sleep"}]})
    assert roles() == ["sleep", "plot"]
    site.patch("gina", {"op": "remove", "path": 'roles[value eq "sleep"]'})
    assert roles() == ["plot"]
    site.patch("gina", {"op": "replace", "path": f"{CORE}:roles", "value": [{"Value": "a"}]})
    assert roles() == ["a"]
    site.patch("gina", {"op": "remove", "path": "roles"})
    assert roles() == []
    site.patch("gina", {"op": "replace", "path": "password", "value": PASSWORDS[2]})
    assert verify_password(PASSWORDS[2], site.users.users.get("gina").password_hash)
    both = {"op": "replace", "value": {"Active": False, "roles": [{"value": "b"}]}}
    document = site.patch("gina", both).json
    assert (document["active"], document["roles"]) == (False, [{"value": "b"}])


@pytest.mark.parametrize(
    "operation, scim_type",
    [
        ("not an object", "invalidSyntax"),
        ({"op": "move", "path": "active", "value": True}, "invalidSyntax"),
        ({"path": "active", "value": True}, "invalidSyntax"),
        ({"op": "replace", "path": "active", "value": "false"}, "invalidValue"),
        ({"op": "replace", "path": "active"}, "invalidValue"),
        ({"op": "replace", "path": "roles", "value": "admin"}, "invalidValue"),
        ({"op": "replace", "path": "roles", "value": ["admin"]}, "invalidValue"),
        ({"op": "replace", "path": "roles", "value": [{"value": "bad role"}]}, "invalidValue"),
        ({"op": "replace", "path": "password", "value": ""}, "invalidValue"),
        ({"op": "replace", "path": "userName", "value": "other"}, "mutability"),
        ({"op": "replace", "value": {"userName": "other"}}, "mutability"),
        ({"op": "remove", "path": "userName"}, "mutability"),
        ({"op": "replace", "path": "id", "value": "other"}, "mutability"),
        ({"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}, "mutability"),
        ({"op": "remove", "path": "meta"}, "mutability"),
        ({"op": "replace", "path": "externalId", "value": 5}, "invalidValue"),
        ({"op": "replace", "path": "externalId", "value": ""}, "invalidValue"),
        ({"op": "add", "path": "externalId", "value": "a\x00b"}, "invalidValue"),
        ({"op": "replace", "path": "emails", "value": []}, "invalidPath"),
        ({"op": "remove", "path": "emails"}, "invalidPath"),
        ({"op": "replace", "path": "roles.value", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": 5, "value": True}, "invalidPath"),
        ({"op": "replace", "value": True}, "invalidValue"),
        ({"op": "replace", "value": {EXT: {"secret": 1}}}, "invalidPath"),
        ({"op": "remove", "path": "roles", "value": "admin"}, "invalidValue"),
        ({"op": "remove"}, "noTarget"),
    ],
)
def test_bad_patch_changes_nothing(site: Site, operation: Any, scim_type: str) -> None:
    before = site.users.users.get("alice")
    # A valid operation first: the request is refused as a whole.
    first = {"op": "replace", "path": "active", "value": False}
    assert_error(site.patch("alice", first, operation, status=400), 400, scim_type)
    assert site.users.users.get("alice") == before


@pytest.mark.parametrize(
    "body",
    [
        {"Operations": [{"op": "replace", "path": "active", "value": False}]},
        {"schemas": [CORE], "Operations": [{"op": "replace", "path": "active", "value": False}]},
        {"schemas": [PATCH_OP]},
        {"schemas": [PATCH_OP], "Operations": []},
        {"schemas": [PATCH_OP], "Operations": {"op": "replace"}},
    ],
)
def test_malformed_patch_request(site: Site, body: dict[str, Any]) -> None:
    assert_error(site.call("PATCH", f"{USERS}/alice", body, status=400), 400, "invalidSyntax")
    assert site.users.users.get("alice").active


def test_conflicts_and_immutable_names(site: Site) -> None:
    refused = site.call("POST", USERS, {"userName": "alice"}, status=409)
    assert_error(refused, 409, "uniqueness")
    for name in ["anonymous", "a b", "x" * 65, "../x", "a\x00b"]:
        assert_error(site.call("POST", USERS, {"userName": name}, status=400), 400, "invalidValue")
    renamed = site.call("PUT", f"{USERS}/alice", {"userName": "alicia"}, status=400)
    assert_error(renamed, 400, "mutability")
    assert {u.name for u in site.users.users.all()} == {"alice", "root"}


def test_ids_no_user_can_have_are_unknown(site: Site) -> None:
    """A NUL (which PostgreSQL text cannot hold) or a name longer than any user's."""
    body = {"schemas": [CORE], "userName": "alice"}
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    for user_id in ["alice%00", "x" * 300]:
        for method, request in [("GET", None), ("PUT", body), ("PATCH", patch), ("DELETE", None)]:
            refused = site.call(method, f"{USERS}/{user_id}", request, status=404)
            assert_error(refused, 404)
    assert site.users.users.get("alice").active


def test_list_filter_and_paging(site: Site) -> None:
    for i in range(12):
        site.create(f"u{i:02d}", ["sleep"])
    names = sorted(["alice", "root"] + [f"u{i:02d}" for i in range(12)])

    def listed(query: str = "") -> dict[str, Any]:
        document = site.call("GET", f"{USERS}{query}").json
        assert document["schemas"] == [LIST]
        assert document["itemsPerPage"] == len(document["Resources"])
        return document

    everything = listed()
    assert everything["totalResults"] == 14
    assert everything["startIndex"] == 1
    assert [r["userName"] for r in everything["Resources"]] == names
    assert all(r["schemas"] == [CORE] for r in everything["Resources"])

    page = listed("?startIndex=3&count=4")
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (14, 3, 4)
    assert [r["id"] for r in page["Resources"]] == names[2:6]
    assert [r["id"] for r in listed("?startIndex=13&count=5")["Resources"]] == names[12:]
    assert listed("?startIndex=20")["Resources"] == []
    assert listed("?startIndex=0&count=1")["Resources"][0]["id"] == names[0]
    assert listed("?startIndex=-4&count=1")["startIndex"] == 1
    for count in ["0", "-3"]:
        empty = listed(f"?count={count}")
        assert (empty["totalResults"], empty["itemsPerPage"], empty["Resources"]) == (14, 0, [])

    def filtered(expression: str, **params: str) -> list[str]:
        document = site.app.get(USERS, {"filter": expression, **params}, headers=site.auth()).json
        return [r["userName"] for r in document["Resources"]]

    assert filtered('userName eq "u03"') == ["u03"]
    assert filtered('USERNAME Eq "u03"') == ["u03"]
    assert filtered(f' {CORE}:userName eq "alice" ') == ["alice"]
    assert filtered('userName eq "nobody"') == []
    assert filtered('userName eq "U03"') == []  # OPUS names are case-sensitive
    assert filtered('userName eq "u\\u0030\\u0033"') == ["u03"]
    assert filtered('userName eq "a \\"quoted\\" name"') == []
    assert filtered('userName eq "u03"', startIndex="2") == []


@pytest.mark.parametrize(
    "expression",
    [
        "",
        'userName sw "u"',
        'displayName eq "x"',
        "userName eq u01",
        'userName eq "u01" and active eq true',
        'userName eq "u01" or userName eq "u02"',
        'userName eq "bad \\q escape"',
        'userName eq "unterminated',
    ],
)
def test_unsupported_filters(site: Site, expression: str) -> None:
    response = site.app.get(USERS, {"filter": expression}, headers=site.auth(), status=400)
    assert_error(response, 400, "invalidFilter")


@pytest.mark.parametrize("query", ["startIndex=abc", "count=1.5", "count=", "startIndex=1e3"])
def test_bad_paging_values(site: Site, query: str) -> None:
    assert_error(site.call("GET", f"{USERS}?{query}", status=400), 400, "invalidValue")


@pytest.mark.parametrize(
    "body, scim_type",
    [
        (b"not json", "invalidSyntax"),
        (b"", "invalidSyntax"),
        (b'{"userName": "x",', "invalidSyntax"),
        (b"[]", "invalidSyntax"),
        (b'"hello"', "invalidSyntax"),
        (b"\xff\xfe\xfa{}", "invalidSyntax"),
        (b"[" * 200_000, "invalidSyntax"),
        (b'{"userName": "x", "active": NaN}', "invalidSyntax"),
        (b'{"userName": "x", "userName": "y", "UserName": "z"}', "invalidSyntax"),
        ({}, "invalidValue"),
        ({"userName": 5}, "invalidValue"),
        ({"userName": ""}, "invalidValue"),
        ({"userName": ["x"]}, "invalidValue"),
        ({"userName": "x", "active": "yes"}, "invalidValue"),
        ({"userName": "x", "active": 1}, "invalidValue"),
        ({"userName": "x", "roles": "admin"}, "invalidValue"),
        ({"userName": "x", "roles": {"value": "admin"}}, "invalidValue"),
        ({"userName": "x", "roles": ["admin"]}, "invalidValue"),
        ({"userName": "x", "roles": [{"value": 5}]}, "invalidValue"),
        ({"userName": "x", "roles": [{"value": "bad role"}]}, "invalidValue"),
        ({"userName": "x", "password": 5}, "invalidValue"),
        ({"userName": "x", "password": ""}, "invalidValue"),
        ({"userName": "x", "emails": [{"value": "x@example.org"}]}, "invalidValue"),
        ({"userName": "x", "role": [{"value": "admin"}]}, "invalidValue"),
        ({"schemas": "x", "userName": "x"}, "invalidSyntax"),
        ({"schemas": ["urn:other"], "userName": "x"}, "invalidSyntax"),
    ],
)
def test_malformed_input_gets_400(site: Site, body: Any, scim_type: str) -> None:
    response = site.call("POST", USERS, body, status=400)
    assert_error(response, 400, scim_type)
    put = site.call("PUT", f"{USERS}/alice", body, status=400)
    assert put.json["schemas"] == [ERROR]
    assert {u.name for u in site.users.users.all()} == {"alice", "root"}
    assert site.users.users.get("alice").roles == ("sleep",)


def test_wrong_content_type_and_large_bodies(site: Site) -> None:
    body = {"userName": "x"}
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/xml"]:
        refused = site.call("POST", USERS, body, status=415, content_type=content_type)
        assert_error(refused, 415)
    large = {"userName": "x", "password": "p" * (1024 * 1024)}
    assert_error(site.call("POST", USERS, large, status=413), 413)
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "add", "value": "x" * 2_000_000}]}
    assert_error(site.call("PATCH", f"{USERS}/alice", patch, status=413), 413)
    assert site.users.users.get("x") is None


def test_other_scim_paths_answer_scim_errors(site: Site) -> None:
    assert_error(site.call("GET", "/scim/v2/nothing", status=404), 404)
    assert_error(site.call("GET", f"{USERS}/alice/extra", status=404), 404)
    refused = site.call("DELETE", USERS, status=405)
    assert_error(refused, 405)
    assert refused.headers["Allow"] == "GET, POST"
    refused = site.call("POST", f"{USERS}/alice", {"userName": "alice"}, status=405)
    assert "PATCH" in refused.headers["Allow"]
    config = site.call("GET", "/scim/v2/ServiceProviderConfig").json
    assert config["patch"]["supported"] is True
    assert config["filter"] == {"supported": True, "maxResults": 1000}
    assert {s["type"] for s in config["authenticationSchemes"]} == {
        "httpbasic",
        "oauthbearertoken",
    }


# -- externalId ---------------------------------------------------------------------------


def test_external_id_is_kept_as_given(site: Site) -> None:
    created = site.create("hugo", ["sleep"], externalId="00u1A-b2C3/d4")
    assert created["externalId"] == "00u1A-b2C3/d4"
    assert site.users.users.get("hugo").external_id == "00u1A-b2C3/d4"
    fetched = site.call("GET", f"{USERS}/hugo").json
    assert fetched["externalId"] == "00u1A-b2C3/d4"
    # A user without one shows none (not null).
    assert "externalId" not in site.call("GET", f"{USERS}/alice").json

    def external_id() -> str | None:
        return site.call("GET", f"{USERS}/hugo").json.get("externalId")

    site.patch("hugo", {"op": "replace", "path": "externalId", "value": "second"})
    assert external_id() == "second"
    site.patch("hugo", {"op": "remove", "path": "externalId"})
    assert external_id() is None and site.users.users.get("hugo").external_id is None
    site.patch("hugo", {"op": "add", "value": {"externalId": "third"}})
    assert external_id() == "third"
    # A replacement without externalId removes it, as it resets roles and active.
    site.call("PUT", f"{USERS}/hugo", {"userName": "hugo", "externalId": "fourth"})
    assert external_id() == "fourth"
    site.call("PUT", f"{USERS}/hugo", {"userName": "hugo"})
    assert external_id() is None
    # Creation with a null externalId is creation without one.
    assert "externalId" not in site.create("ines", externalId=None)


@pytest.mark.parametrize("value", [5, "", "x" * 1025, "a\x00b", ["x"], {"id": "x"}, True])
def test_bad_external_ids_are_refused(site: Site, value: Any) -> None:
    body = {"schemas": [CORE], "userName": "ivan", "externalId": value}
    assert_error(site.call("POST", USERS, body, status=400), 400, "invalidValue")
    assert site.users.users.get("ivan") is None
    body["userName"] = "alice"
    assert_error(site.call("PUT", f"{USERS}/alice", body, status=400), 400, "invalidValue")
    assert site.users.users.get("alice").external_id is None


def test_filter_by_external_id(site: Site) -> None:
    site.create("jack", externalId="idp-7")
    site.create("kate", externalId="idp-8")
    site.create("liam", externalId="IDP-7")

    def filtered(expression: str) -> list[str]:
        document = site.app.get(USERS, {"filter": expression}, headers=site.auth()).json
        assert document["totalResults"] == len(document["Resources"])
        return [r["userName"] for r in document["Resources"]]

    assert filtered('externalId eq "idp-7"') == ["jack"]  # caseExact: not liam's
    assert filtered(f'{CORE}:EXTERNALID EQ "idp-8"') == ["kate"]
    assert filtered('externalId eq "nobody"') == []
    assert filtered('externalId eq "a\\u0000b"') == []  # no row can hold it: none


# -- PATCH: remove, userName, token revocation ---------------------------------------------


def test_removing_active_makes_it_true(site: Site) -> None:
    """RFC 7644 §3.5.2.2 makes a removed attribute unassigned: for OPUS, whose users are
    active unless deactivated, that is the default of a creation or replacement."""
    site.create("mia", ["sleep"], active=False)
    mia = basic("mia", site.tokens["mia"])
    site.app.get("/rest/sleep", headers=mia, status=401)
    document = site.patch("mia", {"op": "remove", "path": "active"}).json
    assert document["active"] is True
    assert site.users.users.get("mia").active is True
    site.app.get("/rest/sleep", headers=mia, status=200)


def test_removing_the_password_keeps_the_token(site: Site) -> None:
    site.create("noah", ["sleep"], password=PASSWORDS[0])
    assert site.users.users.get("noah").password_hash
    site.patch("noah", {"op": "remove", "path": "password"})
    assert site.users.users.get("noah").password_hash is None
    site.app.get("/rest/sleep", headers=basic("noah", site.tokens["noah"]), status=200)
    # Removed, then set again in the same request: the last operation counts.
    site.patch(
        "noah",
        {"op": "remove", "path": "password"},
        {"op": "add", "path": "password", "value": PASSWORDS[1]},
    )
    assert verify_password(PASSWORDS[1], site.users.users.get("noah").password_hash)


def test_removing_roles_by_value(site: Site) -> None:
    site.create("olga", ["a", "b", "c"])
    # The value names the roles to remove (as some identity providers send it).
    document = site.patch("olga", {"op": "remove", "path": "roles", "value": [{"value": "b"}]})
    assert document.json["roles"] == [{"value": "a"}, {"value": "c"}]
    # A role the user does not have: nothing to remove, the user is as asked.
    document = site.patch("olga", {"op": "remove", "path": 'roles[value eq "zzz"]'})
    assert document.json["roles"] == [{"value": "a"}, {"value": "c"}]


def test_patching_the_same_user_name_changes_nothing(site: Site) -> None:
    before = site.users.users.get("alice")
    document = site.patch("alice", {"op": "replace", "value": {"userName": "alice"}}).json
    assert document["userName"] == "alice"
    assert site.users.users.get("alice") == before


def test_removing_the_token_revokes_it(site: Site) -> None:
    site.create("paul", ["sleep"])
    first = site.tokens["paul"]
    site.app.get("/rest/sleep", headers=basic("paul", first), status=200)
    document = site.patch("paul", {"op": "remove", "path": TOKEN_PATH}).json
    assert EXT not in document and document["schemas"] == [CORE]
    site.tokens["paul"] = first  # must appear nowhere after its creation answer
    site.app.get("/rest/sleep", headers=basic("paul", first), status=401)
    # The whole extension too; then a rotation gives the user a working token again.
    site.patch("paul", {"op": "remove", "path": EXT})
    rotated = site.patch("paul", {"op": "replace", "path": TOKEN_PATH, "value": "x"}).json
    site.tokens["paul-new"] = rotated[EXT]["token"]
    site.app.get("/rest/sleep", headers=basic("paul", rotated[EXT]["token"]), status=200)
    # Removed after a rotation in one request: revoked, and no token shown.
    document = site.patch(
        "paul",
        {"op": "replace", "path": TOKEN_PATH, "value": "x"},
        {"op": "remove", "path": TOKEN_PATH},
    ).json
    assert EXT not in document
    site.app.get("/rest/sleep", headers=basic("paul", rotated[EXT]["token"]), status=401)


def test_an_extension_object_may_carry_its_schemas(site: Site) -> None:
    """What a client sends for an extension as a whole: its schemas, and no attribute."""
    before = site.users.users.get("alice")
    empty = {"op": "add", "path": EXT, "value": {"schemas": [EXT]}}
    document = site.patch("alice", empty).json
    assert EXT not in document
    assert site.users.users.get("alice") == before


# -- attribute selection ------------------------------------------------------------------


def test_attributes_select_what_a_user_shows(site: Site) -> None:
    site.create("quinn", ["sleep", "plot"], externalId="q-1")
    path = f"{USERS}/quinn"

    def shown(**params: str) -> dict[str, Any]:
        return site.app.get(path, params, headers=site.auth()).json

    full = shown()
    assert set(full) == {"schemas", "id", "externalId", "userName", "active", "roles", "meta"}
    # id and schemas always; names are case-insensitive and may carry the core URN.
    assert shown(attributes="userName") == {"schemas": [CORE], "id": "quinn", "userName": "quinn"}
    assert set(shown(attributes=f"ACTIVE,{CORE}:externalId")) == {
        "schemas",
        "id",
        "active",
        "externalId",
    }
    assert shown(attributes="meta.created")["meta"] == {"created": full["meta"]["created"]}
    assert shown(attributes="roles.value")["roles"] == full["roles"]
    assert "roles" not in shown(attributes="roles.display")
    # Names OPUS does not keep select nothing (an identity provider's own attributes).
    assert set(shown(attributes="emails,name.givenName")) == {"schemas", "id"}
    ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
    assert set(shown(attributes=ext)) == {"schemas", "id"}
    # excludedAttributes: everything else; id and schemas cannot be excluded.
    assert set(shown(excludedAttributes="roles,meta,id,schemas")) == {
        "schemas",
        "id",
        "externalId",
        "userName",
        "active",
    }
    assert shown(excludedAttributes="meta.location")["meta"] == {
        "resourceType": "User",
        "created": full["meta"]["created"],
    }
    assert shown(excludedAttributes="") == full
    assert shown(attributes="password") == {"schemas": [CORE], "id": "quinn"}


def test_attributes_apply_to_lists(site: Site) -> None:
    document = site.app.get(USERS, {"attributes": "userName"}, headers=site.auth()).json
    assert document["schemas"] == [LIST] and document["totalResults"] == 2
    assert document["Resources"] == [
        {"schemas": [CORE], "id": name, "userName": name} for name in ("alice", "root")
    ]
    excluded = site.app.get(USERS, {"excludedAttributes": "meta,roles"}, headers=site.auth())
    assert all(
        set(r) == {"schemas", "id", "userName", "active"} for r in excluded.json["Resources"]
    )


def test_attributes_apply_to_the_answers_of_changes(site: Site) -> None:
    body = {"schemas": [CORE], "userName": "rosa", "roles": [{"value": "sleep"}]}
    created = site.call("POST", f"{USERS}?attributes=userName", body, status=201)
    assert created.headers["Location"].endswith("/Users/rosa")
    # The token is shown only when selected: here it was not, and it is shown nowhere.
    assert created.json == {"schemas": [CORE], "id": "rosa", "userName": "rosa"}
    body["userName"] = "sara"
    created = site.call("POST", f"{USERS}?attributes=userName,{EXT}:token", body, status=201)
    assert set(created.json) == {"schemas", "id", "userName", EXT}
    assert created.json["schemas"] == [CORE, EXT]
    site.tokens["sara"] = created.json[EXT]["token"]
    created = site.call("POST", f"{USERS}?excludedAttributes={EXT}", {"userName": "tess"}, 201)
    assert EXT not in created.json and created.json["schemas"] == [CORE]

    replaced = site.call("PUT", f"{USERS}/sara?attributes=roles", {"userName": "sara"}).json
    assert replaced == {"schemas": [CORE], "id": "sara", "roles": []}
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    patched = site.call("PATCH", f"{USERS}/sara?excludedAttributes=meta,roles", patch).json
    assert patched == {"schemas": [CORE], "id": "sara", "userName": "sara", "active": False}


@pytest.mark.parametrize(
    "query, scim_type",
    [
        ("attributes=userName&excludedAttributes=roles", "invalidSyntax"),
        ("attributes=user%20name", "invalidValue"),
        ("attributes=roles.value.x", "invalidValue"),
        ("excludedAttributes=1abc", "invalidValue"),
        ("attributes=%ff", "invalidValue"),
    ],
)
def test_bad_selections_are_refused_before_any_change(
    site: Site, query: str, scim_type: str
) -> None:
    assert_error(site.call("GET", f"{USERS}/alice?{query}", status=400), 400, scim_type)
    assert_error(site.call("GET", f"{USERS}?{query}", status=400), 400, scim_type)
    body = {"userName": "uma"}
    assert_error(site.call("POST", f"{USERS}?{query}", body, status=400), 400, scim_type)
    assert site.users.users.get("uma") is None
    body = {"userName": "alice", "active": False}
    assert_error(site.call("PUT", f"{USERS}/alice?{query}", body, status=400), 400, scim_type)
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    refused = site.call("PATCH", f"{USERS}/alice?{query}", patch, status=400)
    assert_error(refused, 400, scim_type)
    assert site.users.users.get("alice").active


# -- /Users/.search and what is not offered ------------------------------------------------

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def test_search_by_post(site: Site) -> None:
    for name in ("vera", "walt", "xena"):
        site.create(name, externalId=f"idp-{name}")

    def search(**members: Any) -> dict[str, Any]:
        document = site.call("POST", f"{USERS}/.search", {"schemas": [SEARCH], **members}).json
        assert document["schemas"] == [LIST]
        return document

    everything = search()
    assert [r["id"] for r in everything["Resources"]] == ["alice", "root", "vera", "walt", "xena"]
    page = search(startIndex=2, count=2, attributes=["userName"])
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (5, 2, 2)
    assert page["Resources"] == [
        {"schemas": [CORE], "id": n, "userName": n} for n in ("root", "vera")
    ]
    found = search(filter='externalId eq "idp-walt"', excludedAttributes=["meta", "roles"])
    assert found["Resources"] == [
        {
            "schemas": [CORE],
            "id": "walt",
            "externalId": "idp-walt",
            "userName": "walt",
            "active": True,
        }
    ]
    assert search(filter='userName eq "xena"')["totalResults"] == 1


@pytest.mark.parametrize(
    "body, status, scim_type",
    [
        ({"filter": 'userName eq "x"'}, 400, "invalidSyntax"),
        ({"schemas": [PATCH_OP]}, 400, "invalidSyntax"),
        ({"schemas": [SEARCH], "filter": 5}, 400, "invalidFilter"),
        ({"schemas": [SEARCH], "filter": 'name.givenName eq "x"'}, 400, "invalidFilter"),
        ({"schemas": [SEARCH], "attributes": "userName"}, 400, "invalidValue"),
        ({"schemas": [SEARCH], "attributes": [5]}, 400, "invalidValue"),
        (
            {"schemas": [SEARCH], "attributes": ["a"], "excludedAttributes": ["b"]},
            400,
            "invalidSyntax",
        ),
        ({"schemas": [SEARCH], "count": "3"}, 400, "invalidValue"),
        ({"schemas": [SEARCH], "startIndex": True}, 400, "invalidValue"),
        ({"schemas": [SEARCH], "count": 1.5}, 400, "invalidValue"),
        ({"schemas": [SEARCH], "sortBy": "userName"}, 501, None),
        ({"schemas": [SEARCH], "sortOrder": "descending"}, 501, None),
    ],
)
def test_bad_searches(site: Site, body: dict[str, Any], status: int, scim_type: str | None) -> None:
    refused = site.call("POST", f"{USERS}/.search", body, status=status)
    assert_error(refused, status, scim_type)


def test_search_is_post_only(site: Site) -> None:
    for method in ("GET", "DELETE"):
        refused = site.call(method, f"{USERS}/.search", status=405)
        assert refused.headers["Allow"] == "POST"
    refused = site.call("PUT", f"{USERS}/.search", {"userName": "x"}, status=405)
    assert_error(refused, 405)
    assert_error(site.call("POST", f"{USERS}/.search", {}, status=403, who="alice"), 403)


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/scim/v2/Groups"),
        ("POST", "/scim/v2/Groups"),
        ("GET", "/scim/v2/Groups/staff"),
        ("GET", "/scim/v2/Me"),
        ("PATCH", "/scim/v2/Me"),
        ("POST", "/scim/v2/Bulk"),
        ("POST", "/scim/v2/.search"),
        ("GET", f"{USERS}?sortBy=userName"),
        ("GET", f"{USERS}?sortOrder=descending"),
    ],
)
def test_what_is_not_offered_answers_501(site: Site, method: str, path: str) -> None:
    body = {"schemas": [SEARCH]} if method in ("POST", "PATCH") else None
    assert_error(site.call(method, path, body, status=501), 501)
    # Still for admins only.
    assert_error(site.call(method, path, body, status=403, who="alice"), 403)

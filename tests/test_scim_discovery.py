"""SCIM discovery (RFC 7644 §4): /Schemas, /ResourceTypes and /ServiceProviderConfig
publish what the User routes do, for admins only, and refuse what they do not take."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.test_scim import CORE, EXT, LIST, SCIM_TYPE, USERS, Site, assert_error

SCIM = "/scim/v2"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
CONFIG = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
# RFC 7643 §3.1: in every resource, described by no schema.
COMMON = {"schemas", "id", "externalId", "meta"}


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    site = Site(tmp_path, database_url, ALLOW_ANONYMOUS=False)
    yield site
    site.check_no_leaks()


def listed(site: Site, path: str) -> list[dict[str, Any]]:
    response = site.call("GET", path)
    assert response.content_type == SCIM_TYPE
    document = response.json
    assert document["schemas"] == [LIST]
    count = len(document["Resources"])
    assert (document["totalResults"], document["itemsPerPage"], document["startIndex"]) == (
        count,
        count,
        1,
    )
    return list(document["Resources"])


def by_name(attributes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in attributes}


def test_schemas_describe_the_user_opus_keeps(site: Site) -> None:
    schemas = listed(site, f"{SCIM}/Schemas")
    assert [s["id"] for s in schemas] == [CORE, EXT]
    for schema in schemas:
        assert schema["schemas"] == [SCHEMA]
        assert schema["meta"] == {
            "resourceType": "Schema",
            "location": f"{site.settings.BASE_URL}{SCIM}/Schemas/{schema['id']}",
        }
        for attribute in schema["attributes"]:
            assert attribute["description"]
            assert {"type", "multiValued", "required", "mutability", "returned"} <= set(attribute)
    core = by_name(schemas[0]["attributes"])
    assert set(core) == {"userName", "active", "password", "roles"}
    user_name = core["userName"]
    assert (user_name["required"], user_name["mutability"], user_name["uniqueness"]) == (
        True,
        "immutable",
        "server",
    )
    assert user_name["caseExact"] is True  # OPUS names are case-sensitive
    assert (core["password"]["mutability"], core["password"]["returned"]) == ("writeOnly", "never")
    assert core["active"]["type"] == "boolean" and core["active"]["mutability"] == "readWrite"
    roles = core["roles"]
    assert (roles["type"], roles["multiValued"]) == ("complex", True)
    assert [sub["name"] for sub in roles["subAttributes"]] == ["value"]
    extension = by_name(schemas[1]["attributes"])
    assert set(extension) == {"token"}
    assert extension["token"]["mutability"] == "readOnly"


def test_one_schema_by_its_id(site: Site) -> None:
    schemas = listed(site, f"{SCIM}/Schemas")
    for schema in schemas:
        assert site.call("GET", f"{SCIM}/Schemas/{schema['id']}").json == schema
        # URNs compare case-insensitively; a client may escape the colons.
        assert site.call("GET", f"{SCIM}/Schemas/{schema['id'].upper()}").json == schema
        assert site.call("GET", f"{SCIM}/Schemas/{quote(schema['id'], safe='')}").json == schema
    for unknown in ["urn:ietf:params:scim:schemas:core:2.0:Group", "nothing", "%00"]:
        assert_error(site.call("GET", f"{SCIM}/Schemas/{unknown}", status=404), 404)


def test_resource_types_name_the_users_only(site: Site) -> None:
    (user,) = listed(site, f"{SCIM}/ResourceTypes")
    assert user == {
        "schemas": [RESOURCE_TYPE],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": user["description"],
        "schema": CORE,
        "schemaExtensions": [{"schema": EXT, "required": False}],
        "meta": {
            "resourceType": "ResourceType",
            "location": f"{site.settings.BASE_URL}{SCIM}/ResourceTypes/User",
        },
    }
    assert site.call("GET", f"{SCIM}/ResourceTypes/User").json == user
    for unknown in ["Group", "Users", "nothing"]:
        assert_error(site.call("GET", f"{SCIM}/ResourceTypes/{unknown}", status=404), 404)


def test_discovery_takes_no_filter(site: Site) -> None:
    """RFC 7644 §4: a filter would let a client think its conditions were checked."""
    for path in ["Schemas", "ResourceTypes"]:
        refused = site.call("GET", f"{SCIM}/{path}?filter=name%20eq%20%22User%22", status=403)
        assert_error(refused, 403)


@pytest.mark.parametrize(
    "path",
    ["ServiceProviderConfig", "Schemas", f"Schemas/{CORE}", "ResourceTypes", "ResourceTypes/User"],
)
def test_discovery_is_read_only(site: Site, path: str) -> None:
    for method in ["POST", "PUT", "PATCH"]:
        refused = site.call(method, f"{SCIM}/{path}", {"schemas": [SCHEMA]}, status=405)
        assert_error(refused, 405)
        assert refused.headers["Allow"] == "GET"
    refused = site.call("DELETE", f"{SCIM}/{path}", status=405)
    assert refused.headers["Allow"] == "GET"


@pytest.mark.parametrize(
    "path", ["ServiceProviderConfig", "Schemas", f"Schemas/{EXT}", "ResourceTypes/User"]
)
def test_discovery_is_for_admins(site: Site, path: str) -> None:
    assert_error(site.call("GET", f"{SCIM}/{path}", status=403, who="alice"), 403)
    refused = site.call("GET", f"{SCIM}/{path}", status=401, who=None)
    assert "Basic" in refused.headers["WWW-Authenticate"]


def test_the_schema_is_what_the_routes_do(site: Site) -> None:
    """Every attribute a user shows is common or published; every attribute a client
    may write is accepted; what is published read-only is not taken from a client."""
    core, extension = (by_name(s["attributes"]) for s in listed(site, f"{SCIM}/Schemas"))
    values = {
        "userName": "yara",
        "active": False,
        "password": "a long enough password",
        "roles": [{"value": "sleep"}],
        "externalId": "idp-yara",
    }
    writable = {n for n, a in core.items() if a["mutability"] != "readOnly"} | {"externalId"}
    assert writable == set(values)
    given = {"schemas": [CORE, EXT], EXT: {"token": "chosen-by-the-client"}, **values}
    created = site.call("POST", USERS, given, status=201).json
    site.tokens["yara"] = created[EXT]["token"]
    assert created[EXT]["token"] != "chosen-by-the-client"
    for name, value in values.items():
        if core.get(name, {}).get("returned") == "never":
            assert name not in created
        else:
            assert created[name] == value
    shown = site.call("GET", f"{USERS}/yara").json
    assert set(shown) - COMMON <= {n for n, a in core.items() if a["returned"] != "never"}
    assert set(created[EXT]) <= set(extension)
    # What no schema publishes is refused, so a typo never goes unnoticed.
    refused = site.call("POST", USERS, {"userName": "zoe", "emails": []}, status=400)
    assert_error(refused, 400, "invalidValue")


def test_the_configuration_says_what_answers_501(site: Site) -> None:
    config = site.call("GET", f"{SCIM}/ServiceProviderConfig").json
    assert config["schemas"] == [CONFIG]
    assert config["meta"]["location"] == f"{site.settings.BASE_URL}{SCIM}/ServiceProviderConfig"
    assert config["bulk"]["supported"] is False
    assert_error(site.call("POST", f"{SCIM}/Bulk", {"Operations": []}, status=501), 501)
    assert config["sort"]["supported"] is False
    assert_error(site.call("GET", f"{USERS}?sortBy=userName", status=501), 501)
    assert config["etag"]["supported"] is False
    assert "ETag" not in site.call("GET", f"{USERS}/alice").headers
    assert config["patch"]["supported"] is True
    assert config["changePassword"]["supported"] is True
    assert config["filter"] == {"supported": True, "maxResults": 1000}

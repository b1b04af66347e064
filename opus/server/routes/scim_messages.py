"""SCIM 2.0 messages (RFC 7643 and 7644): errors, and reading what clients send.

The SCIM tree (scim.py) answers every request with ``application/scim+json``, errors
included: a ``ScimError`` is a SCIM Error message with its HTTP status. The readers
here check a request's JSON body, attribute names and values, filters and paging,
refusing what OPUS does not support with the SCIM error type (RFC 7644 §3.12) that
says so. PATCH operations are read in scim_patch.py, attribute selection in
scim_attributes.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import bottle

from opus.core.errors import OpusError
from opus.server.auth import UserError, check_roles

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
OPUS_USER = "urn:opus:params:scim:schemas:extension:2.0:User"
TOKEN_PATH = f"{OPUS_USER}:token"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SERVICE_PROVIDER_CONFIG = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"

SCIM_CONTENT_TYPE = "application/scim+json"
JSON_MEDIA_TYPES = {"application/scim+json", "application/json"}
MAX_BODY = 1024 * 1024
MAX_COUNT = 1000
MAX_DETAIL = 300
# An identity provider's identifiers are short (GUIDs, database keys); this bounds the
# column without refusing any of them.
MAX_EXTERNAL_ID = 1024

# The filters OPUS answers (what provisioning clients send before creating a user, to
# find it by its name or by their own id for it); attribute names and operators are
# case-insensitive (RFC 7644 §3.4.2.2).
EQUALITY_FILTER = re.compile(
    r"\s*(?:urn:ietf:params:scim:schemas:core:2\.0:User:)?(userName|externalId)\s+eq\s+"
    r'"((?:[^"\\]|\\.)*)"\s*',
    re.IGNORECASE,
)
INTEGER = re.compile(r"[+-]?[0-9]{1,9}")
# Read-only attributes a client may send back (a PUT of what GET gave): ignored.
READ_ONLY = {"schemas", "id", "meta", OPUS_USER.lower()}


class ScimError(OpusError):
    """A refused SCIM request: answered as a SCIM Error message with ``status``."""

    headers: dict[str, str]

    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail if len(detail) <= MAX_DETAIL else detail[:MAX_DETAIL] + "…"
        self.scim_type = scim_type
        self.headers = headers or {}

    def response(self) -> bottle.HTTPResponse:
        body: dict[str, Any] = {"schemas": [ERROR], "status": str(self.status)}
        if self.scim_type:
            body["scimType"] = self.scim_type
        body["detail"] = self.detail
        return scim_json(body, self.status, self.headers)


def scim_json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> bottle.HTTPResponse:
    # no-store: these answers describe accounts, and two of them carry a fresh token.
    all_headers = {"Content-Type": SCIM_CONTENT_TYPE, "Cache-Control": "no-store"}
    all_headers.update(headers or {})
    return bottle.HTTPResponse(body=json.dumps(body), status=status, headers=all_headers)


# -- reading requests ----------------------------------------------------------------


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def read_json(request: bottle.BaseRequest) -> dict[str, Any]:
    """The request's JSON object (415, 413 or 400 when it is not one)."""
    media_type = request.content_type.split(";", 1)[0].strip().lower()
    if media_type not in JSON_MEDIA_TYPES:
        raise ScimError(415, "the body must be application/scim+json or application/json")
    if request.content_length > MAX_BODY:
        raise ScimError(413, f"request body larger than {MAX_BODY} bytes")
    raw = request.body.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ScimError(413, f"request body larger than {MAX_BODY} bytes")
    try:
        document = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ScimError(400, "the body is not valid JSON", "invalidSyntax") from None
    if not isinstance(document, dict):
        raise ScimError(400, "the body must be a JSON object", "invalidSyntax")
    return document


def unprefixed(path: str) -> str:
    """An attribute name or path without the core User schema prefix."""
    path = path.strip()
    prefix = CORE_USER + ":"
    return path[len(prefix) :] if path.lower().startswith(prefix.lower()) else path


def attribute_name(name: str) -> str:
    """An attribute name or path, lower-cased, without the core User schema prefix."""
    return unprefixed(name).lower()


def attributes(document: dict[str, Any]) -> dict[str, Any]:
    """A JSON object's members by attribute name (case-insensitive, RFC 7643 §2.1)."""
    result: dict[str, Any] = {}
    for key, value in document.items():
        name = attribute_name(key)
        if name in result:
            raise ScimError(400, f"attribute {key!r} given more than once", "invalidSyntax")
        result[name] = value
    return result


def check_schemas(values: dict[str, Any], required: str, optional: bool) -> None:
    schemas = values.get("schemas")
    if schemas is None and optional:
        return
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise ScimError(400, "schemas must be a list of schema URIs", "invalidSyntax")
    if required.lower() not in {s.lower() for s in schemas}:
        raise ScimError(400, f"schemas must include {required}", "invalidSyntax")


def user_name_of(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ScimError(400, "userName is required and must be a string", "invalidValue")
    return value


def active_of(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ScimError(400, "active must be true or false", "invalidValue")
    return value


def external_id_of(value: Any) -> str | None:
    """An ``externalId`` (null: none); one PostgreSQL text can hold (no NUL)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_EXTERNAL_ID:
        raise ScimError(
            400,
            f"externalId must be a string of 1 to {MAX_EXTERNAL_ID} characters",
            "invalidValue",
        )
    if "\x00" in value:
        raise ScimError(400, "externalId must not contain NUL", "invalidValue")
    return value


def password_of(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ScimError(400, "password must be a non-empty string", "invalidValue")
    return value


def roles_of(value: Any) -> list[str]:
    """Role names from a SCIM ``roles`` value: a list of ``{"value": name}`` (null: none)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScimError(400, 'roles must be a list of {"value": role}', "invalidValue")
    roles = []
    for item in value:
        role = attributes(item).get("value") if isinstance(item, dict) else None
        if not isinstance(role, str):
            raise ScimError(400, 'roles must be a list of {"value": role}', "invalidValue")
        roles.append(role)
    try:
        return list(check_roles(roles))
    except UserError as exc:
        raise ScimError(400, str(exc), "invalidValue") from None


def json_string(escaped: str, what: str, scim_type: str) -> str:
    """The value of a double-quoted SCIM string literal's contents (JSON escapes)."""
    try:
        return str(json.loads(f'"{escaped}"'))
    except ValueError:
        raise ScimError(400, f"unreadable string in {what}", scim_type) from None


def parse_filter(text: str) -> tuple[str, str]:
    """The attribute (``username`` or ``externalid``) and value of a ``userName eq "name"``
    or ``externalId eq "id"`` filter (400 invalidFilter for others)."""
    match = EQUALITY_FILTER.fullmatch(text)
    if match is None:
        raise ScimError(
            400,
            'the only filters supported are userName eq "name" and externalId eq "id"',
            "invalidFilter",
        )
    return match.group(1).lower(), json_string(match.group(2), "filter", "invalidFilter")


def query_integer(query: bottle.FormsDict, name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not INTEGER.fullmatch(raw.strip()):
        raise ScimError(400, f"{name} must be an integer", "invalidValue")
    return int(raw)


def json_integer(values: dict[str, Any], name: str, default: int) -> int:
    """An integer member of a request body (``name`` lower-cased), or ``default``."""
    raw = values.get(name.lower())
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int) or abs(raw) >= 10**9:
        raise ScimError(400, f"{name} must be an integer", "invalidValue")
    return raw


def string_list(value: Any, name: str) -> list[str]:
    """A list of strings of a request body (null: none)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ScimError(400, f"{name} must be a list of strings", "invalidValue")
    return value

"""SCIM 2.0 messages (RFC 7643 and 7644): errors, and reading what clients send.

The SCIM tree (scim.py) answers every request with ``application/scim+json``, errors
included: a ``ScimError`` is a SCIM Error message with its HTTP status. The readers
here check a request's JSON body, attribute names and values, filters and PATCH
operations, refusing what OPUS does not support with the SCIM error type that says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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
SERVICE_PROVIDER_CONFIG = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"

SCIM_CONTENT_TYPE = "application/scim+json"
JSON_MEDIA_TYPES = {"application/scim+json", "application/json"}
MAX_BODY = 1024 * 1024
MAX_COUNT = 1000
MAX_DETAIL = 300

# The one filter OPUS answers (what provisioning clients send before creating a user);
# attribute names and operators are case-insensitive (RFC 7644 §3.4.2.2).
USER_NAME_FILTER = re.compile(
    r'\s*(?:urn:ietf:params:scim:schemas:core:2\.0:User:)?userName\s+eq\s+"((?:[^"\\]|\\.)*)"\s*',
    re.IGNORECASE,
)
ROLE_VALUE_PATH = re.compile(r'roles\s*\[\s*value\s+eq\s+"((?:[^"\\]|\\.)*)"\s*\]', re.IGNORECASE)
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


def parse_filter(text: str) -> str:
    """The user name of a ``userName eq "name"`` filter (400 invalidFilter for others)."""
    match = USER_NAME_FILTER.fullmatch(text)
    if match is None:
        raise ScimError(400, 'the only filter supported is userName eq "name"', "invalidFilter")
    return json_string(match.group(1), "filter", "invalidFilter")


def query_integer(query: bottle.FormsDict, name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not INTEGER.fullmatch(raw.strip()):
        raise ScimError(400, f"{name} must be an integer", "invalidValue")
    return int(raw)


# -- PATCH ---------------------------------------------------------------------------


@dataclass
class Changes:
    """What a PATCH request does to a user, gathered before anything is written."""

    roles: list[str]
    active: bool
    password: str | None = None
    rotate_token: bool = False


def patch_attribute(changes: Changes, op: str, name: str, value: Any) -> None:
    """Apply an add or replace of one attribute (``name`` as from attribute_name)."""
    if name == "active":
        changes.active = active_of(value)
    elif name == "roles":
        roles = roles_of(value)
        changes.roles = list(dict.fromkeys(changes.roles + roles)) if op == "add" else roles
    elif name == "password":
        changes.password = password_of(value)
    elif name == TOKEN_PATH.lower():
        changes.rotate_token = True  # any value: the server makes the token
    elif name == OPUS_USER.lower():
        if not isinstance(value, dict):
            raise ScimError(400, f"{OPUS_USER} must be an object", "invalidValue")
        for key in attributes(value):
            if key != "token":
                raise ScimError(400, f"{OPUS_USER} has no attribute {key!r}", "invalidPath")
            changes.rotate_token = True
    else:
        raise ScimError(
            400,
            f"attribute {name!r} cannot be changed (active, roles, password, {TOKEN_PATH})",
            "invalidPath",
        )


def patch_operation(changes: Changes, operation: Any) -> None:
    if not isinstance(operation, dict):
        raise ScimError(400, "each operation must be an object", "invalidSyntax")
    values = attributes(operation)
    op = values.get("op")
    op = op.lower() if isinstance(op, str) else op
    if op not in ("add", "replace", "remove"):
        raise ScimError(400, "op must be add, replace or remove", "invalidSyntax")
    path = values.get("path")
    if path is not None and not isinstance(path, str):
        raise ScimError(400, "path must be a string", "invalidPath")
    value = values.get("value")
    if op == "remove":
        if path is None:
            raise ScimError(400, "remove needs a path", "noTarget")
        name = unprefixed(path)
        role = ROLE_VALUE_PATH.fullmatch(name)
        if name.lower() == "roles":
            changes.roles = []
        elif role is not None:
            removed = json_string(role.group(1), "path", "invalidPath")
            changes.roles = [r for r in changes.roles if r != removed]
        else:
            raise ScimError(400, "only roles can be removed", "invalidPath")
    elif path is None:
        # No path: the value holds the attributes to add or replace (RFC 7644 §3.5.2).
        if not isinstance(value, dict):
            raise ScimError(400, "an operation without path needs an object value", "invalidValue")
        for name, item in attributes(value).items():
            patch_attribute(changes, op, name, item)
    else:
        patch_attribute(changes, op, attribute_name(path), value)

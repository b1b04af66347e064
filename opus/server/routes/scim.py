"""SCIM 2.0 user management at /scim/v2/Users (RFC 7643 and 7644), for admins only.

A SCIM User is an OPUS user: ``id`` and ``userName`` are both the user name, ``active``
and ``roles`` are the user's flag and roles, ``password`` (write-only) sets the web
password. The API token is shown only in the answer that made it: the creation of the
user and a token rotation (PATCH of the OPUS extension attribute ``token``). Token and
password hashes never leave the server.

Every answer is ``application/scim+json``, errors included (a SCIM Error message with
the HTTP status), except the 401 of a request without valid credentials, which comes
from the Authenticator as everywhere else. Callers who are not admins get 403.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import bottle

from opus.server import auth
from opus.server.storage import User
from opus.server.uwsxml import format_time

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


class ScimError(Exception):
    """A refused SCIM request: answered as a SCIM Error message with ``status``."""

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


def scim_answers(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Route decorator: a ScimError becomes its SCIM Error answer."""

    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except ScimError as exc:
            return exc.response()

    return wrapper


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
        return list(auth.check_roles(roles))
    except auth.UserError as exc:
        raise ScimError(400, str(exc), "invalidValue") from None


def json_string(escaped: str, what: str, scim_type: str) -> str:
    """The value of a double-quoted SCIM string literal's contents (JSON escapes)."""
    try:
        return json.loads(f'"{escaped}"')
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


# -- routes --------------------------------------------------------------------------


def install(app: bottle.Bottle, users: auth.UserManager, authn: auth.Authenticator) -> None:
    """Register the SCIM routes on ``app``."""
    request = bottle.request
    base = f"{authn.settings.BASE_URL}/scim/v2"

    def admin() -> auth.Caller:
        who = authn.caller(request)  # 401 without valid credentials (unless anonymous)
        if not who.is_admin:
            raise ScimError(403, "user management is for admins only")
        return who

    def location(name: str) -> str:
        return f"{base}/Users/{quote(name, safe='@')}"

    def resource(user: User, token: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schemas": [CORE_USER],
            "id": user.name,
            "userName": user.name,
            "active": user.active,
            "roles": [{"value": role} for role in user.roles],
            "meta": {
                "resourceType": "User",
                "created": format_time(user.creation_time),
                "location": location(user.name),
            },
        }
        if token is not None:
            body["schemas"].append(OPUS_USER)
            body[OPUS_USER] = {"token": token}
        return body

    def not_found(name: str) -> ScimError:
        return ScimError(404, f"no user {name!r}")

    def load(name: str) -> User:
        user = users.users.get(name)
        if user is None:
            raise not_found(name)
        return user

    def store(
        name: str,
        roles: list[str] | None = None,
        active: bool | None = None,
        password: str | None = None,
        rotate_token: bool = False,
    ) -> tuple[User, str | None]:
        """Write the changes; the user as stored after them and the new token if any."""
        try:
            if roles is not None:
                users.set_roles(name, roles)
            if active is not None:
                users.set_active(name, active)
            if password is not None:
                users.set_password(name, password)
            token = users.rotate_token(name) if rotate_token else None
        except auth.UserError:
            raise not_found(name) from None  # deleted meanwhile
        return load(name), token

    def writable(document: dict[str, Any]) -> dict[str, Any]:
        """The attributes of a POST or PUT body, unsupported ones refused."""
        values = attributes(document)
        check_schemas(values, CORE_USER, optional=True)
        for name in values:
            if name not in READ_ONLY | {"username", "active", "roles", "password"}:
                raise ScimError(
                    400,
                    f"attribute {name!r} is not supported (userName, active, roles, password)",
                    "invalidValue",
                )
        return values

    @app.get("/scim/v2/Users")
    @scim_answers
    def list_users():
        admin()
        try:
            query = request.query.decode()
        except (UnicodeError, ValueError):
            raise ScimError(400, "unreadable query string", "invalidValue") from None
        start = max(query_integer(query, "startIndex", 1), 1)
        count = min(max(query_integer(query, "count", MAX_COUNT), 0), MAX_COUNT)
        text = query.get("filter")
        if text is not None:
            match = users.users.get(parse_filter(text))
            matching = [] if match is None else [match]
        else:
            matching = users.users.all()
        page = matching[start - 1 : start - 1 + count]
        return scim_json(
            {
                "schemas": [LIST_RESPONSE],
                "totalResults": len(matching),
                "startIndex": start,
                "itemsPerPage": len(page),
                "Resources": [resource(user) for user in page],
            }
        )

    @app.post("/scim/v2/Users")
    @scim_answers
    def create_user():
        admin()
        values = writable(read_json(request))
        name = user_name_of(values.get("username"))
        roles = roles_of(values.get("roles"))
        active = True if values.get("active") is None else active_of(values["active"])
        password = None if values.get("password") is None else password_of(values["password"])
        if users.users.get(name) is not None:
            raise ScimError(409, f"user {name!r} already exists", "uniqueness")
        try:
            user, token = users.add(name, roles, password)
        except auth.UserError as exc:
            if users.users.get(name) is not None:  # created meanwhile
                raise ScimError(409, f"user {name!r} already exists", "uniqueness") from None
            raise ScimError(400, str(exc), "invalidValue") from None
        if not active:
            user, _ = store(name, active=False)
        return scim_json(resource(user, token), 201, {"Location": location(name)})

    @app.get("/scim/v2/Users/<user_id>")
    @scim_answers
    def get_user(user_id: str):
        admin()
        return scim_json(resource(load(user_id)))

    @app.put("/scim/v2/Users/<user_id>")
    @scim_answers
    def replace_user(user_id: str):
        admin()
        document = read_json(request)
        user = load(user_id)
        values = writable(document)
        if user_name_of(values.get("username")) != user.name:
            raise ScimError(400, "userName cannot be changed", "mutability")
        # A replacement: omitted attributes take their creation defaults, except the
        # write-only password, which no client can read back and send again.
        roles = roles_of(values.get("roles"))
        active = True if values.get("active") is None else active_of(values["active"])
        password = None if values.get("password") is None else password_of(values["password"])
        user, _ = store(user.name, roles, active, password)
        return scim_json(resource(user))

    @app.route("/scim/v2/Users/<user_id>", method="PATCH")
    @scim_answers
    def patch_user(user_id: str):
        admin()
        values = attributes(read_json(request))
        check_schemas(values, PATCH_OP, optional=False)
        operations = values.get("operations")
        if not isinstance(operations, list) or not operations:
            raise ScimError(400, "Operations must be a non-empty list", "invalidSyntax")
        user = load(user_id)
        changes = Changes(roles=list(user.roles), active=user.active)
        for operation in operations:
            patch_operation(changes, operation)
        user, token = store(
            user.name,
            roles=changes.roles if changes.roles != list(user.roles) else None,
            active=changes.active if changes.active != user.active else None,
            password=changes.password,
            rotate_token=changes.rotate_token,
        )
        return scim_json(resource(user, token))

    @app.delete("/scim/v2/Users/<user_id>")
    @scim_answers
    def delete_user(user_id: str):
        admin()
        try:
            users.delete(user_id)
        except auth.UserError:
            raise not_found(user_id) from None
        return bottle.HTTPResponse(status=204, headers={"Cache-Control": "no-store"})

    @app.get("/scim/v2/ServiceProviderConfig")
    @scim_answers
    def service_provider_config():
        admin()
        return scim_json(
            {
                "schemas": [SERVICE_PROVIDER_CONFIG],
                "patch": {"supported": True},
                "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
                "filter": {"supported": True, "maxResults": MAX_COUNT},
                "changePassword": {"supported": True},
                "sort": {"supported": False},
                "etag": {"supported": False},
                "authenticationSchemes": [
                    {
                        "type": "httpbasic",
                        "name": "HTTP Basic",
                        "description": "name:token of an OPUS user with the admin role",
                    },
                    {
                        "type": "oauthbearertoken",
                        "name": "Bearer token",
                        "description": "the API token of an OPUS user with the admin role",
                    },
                ],
                "meta": {
                    "resourceType": "ServiceProviderConfig",
                    "location": f"{base}/ServiceProviderConfig",
                },
            }
        )

    # Everything else under /scim answers SCIM errors too (after the routes above).
    allowed = {
        "v2/Users": "GET, POST",
        "v2/ServiceProviderConfig": "GET",
    }

    @app.route("/scim/<rest:path>", method=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @scim_answers
    def other(rest: str):
        admin()
        methods = allowed.get(rest)
        if methods is None and re.fullmatch(r"v2/Users/[^/]+", rest):
            methods = "GET, PUT, PATCH, DELETE"
        if methods is not None:
            raise ScimError(405, f"{request.method} not allowed here", headers={"Allow": methods})
        raise ScimError(404, "no such SCIM endpoint")

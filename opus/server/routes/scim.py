"""SCIM 2.0 user management at /scim/v2/Users (RFC 7643 and 7644), for admins only.

A SCIM User is an OPUS user: ``id`` and ``userName`` are both the user name, ``active``
and ``roles`` are the user's flag and roles, ``password`` (write-only) sets the web
password. The API token is shown only in the answer that made it: the creation of the
user and a token rotation (PATCH of the OPUS extension attribute ``token``). Token and
password hashes never leave the server.

Every answer is ``application/scim+json``, errors included (a SCIM Error message with
the HTTP status, scim_messages.py), the 401 of a request without valid credentials too
(with its WWW-Authenticate challenge). Callers who are not admins get 403.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

import bottle

from opus.core.access import Caller
from opus.core.errors import OpusError
from opus.core.records import User
from opus.core.times import format_time
from opus.server.auth import Authenticator, UserError, UserManager
from opus.server.routes.common import caller, error_plugin, same_origin_plugin
from opus.server.routes.scim_messages import (
    CORE_USER,
    LIST_RESPONSE,
    MAX_COUNT,
    OPUS_USER,
    PATCH_OP,
    READ_ONLY,
    SERVICE_PROVIDER_CONFIG,
    Changes,
    ScimError,
    active_of,
    attributes,
    check_schemas,
    parse_filter,
    password_of,
    patch_operation,
    query_integer,
    read_json,
    roles_of,
    scim_json,
    user_name_of,
)

log = logging.getLogger("opus.scim")


def scim_error(exc: OpusError) -> bottle.HTTPResponse:
    """Any refusal as a SCIM Error message: a ScimError as it is, another domain error
    (the Authenticator's 401, with its challenge) with its status and headers."""
    if not isinstance(exc, ScimError):
        exc = ScimError(exc.status, str(exc), headers=dict(exc.headers))
    return exc.response()


def scim_fault() -> bottle.HTTPResponse:
    """A server fault, logged, answered as a SCIM Error message."""
    log.exception("%s %s failed", bottle.request.method, bottle.request.path)
    return ScimError(500, "internal server error").response()


def tree(users: UserManager, authn: Authenticator) -> bottle.Bottle:
    """The SCIM tree (errors as SCIM Error messages)."""
    app = bottle.Bottle()
    app.install(error_plugin(scim_error, scim_fault))
    app.install(same_origin_plugin(authn.settings.BASE_URL))
    request = bottle.request
    base = f"{authn.settings.BASE_URL}/scim/v2"

    def admin() -> Caller:
        who = caller(authn)  # 401 without valid credentials (unless anonymous)
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
        user = users.get(name)
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
        except UserError:
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
    def list_users() -> bottle.HTTPResponse:
        admin()
        try:
            query = request.query.decode()
        except (UnicodeError, ValueError):
            raise ScimError(400, "unreadable query string", "invalidValue") from None
        start = max(query_integer(query, "startIndex", 1), 1)
        count = min(max(query_integer(query, "count", MAX_COUNT), 0), MAX_COUNT)
        text = query.get("filter")
        if text is not None:
            match = users.get(parse_filter(text))
            matching = [] if match is None else [match]
        else:
            matching = users.all()
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
    def create_user() -> bottle.HTTPResponse:
        admin()
        values = writable(read_json(request))
        name = user_name_of(values.get("username"))
        roles = roles_of(values.get("roles"))
        active = True if values.get("active") is None else active_of(values["active"])
        password = None if values.get("password") is None else password_of(values["password"])
        if users.get(name) is not None:
            raise ScimError(409, f"user {name!r} already exists", "uniqueness")
        try:
            user, token = users.add(name, roles, password)
        except UserError as exc:
            if users.get(name) is not None:  # created meanwhile
                raise ScimError(409, f"user {name!r} already exists", "uniqueness") from None
            raise ScimError(400, str(exc), "invalidValue") from None
        if not active:
            user, _ = store(name, active=False)
        return scim_json(resource(user, token), 201, {"Location": location(name)})

    @app.get("/scim/v2/Users/<user_id>")
    def get_user(user_id: str) -> bottle.HTTPResponse:
        admin()
        return scim_json(resource(load(user_id)))

    @app.put("/scim/v2/Users/<user_id>")
    def replace_user(user_id: str) -> bottle.HTTPResponse:
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
    def patch_user(user_id: str) -> bottle.HTTPResponse:
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
    def delete_user(user_id: str) -> bottle.HTTPResponse:
        admin()
        try:
            users.delete(user_id)
        except UserError:
            raise not_found(user_id) from None
        return bottle.HTTPResponse(status=204, headers={"Cache-Control": "no-store"})

    @app.get("/scim/v2/ServiceProviderConfig")
    def service_provider_config() -> bottle.HTTPResponse:
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
    def other(rest: str) -> bottle.HTTPResponse:
        admin()
        methods = allowed.get(rest)
        if methods is None and re.fullmatch(r"v2/Users/[^/]+", rest):
            methods = "GET, PUT, PATCH, DELETE"
        if methods is not None:
            raise ScimError(405, f"{request.method} not allowed here", headers={"Allow": methods})
        raise ScimError(404, "no such SCIM endpoint")

    return app

"""SCIM 2.0 user management at /scim/v2 (RFC 7643 and 7644), for admins only.

A SCIM User is an OPUS user: ``id`` and ``userName`` are both the user name, ``active``
and ``roles`` are the user's flag and roles, ``externalId`` is kept as the identity
provider gave it, ``password`` (write-only) sets the web password. The API token is
shown only in the answer that made it: the creation of the user and a token rotation
(PATCH of the OPUS extension attribute ``token``). Token and password hashes never
leave the server. Discovery (scim_schemas.py) publishes exactly that; every answer
that carries users shows the attributes the request selected (scim_attributes.py).
What OPUS does not offer (groups, /Me, bulk, sorting, searches across resource types)
answers 501, as the service provider configuration says.

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
from opus.server.routes import scim_schemas
from opus.server.routes.common import caller, error_plugin, same_origin_plugin
from opus.server.routes.scim_attributes import Selection
from opus.server.routes.scim_messages import (
    CORE_USER,
    LIST_RESPONSE,
    MAX_COUNT,
    OPUS_USER,
    PATCH_OP,
    READ_ONLY,
    SEARCH_REQUEST,
    ScimError,
    active_of,
    attributes,
    check_schemas,
    external_id_of,
    json_integer,
    parse_filter,
    password_of,
    query_integer,
    read_json,
    roles_of,
    scim_json,
    string_list,
    user_name_of,
)
from opus.server.routes.scim_patch import Changes, patch_operation

log = logging.getLogger("opus.scim")

WRITABLE = {"username", "active", "roles", "password", "externalid"}
# Endpoints of SCIM that OPUS does not offer (RFC 7644 §3.2, §3.4.3, §3.7, §3.11).
NOT_OFFERED = re.compile(r"v2/(?:(Groups|Me)(?:/.*)?|(Bulk)|(\.search))", re.DOTALL)
# The methods of each endpoint, for the 405 of another one.
ENDPOINT_METHODS = [
    (re.compile(r"v2/Users"), "GET, POST"),
    (re.compile(r"v2/Users/\.search"), "POST"),
    (re.compile(r"v2/Users/[^/]+"), "GET, PUT, PATCH, DELETE"),
    (re.compile(r"v2/(?:ServiceProviderConfig|Schemas|ResourceTypes)(?:/[^/]+)?"), "GET"),
]
SEARCH = ".search"


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


def query() -> bottle.FormsDict:
    """The request's query parameters (400 when they are not UTF-8)."""
    try:
        return bottle.request.query.decode()
    except (UnicodeError, ValueError):
        raise ScimError(400, "unreadable query string", "invalidValue") from None


def query_selection() -> Selection:
    """The ``attributes`` / ``excludedAttributes`` of the request's query string."""
    parameters = query()
    return Selection.of(parameters.getall("attributes"), parameters.getall("excludedAttributes"))


def refuse_sorting(present: bool) -> None:
    if present:
        raise ScimError(501, "sorting is not offered (see /ServiceProviderConfig)")


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
        body: dict[str, Any] = {"schemas": [CORE_USER], "id": user.name}
        if user.external_id is not None:
            body["externalId"] = user.external_id
        body.update(
            {
                "userName": user.name,
                "active": user.active,
                "roles": [{"value": role} for role in user.roles],
                "meta": {
                    "resourceType": "User",
                    "created": format_time(user.creation_time),
                    "location": location(user.name),
                },
            }
        )
        if token is not None:
            body["schemas"].append(OPUS_USER)
            body[OPUS_USER] = {"token": token}
        return body

    def answer(
        user: User,
        token: str | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> bottle.HTTPResponse:
        """One user, as the request's attribute selection shows it."""
        return scim_json(query_selection().apply(resource(user, token)), status, headers)

    def not_found(name: str) -> ScimError:
        return ScimError(404, f"no user {name!r}")

    def user_path(user_id: str) -> str:
        # /Users/.search is an endpoint, not a user (no user name starts with a dot).
        if user_id == SEARCH:
            raise ScimError(405, f"{request.method} not allowed here", headers={"Allow": "POST"})
        return user_id

    def load(name: str) -> User:
        user = users.get(name)
        if user is None:
            raise not_found(name)
        return user

    def store(name: str, changes: Changes, before: User) -> tuple[User, str | None]:
        """Write what differs from ``before``; the user as stored after it and the
        new token if any."""
        try:
            if changes.roles != list(before.roles):
                users.set_roles(name, changes.roles)
            if changes.active != before.active:
                users.set_active(name, changes.active)
            if changes.external_id != before.external_id:
                users.set_external_id(name, changes.external_id)
            if changes.password is not None:
                users.set_password(name, changes.password)
            elif changes.remove_password and before.password_hash is not None:
                users.remove_password(name)
            token = users.rotate_token(name) if changes.rotate_token else None
            if changes.revoke_token:
                users.rotate_token(name)  # nobody is given the new one
        except UserError:
            raise not_found(name) from None  # deleted meanwhile
        return load(name), token

    def writable(document: dict[str, Any]) -> dict[str, Any]:
        """The attributes of a POST or PUT body, unsupported ones refused."""
        values = attributes(document)
        check_schemas(values, CORE_USER, optional=True)
        for name in values:
            if name not in READ_ONLY | WRITABLE:
                raise ScimError(
                    400,
                    f"attribute {name!r} is not supported "
                    "(userName, externalId, active, roles, password)",
                    "invalidValue",
                )
        return values

    def listing(
        text: str | None, start: int, count: int, selection: Selection
    ) -> bottle.HTTPResponse:
        """A ListResponse of the users ``text`` (a filter, or None for all) matches."""
        start = max(start, 1)
        count = min(max(count, 0), MAX_COUNT)
        if text is None:
            matching = users.all()
        else:
            name, value = parse_filter(text)
            if name == "externalid":
                matching = users.with_external_id(value)
            else:
                match = users.get(value)
                matching = [] if match is None else [match]
        page = matching[start - 1 : start - 1 + count]
        return scim_json(
            {
                "schemas": [LIST_RESPONSE],
                "totalResults": len(matching),
                "startIndex": start,
                "itemsPerPage": len(page),
                "Resources": [selection.apply(resource(user)) for user in page],
            }
        )

    @app.get("/scim/v2/Users")
    def list_users() -> bottle.HTTPResponse:
        admin()
        parameters = query()
        refuse_sorting("sortBy" in parameters or "sortOrder" in parameters)
        return listing(
            parameters.get("filter"),
            query_integer(parameters, "startIndex", 1),
            query_integer(parameters, "count", MAX_COUNT),
            query_selection(),
        )

    @app.post("/scim/v2/Users/.search")
    def search_users() -> bottle.HTTPResponse:
        admin()
        values = attributes(read_json(request))
        check_schemas(values, SEARCH_REQUEST, optional=False)
        refuse_sorting(values.get("sortby") is not None or values.get("sortorder") is not None)
        text = values.get("filter")
        if text is not None and not isinstance(text, str):
            raise ScimError(400, "filter must be a string", "invalidFilter")
        selection = Selection.of(
            string_list(values.get("attributes"), "attributes"),
            string_list(values.get("excludedattributes"), "excludedAttributes"),
        )
        return listing(
            text,
            json_integer(values, "startIndex", 1),
            json_integer(values, "count", MAX_COUNT),
            selection,
        )

    @app.post("/scim/v2/Users")
    def create_user() -> bottle.HTTPResponse:
        admin()
        values = writable(read_json(request))
        name = user_name_of(values.get("username"))
        roles = roles_of(values.get("roles"))
        active = True if values.get("active") is None else active_of(values["active"])
        password = None if values.get("password") is None else password_of(values["password"])
        external_id = external_id_of(values.get("externalid"))
        query_selection()  # a bad selection is refused before anything is written
        if users.get(name) is not None:
            raise ScimError(409, f"user {name!r} already exists", "uniqueness")
        try:
            user, token = users.add(name, roles, password, external_id)
        except UserError as exc:
            if users.get(name) is not None:  # created meanwhile
                raise ScimError(409, f"user {name!r} already exists", "uniqueness") from None
            raise ScimError(400, str(exc), "invalidValue") from None
        if not active:
            changes = Changes(name, list(user.roles), False, user.external_id)
            user, _ = store(name, changes, user)
        return answer(user, token, 201, {"Location": location(name)})

    @app.get("/scim/v2/Users/<user_id>")
    def get_user(user_id: str) -> bottle.HTTPResponse:
        admin()
        return answer(load(user_path(user_id)))

    @app.put("/scim/v2/Users/<user_id>")
    def replace_user(user_id: str) -> bottle.HTTPResponse:
        admin()
        document = read_json(request)
        user = load(user_path(user_id))
        values = writable(document)
        if user_name_of(values.get("username")) != user.name:
            raise ScimError(400, "userName cannot be changed", "mutability")
        # A replacement: omitted attributes take their creation defaults, except the
        # write-only password, which no client can read back and send again.
        changes = Changes(
            name=user.name,
            roles=roles_of(values.get("roles")),
            active=True if values.get("active") is None else active_of(values["active"]),
            external_id=external_id_of(values.get("externalid")),
            password=None if values.get("password") is None else password_of(values["password"]),
        )
        query_selection()
        user, _ = store(user.name, changes, user)
        return answer(user)

    @app.route("/scim/v2/Users/<user_id>", method="PATCH")
    def patch_user(user_id: str) -> bottle.HTTPResponse:
        admin()
        values = attributes(read_json(request))
        check_schemas(values, PATCH_OP, optional=False)
        operations = values.get("operations")
        if not isinstance(operations, list) or not operations:
            raise ScimError(400, "Operations must be a non-empty list", "invalidSyntax")
        user = load(user_path(user_id))
        changes = Changes(user.name, list(user.roles), user.active, user.external_id)
        for operation in operations:
            patch_operation(changes, operation)
        query_selection()
        user, token = store(user.name, changes, user)
        return answer(user, token)

    @app.delete("/scim/v2/Users/<user_id>")
    def delete_user(user_id: str) -> bottle.HTTPResponse:
        admin()
        try:
            users.delete(user_path(user_id))
        except UserError:
            raise not_found(user_id) from None
        return bottle.HTTPResponse(status=204, headers={"Cache-Control": "no-store"})

    add_discovery(app, admin, base)

    # Everything else under /scim answers SCIM errors too (after the routes above).
    @app.route("/scim/<rest:path>", method=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def other(rest: str) -> bottle.HTTPResponse:
        admin()
        offered = NOT_OFFERED.fullmatch(rest)
        if offered is not None:
            what = offered.group(1) or offered.group(2) or "searching several resource types"
            raise ScimError(501, f"{what} is not offered by this server")
        for pattern, methods in ENDPOINT_METHODS:
            if pattern.fullmatch(rest):
                raise ScimError(
                    405, f"{request.method} not allowed here", headers={"Allow": methods}
                )
        raise ScimError(404, "no such SCIM endpoint")

    return app


def add_discovery(app: bottle.Bottle, admin: Any, base: str) -> None:
    """The discovery endpoints (RFC 7644 §4), for admins like the rest of the tree."""

    def refuse_filter() -> None:
        # RFC 7644 §4: a filter here would suggest its conditions were checked.
        if "filter" in query():
            raise ScimError(403, "discovery endpoints take no filter")

    def listed(documents: list[dict[str, Any]]) -> bottle.HTTPResponse:
        return scim_json(
            {
                "schemas": [LIST_RESPONSE],
                "totalResults": len(documents),
                "startIndex": 1,
                "itemsPerPage": len(documents),
                "Resources": documents,
            }
        )

    def one(documents: list[dict[str, Any]], document_id: str, what: str) -> bottle.HTTPResponse:
        found = scim_schemas.find(documents, document_id)
        if found is None:
            raise ScimError(404, f"no {what} {document_id!r}")
        return scim_json(found)

    @app.get("/scim/v2/ServiceProviderConfig")
    def service_provider_config() -> bottle.HTTPResponse:
        admin()
        return scim_json(scim_schemas.service_provider_config(base))

    @app.get("/scim/v2/Schemas")
    def all_schemas() -> bottle.HTTPResponse:
        admin()
        refuse_filter()
        return listed(scim_schemas.schemas(base))

    @app.get("/scim/v2/Schemas/<schema_id>")
    def one_schema(schema_id: str) -> bottle.HTTPResponse:
        admin()
        return one(scim_schemas.schemas(base), schema_id, "schema")

    @app.get("/scim/v2/ResourceTypes")
    def all_resource_types() -> bottle.HTTPResponse:
        admin()
        refuse_filter()
        return listed(scim_schemas.resource_types(base))

    @app.get("/scim/v2/ResourceTypes/<type_id>")
    def one_resource_type(type_id: str) -> bottle.HTTPResponse:
        admin()
        return one(scim_schemas.resource_types(base), type_id, "resource type")

"""SCIM discovery (RFC 7644 §4): what ``/ServiceProviderConfig``, ``/Schemas`` and
``/ResourceTypes`` publish.

They describe OPUS exactly as the User routes (scim.py) behave, since clients build
their models from them and then check every answer against them: the part of the core
User schema (RFC 7643 §4.1) that OPUS keeps — ``userName`` (immutable: it is the id),
``active``, ``roles`` (their ``value`` only) and the write-only ``password`` — with the
characteristics OPUS gives them (names and role names are case-sensitive), and the OPUS
extension, whose read-only ``token`` appears only in the answer that made it. The
common attributes ``id``, ``externalId`` and ``meta`` are in no schema (RFC 7643 §3.1).
What the service provider configuration says unsupported answers 501 (scim.py).
"""

from __future__ import annotations

from typing import Any

from opus.server.routes.scim_messages import (
    CORE_USER,
    MAX_COUNT,
    OPUS_USER,
    RESOURCE_TYPE,
    SCHEMA,
    SERVICE_PROVIDER_CONFIG,
)


def attribute(name: str, kind: str, description: str, **characteristics: Any) -> dict[str, Any]:
    """An attribute definition (RFC 7643 §7) with the RFC's defaults for what is not given."""
    definition: dict[str, Any] = {
        "name": name,
        "type": kind,
        "multiValued": False,
        "description": description,
        "required": False,
        "mutability": "readWrite",
        "returned": "default",
    }
    if kind in ("string", "reference", "binary"):
        definition.update(caseExact=False, uniqueness="none")
    definition.update(characteristics)
    return definition


USER_ATTRIBUTES = [
    attribute(
        "userName",
        "string",
        "The user's name, also their id: letters, digits, _ . @ - (at most 64 "
        "characters). It cannot change.",
        required=True,
        caseExact=True,
        mutability="immutable",
        uniqueness="server",
    ),
    attribute(
        "active",
        "boolean",
        "Whether the user may use OPUS: a deactivated user's requests get 401. True "
        "unless set otherwise (at creation, in a replacement, or when removed).",
    ),
    attribute(
        "password",
        "string",
        "The user's web password (sign-in in a browser); never returned.",
        mutability="writeOnly",
        returned="never",
        caseExact=True,
    ),
    attribute(
        "roles",
        "complex",
        "The user's roles: 'admin', and the job types or groups of job types the user may run.",
        multiValued=True,
        subAttributes=[
            attribute(
                "value",
                "string",
                "A role name: letters, digits, _ . - (at most 64 characters).",
                caseExact=True,
            )
        ],
    ),
]

EXTENSION_ATTRIBUTES = [
    attribute(
        "token",
        "string",
        "The user's API token, shown only in the answer that made it: the creation of "
        "the user, and a PATCH of this attribute (with any value), which makes a new "
        "one and ends the old one.",
        mutability="readOnly",
        caseExact=True,
        uniqueness="server",
    )
]


def schema(
    base: str, schema_id: str, name: str, description: str, attributes: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "schemas": [SCHEMA],
        "id": schema_id,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{schema_id}"},
    }


def schemas(base: str) -> list[dict[str, Any]]:
    """The schemas of ``/Schemas`` (``base``: the URL of /scim/v2)."""
    core = "An OPUS user (the part of the core User schema that OPUS keeps)"
    return [
        schema(base, CORE_USER, "User", core, USER_ATTRIBUTES),
        schema(base, OPUS_USER, "OpusUser", "What OPUS adds to its users", EXTENSION_ATTRIBUTES),
    ]


def resource_types(base: str) -> list[dict[str, Any]]:
    """The resource types of ``/ResourceTypes``: users only."""
    return [
        {
            "schemas": [RESOURCE_TYPE],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "OPUS users",
            "schema": CORE_USER,
            "schemaExtensions": [{"schema": OPUS_USER, "required": False}],
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/User"},
        }
    ]


def service_provider_config(base: str) -> dict[str, Any]:
    """``/ServiceProviderConfig``: what OPUS supports of SCIM."""
    return {
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


def find(documents: list[dict[str, Any]], document_id: str) -> dict[str, Any] | None:
    """The document with this id (URNs and names compare case-insensitively), or None."""
    wanted = document_id.lower()
    return next((d for d in documents if d["id"].lower() == wanted), None)

"""SCIM PATCH (RFC 7644 §3.5.2): the operations of one request, gathered as Changes.

Every operation of a request is read and checked before anything is written (scim.py
writes the Changes once they all passed), so a request with one bad operation changes
nothing. What a PATCH may touch is what OPUS keeps of a user:

- ``active``, ``roles``, ``externalId`` and the write-only ``password``: add, replace,
  remove. Removing ``active`` makes it the default it has at creation and in a PUT that
  omits it, true: OPUS has no "unassigned" state for the flag a sign-in is checked
  against. Removing ``password`` removes the web password (the API token still works).
- the OPUS extension's ``token``: read-only as a value; a replace (or add) of it, with
  any value, makes a new token, which the answer shows once; a remove of it (or of the
  whole extension) revokes it: the old token stops working and no answer shows the new
  one, so that the user has no working token until the next rotation.
- ``userName`` is immutable (a replace with the same name is no change), ``id`` and
  ``meta`` are read-only: 400 ``mutability``. Other paths name nothing OPUS keeps: 400
  ``invalidPath``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from opus.server.routes.scim_messages import (
    OPUS_USER,
    TOKEN_PATH,
    ScimError,
    active_of,
    attribute_name,
    attributes,
    external_id_of,
    json_string,
    password_of,
    roles_of,
    unprefixed,
)

ROLE_VALUE_PATH = re.compile(r'roles\s*\[\s*value\s+eq\s+"((?:[^"\\]|\\.)*)"\s*\]', re.IGNORECASE)
# Read-only common attributes (RFC 7643 §3.1) and their sub-attributes.
READ_ONLY_PATH = re.compile(r"(?:id|meta|schemas)(?:\..*)?", re.IGNORECASE | re.DOTALL)
WRITABLE = f"active, roles, externalId, password, {TOKEN_PATH}"


@dataclass
class Changes:
    """What a PATCH request does to a user, gathered before anything is written."""

    name: str
    roles: list[str]
    active: bool
    external_id: str | None
    password: str | None = None
    remove_password: bool = False
    rotate_token: bool = False
    revoke_token: bool = False

    def rotate(self) -> None:
        self.rotate_token, self.revoke_token = True, False

    def revoke(self) -> None:
        self.rotate_token, self.revoke_token = False, True


def read_only(name: str) -> ScimError:
    return ScimError(400, f"{name} is read-only", "mutability")


def set_user_name(changes: Changes, value: Any) -> None:
    # Identity providers send the whole user back, name included: the same name is no
    # change, another one is.
    if value != changes.name:
        raise ScimError(400, "userName cannot be changed", "mutability")


def patch_attribute(changes: Changes, op: str, name: str, value: Any) -> None:
    """Apply an add or replace of one attribute (``name`` as from attribute_name)."""
    if name == "active":
        changes.active = active_of(value)
    elif name == "roles":
        roles = roles_of(value)
        changes.roles = list(dict.fromkeys(changes.roles + roles)) if op == "add" else roles
    elif name == "externalid":
        changes.external_id = external_id_of(value)
    elif name == "password":
        changes.password = password_of(value)
        changes.remove_password = False
    elif name == "username":
        set_user_name(changes, value)
    elif name == TOKEN_PATH.lower():
        changes.rotate()  # any value: the server makes the token
    elif name == OPUS_USER.lower():
        if not isinstance(value, dict):
            raise ScimError(400, f"{OPUS_USER} must be an object", "invalidValue")
        for key in attributes(value):
            # Clients send an extension object with its own "schemas": not an attribute.
            if key == "schemas":
                continue
            if key != "token":
                raise ScimError(400, f"{OPUS_USER} has no attribute {key!r}", "invalidPath")
            changes.rotate()
    elif READ_ONLY_PATH.fullmatch(name):
        raise read_only(name)
    else:
        raise ScimError(400, f"attribute {name!r} cannot be changed ({WRITABLE})", "invalidPath")


def remove_attribute(changes: Changes, path: str, value: Any) -> None:
    """Apply a remove of ``path`` (the RFC's, or with a list of roles as its value)."""
    name = unprefixed(path)
    lowered = name.lower()
    role = ROLE_VALUE_PATH.fullmatch(name)
    if lowered == "roles" and value is not None:
        # Some identity providers name the values to remove in the value, not the path.
        removed = set(roles_of(value))
        changes.roles = [r for r in changes.roles if r not in removed]
    elif lowered == "roles":
        changes.roles = []
    elif role is not None:
        # No role of that name: nothing to remove, and the user is as asked.
        one = json_string(role.group(1), "path", "invalidPath")
        changes.roles = [r for r in changes.roles if r != one]
    elif lowered == "active":
        changes.active = True
    elif lowered == "externalid":
        changes.external_id = None
    elif lowered == "password":
        changes.password = None
        changes.remove_password = True
    elif lowered == "username":
        raise ScimError(400, "userName is required and cannot be removed", "mutability")
    elif lowered in (TOKEN_PATH.lower(), OPUS_USER.lower()):
        changes.revoke()
    elif READ_ONLY_PATH.fullmatch(name):
        raise read_only(name)
    else:
        raise ScimError(400, f"{name!r} cannot be removed ({WRITABLE})", "invalidPath")


def patch_operation(changes: Changes, operation: Any) -> None:
    """Read one element of ``Operations`` into ``changes`` (400 with its scimType)."""
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
        remove_attribute(changes, path, value)
    elif path is None:
        # No path: the value holds the attributes to add or replace (RFC 7644 §3.5.2).
        if not isinstance(value, dict):
            raise ScimError(400, "an operation without path needs an object value", "invalidValue")
        for name, item in attributes(value).items():
            patch_attribute(changes, op, name, item)
    else:
        patch_attribute(changes, op, attribute_name(path), value)

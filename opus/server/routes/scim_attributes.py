"""SCIM attribute selection (RFC 7644 §3.4.2.5, §3.9): ``attributes`` and
``excludedAttributes``, applied to every resource an answer carries.

A selection names attributes case-insensitively, with or without their schema URN
(``userName``, ``roles.value``, ``urn:ietf:params:scim:schemas:core:2.0:User:meta.created``,
the OPUS extension or its ``token``). The ``returned: always`` attributes (``id``, and
the ``schemas`` every resource has) stay whatever is asked. Names OPUS does not keep
select nothing and are no error: an identity provider asks for the attributes of its
own schema (``emails``, an enterprise extension). Selecting only removes members from
the resource the route built in full, so it can never make an answer show more than
the route would (a password never is shown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from opus.server.routes.scim_messages import CORE_USER, OPUS_USER, ScimError

# An attribute name (RFC 7643 §2.1: ALPHA *(nameChar)), or a reference's $ref.
NAME = r"(?:[A-Za-z][A-Za-z0-9_-]*|\$ref)"
ATTRIBUTE_PATH = re.compile(rf"({NAME})(?:\.({NAME}))?")
ALWAYS = {"id", "schemas"}

# (top-level member, sub-attribute or None for all of it), lower-cased; the OPUS
# extension's top-level member is its URN.
Selector = tuple[str, str | None]


def selector(text: str) -> Selector | None:
    """The member a name selects; None for one of a schema OPUS does not serve."""
    name = text.strip()
    lowered = name.lower()
    extension = OPUS_USER.lower()
    if lowered == extension:
        return extension, None
    if lowered.startswith(extension + ":"):
        rest = name[len(extension) + 1 :]
        return (extension, rest.lower()) if re.fullmatch(NAME, rest) else None
    if lowered.startswith(CORE_USER.lower() + ":"):
        name = name[len(CORE_USER) + 1 :]
    elif lowered.startswith("urn:"):
        return None
    match = ATTRIBUTE_PATH.fullmatch(name)
    if match is None:
        raise ScimError(400, f"{text!r} is not an attribute name", "invalidValue")
    top, sub = match.groups()
    return top.lower(), None if sub is None else sub.lower()


def selectors(names: list[str]) -> frozenset[Selector]:
    """What comma-separated names (as query parameters give them) select."""
    found = set()
    for name in (part for text in names for part in text.split(",")):
        if name.strip():
            chosen = selector(name)
            if chosen is not None:
                found.add(chosen)
    return frozenset(found)


@dataclass(frozen=True)
class Selection:
    """The attributes an answer shows: ``only`` these (None: every default one), less
    the ``excluded`` ones."""

    only: frozenset[Selector] | None = None
    excluded: frozenset[Selector] = frozenset()

    @classmethod
    def of(cls, included: list[str], excluded: list[str]) -> Selection:
        """The selection of a request's ``attributes`` and ``excludedAttributes``
        (each a list of comma-separated names; empty: not given)."""
        named = [text for text in included if text.strip()]
        unnamed = [text for text in excluded if text.strip()]
        if named and unnamed:
            raise ScimError(
                400, "attributes and excludedAttributes cannot both be given", "invalidSyntax"
            )
        return cls(selectors(named) if named else None, selectors(unnamed))

    def apply(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The resource with the selected members only."""
        if self.only is None and not self.excluded:
            return resource
        result: dict[str, Any] = {}
        for key, value in resource.items():
            if key.lower() in ALWAYS:
                result[key] = value
                continue
            kept = self._kept(key.lower(), value)
            if kept is not None:
                result[key] = kept
        # An extension's URN is listed while the resource still carries its members.
        result["schemas"] = [s for s in resource["schemas"] if s not in resource or s in result]
        return result

    def _kept(self, name: str, value: Any) -> Any:
        if self.only is not None:
            subs = {sub for top, sub in self.only if top == name}
            if not subs:
                return None
            return value if None in subs else _only(value, subs)
        subs = {sub for top, sub in self.excluded if top == name}
        if None in subs:
            return None
        return _without(value, subs) if subs else value


def _only(value: Any, subs: set[str | None]) -> Any:
    """A complex (or multi-valued complex) value with only the ``subs`` sub-attributes;
    None when nothing is left (a simple value has no sub-attributes)."""
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if k.lower() in subs}
        return kept or None
    if isinstance(value, list):
        items = [item for item in (_only(v, subs) for v in value) if item is not None]
        return items or None
    return None


def _without(value: Any, subs: set[str | None]) -> Any:
    """A complex (or multi-valued complex) value without the ``subs`` sub-attributes;
    None when nothing is left."""
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if k.lower() not in subs}
        return kept or None
    if isinstance(value, list):
        items = [item for item in (_without(v, subs) for v in value) if item is not None]
        return items or None
    return value

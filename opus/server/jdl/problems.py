"""What is wrong with a definition's text: every problem, at its field and YAML line.

An editor wants all the problems of a text at once, each where it is: ``check_text``
reads a text in any of the three forms and runs every rule of rules.py, collecting the
problems instead of stopping at the first. A problem names its field as the rules do
(``parameters[2].default``) and, for YAML, the line it is on, found by walking the
text's YAML nodes (composed, never constructed: no object of the text is built twice).

A definition's identity is the SHA-256 of its canonical text (``canonical_text``: YAML,
script inline, as dump_yaml writes a checked definition), so two texts that differ
only in comments, key order or form are the same definition.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import JDLError
from .files import _parse_unchecked, _utf8, _with_script
from .model import JobDefinition
from .rules import definition_problems, validate_definition
from .yaml_json import compose_yaml, dump_yaml


@dataclass(frozen=True)
class Problem:
    """One problem of a definition: its field path (None: the whole text), the line of
    the YAML text it is on (None when unknown) and what is wrong."""

    field: str | None
    message: str
    line: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"field": self.field, "line": self.line, "message": self.message}


@dataclass(frozen=True)
class CheckedText:
    """A text read: its definition (None if it could not be read at all), the checked
    definition (None while it has problems) and its problems."""

    definition: JobDefinition | None
    checked: JobDefinition | None
    problems: list[Problem]


def check_text(text: str | bytes, fmt: str, *, script: str | None = None) -> CheckedText:
    """Read a definition's text in ``fmt`` (with its script apart, when given) and find
    every problem of it."""
    try:
        jd = _with_script(_parse_unchecked(_utf8(text), fmt), script, "a separate script")
    except JDLError as error:
        problem = Problem(error.field, error.problem, _line_of(text, fmt, error.field))
        return CheckedText(None, None, [problem])
    errors = definition_problems(jd)
    problems = [Problem(e.field, e.problem, _line_of(text, fmt, e.field)) for e in errors]
    return CheckedText(jd, None if problems else validate_definition(jd), problems)


def canonical_text(jd: JobDefinition) -> str:
    """The canonical text of a checked definition: YAML with the script inline."""
    return dump_yaml(jd, include_script=True)


def definition_hash(jd: JobDefinition) -> str:
    """The SHA-256 (hex) of a checked definition's canonical text."""
    return hashlib.sha256(canonical_text(jd).encode("utf-8")).hexdigest()


def _line_of(text: str | bytes, fmt: str, field: str | None) -> int | None:
    if fmt != "yaml":
        return None
    try:
        source = text.decode("utf-8-sig") if isinstance(text, bytes) else text
        node = compose_yaml(source)
    except UnicodeDecodeError:
        return None
    except yaml.MarkedYAMLError as error:  # a syntax error: where the parser stopped
        mark = error.problem_mark or error.context_mark
        return mark.line + 1 if mark is not None else None
    except yaml.YAMLError:
        return None
    if node is None or field is None:
        return None
    return _field_line(node, field)


def _path(field: str) -> list[str | int]:
    """``parameters[2].default`` as ["parameters", 2, "default"]."""
    parts: list[str | int] = []
    for piece in field.split("."):
        name, _, rest = piece.partition("[")
        if name:
            parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            if index.isdigit():
                parts.append(int(index))
            rest = rest.removeprefix("[")
    return parts


def _field_line(node: yaml.Node, field: str) -> int:
    # The line (1-based) of the deepest part of the path the text has: a key's own line
    # (a block scalar's value starts below it), an item's first line; a missing key is
    # shown at its entry.
    line = node.start_mark.line + 1
    for part in _path(field):
        child = None
        if isinstance(part, int) and isinstance(node, yaml.SequenceNode):
            child = node.value[part] if part < len(node.value) else None
        elif isinstance(part, str) and isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    child = value
                    line = key.start_mark.line + 1
                    break
        if child is None:
            return line
        if isinstance(part, int):
            line = child.start_mark.line + 1
        node = child
    return line

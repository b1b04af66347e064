"""The dict form of a job definition, and its YAML and JSON texts.

YAML is the form people edit by hand, so reading is strict about structure (unknown keys
are errors, to catch typos) and tolerant about scalar types. A number, boolean or date
that YAML or JSON would type by itself is read where text is expected as the text
written: ``default: 1.50`` is "1.50" (not 1.5, then "1.5"), ``default: TRUE`` is "TRUE",
since a default is kept as the definition writes it. Fields that want a boolean or a
number of seconds get what the parser made of it (``required: yes`` is true). Writing
leaves out empty optional fields.
"""

from __future__ import annotations

import datetime
import difflib
import json
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import yaml

from .errors import JDLError
from .model import (
    GeneratedEntity,
    JobDefinition,
    ParameterDefinition,
    UsedEntity,
)
from .source import source_from_dict, source_to_dict

TOP_KEYS = (
    "name",
    "annotation",
    "version",
    "doculink",
    "type",
    "subtype",
    "contact_name",
    "contact_email",
    "execution_duration",
    "quote",
    "source",
    "parameters",
    "used",
    "generated",
    "script",
)
PARAMETER_KEYS = (
    "name",
    "datatype",
    "default",
    "required",
    "normalize",
    "annotation",
    "options",
    "min",
    "max",
    "unit",
    "ucd",
    "utype",
)
USED_KEYS = ("name", "default", "content_type", "multiplicity", "url", "annotation")
GENERATED_KEYS = ("name", "default", "content_type", "multiplicity", "annotation")

Item = TypeVar("Item")


# --- reading -------------------------------------------------------------------------


class ScalarText(str):
    """A scalar the parser typed by itself (YAML ``1.50``, ``yes``, ``2001-02-03``, a JSON
    number), kept as the text written; ``value`` is what the parser made of it.

    ``problem`` is set instead when the parser could not make anything of it (YAML
    ``2001-02-30``, an integer of 5000 digits): as text it is still fine, only a field that
    wants the typed value refuses it, with the parser's message.
    """

    value: Any
    problem: str | None

    def __new__(cls, text: str, value: Any = None, problem: str | None = None) -> ScalarText:
        scalar = super().__new__(cls, text)
        scalar.value = value
        scalar.problem = problem
        return scalar


def _typed(value: Any) -> Any:
    """What the parser made of a scalar: the bool, int, float or date of a ScalarText."""
    if isinstance(value, ScalarText):
        if value.problem is not None:
            raise JDLError(value.problem)
        return value.value
    return value


def _shown(key: Any) -> Any:
    """A mapping key as the parser typed it, for messages and duplicate checks."""
    if isinstance(key, ScalarText):
        return str(key) if key.problem is not None else key.value
    return key


def _text(value: Any, field: str) -> str:
    """A scalar as text: the text written, or the text of what an explicit tag made."""
    if isinstance(value, str):
        return str(value)  # a plain str, even for a ScalarText
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise JDLError(f"expected a text value, got {type(value).__name__}", field=field)


def _optional_text(value: Any, field: str) -> str | None:
    return None if value is None else _text(value, field)


def _text_or_empty(value: Any, field: str) -> str:
    return "" if value is None else _text(value, field)


def _bool(value: Any, field: str) -> bool:
    value = _typed(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise JDLError(f"{value!r} is not true or false", field=field)


def _seconds(value: Any, field: str) -> int:
    # isascii: "²".isdigit() is true but int() refuses it; the length keeps int() away
    # from absurdly long digit strings (rules.py bounds the number itself).
    value = _typed(value)
    text = value.strip() if isinstance(value, str) else ""
    if text.isascii() and text.isdigit() and len(text) <= 12:
        return int(text)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise JDLError(f"{value!r} is not a whole number of seconds", field=field)


def _mapping(value: Any, field: str | None, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        what = "the definition" if field is None else "each entry"
        raise JDLError(f"{what} must be a mapping of keys to values", field=field)
    for key in value:
        if not isinstance(key, str) or key not in keys:
            shown = _shown(key)
            close = difflib.get_close_matches(str(shown), keys, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(keys)}"
            key_field = f"{field}.{shown}" if field else str(shown)
            raise JDLError(f"unknown key ({hint})", field=key_field)
    return value


def _items(
    value: Any, field: str, keys: tuple[str, ...], build: Callable[[dict[str, Any], str], Item]
) -> list[Item]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise JDLError("must be a list of entries (each starting with '- name: ...')", field=field)
    return [
        build(_mapping(entry, f"{field}[{i}]", keys), f"{field}[{i}]")
        for i, entry in enumerate(value)
    ]


def _parameter(data: dict[str, Any], where: str) -> ParameterDefinition:
    options = data.get("options")
    if options is None:
        options = []
    if not isinstance(options, list):
        raise JDLError("must be a list of values, e.g. [red, green]", field=f"{where}.options")
    return ParameterDefinition(
        name=_text_or_empty(data.get("name"), f"{where}.name"),
        datatype=_text(data.get("datatype", "xs:string"), f"{where}.datatype"),
        default=_optional_text(data.get("default"), f"{where}.default"),
        required=_bool(data.get("required", False), f"{where}.required"),
        annotation=_text_or_empty(data.get("annotation"), f"{where}.annotation"),
        options=[_text(o, f"{where}.options[{i}]") for i, o in enumerate(options)],
        min=_optional_text(data.get("min"), f"{where}.min"),
        max=_optional_text(data.get("max"), f"{where}.max"),
        unit=_text_or_empty(data.get("unit"), f"{where}.unit"),
        ucd=_text_or_empty(data.get("ucd"), f"{where}.ucd"),
        utype=_text_or_empty(data.get("utype"), f"{where}.utype"),
        normalize=_bool(data.get("normalize", False), f"{where}.normalize"),
    )


def _used(data: dict[str, Any], where: str) -> UsedEntity:
    return UsedEntity(
        name=_text_or_empty(data.get("name"), f"{where}.name"),
        default=_optional_text(data.get("default"), f"{where}.default"),
        content_type=_text_or_empty(data.get("content_type"), f"{where}.content_type"),
        multiplicity=_text(data.get("multiplicity", "1"), f"{where}.multiplicity"),
        url=_text_or_empty(data.get("url"), f"{where}.url"),
        annotation=_text_or_empty(data.get("annotation"), f"{where}.annotation"),
    )


def _generated(data: dict[str, Any], where: str) -> GeneratedEntity:
    return GeneratedEntity(
        name=_text_or_empty(data.get("name"), f"{where}.name"),
        default=_text_or_empty(data.get("default"), f"{where}.default"),
        content_type=_text_or_empty(data.get("content_type"), f"{where}.content_type"),
        multiplicity=_text(data.get("multiplicity", "1"), f"{where}.multiplicity"),
        annotation=_text_or_empty(data.get("annotation"), f"{where}.annotation"),
    )


def from_dict(data: Any) -> JobDefinition:
    """Build a definition from its dict form; checks structure, not the rules."""
    data = _mapping(data, None, TOP_KEYS)
    if "name" not in data:
        raise JDLError("missing: every definition has a name", field="name")
    quote = data.get("quote")
    return JobDefinition(
        name=_text(data["name"], "name"),
        annotation=_text_or_empty(data.get("annotation"), "annotation"),
        version=_text_or_empty(data.get("version", "1"), "version"),
        doculink=_text_or_empty(data.get("doculink"), "doculink"),
        type=_text_or_empty(data.get("type"), "type"),
        subtype=_text_or_empty(data.get("subtype"), "subtype"),
        contact_name=_text_or_empty(data.get("contact_name"), "contact_name"),
        contact_email=_text_or_empty(data.get("contact_email"), "contact_email"),
        execution_duration=None
        if data.get("execution_duration") is None
        else _seconds(data["execution_duration"], "execution_duration"),
        quote=None if quote is None else _seconds(quote, "quote"),
        source=source_from_dict(data.get("source")),
        script=_text_or_empty(data.get("script"), "script"),
        parameters=_items(data.get("parameters"), "parameters", PARAMETER_KEYS, _parameter),
        used=_items(data.get("used"), "used", USED_KEYS, _used),
        generated=_items(data.get("generated"), "generated", GENERATED_KEYS, _generated),
    )


# The tags YAML gives plain scalars by itself, kept as ScalarText; null stays None.
_TYPED_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float", "timestamp")
)
_TEXT_TAG_PREFIX = "tag:opus,2025:text:"


MAX_YAML_DEPTH = 50


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader without aliases (a definition never needs them, and a few nested aliases
    expand to gigabytes: the YAML "billion laughs"), without duplicate keys (PyYAML
    would silently keep the last one, hiding a copy-and-paste mistake), and keeping the
    text of implicitly typed scalars (ScalarText)."""

    def resolve(self, kind: Any, value: str, implicit: tuple[bool, bool]) -> str:
        tag: str = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        # implicit[0]: a plain scalar without a tag. "!!float 1.50" asks for the float.
        if kind is yaml.ScalarNode and implicit[0] and tag in _TYPED_TAGS:
            return _TEXT_TAG_PREFIX + tag
        return tag

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed", event.start_mark
            )
        # A definition is a few levels deep: a bound far above that keeps an uploaded
        # text from exhausting the parser's recursion.
        if self.depth >= MAX_YAML_DEPTH:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            # As typed: "1" and "1.0", or "yes" and "true", are the same key to YAML.
            key = _shown(self.construct_object(key_node, deep=True))
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep)


def _construct_scalar_text(loader: _SafeLoader, tag: str, node: yaml.Node) -> ScalarText:
    if not isinstance(node, yaml.ScalarNode):  # only plain scalars get the text tags
        raise TypeError(f"{tag} on a {type(node).__name__}")
    text = loader.construct_scalar(node)
    try:
        return ScalarText(text, loader.yaml_constructors[tag](loader, node))
    except Exception as error:
        # PyYAML's constructors let through whatever they meet on values such as
        # 2001-02-30 or a 5000-digit integer (ValueError, KeyError...).
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        return ScalarText(text, problem=f"not valid YAML: a value cannot be read ({reason})")


_SafeLoader.add_multi_constructor(_TEXT_TAG_PREFIX, _construct_scalar_text)


def compose_yaml(text: str) -> yaml.Node | None:
    """The YAML node tree of a text, read with the rules of parse_yaml (no aliases,
    bounded nesting), nothing constructed; yaml.YAMLError if it is not YAML."""
    return yaml.compose(text, Loader=_SafeLoader)


def parse_yaml(text: str) -> JobDefinition:
    """Read the YAML form (checks structure, not the rules)."""
    try:
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise JDLError(f"not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise JDLError("not valid YAML: nested too deeply") from None
    except Exception as error:
        # PyYAML's constructors let through whatever they meet on values such as
        # "!!bool x", "!!timestamp x" or "!!int" of 5000 digits (ValueError, KeyError,
        # AttributeError...): the text is at fault, not the server.
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise JDLError(f"not valid YAML: a value cannot be read ({reason})") from None
    return from_dict(data)


def _json_int(text: str) -> ScalarText:
    try:
        return ScalarText(text, int(text))
    except ValueError as error:  # an integer of over 4300 digits
        return ScalarText(text, problem=f"not valid JSON: {error}")


def _json_number(text: str) -> ScalarText:
    # float() takes every JSON number, and NaN, Infinity and -Infinity (parse_constant).
    return ScalarText(text, float(text))


def parse_json(text: str) -> JobDefinition:
    """Read the JSON form (checks structure, not the rules); numbers are kept as written
    where text is expected, as in YAML."""
    try:
        data = json.loads(
            text, parse_int=_json_int, parse_float=_json_number, parse_constant=_json_number
        )
    except ValueError as error:  # JSONDecodeError
        raise JDLError(f"not valid JSON: {error}") from None
    except RecursionError:
        raise JDLError("not valid JSON: nested too deeply") from None
    return from_dict(data)


# --- writing -------------------------------------------------------------------------


def _without_empty(entry: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    """Drop None values, and empty texts and lists unless their key is in ``keep``."""
    return {k: v for k, v in entry.items() if v is not None and (k in keep or v not in ("", []))}


def to_dict(jd: JobDefinition, *, include_script: bool = True) -> dict[str, Any]:
    """The dict form of a definition, leaving out empty fields and usual values
    (required: false, multiplicity: "1") to keep hand-edited files short."""
    data: dict[str, Any] = {
        "name": jd.name,
        "annotation": jd.annotation,
        "version": jd.version,
        "doculink": jd.doculink,
        "type": jd.type,
        "subtype": jd.subtype,
        "contact_name": jd.contact_name,
        "contact_email": jd.contact_email,
        "execution_duration": jd.execution_duration,
        "quote": jd.quote,
        "source": None if jd.source is None else source_to_dict(jd.source),
    }
    data = _without_empty(data, keep=("name", "annotation", "version"))
    data["parameters"] = [
        _without_empty(
            {
                "name": p.name,
                "datatype": p.datatype,
                "default": p.default,
                "required": p.required or None,
                "normalize": p.normalize or None,
                "annotation": p.annotation,
                "options": list(p.options),
                "min": p.min,
                "max": p.max,
                "unit": p.unit,
                "ucd": p.ucd,
                "utype": p.utype,
            },
            # An empty default is a value ("" for xs:string); None (dropped) is no default.
            keep=("name", "datatype", "default"),
        )
        for p in jd.parameters
    ]
    data["used"] = [
        _without_empty(
            {
                "name": u.name,
                "default": u.default,
                "content_type": u.content_type,
                "multiplicity": None if u.multiplicity == "1" else u.multiplicity,
                "url": u.url,
                "annotation": u.annotation,
            },
            keep=("name",),
        )
        for u in jd.used
    ]
    data["generated"] = [
        _without_empty(
            {
                "name": g.name,
                "default": g.default,
                "content_type": g.content_type,
                "multiplicity": None if g.multiplicity == "1" else g.multiplicity,
                "annotation": g.annotation,
            },
            keep=("name", "default"),
        )
        for g in jd.generated
    ]
    data = _without_empty(data, keep=tuple(data.keys() - {"parameters", "used", "generated"}))
    if include_script and jd.script:
        data["script"] = jd.script
    return data


class _Dumper(yaml.SafeDumper):
    """SafeDumper writing multi-line text (scripts, annotations) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(jd: JobDefinition, *, include_script: bool = True) -> str:
    """The YAML form of a definition."""
    return yaml.dump(
        to_dict(jd, include_script=include_script),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )


def dump_json(jd: JobDefinition, *, include_script: bool = True) -> str:
    """The JSON form of a definition."""
    return (
        json.dumps(to_dict(jd, include_script=include_script), indent=2, ensure_ascii=False) + "\n"
    )

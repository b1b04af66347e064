"""Parameter values: check a raw string against a datatype and its limits.

The same rules serve two callers: coerce_parameters (a client's job parameters, errors are
ParameterError) and rules.py (a definition's defaults, options, min and max, errors are
JDLError). Values stay strings: they end up as shell variables and in UWS XML.

A value is checked in its canonical form (the one compared with options, min and max),
but what is kept is the text as written, byte for byte: "1" of an xs:float stays "1",
" yes" of an xs:boolean stays " yes". Only a parameter that says ``normalize`` keeps the
canonical form instead ("1.0", "true"), for a script that needs it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from opus.core.text import text_problem
from opus.server.gitsource import ref_problem

from .errors import ParameterError
from .model import FLOAT_DATATYPES, INTEGER_DATATYPES, JobDefinition, ParameterDefinition

INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "xs:short": (-(2**15), 2**15 - 1),
    "xs:unsignedByte": (0, 2**8 - 1),
    "xs:int": (-(2**31), 2**31 - 1),
    "xs:long": (-(2**63), 2**63 - 1),
}
# Largest finite IEEE 754 single and double values; xs:float is not rounded to 32 bits
# (that would turn "0.1" into "0.10000000149011612"), only kept within its range.
FLOAT_LIMITS: dict[str, float] = {
    "xs:float": 3.4028234663852886e38,
    "xs:double": 1.7976931348623157e308,
}

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class InvalidValue(ValueError):
    """A value does not fit its datatype or limits; the message has no parameter name."""


def show(value: str, limit: int = 40) -> str:
    """Quote a value for a one-line message (repr escapes newlines), shortened if long."""
    if len(value) > limit:
        return repr(value[:limit]) + "..."
    return repr(value)


def canonical_value(datatype: str, raw: str) -> str:
    """Check ``raw`` against ``datatype`` and return its canonical string form."""
    if datatype in INTEGER_DATATYPES:
        return _canonical_integer(datatype, raw)
    if datatype in FLOAT_DATATYPES:
        return _canonical_float(datatype, raw)
    if datatype == "xs:boolean":
        word = raw.strip().lower()
        if word in _TRUE:
            return "true"
        if word in _FALSE:
            return "false"
        raise InvalidValue(f"{show(raw)} is not a boolean (true/false, yes/no, 1/0)")
    if datatype == "xs:anyURI":
        return _canonical_uri(raw)
    # xs:string and file: any text, taken literally.
    problem = text_problem(raw)
    if problem:
        raise InvalidValue(f"{show(raw)} {problem}")
    return raw


def _canonical_integer(datatype: str, raw: str) -> str:
    text = raw.strip()
    if not _INTEGER.fullmatch(text):
        raise InvalidValue(f"{show(raw)} is not an integer ({datatype})")
    low, high = INTEGER_RANGES[datatype]
    # The length test keeps absurdly long digit strings from reaching int().
    digits = text.lstrip("+-").lstrip("0")
    number = int(text) if len(digits) <= 40 else None
    if number is None or not low <= number <= high:
        raise InvalidValue(f"{show(raw)} is out of range for {datatype} ({low}..{high})")
    return str(number)


def _canonical_float(datatype: str, raw: str) -> str:
    text = raw.strip()
    # float() alone would also accept "nan", "inf", "1_0" and non-ASCII digits.
    if not _DECIMAL.fullmatch(text):
        raise InvalidValue(f"{show(raw)} is not a number ({datatype})")
    number = float(text)
    if not math.isfinite(number) or abs(number) > FLOAT_LIMITS[datatype]:
        raise InvalidValue(f"{show(raw)} is out of range for {datatype}")
    return repr(number)


def _canonical_uri(raw: str) -> str:
    text = raw.strip()
    if any(char.isspace() for char in text) or text_problem(text):
        raise InvalidValue(f"{show(raw)} is not a URI (it contains spaces or control characters)")
    try:
        scheme = urlsplit(text).scheme
    except ValueError as error:
        raise InvalidValue(f"{show(raw)} is not a URI ({error})") from None
    if not scheme:
        raise InvalidValue(f"{show(raw)} is not a URI (no scheme, e.g. https:)")
    return text


def number(datatype: str, canonical: str) -> int | float:
    """The number a canonical numeric value stands for, for min/max comparisons."""
    return int(canonical) if datatype in INTEGER_DATATYPES else float(canonical)


def check_value(param: ParameterDefinition, raw: str) -> str:
    """Canonical form of ``raw`` for ``param``, checked against its options, min and max.

    The definition's options, min and max are assumed valid (rules.py checks them).
    """
    value = canonical_value(param.datatype, raw)
    if param.options:
        allowed = [canonical_value(param.datatype, option) for option in param.options]
        if value not in allowed:
            # Options may hold line breaks: quote those to keep the message on one line.
            shown = (o if o.isprintable() else show(o) for o in allowed)
            raise InvalidValue(f"{show(value)} is not one of {', '.join(shown)}")
    if param.min is not None or param.max is not None:
        given = number(param.datatype, value)
        if param.min is not None and given < number(param.datatype, param.min):
            raise InvalidValue(f"{value} is less than the minimum {param.min}")
        if param.max is not None and given > number(param.datatype, param.max):
            raise InvalidValue(f"{value} is greater than the maximum {param.max}")
    return value


def kept_value(param: ParameterDefinition, raw: str) -> str:
    """The value kept for ``raw``: ``raw`` itself, or its canonical form when ``param``
    says ``normalize``; checked as check_value does. Raises InvalidValue.
    """
    canonical = check_value(param, raw)
    if param.normalize:
        return canonical
    # The checks read numbers, booleans and URIs without their surrounding spaces, and
    # str.strip() takes a few control characters for spaces: "\x1c5" is the integer 5,
    # but only its canonical form can be stored (XML cannot carry "\x1c").
    problem = text_problem(raw)
    if problem:
        raise InvalidValue(f"{show(raw)} {problem}")
    return raw


def _is_empty(param: ParameterDefinition, raw: str) -> bool:
    # An HTML form sends every field, filled or not: an empty number, boolean or URI means
    # "not given". Text is literal, so an empty xs:string is a value.
    return param.datatype != "xs:string" and raw.strip() == ""


def coerce_parameters(
    jd: JobDefinition, values: Mapping[str, str], *, partial: bool = False
) -> dict[str, str]:
    """Check a job's raw parameters against its definition; return the values to keep.

    ``values`` holds the client's parameters, without UWS control parameters and without
    file inputs (jd.file_inputs()). The result has one entry per non-file parameter of the
    definition, in definition order: the given value as the client wrote it (its canonical
    form if the parameter says ``normalize``), else the default as the definition holds
    it; an optional parameter with neither is left out. With ``partial=True`` only the
    given parameters are checked and returned (an update of a PENDING job). The ref
    parameter of the definition's source must hold a git ref (gitsource.ref_problem).
    Raises ParameterError.
    """
    known = {p.name: p for p in jd.parameters if p.datatype != "file"}
    file_inputs = set(jd.file_inputs())
    for name, value in values.items():
        if name in file_inputs:
            raise ParameterError(
                f"parameter {show(name)} of job type {jd.name!r} is a file: "
                "send it as an upload or a URL",
                name,
            )
        if name not in known:
            raise ParameterError(f"unknown parameter {show(name)} for job type {jd.name!r}", name)
        if not isinstance(value, str):
            raise ParameterError(f"parameter {name!r}: the value must be text", name)

    result: dict[str, str] = {}
    for name, param in known.items():
        given = values.get(name)
        if given is not None and not _is_empty(param, given):
            try:
                result[name] = kept_value(param, given)
            except InvalidValue as error:
                raise ParameterError(f"parameter {name!r}: {error}", name) from None
        elif partial and given is None:
            continue  # not part of this update
        elif param.default is not None:
            result[name] = param.default
        elif partial:
            raise ParameterError(f"parameter {name!r}: empty value and no default", name)
        elif param.required:
            raise ParameterError(f"parameter {name!r} is required for job type {jd.name!r}", name)
    ref_name = jd.source.ref_parameter if jd.source else None
    ref = result.get(ref_name) if ref_name is not None else None
    if ref_name is not None and ref is not None and (problem := ref_problem(ref)):
        # The git ref of the job's source: it reaches git (never as an option).
        raise ParameterError(f"parameter {ref_name!r}: {show(ref)} {problem}", ref_name)
    return result

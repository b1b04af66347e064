"""Property tests (hypothesis) of the job-definition package.

1. Any valid definition reads back equal from its YAML, JSON and VOTable forms, and
   writing it again gives the same text.
2. Any text or bytes given to parse_definition give a definition or a JDLError, never
   another exception (a definition upload must never become a 500).
3. coerce_parameters accepts valid values however spelled and keeps them as written (in
   canonical form, a fixed point, for a parameter that says normalize), refuses bad ones
   with a one-line ParameterError naming the parameter, never raises anything else, and
   every value it returns respects the options, min and max.
4. A value coerce_parameters accepts reaches the job script byte for byte: the client's
   own text, or its canonical form with normalize.

Every test is derandomized and uses no example database, so CI runs the same examples.
"""

from __future__ import annotations

import json
import os
import re
import string
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from opus.core.layout import INTERNAL_DIR, JOB_SCRIPT, STATUS_FILE, TOKEN_FILE
from opus.server.jdl import (
    DATATYPES,
    FORMATS,
    GeneratedEntity,
    JDLError,
    JobDefinition,
    ParameterDefinition,
    ParameterError,
    UsedEntity,
    coerce_parameters,
    dump_definition,
    parse_definition,
    validate_definition,
)
from opus.server.jdl.model import FLOAT_DATATYPES, INTEGER_DATATYPES, NUMERIC_DATATYPES
from opus.server.jdl.rules import (
    JOB_NAME,
    MAX_SECONDS,
    MULTIPLICITY,
    RESULT_GLOB,
    reserved_reason,
)
from opus.server.jdl.votable import ACTIVITY_UTYPE, NS
from opus.server.jdl.yaml_json import (
    GENERATED_KEYS,
    PARAMETER_KEYS,
    TOP_KEYS,
    USED_KEYS,
    to_dict,
)
from opus.server.scripts import BatchJob, render_batch_script

# Same examples on every run, nothing stored between runs: reproducible in CI. The whole
# file runs in about 20 s; OPUS_PROPERTY_SCALE=10 runs ten times as many examples (and
# different ones) when looking for bugs rather than guarding against regressions.
SCALE = float(os.environ.get("OPUS_PROPERTY_SCALE", "1"))


def examples(count: int) -> int:
    return max(1, round(count * SCALE))


BASE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# The limits the tests check against, written out again rather than imported.
INTEGER_RANGES = {
    "xs:short": (-(2**15), 2**15 - 1),
    "xs:unsignedByte": (0, 2**8 - 1),
    "xs:int": (-(2**31), 2**31 - 1),
    "xs:long": (-(2**63), 2**63 - 1),
}
FLOAT_LIMITS = {"xs:float": 3.4028234663852886e38, "xs:double": 1.7976931348623157e308}
VALUE_DATATYPES = tuple(d for d in DATATYPES if d != "file")

# --- text -------------------------------------------------------------------------------

# Characters a definition or a value may hold: no controls but tab, LF and CR (XML cannot
# carry them), no surrogates nor U+FFFE/U+FFFF.
TEXT_CHAR = st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="\ufffe\uffff")
# Pieces that YAML, JSON, XML or the shell treat specially.
TRICKY = [
    "&", "<", ">", '"', "'", "]]>", "&amp;", "&#10;", "&x;", "\\", "\\n", "`", "$(x)", "${x}",
    "$ID", "*", "?", "[a]", "{", "}", ",", "!", "!!str", "%", "@", "#", " #", "- ", ": ", "|",
    "~", "null", "yes", "No", "1.0", "0x10", "1_000", "2001-02-03", "=", "<<", "---", "...",
    " ", "  ", "\t", "\xa0", "\u2003", "\u2028", "\u2029", "\ufeff", "\U0010ffff", "é", "✓",
]  # fmt: skip
LINE_BREAKS = ["\n", "\r", "\r\n", "\r\r\n", "\n\n", "\n "]


def texts(breaks: bool) -> st.SearchStrategy[str]:
    """Text without forbidden characters (often empty); with line breaks when ``breaks``."""
    chars = st.one_of(TEXT_CHAR, st.sampled_from("\t\n\r" if breaks else "\t"))
    piece = st.one_of(
        st.text(chars, max_size=6), st.sampled_from(TRICKY + (LINE_BREAKS if breaks else []))
    )
    return st.just("") | st.lists(piece, max_size=4).map("".join)


ONE_LINE = texts(breaks=False)
MULTI_LINE = texts(breaks=True)
PAD = st.sampled_from(["", " ", "  ", "\t", "\n", " \u2003", "\r\n "])

# --- names ------------------------------------------------------------------------------

# Variables bash or the batch script treat specially; a name the rules accept must still
# reach the job script.
SHELL_SPECIAL = [
    "_", "SHLVL", "OPTERR", "SRANDOM", "EPOCHSECONDS", "EPOCHREALTIME", "HISTCMD",
    "COMP_WORDBREAKS", "DIRSTACK", "EXECIGNORE", "GLOBIGNORE", "POSIXLY_CORRECT", "TMOUT",
    "FUNCNEST", "HOSTTYPE", "MACHTYPE", "OSTYPE", "TERM", "LC_CTYPE", "MAILCHECK", "HISTFILE",
    "COLUMNS", "BASH_ENV", "PATH", "IFS", "f", "q", "opus_status", "path", "user", "text",
]  # fmt: skip
# Any name the rules accept.
VARIABLE_NAMES = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True).filter(
        lambda name: reserved_reason(name) is None
    ),
    st.sampled_from([name for name in SHELL_SPECIAL if reserved_reason(name) is None]),
)
JOB_NAMES = st.from_regex(JOB_NAME, fullmatch=True)

# --- values, spelled in the ways a client or a definition may write them ----------------


@st.composite
def spelled_ints(draw: st.DrawFn, low: int, high: int) -> str:
    number = draw(st.integers(low, high))
    sign = "-" if number < 0 else draw(st.sampled_from(["", "+"] + (["-"] if number == 0 else [])))
    zeros = "0" * draw(st.integers(0, 3))
    return f"{draw(PAD)}{sign}{zeros}{abs(number)}{draw(PAD)}"


@st.composite
def spelled_floats(draw: st.DrawFn, low: float, high: float) -> str:
    number = draw(st.floats(low, high, allow_nan=False, allow_infinity=False))
    forms = [repr(number), f"{number:.17g}", f"{number:.16E}"]
    if number.is_integer() and abs(number) < 1e16:
        forms += [str(int(number)), f"{int(number)}."]
    text = draw(st.sampled_from(forms))
    if re.match(r"0\.[0-9]", text):
        text = draw(st.sampled_from([text, text[1:], "+" + text]))
    return f"{draw(PAD)}{text}{draw(PAD)}"


@st.composite
def spelled_booleans(draw: st.DrawFn) -> str:
    word = draw(st.sampled_from(["true", "false", "yes", "no", "1", "0"]))
    upper = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    word = "".join(c.upper() if u else c for c, u in zip(word, upper, strict=True))
    return f"{draw(PAD)}{word}{draw(PAD)}"


URI_CHARS = string.ascii_letters + string.digits + "-._~:/?#@!$&'()*+,;=%éü✓"
SCHEMES = st.one_of(
    st.sampled_from(["https", "http", "ivo", "urn", "file", "ftp", "s3"]),
    st.from_regex(r"[A-Za-z][A-Za-z0-9+.-]{0,6}", fullmatch=True),
)


@st.composite
def spelled_uris(draw: st.DrawFn) -> str:
    rest = draw(st.text(st.sampled_from(URI_CHARS), max_size=20))
    return f"{draw(PAD)}{draw(SCHEMES)}:{rest}{draw(PAD)}"


def valid_values(datatype: str, low: Any = None, high: Any = None) -> st.SearchStrategy[str]:
    """Raw values that ``datatype`` accepts (within low..high for numbers)."""
    if datatype in INTEGER_DATATYPES:
        lo, hi = INTEGER_RANGES[datatype]
        return spelled_ints(lo if low is None else low, hi if high is None else high)
    if datatype in FLOAT_DATATYPES:
        limit = FLOAT_LIMITS[datatype]
        return spelled_floats(-limit if low is None else low, limit if high is None else high)
    if datatype == "xs:boolean":
        return spelled_booleans()
    if datatype == "xs:anyURI":
        return spelled_uris()
    return MULTI_LINE  # xs:string and file: any text


def expected_canonical(datatype: str, raw: str) -> str:
    """The canonical form docs/jdl.md promises for a valid value."""
    if datatype in INTEGER_DATATYPES:
        return str(int(raw.strip()))
    if datatype in FLOAT_DATATYPES:
        return repr(float(raw.strip()))
    if datatype == "xs:boolean":
        return "true" if raw.strip().lower() in ("true", "yes", "1") else "false"
    if datatype == "xs:anyURI":
        return raw.strip()
    return raw


def as_number(datatype: str, canonical: str) -> int | float:
    return int(canonical) if datatype in INTEGER_DATATYPES else float(canonical)


# --- definitions --------------------------------------------------------------------------


@st.composite
def parameters(
    draw: st.DrawFn, name: str, datatypes: tuple[str, ...] = DATATYPES
) -> ParameterDefinition:
    datatype = draw(st.sampled_from(datatypes))
    low = high = None
    if datatype in NUMERIC_DATATYPES:
        if datatype in INTEGER_DATATYPES:
            bound = st.integers(*INTEGER_RANGES[datatype])
        else:
            limit = FLOAT_LIMITS[datatype]
            bound = st.floats(-limit, limit, allow_nan=False, allow_infinity=False)
        a, b = sorted(draw(st.lists(bound, min_size=2, max_size=2)))
        low = a if draw(st.booleans()) else None
        high = b if draw(st.booleans()) else None
    values = valid_values(datatype, low, high)

    def spelled(limit: Any) -> str | None:
        return None if limit is None else draw(valid_values(datatype, limit, limit))

    options: list[str] = []
    if datatype != "file":
        options = draw(
            st.lists(values, max_size=4, unique_by=lambda v: expected_canonical(datatype, v))
        )
    default_values = st.sampled_from(options) if options else values
    # Values and defaults are kept as written, or in canonical form with normalize
    # (meaningless, and refused, for a file).
    normalize = datatype != "file" and draw(st.booleans())
    return ParameterDefinition(
        name=name,
        datatype=datatype,
        default=draw(st.none() | default_values),
        required=draw(st.booleans()),
        annotation=draw(MULTI_LINE),
        options=options,
        min=spelled(low),
        max=spelled(high),
        unit=draw(ONE_LINE),
        ucd=draw(ONE_LINE),
        utype=draw(ONE_LINE),
        normalize=normalize,
    )


MIME_WORD = st.text(st.sampled_from(string.ascii_letters + string.digits + "!#$&^_.+-"), min_size=1)


@st.composite
def content_types(draw: st.DrawFn) -> str:
    text = f"{draw(MIME_WORD)}/{draw(MIME_WORD | st.just('*'))}"
    for _ in range(draw(st.integers(0, 2))):
        value = draw(MIME_WORD | st.text(st.sampled_from("ab =;/é"), max_size=5).map('"{}"'.format))
        text += f"{draw(st.sampled_from([';', '; ', ' ; ']))}{draw(MIME_WORD)}={value}"
    return text


MULTIPLICITIES = st.one_of(st.just(""), st.from_regex(MULTIPLICITY, fullmatch=True))


@st.composite
def used_entities(draw: st.DrawFn, name: str) -> UsedEntity:
    accepted = draw(st.lists(content_types(), max_size=3))
    url = draw(st.sampled_from(["", "file://$ID", "ivo://x/$ID"]) | spelled_uris().map(str.strip))
    return UsedEntity(
        name=name,
        default=draw(st.none() | ONE_LINE),
        content_type=", ".join(accepted),
        multiplicity=draw(MULTIPLICITIES),
        url=url,
        annotation=draw(MULTI_LINE),
    )


@st.composite
def generated_entities(draw: st.DrawFn, name: str) -> GeneratedEntity:
    return GeneratedEntity(
        name=name,
        default=draw(st.from_regex(RESULT_GLOB, fullmatch=True)),
        content_type=draw(st.just("") | content_types()),
        multiplicity=draw(MULTIPLICITIES),
        annotation=draw(MULTI_LINE),
    )


@st.composite
def emails(draw: st.DrawFn) -> str:
    chars = st.characters(
        exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), exclude_characters="\ufffe\uffff@"
    )
    part = st.text(chars, min_size=1, max_size=8)
    return f"{draw(part)}@{draw(part)}"


# Any text, with at least one command.
SCRIPTS = st.tuples(MULTI_LINE, st.sampled_from(["true", "echo é", ":"]), MULTI_LINE).map("".join)


@st.composite
def definitions(draw: st.DrawFn) -> JobDefinition:
    """A raw definition that validate_definition accepts (values not yet canonical)."""
    counts = [draw(st.integers(0, 6)), draw(st.integers(0, 2)), draw(st.integers(0, 2))]
    names = draw(
        st.lists(VARIABLE_NAMES, min_size=sum(counts), max_size=sum(counts), unique_by=str.lower)
    )
    cut1, cut2 = counts[0], counts[0] + counts[1]
    seconds = st.none() | st.integers(0, MAX_SECONDS)
    return JobDefinition(
        name=draw(JOB_NAMES),
        annotation=draw(MULTI_LINE),
        version=draw(ONE_LINE),
        doculink=draw(st.just("") | st.sampled_from(["http://", "https://", "HTTPS://"]).flatmap(
            lambda scheme: st.text(st.sampled_from(URI_CHARS), max_size=20).map(scheme.__add__)
        )),
        type=draw(ONE_LINE),
        subtype=draw(ONE_LINE),
        contact_name=draw(ONE_LINE),
        contact_email=draw(st.just("") | emails()),
        execution_duration=draw(seconds),
        quote=draw(seconds),
        script=draw(SCRIPTS),
        parameters=[draw(parameters(n)) for n in names[:cut1]],
        used=[draw(used_entities(n)) for n in names[cut1:cut2]],
        generated=[draw(generated_entities(n)) for n in names[cut2:]],
    )  # fmt: skip


# --- 1. round trips -------------------------------------------------------------------


@settings(BASE, max_examples=examples(50))
@given(raw=definitions())
@example(  # bugs found: "\r\r\n" took two reads to lose its CRs; quotes and durations had
    # no maximum (VOTable reads at most 12 digits); an empty file default read back from
    # VOTable as no default.
    raw=JobDefinition(
        name="a",
        script="x\r\r\n",
        quote=MAX_SECONDS,
        parameters=[ParameterDefinition("f", "file", default="")],
    )
)
@example(  # defaults as written, and normalised ones, in each datatype's VOTable encoding
    raw=JobDefinition(
        name="b",
        script="x",
        parameters=[
            ParameterDefinition("a", "xs:float", " 1.50\r\n", normalize=False),
            ParameterDefinition("b", "xs:boolean", "YES", required=True, normalize=True),
            ParameterDefinition("c", "xs:anyURI", "\tivo://x ", options=["ivo://x"]),
            ParameterDefinition("d", "xs:int", "+007", min="-0", normalize=True),
        ],
    )
)
def test_every_valid_definition_round_trips_in_every_form(raw: JobDefinition) -> None:
    jd = validate_definition(raw)
    assert validate_definition(jd) == jd  # the checked form is a fixed point
    for fmt in FORMATS:
        text = dump_definition(jd, fmt)
        back = parse_definition(text, fmt)
        assert back == jd, fmt
        assert dump_definition(back, fmt) == text, fmt
        assert parse_definition(text.encode("utf-8"), fmt) == jd, fmt


@settings(BASE, max_examples=examples(30))
@given(raw=definitions())
def test_canonical_values_in_a_definition(raw: JobDefinition) -> None:
    # Limits in canonical form; the default as written, unless the parameter normalises.
    jd = validate_definition(raw)
    for before, after in zip(raw.parameters, jd.parameters, strict=True):
        dt = before.datatype
        assert after.normalize is before.normalize
        assert after.options == [expected_canonical(dt, o) for o in before.options]
        if before.default is None or (dt == "file" and before.default == ""):
            assert after.default is None  # an empty file default is no default
        elif before.normalize:
            assert after.default == expected_canonical(dt, before.default)
        else:
            assert after.default == before.default
        for limit in ("min", "max"):
            value = getattr(before, limit)
            assert getattr(after, limit) == (
                None if value is None else expected_canonical(dt, value)
            )
    assert "\r\n" not in jd.script


JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


@settings(BASE, max_examples=examples(60))
@given(
    datatype=st.sampled_from(sorted(NUMERIC_DATATYPES | {"xs:boolean"})),
    normalize=st.booleans(),
    data=st.data(),
)
def test_plain_yaml_and_json_defaults_are_read_as_written(
    datatype: str, normalize: bool, data
) -> None:
    # Written by hand, unquoted: YAML would make numbers and booleans of these (JSON
    # numbers of its own), yet the definition keeps the text, or its canonical form.
    raw = data.draw(valid_values(datatype), label="raw").strip()
    expected = expected_canonical(datatype, raw) if normalize else raw
    flag = "    normalize: true\n" if normalize else ""
    text = (
        f"name: x\nscript: a\nparameters:\n  - name: x\n    datatype: {datatype}\n"
        f"    default: {raw}\n{flag}"
    )
    assert parse_definition(text, "yaml").parameters[0].default == expected
    if JSON_NUMBER.fullmatch(raw):
        document = {"name": "x", "script": "a", "parameters": [{"name": "x", "datatype": datatype}]}
        document["parameters"][0]["normalize"] = normalize
        text = json.dumps(document).replace('"datatype"', f'"default": {raw}, "datatype"')
        assert parse_definition(text, "json").parameters[0].default == expected


def test_seconds_beyond_the_maximum_are_refused() -> None:
    for field in ("execution_duration", "quote"):
        jd = JobDefinition(name="a", script="x", **{field: MAX_SECONDS + 1})
        with pytest.raises(JDLError, match=f"^{field}: .* maximum"):
            validate_definition(jd)


# --- 2. any input: a definition or a JDLError -------------------------------------------

YAML_TRICKS = [
    "2001-02-30", "!!bool abc", "!!int abc", "!!float abc", "!!timestamp 2001-13-01",
    "!!binary ^^^", "!!set {a}", "!!omap [a: 1]", "!!pairs [a: 1]", "!!python/object:os.system x",
    "!!str [1]", "*a", "&a x", "<<: {a: 1}", "? [a]\n: b", "'²'", "%YAML 1.1\n---\n",
    "---\n...\n", "~", "=", "\ud800", '"\\ud800"', "\x00", "\ufeff", "name: x\nname: y\n",
    "!!timestamp x", "!!float .",
]  # fmt: skip
JSON_TRICKS = [
    "NaN", "-Infinity", '"\\ud800"', "1e999", '{"name": "x", "execution_duration": "²"}',
    '{"name": "x", "quote": "99999999999999999999"}',
]  # fmt: skip
# Deep nesting (recursion in the parsers) and huge numbers (int() refuses 4300+ digits).
LONG = st.one_of(
    st.tuples(st.sampled_from(["[", "{a: ", "- "]), st.integers(400, 700)),  # YAML
    st.tuples(st.sampled_from(["[", '{"a":']), st.integers(1000, 1100)),  # JSON too
    st.tuples(st.sampled_from(["1", "'1", '"9']), st.integers(4301, 5000)),
).map(lambda pair: pair[0] * pair[1])
XML_TRICKS = [
    '<!DOCTYPE VOTABLE [<!ENTITY x "boom">]>',
    '<!DOCTYPE VOTABLE [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE VOTABLE SYSTEM "http://127.0.0.1:1/votable.dtd">',
    '<!DOCTYPE VOTABLE [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>',
    "&x;", "&d;", "&#0;", "&#xD800;", "<![CDATA[x]]>", "<!-- c -->", "<?pi x?>", "<x:y/>",
    "\x00", "\ufeff", "\ud800", "</VOTABLE>", "<VOTABLE>", 'xmlns="urn:x"',
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**30), 10**30),
    st.floats(),
    ONE_LINE,
    st.text("0123456789²٣ \u2003", max_size=14),
    st.dates(),
    st.sampled_from([*DATATYPES, "true", "no", "1..*", "file://$ID", "*.png", "x@y", "-1"]),
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ONE_LINE, inner, max_size=3),
    max_leaves=6,
)


# Unknown keys, often with line breaks (quoted in a one-line error message).
ODD_KEYS = st.sampled_from(["colour", "name\n", "a\u2028b", "\r", "x\ny"]) | MULTI_LINE


def entries(keys: tuple[str, ...], names: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    value = st.one_of(SCALARS, NESTED, st.lists(SCALARS, max_size=3))
    fields = {key: value for key in keys}
    fields["name"] = st.one_of(names, SCALARS)
    if "options" in fields:  # repeated options, some with line breaks
        fields["options"] = st.lists(
            st.sampled_from(["a\nb", "1", "01", "x"]) | SCALARS, max_size=3
        )
    entry = with_unknown_keys(st.fixed_dictionaries({}, optional=fields))
    return st.one_of(st.lists(entry, max_size=3), NESTED)


def with_unknown_keys(mappings: st.SearchStrategy[dict[Any, Any]]) -> st.SearchStrategy[Any]:
    """Mappings, one in four with an unknown key (any text, line breaks included)."""
    unknown = st.dictionaries(st.one_of(ODD_KEYS, SCALARS), SCALARS, min_size=1, max_size=1)
    return st.tuples(mappings, unknown, st.integers(0, 3)).map(
        lambda t: {**t[0], **t[1]} if t[2] == 0 else t[0]
    )


DICT_FORMS = with_unknown_keys(
    st.fixed_dictionaries(
        {},
        optional={
            **{key: st.one_of(SCALARS, NESTED) for key in TOP_KEYS},
            "name": st.one_of(JOB_NAMES, SCALARS),
            "script": st.one_of(MULTI_LINE, SCALARS),
            "parameters": entries(PARAMETER_KEYS, VARIABLE_NAMES),
            "used": entries(USED_KEYS, VARIABLE_NAMES),
            "generated": entries(GENERATED_KEYS, VARIABLE_NAMES),
            "colour": SCALARS,
        },
    )
)

XML_TAGS = ["RESOURCE", "PARAM", "GROUP", "VALUES", "MIN", "MAX", "OPTION", "DESCRIPTION", "LINK"]
XML_ATTRIBUTES = ["name", "value", "datatype", "xtype", "type", "utype", "ID", "inclusive", "href"]
XML_WORDS = [
    ACTIVITY_UTYPE, "InputParams", "Used", "Generated", "Other", "no_query", "char",
    "unicodeChar", "boolean", "int", "short", "long", "unsignedByte", "float", "double", "bit",
    "application/octet-stream", "xs:anyURI", "uri", "executionDuration", "executionduration",
    "quote", "script", "annotation", "doculink", "version", "type", "contact_email",
    "multiplicity", "default", "content_type", "url", "role", "yes", "no", "", " ", "1", "-1",
    "²", "1" * 13, "x", "true", "1e3", "0..*", "*.png", "x@y",
]  # fmt: skip
XML_VALUES = st.one_of(
    st.sampled_from(XML_WORDS),
    MULTI_LINE,
    VARIABLE_NAMES,
)
XML_NODES = st.recursive(
    st.tuples(
        st.sampled_from(XML_TAGS),
        st.dictionaries(st.sampled_from(XML_ATTRIBUTES), XML_VALUES, max_size=4),
        st.none() | MULTI_LINE,
        st.just([]),
    ),
    lambda kids: st.tuples(
        st.sampled_from(XML_TAGS),
        st.dictionaries(st.sampled_from(XML_ATTRIBUTES), XML_VALUES, max_size=4),
        st.none() | MULTI_LINE,
        st.lists(kids, max_size=4),
    ),
    max_leaves=12,
)


def _element(node: tuple[str, dict[str, str], str | None, list[Any]], ns: str) -> etree._Element:
    tag, attributes, text, children = node
    element = etree.Element(f"{{{ns}}}{tag}" if ns else tag, attributes)
    element.text = text
    element.extend(_element(child, ns) for child in children)
    return element


@st.composite
def votable_bytes(draw: st.DrawFn) -> bytes:
    ns = draw(st.sampled_from([NS, "", "http://www.ivoa.net/xml/VOTable/v1.2", "urn:other"]))
    root_tag = draw(st.sampled_from(["VOTABLE", "VOTABLE", "RESOURCE"]))
    resource = ("RESOURCE", draw(st.fixed_dictionaries({}, optional={
        "name": st.one_of(JOB_NAMES, XML_VALUES), "ID": XML_VALUES,
        "utype": st.just(ACTIVITY_UTYPE) | XML_VALUES,
    })), draw(st.none() | MULTI_LINE), draw(st.lists(XML_NODES, max_size=5)))  # fmt: skip
    root = _element((root_tag, {}, None, [resource]), ns)
    body = etree.tostring(root, encoding="unicode", pretty_print=draw(st.booleans()))
    prolog = draw(st.sampled_from(["", '<?xml version="1.0" encoding="UTF-8"?>\n']))
    doctype = draw(st.sampled_from(["", *XML_TRICKS[:4]]))
    text = prolog + doctype + body
    encoding = draw(st.sampled_from(["utf-8"] * 5 + ["utf-16", "utf-7", "latin-1", "utf-32"]))
    if encoding == "utf-8":
        return text.encode()
    declaration = f'<?xml version="1.0" encoding="{encoding.upper()}"?>'
    return declaration.encode("ascii") + text.encode(encoding, errors="replace")


@st.composite
def mutated(draw: st.DrawFn, document: st.SearchStrategy[str | bytes]) -> str | bytes:
    """A document with a few random edits: cuts, insertions of tricky pieces."""
    text = draw(document)
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 20)))
        piece = draw(
            st.sampled_from(YAML_TRICKS + JSON_TRICKS + XML_TRICKS + TRICKY + LINE_BREAKS)
            | st.text(max_size=5)
        )
        if isinstance(text, bytes):
            text = text[:start] + piece.encode("utf-8", "surrogatepass") + text[end:]
        else:
            text = text[:start] + piece + text[end:]
    return text


@st.composite
def edited_votables(draw: st.DrawFn) -> bytes:
    """The VOTable of a valid definition with a few elements changed, dropped or added."""
    jd = validate_definition(draw(definitions()))
    root = etree.fromstring(dump_definition(jd, "votable").encode("utf-8"))
    elements = list(root.iter())
    for _ in range(draw(st.integers(1, 3))):
        element = draw(st.sampled_from(elements))
        action = draw(st.sampled_from(["set", "set", "drop", "add", "text"]))
        parent = element.getparent()
        if action == "set":
            element.set(draw(st.sampled_from(XML_ATTRIBUTES)), draw(XML_VALUES))
        elif action == "drop" and parent is not None:
            parent.remove(element)
        elif action == "add":
            element.append(_element(draw(XML_NODES), NS))
        else:
            element.text = draw(st.none() | MULTI_LINE)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


ALL_KEYS = sorted({*TOP_KEYS, *PARAMETER_KEYS, *USED_KEYS, *GENERATED_KEYS, "colour"})


@st.composite
def edited_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """The dict form of a valid definition with a few keys changed, dropped or added."""
    data = to_dict(validate_definition(draw(definitions())))
    targets = [data] + [e for g in ("parameters", "used", "generated") for e in data.get(g, [])]
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(targets))
        key = draw(st.sampled_from(ALL_KEYS) | ODD_KEYS)
        if draw(st.integers(0, 3)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(st.one_of(SCALARS, NESTED, XML_VALUES))
    return data


def json_text(data: Any) -> str:
    """JSON of a YAML-like value: keys that JSON cannot have (dates) become text."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k if isinstance(k, str | int | float | bool | None) else str(k): plain(v)
                for k, v in value.items()
            }
        return [plain(v) for v in value] if isinstance(value, list) else value

    return json.dumps(plain(data), default=str, ensure_ascii=False)


DUMPS = st.tuples(definitions(), st.sampled_from(FORMATS)).map(
    lambda pair: dump_definition(validate_definition(pair[0]), pair[1])
)
UNTRUSTED = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    st.text(st.characters(codec=None), max_size=50),  # surrogates included
    st.sampled_from(YAML_TRICKS + JSON_TRICKS + XML_TRICKS),
    LONG,
    st.tuples(st.sampled_from(["name: x\nquote: ", '{"name": "x", "quote": ']), LONG).map("".join),
    st.lists(st.sampled_from(YAML_TRICKS + XML_TRICKS + TRICKY), max_size=5).map("\n".join),
    DICT_FORMS.map(lambda d: yaml.safe_dump(d, allow_unicode=True, sort_keys=False)),
    DICT_FORMS.map(json_text),
    votable_bytes(),
    mutated(votable_bytes()),
    edited_votables(),
    edited_dicts().map(lambda d: yaml.safe_dump(d, allow_unicode=True, sort_keys=False)),
    edited_dicts().map(json_text),
    mutated(DUMPS),
)


def parses_or_refuses(document: str | bytes) -> None:
    for fmt in FORMATS:
        try:
            jd = parse_definition(document, fmt, source="upload")
        except JDLError as error:
            assert str(error).startswith("upload: "), str(error)
            assert len(str(error).splitlines()) == 1, str(error)
        else:
            assert isinstance(jd, JobDefinition)
            assert validate_definition(jd) == jd


@settings(BASE, max_examples=examples(120))
@given(document=UNTRUSTED)
@example(document="name: 2001-02-30\n")
@example(document="name: !!bool abc\n")
@example(document="name: x\nexecution_duration: '²'\n")
@example(document="[" * 1100)
@example(document='{"name": "x", "a\\nb": 1}')  # unknown key: the message stayed on 2 lines
@example(document="\ud800")
@example(
    document=(
        '<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE x +AFs-+ADw-!ENTITY a \'b\'+AD4-+AF0-'
        "+AD4-+ADw-VOTABLE a='+ACY-a+ADs-'/+AD4-"
    )
)
def test_any_input_gives_a_definition_or_a_jdl_error(document: str | bytes) -> None:
    parses_or_refuses(document)


# --- 3. coerce_parameters -------------------------------------------------------------


def one_parameter(param: ParameterDefinition) -> JobDefinition:
    return validate_definition(JobDefinition(name="job", script="true", parameters=[param]))


def check_refusal(jd: JobDefinition, name: str, raw: str) -> str:
    with pytest.raises(ParameterError) as caught:
        coerce_parameters(jd, {name: raw})
    message = str(caught.value)
    assert message.startswith(f"parameter {name!r}"), message
    assert len(message.splitlines()) == 1, message
    return message


@settings(BASE, max_examples=examples(60))
@given(datatype=st.sampled_from(VALUE_DATATYPES), name=VARIABLE_NAMES, data=st.data())
def test_valid_values_are_kept_as_written_or_in_canonical_form(
    datatype: str, name: str, data
) -> None:
    raw = data.draw(valid_values(datatype), label="raw")
    literal = one_parameter(ParameterDefinition(name, datatype))
    assert coerce_parameters(literal, {name: raw}) == {name: raw}  # byte for byte
    assert coerce_parameters(literal, {name: raw}, partial=True) == {name: raw}
    jd = one_parameter(ParameterDefinition(name, datatype, normalize=True))
    canonical = coerce_parameters(jd, {name: raw})[name]
    assert canonical == expected_canonical(datatype, raw)
    assert coerce_parameters(jd, {name: canonical}) == {name: canonical}  # a fixed point
    assert coerce_parameters(jd, {name: canonical}, partial=True) == {name: canonical}
    assert coerce_parameters(literal, {name: canonical}) == {name: canonical}


CONTROL = st.one_of(
    st.characters(categories=("Cc",), exclude_characters="\t\n\r"),
    st.characters(categories=("Cs",)),
    st.sampled_from("\ufffe\uffff"),
)
WITH_CONTROL = st.tuples(ONE_LINE, CONTROL, MULTI_LINE).map("".join)
# Not a number however spaced; blank values are "not given", not errors.
NOT_INTEGER = st.one_of(
    st.sampled_from(
        ["1.5", "1e3", "0x10", "1_000", "٣", "²", "+-1", "--1", "1 2", "nan", "+", "x"]
    ),
    st.text(max_size=8),
).filter(lambda s: s.strip() and not re.fullmatch(r"[+-]?[0-9]+", s.strip()))
DECIMAL = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
NOT_FLOAT = st.one_of(
    st.sampled_from(["nan", "NaN", "-nan", "inf", "+inf", "-Infinity", "1_0", "0x1p3", "1e", "."]),
    st.text(max_size=8),
).filter(lambda s: s.strip() and not re.fullmatch(DECIMAL, s.strip()))


def invalid_values(datatype: str) -> st.SearchStrategy[str]:
    if datatype in INTEGER_DATATYPES:
        low, high = INTEGER_RANGES[datatype]
        out = st.integers(max_value=low - 1) | st.integers(min_value=high + 1)
        return st.one_of(out.map(str), st.integers(41, 5000).map("7".__mul__), NOT_INTEGER)
    if datatype in FLOAT_DATATYPES:
        too_big = st.integers(309, 10**6).map(lambda e: f"1e{e}")
        if datatype == "xs:float":  # finite, yet beyond the single-precision range
            too_big |= st.floats(min_value=FLOAT_LIMITS[datatype], exclude_min=True).map(repr)
        return st.one_of(too_big, too_big.map("-".__add__), NOT_FLOAT)
    if datatype == "xs:boolean":
        words = {"true", "false", "yes", "no", "1", "0"}
        return st.text(max_size=8).filter(lambda s: s.strip() and s.strip().lower() not in words)
    if datatype == "xs:anyURI":
        return st.one_of(
            st.text(st.sampled_from(URI_CHARS.replace(":", "")), min_size=1, max_size=10),
            st.tuples(spelled_uris().map(str.strip), st.sampled_from(" \t\n\xa0\u2003\x1c")).map(
                lambda pair: pair[0] + pair[1] + "x"
            ),
            st.tuples(spelled_uris().map(str.strip), CONTROL).map(lambda p: p[0] + p[1] + "x"),
        )
    return WITH_CONTROL


@settings(BASE, max_examples=examples(120))
@given(datatype=st.sampled_from(VALUE_DATATYPES), name=VARIABLE_NAMES, data=st.data())
def test_invalid_values_are_refused_on_one_line(datatype: str, name: str, data) -> None:
    raw = data.draw(invalid_values(datatype), label="raw")
    literal = check_refusal(one_parameter(ParameterDefinition(name, datatype)), name, raw)
    normalized = one_parameter(ParameterDefinition(name, datatype, normalize=True))
    assert check_refusal(normalized, name, raw) == literal  # the same message


def respects_limits(param: ParameterDefinition, value: str) -> bool:
    if param.options and value not in param.options:
        return False
    if param.min is not None and as_number(param.datatype, value) < as_number(
        param.datatype, param.min
    ):
        return False
    return param.max is None or as_number(param.datatype, value) <= as_number(
        param.datatype, param.max
    )


@settings(BASE, max_examples=examples(60))
@given(
    names=st.lists(VARIABLE_NAMES, min_size=1, max_size=5, unique_by=str.lower),
    data=st.data(),
)
def test_options_and_limits_decide_acceptance(names: list[str], data) -> None:
    # Every parameter with options or limits gets a value of its datatype, in range or
    # not: accepted exactly when the options, min and max allow it.
    params = [data.draw(parameters(n, VALUE_DATATYPES), label=n) for n in names]
    jd = validate_definition(JobDefinition(name="job", script="true", parameters=params))
    for param in jd.parameters:
        raw = data.draw(valid_values(param.datatype), label=f"{param.name} value")
        canonical = expected_canonical(param.datatype, raw)
        try:
            got = coerce_parameters(jd, {param.name: raw}, partial=True)
        except ParameterError as error:
            assert not respects_limits(param, canonical), str(error)
            assert str(error).startswith(f"parameter {param.name!r}: ")
            assert len(str(error).splitlines()) == 1, str(error)
        else:
            assert got == {param.name: canonical if param.normalize else raw}
            assert respects_limits(param, canonical)


ANY_TEXT = st.one_of(
    st.text(st.characters(codec=None), max_size=12),
    st.sampled_from(["", " ", "\n", "0", "-0", "1e3", "nan", "yes", "https://x", "x y"]),
)


@settings(BASE, max_examples=examples(50))
@given(raw=definitions(), data=st.data(), partial=st.booleans())
def test_any_values_give_checked_values_or_a_parameter_error(
    raw: JobDefinition, data, partial: bool
) -> None:
    jd = validate_definition(raw)
    names = [p.name for p in jd.parameters] + [u.name for u in jd.used]
    keys = st.sampled_from(names) | ANY_TEXT if names else ANY_TEXT
    values = data.draw(st.dictionaries(keys, ANY_TEXT, max_size=6), label="values")
    try:
        result = coerce_parameters(jd, values, partial=partial)
    except ParameterError as error:
        assert len(str(error).splitlines()) == 1, str(error)
        return
    known = [p for p in jd.parameters if p.datatype != "file"]
    assert list(result) == [p.name for p in known if p.name in result]  # definition order
    for param in known:
        given_value = values.get(param.name)
        if param.name not in result:
            assert (partial and given_value is None) or param.default is None
            continue
        value = result[param.name]
        assert respects_limits(param, expected_canonical(param.datatype, value))
        assert coerce_parameters(jd, {param.name: value}, partial=True) == {param.name: value}
        if given_value is not None and (param.datatype == "xs:string" or given_value.strip()):
            if param.normalize:
                assert value == expected_canonical(param.datatype, given_value)
            else:
                assert value == given_value
        else:
            assert value == param.default


# --- 4. accepted values reach the job script literally ------------------------------------


class _Sink(BaseHTTPRequestHandler):
    """Answers every job_event at once: the batch script does not wait for a server."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def signal_url() -> Iterator[str]:
    # A closed port would make each run last 2 s (the batch script retries a refused
    # callback for at least a second, twice): too slow for 25 runs.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/handler/job_event"
    server.shutdown()
    server.server_close()


def run_job(signal_url: str, script: str, parameters: dict[str, str]) -> Callable[[str], bytes]:
    """Run the batch script of a job; return a reader of the files the job wrote."""
    with tempfile.TemporaryDirectory(prefix="opus-prop-") as tmp:
        job_dir = Path(tmp) / "job"
        internal = job_dir / INTERNAL_DIR
        internal.mkdir(parents=True)
        (internal / TOKEN_FILE).write_text("secret", encoding="utf-8")
        (internal / JOB_SCRIPT).write_text(script, encoding="utf-8")
        batch = internal / "batch.sh"
        job = BatchJob("propjob", job_dir, signal_url, parameters, [], 0)
        batch.write_text(render_batch_script(job), encoding="utf-8")
        subprocess.run(["bash", str(batch)], cwd=tmp, timeout=60, check=False)
        status = (internal / STATUS_FILE).read_text(encoding="utf-8")
        stderr = (internal / "stderr").read_text(encoding="utf-8", errors="replace")
        assert status.startswith("COMPLETED"), (status, stderr)
        files = {path.name: path.read_bytes() for path in job_dir.iterdir() if path.is_file()}
    return files.__getitem__


@settings(
    BASE,
    max_examples=examples(25),
    suppress_health_check=[*BASE.suppress_health_check, HealthCheck.function_scoped_fixture],
)
@given(
    assignments=st.lists(
        st.tuples(VARIABLE_NAMES, st.sampled_from(VALUE_DATATYPES)),
        min_size=1,
        max_size=6,
        unique_by=lambda pair: pair[0].lower(),
    ),
    data=st.data(),
)
def test_accepted_values_reach_the_script_byte_for_byte(
    signal_url: str, assignments: list[tuple[str, str]], data
) -> None:
    params = [
        ParameterDefinition(name, datatype, normalize=data.draw(st.booleans(), label=name))
        for name, datatype in assignments
    ]
    raw = {p.name: data.draw(valid_values(p.datatype), label=p.name) for p in params}
    jd = validate_definition(JobDefinition(name="dump", script="true", parameters=params))
    values = coerce_parameters(jd, raw)
    for p in params:  # the client's own text, unless the parameter normalises
        expected = expected_canonical(p.datatype, raw[p.name]) if p.normalize else raw[p.name]
        assert values[p.name] == expected, p.name
    # ${name?} fails loudly if the variable did not arrive at all.
    script = "".join(f"printf '%s' \"${{{name}?}}\" > value.{name}\n" for name in values)
    written = run_job(signal_url, script, values)
    for name, value in values.items():
        assert written(f"value.{name}") == value.encode("utf-8"), name


def test_special_shell_names_are_refused_or_reach_the_script(signal_url: str) -> None:
    # Bugs found: "_", SHLVL, OPTERR, SRANDOM, DIRSTACK... were accepted as parameter names
    # but bash sets them itself, so the job script never saw the value given.
    names = [name for name in SHELL_SPECIAL if reserved_reason(name) is None]
    assert "PATH" not in names and "_" not in names
    for value in ("", "* ?\n$(x)"):
        values = dict.fromkeys(names, value)
        script = "".join(f"printf '%s' \"${{{name}?}}\" > value.{name}\n" for name in names)
        written = run_job(signal_url, script, values)
        for name in names:
            assert written(f"value.{name}") == value.encode("utf-8"), name

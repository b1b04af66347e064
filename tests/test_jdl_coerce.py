"""coerce_parameters: a client's raw job parameters, checked against the definition and
kept as the client wrote them (in canonical form for a parameter that says normalize)."""

from __future__ import annotations

import pytest

from opus.server.jdl import (
    DATATYPES,
    JobDefinition,
    ParameterDefinition,
    ParameterError,
    UsedEntity,
    coerce_parameters,
)
from opus.server.jdl.rules import validate_definition


def definition(
    *parameters: ParameterDefinition, used: list[UsedEntity] | None = None
) -> JobDefinition:
    return validate_definition(
        JobDefinition(name="sleep", script="true", parameters=list(parameters), used=used or [])
    )


def coerce_one(datatype: str, raw: str, **fields: object) -> str:
    jd = definition(ParameterDefinition("x", datatype, **fields))  # type: ignore[arg-type]
    return coerce_parameters(jd, {"x": raw})["x"]


def refused(datatype: str, raw: str, message: str, **fields: object) -> str:
    with pytest.raises(ParameterError) as caught:
        coerce_one(datatype, raw, **fields)
    text = str(caught.value)
    assert text.startswith("parameter 'x': "), text
    assert message in text, text
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("datatype", "raw", "expected"),
    [
        ("xs:int", "42", "42"),
        ("xs:int", "  -7 \n", "-7"),
        ("xs:int", "+007", "7"),
        ("xs:int", "2147483647", "2147483647"),
        ("xs:int", "-2147483648", "-2147483648"),
        ("xs:short", "32767", "32767"),
        ("xs:short", "-32768", "-32768"),
        ("xs:unsignedByte", "0", "0"),
        ("xs:unsignedByte", "255", "255"),
        ("xs:long", "9223372036854775807", "9223372036854775807"),
        ("xs:long", "-9223372036854775808", "-9223372036854775808"),
        ("xs:float", "1", "1.0"),
        ("xs:float", " 2.50 ", "2.5"),
        ("xs:float", "1e3", "1000.0"),
        ("xs:float", "-.5E-2", "-0.005"),
        ("xs:float", "3.4e38", "3.4e+38"),
        ("xs:double", "1e308", "1e+308"),
        ("xs:double", "0.1", "0.1"),
        ("xs:double", "5.", "5.0"),
        ("xs:boolean", "TRUE", "true"),
        ("xs:boolean", "yes", "true"),
        ("xs:boolean", " 1 ", "true"),
        ("xs:boolean", "False", "false"),
        ("xs:boolean", "no", "false"),
        ("xs:boolean", "0", "false"),
        ("xs:anyURI", "https://example.org/a?b=c#d", "https://example.org/a?b=c#d"),
        ("xs:anyURI", " ivo://org/x ", "ivo://org/x"),
        ("xs:anyURI", "urn:isbn:0451450523", "urn:isbn:0451450523"),
        ("xs:string", "  spaced\ttext\r\nline 2  ", "  spaced\ttext\r\nline 2  "),
        ("xs:string", "", ""),
        ("xs:string", "$(rm -rf /); `id` 'q' \"dq\" ünï ✓", "$(rm -rf /); `id` 'q' \"dq\" ünï ✓"),
    ],
)
def test_accepted_values(datatype: str, raw: str, expected: str) -> None:
    # ``expected`` is the canonical form: what a parameter that says normalize keeps.
    # Otherwise the value is kept as the client wrote it.
    assert coerce_one(datatype, raw) == raw
    assert coerce_one(datatype, raw, normalize=True) == expected


@pytest.mark.parametrize(
    ("datatype", "raw", "message"),
    [
        ("xs:int", "abc", "'abc' is not an integer (xs:int)"),
        ("xs:int", "1.5", "is not an integer"),
        ("xs:int", "1e3", "is not an integer"),
        ("xs:int", "nan", "is not an integer"),
        ("xs:int", "1_000", "is not an integer"),
        ("xs:int", "١٢", "is not an integer"),  # Arabic-Indic digits: int() would take them
        ("xs:int", "2147483648", "out of range for xs:int (-2147483648..2147483647)"),
        ("xs:int", "-2147483649", "out of range for xs:int"),
        ("xs:short", "32768", "out of range for xs:short (-32768..32767)"),
        ("xs:short", "-32769", "out of range for xs:short"),
        ("xs:unsignedByte", "256", "out of range for xs:unsignedByte (0..255)"),
        ("xs:unsignedByte", "-1", "out of range for xs:unsignedByte"),
        ("xs:long", "9223372036854775808", "out of range for xs:long"),
        ("xs:long", "9" * 5000, "out of range for xs:long"),
        ("xs:float", "nan", "is not a number (xs:float)"),
        ("xs:float", "inf", "is not a number"),
        ("xs:float", "-Infinity", "is not a number"),
        ("xs:float", "0x10", "is not a number"),
        ("xs:float", "1,5", "is not a number"),
        ("xs:float", "3.5e38", "out of range for xs:float"),
        ("xs:double", "1e309", "out of range for xs:double"),
        ("xs:boolean", "maybe", "is not a boolean"),
        ("xs:boolean", "t", "is not a boolean"),
        ("xs:anyURI", "no scheme here", "is not a URI"),
        ("xs:anyURI", "/relative/path", "no scheme"),
        ("xs:anyURI", "http://[::1", "is not a URI"),
        ("xs:anyURI", "http://a\x00b", "is not a URI"),
        ("xs:string", "nul\x00byte", "control character '\\x00'"),
        ("xs:string", "esc\x1b[31m", "control character"),
        ("xs:string", "del\x7f", "control character"),
        ("xs:string", "lone \udc80 surrogate", "invalid character"),
    ],
)
@pytest.mark.parametrize("normalize", [False, True])
def test_refused_values(datatype: str, raw: str, message: str, normalize: bool) -> None:
    refused(datatype, raw, message, normalize=normalize)


def test_long_bad_values_are_shortened_in_one_line() -> None:
    text = refused("xs:int", "x\n" * 1000, "is not an integer")
    assert len(text) < 150


def test_options_after_canonicalisation() -> None:
    # Compared in canonical form, kept as written (or canonical, with normalize).
    assert coerce_one("xs:int", "03", options=["1", "3"]) == "03"
    assert coerce_one("xs:float", "0.50", options=["0.5", "1"]) == "0.50"
    assert coerce_one("xs:float", "1", options=["1.0"]) == "1"
    assert coerce_one("xs:boolean", "yes", options=["true"]) == "yes"
    assert coerce_one("xs:int", "03", options=["1", "3"], normalize=True) == "3"
    assert coerce_one("xs:float", "0.50", options=["0.5", "1"], normalize=True) == "0.5"
    assert coerce_one("xs:boolean", "yes", options=["true"], normalize=True) == "true"
    assert coerce_one("xs:string", "red", options=["red", "green"]) == "red"
    refused("xs:string", "Red", "'Red' is not one of red, green", options=["red", "green"])
    refused("xs:int", "2", "'2' is not one of 1, 3", options=["1", "3"])


def test_min_max_inclusive() -> None:
    fields = {"min": "1", "max": "20"}
    assert coerce_one("xs:int", "1", **fields) == "1"
    assert coerce_one("xs:int", "20", **fields) == "20"
    refused("xs:int", "0", "0 is less than the minimum 1", **fields)
    refused("xs:int", "21", "21 is greater than the maximum 20", **fields)
    assert coerce_one("xs:double", "0.0", min="0") == "0.0"
    refused("xs:double", "-1e-9", "less than the minimum 0.0", min="0")
    assert coerce_one("xs:float", "99.5", max="100") == "99.5"


def sleep_definition() -> JobDefinition:
    return definition(
        ParameterDefinition("duration", "xs:int", "1", min="0"),
        ParameterDefinition("label", "xs:string", None, required=True),
        ParameterDefinition("note", "xs:string", None),
        ParameterDefinition("empty", "xs:string", ""),
        ParameterDefinition("verbose", "xs:boolean", "false"),
        ParameterDefinition("table", "file"),
        used=[UsedEntity("infile", url="file://$ID")],
    )


def test_defaults_and_order() -> None:
    jd = sleep_definition()
    result = coerce_parameters(jd, {"label": "a", "verbose": "YES"})
    assert result == {"duration": "1", "label": "a", "empty": "", "verbose": "YES"}
    assert list(result) == ["duration", "label", "empty", "verbose"]  # definition order
    assert "note" not in result  # optional without default: left out


def test_unknown_missing_and_file_inputs() -> None:
    jd = sleep_definition()
    with pytest.raises(ParameterError, match=r"^unknown parameter 'x' for job type 'sleep'$"):
        coerce_parameters(jd, {"label": "a", "x": "1"})
    with pytest.raises(ParameterError, match="unknown parameter 'Duration'"):
        coerce_parameters(jd, {"label": "a", "Duration": "1"})
    with pytest.raises(
        ParameterError, match=r"^parameter 'label' is required for job type 'sleep'$"
    ):
        coerce_parameters(jd, {"duration": "2"})
    for name in ("table", "infile"):
        with pytest.raises(ParameterError, match=f"'{name}' of job type 'sleep' is a file"):
            coerce_parameters(jd, {"label": "a", name: "x"})
    with pytest.raises(ParameterError, match="must be text"):
        coerce_parameters(jd, {"label": ["a", "b"]})  # type: ignore[dict-item]


def test_empty_values() -> None:
    jd = sleep_definition()
    # An empty number (a blank form field) means "not given": the default applies.
    assert coerce_parameters(jd, {"label": "a", "duration": " "})["duration"] == "1"
    # An empty text is a value, even for a required parameter.
    assert coerce_parameters(jd, {"label": ""})["label"] == ""
    nodefault = definition(ParameterDefinition("n", "xs:int", None, required=True))
    with pytest.raises(ParameterError, match="'n' is required"):
        coerce_parameters(nodefault, {"n": ""})


def test_bad_value_names_the_parameter() -> None:
    jd = sleep_definition()
    with pytest.raises(ParameterError, match=r"^parameter 'duration': 'abc' is not an integer"):
        coerce_parameters(jd, {"label": "a", "duration": "abc"})
    with pytest.raises(ParameterError, match="-1 is less than the minimum 0"):
        coerce_parameters(jd, {"label": "a", "duration": "-1"})


def test_partial() -> None:
    jd = sleep_definition()
    assert coerce_parameters(jd, {"duration": "05"}, partial=True) == {"duration": "05"}
    assert coerce_parameters(jd, {}, partial=True) == {}  # label not required here
    assert coerce_parameters(jd, {"duration": ""}, partial=True) == {"duration": "1"}
    with pytest.raises(ParameterError, match="'duration': 'x' is not an integer"):
        coerce_parameters(jd, {"duration": "x"}, partial=True)
    with pytest.raises(ParameterError, match="unknown parameter 'nope'"):
        coerce_parameters(jd, {"nope": "1"}, partial=True)
    nodefault = definition(ParameterDefinition("n", "xs:int", None))
    with pytest.raises(ParameterError, match="'n': empty value and no default"):
        coerce_parameters(nodefault, {"n": ""}, partial=True)


def test_definition_is_not_changed() -> None:
    jd = sleep_definition()
    before = repr(jd)
    coerce_parameters(jd, {"label": "a", "duration": "3"})
    assert repr(jd) == before


# --- values kept as written --------------------------------------------------------------

# Per datatype (file aside), values that are valid but not in canonical form, and that form.
LITERALS = [
    ("xs:string", "  two  words\t", "  two  words\t"),
    ("xs:anyURI", " https://example.org/x ", "https://example.org/x"),
    ("xs:anyURI", "\tivo://org/x\n", "ivo://org/x"),
    ("xs:boolean", "TRUE", "true"),
    ("xs:boolean", "yes", "true"),
    ("xs:boolean", "0", "false"),
    ("xs:boolean", " No ", "false"),
    ("xs:int", "+07", "7"),
    ("xs:int", "007", "7"),
    ("xs:int", " -0 ", "0"),
    ("xs:long", "-0009223372036854775808", "-9223372036854775808"),
    ("xs:short", "+032767", "32767"),
    ("xs:unsignedByte", "0255", "255"),
    ("xs:unsignedByte", " 1\n", "1"),
    ("xs:float", "1", "1.0"),
    ("xs:float", "1e0", "1.0"),
    ("xs:float", " 2.50", "2.5"),
    ("xs:float", "1.50", "1.5"),
    ("xs:double", "1E3", "1000.0"),
    ("xs:double", ".5", "0.5"),
    ("xs:double", "-0", "-0.0"),
]


def test_literals_cover_every_value_datatype() -> None:
    assert {datatype for datatype, _, _ in LITERALS} == set(DATATYPES) - {"file"}


@pytest.mark.parametrize(("datatype", "raw", "canonical"), LITERALS)
def test_values_are_kept_as_the_client_wrote_them(datatype: str, raw: str, canonical: str) -> None:
    assert coerce_one(datatype, raw) == raw
    jd = definition(ParameterDefinition("x", datatype))
    assert coerce_parameters(jd, {"x": raw}, partial=True) == {"x": raw}


@pytest.mark.parametrize(("datatype", "raw", "canonical"), LITERALS)
def test_normalize_keeps_the_canonical_form(datatype: str, raw: str, canonical: str) -> None:
    assert coerce_one(datatype, raw, normalize=True) == canonical
    jd = definition(ParameterDefinition("x", datatype, normalize=True))
    assert coerce_parameters(jd, {"x": raw}, partial=True) == {"x": canonical}


@pytest.mark.parametrize(("datatype", "raw", "canonical"), LITERALS)
def test_defaults_are_kept_as_the_definition_writes_them(
    datatype: str, raw: str, canonical: str
) -> None:
    literal = definition(ParameterDefinition("x", datatype, raw))
    assert literal.parameters[0].default == raw
    assert coerce_parameters(literal, {}) == {"x": raw}
    normalized = definition(ParameterDefinition("x", datatype, raw, normalize=True))
    assert normalized.parameters[0].default == canonical
    assert coerce_parameters(normalized, {}) == {"x": canonical}
    if datatype != "xs:string":  # a blank field is "not given": the default, as written
        assert coerce_parameters(literal, {"x": " "}) == {"x": raw}
        assert coerce_parameters(normalized, {"x": ""}) == {"x": canonical}


def test_limits_are_compared_in_canonical_form_whatever_is_kept() -> None:
    fields = {"min": "1", "max": "2.5"}
    assert coerce_one("xs:float", " 1", **fields) == " 1"
    assert coerce_one("xs:float", "25e-1", **fields) == "25e-1"
    assert coerce_one("xs:float", "25e-1", normalize=True, **fields) == "2.5"
    refused("xs:float", "0.99", "0.99 is less than the minimum 1.0", **fields)
    refused("xs:float", "2.50001", "2.50001 is greater than the maximum 2.5", **fields)
    refused("xs:int", "+04", "'4' is not one of 1, 3", options=["1", "03"])
    refused("xs:int", "+04", "'4' is not one of 1, 3", options=["1", "03"], normalize=True)


@pytest.mark.parametrize("raw", ["\x1c5", "5\x1f", "\x85true"])
def test_a_value_kept_as_written_must_be_storable_text(raw: str) -> None:
    # str.strip() takes these control characters for spaces: the canonical form is fine,
    # but XML (UWS documents) cannot carry the value as written.
    datatype = "xs:boolean" if "true" in raw else "xs:int"
    refused(datatype, raw, "control character")
    assert coerce_one(datatype, raw, normalize=True) in ("5", "true")

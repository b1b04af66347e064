"""Reading and writing definitions: YAML, JSON, VOTable (including files written by the
original OPUS), untrusted XML, and definition files on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from opus.server.jdl import (
    FORMATS,
    GeneratedEntity,
    JDLError,
    JobDefinition,
    JobSource,
    ParameterDefinition,
    UsedEntity,
    coerce_parameters,
    dump_definition,
    load_definition,
    parse_definition,
    save_definition,
)


def rich_definition() -> JobDefinition:
    """A definition using every field and datatype; values as written or normalised."""
    return JobDefinition(
        name="every-thing_1",
        annotation='Uses every field.\nOn two lines, with <xml> & "quotes" and ünïcode.',
        version="2.1",
        doculink="https://example.org/doc?a=1&b=2",
        type="test",
        subtype="all",
        contact_name="Ada Lovelace",
        contact_email="ada@example.org",
        execution_duration=0,
        quote=30,
        # Its ref is a client's value (tests/test_job_source.py has the other forms).
        source=JobSource("https://example.org/code.git", ref_parameter="nodefault"),
        script='echo "$text" > out.txt\n\tprintf "%s\\n" "$n" >> out.txt\r\nexit 0',
        parameters=[
            ParameterDefinition("text", "xs:string", "", False, "Empty default, optional"),
            ParameterDefinition("nodefault", "xs:string", None, True, "Required, no default"),
            ParameterDefinition("link", "xs:anyURI", "https://example.org/x", False),
            ParameterDefinition(
                "flag", "xs:boolean", "true", False, options=["true", "false"], normalize=True
            ),
            ParameterDefinition(
                "n", "xs:int", "3", True, min="-5", max="5", unit="s", ucd="time.duration"
            ),
            ParameterDefinition("big", "xs:long", None, False, utype="voprov:ParameterDefinition"),
            ParameterDefinition(
                "small", "xs:short", "-32768", False, options=["-32768", "0", "32767"]
            ),
            ParameterDefinition("byte", "xs:unsignedByte", "255", False),
            ParameterDefinition(
                "ratio", "xs:float", ".50", False, min="0.0", max="1.0", normalize=True
            ),
            ParameterDefinition("precise", "xs:double", "1e-300", False),
            ParameterDefinition("spelled", "xs:double", " 2.50E0\n", False),
            ParameterDefinition("table", "file", None, False, "A file parameter"),
        ],
        used=[
            UsedEntity("image", None, "image/fits, image/png", "1", "file://$ID", "Uploaded"),
            UsedEntity("catalog", "cat.xml", "application/x-votable+xml", "0..*", "ivo://x/$ID"),
        ],
        generated=[
            GeneratedEntity("out", "out.txt", "text/plain; charset=utf-8", "1", "The text"),
            GeneratedEntity("images", "*.png", "image/png", "*", ""),
        ],
    )


def canonical(jd: JobDefinition) -> JobDefinition:
    return parse_definition(dump_definition(jd, "yaml"), "yaml")


@pytest.mark.parametrize("fmt", ["yaml", "json", "votable"])
def test_every_field_round_trips(fmt: str) -> None:
    jd = canonical(rich_definition())
    assert jd.script.count("\r") == 0  # CRLF is read as LF
    assert jd.parameter("precise").default == "1e-300"
    assert jd.parameter("spelled").default == " 2.50E0\n"  # as written
    assert jd.parameter("ratio").default == "0.5"  # normalize: canonical
    back = parse_definition(dump_definition(jd, fmt), fmt)
    assert back == jd
    assert [p.name for p in back.parameters if p.normalize] == ["flag", "ratio"]
    assert back.parameter("text").default == ""
    assert back.parameter("nodefault").default is None
    assert back.parameter("table").datatype == "file"
    assert back.parameter("link").datatype == "xs:anyURI"
    assert back.source == JobSource("https://example.org/code.git", ref_parameter="nodefault")


def test_dump_without_script() -> None:
    jd = canonical(rich_definition())
    for fmt in ("yaml", "json", "votable"):
        text = dump_definition(jd, fmt, include_script=False)
        assert "exit 0" not in text
        with pytest.raises(JDLError, match="script"):
            parse_definition(text, fmt)
        assert parse_definition(text, fmt, script=jd.script) == jd


def test_unknown_format() -> None:
    with pytest.raises(JDLError, match="unknown format 'toml'"):
        parse_definition("name: x", "toml")
    with pytest.raises(JDLError, match="unknown format"):
        dump_definition(rich_definition(), "wadl")


# --- YAML and JSON -----------------------------------------------------------------

MINIMAL_YAML = """\
name: tolerant
parameters:
  - name: count
    datatype: xs:int
    default: 1
  - name: verbose
    datatype: xs:boolean
    default: yes
  - name: ratio
    datatype: xs:double
    default: 0.25
    options: [0.25, 0.5]
  - name: word
    default: 12
    required: "true"
version: 3
script: echo hi
"""


def test_yaml_scalar_types_are_tolerated() -> None:
    jd = parse_definition(MINIMAL_YAML, "yaml")
    assert jd.parameter("count").default == "1"
    assert jd.parameter("verbose").default == "yes"  # as written (no normalize)
    assert jd.parameter("ratio").default == "0.25"
    assert jd.parameter("ratio").options == ["0.25", "0.5"]
    assert jd.parameter("word").default == "12"
    assert jd.parameter("word").datatype == "xs:string"
    assert jd.parameter("word").required is True
    assert jd.version == "3"
    assert jd.execution_duration is None and jd.quote is None


def test_yaml_dump_is_readable() -> None:
    text = dump_definition(canonical(rich_definition()), "yaml")
    data = yaml.safe_load(text)
    assert list(data)[:2] == ["name", "annotation"]
    assert "annotation: |-\n  Uses every field.\n" in text  # multi-line text as a block
    assert "required: false" not in text  # usual values are left out
    assert data["parameters"][0] == {
        "name": "text",
        "datatype": "xs:string",
        "default": "",
        "annotation": "Empty default, optional",
    }


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("name: x\nscript: a\nexecutionDuration: 5\n", "executionDuration", "did you mean"),
        (
            "name: x\nscript: a\nparameters:\n  - name: a\n    requried: true\n",
            "parameters[0].requried",
            "did you mean 'required'",
        ),
        ("name: x\nscript: a\nparameters: {a: {datatype: xs:int}}\n", "parameters", "list"),
        (
            "name: x\nscript: a\nparameters:\n  - name: a\n    options: a,b\n",
            "parameters[0].options",
            "list",
        ),
        ("name: x\nscript: a\nused:\n  - just a string\n", "used[0]", "mapping"),
        ("name: x\nscript: a\nexecution_duration: 1.5\n", "execution_duration", "seconds"),
        ("name: x\nscript: a\nannotation: [1, 2]\n", "annotation", "text"),
        ("script: a\n", "name", "missing"),
    ],
)
def test_yaml_structure_errors(text: str, field: str, message: str) -> None:
    with pytest.raises(JDLError, match=message) as caught:
        parse_definition(text, "yaml", source="jdl/x.yml")
    assert str(caught.value).startswith(f"jdl/x.yml: {field}: ")
    assert caught.value.field == field and caught.value.source == "jdl/x.yml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [unclosed\n", "not valid YAML"),
        ("- a list\n", "mapping"),
        ("", "mapping"),
        ("a: &x [1, 2]\nb: *x\n", "aliases"),
        ("name: x\nscript: a\nscript: b\n", "duplicate key 'script'"),
        ("name: x\nparameters:\n  - name: a\n    default: 1\n    default: 2\n", "duplicate key"),
    ],
)
def test_yaml_document_errors(text: str, message: str) -> None:
    with pytest.raises(JDLError, match=message) as caught:
        parse_definition(text, "yaml", source="bad.yml")
    assert str(caught.value).startswith("bad.yml: ")


def test_yaml_billion_laughs_is_refused() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    with pytest.raises(JDLError, match="aliases"):
        parse_definition("\n".join(lines), "yaml")


def test_json_round_trip_and_shape() -> None:
    jd = canonical(rich_definition())
    text = dump_definition(jd, "json")
    data = json.loads(text)
    assert data["name"] == "every-thing_1"
    assert data["execution_duration"] == 0 and data["quote"] == 30
    assert [p["name"] for p in data["parameters"]][:2] == ["text", "nodefault"]
    assert parse_definition(text.encode(), "json") == jd


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"name": "x", "script": "a",}', "not valid JSON"),
        ('["x"]', "mapping"),
        ('{"name": "x", "script": "a", "Script": "b"}', "unknown key"),
    ],
)
def test_json_errors(text: str, message: str) -> None:
    with pytest.raises(JDLError, match=message):
        parse_definition(text, "json", source="x.json")


def test_not_utf8_and_too_large() -> None:
    with pytest.raises(JDLError, match="not UTF-8"):
        parse_definition(b"name: \xff\nscript: a\n", "yaml")
    with pytest.raises(JDLError, match="larger than"):
        parse_definition("name: x\nscript: |\n" + "  echo\n" * 200_000, "yaml")


# --- VOTable -----------------------------------------------------------------------

# As the original OPUS wrote it: CRLF in the script, empty multiplicities, role PARAMs,
# an empty value for "no default" of a number, xs:integer read from datatype="int".
ORIGINAL_OPUS_VOTABLE = """\
<VOTABLE xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xmlns="http://www.ivoa.net/xml/VOTable/v1.3" version="1.3" \
xsi:schemaLocation="http://www.ivoa.net/xml/VOTable/v1.3 http://www.ivoa.net/xml/VOTable/v1.3">
  <RESOURCE ID="copy_text" name="copy_text" type="meta" utype="voprov:ActivityDescription">
    <DESCRIPTION>Adds input text to a given file</DESCRIPTION>
    <PARAM name="doculink" value="" arraysize="*" datatype="char" \
utype="voprov:ActivityDescription.doculink"/>
    <PARAM name="type" value="test" arraysize="*" datatype="char" \
utype="voprov:ActivityDescription.type"/>
    <PARAM name="subtype" value="" arraysize="*" datatype="char" \
utype="voprov:ActivityDescription.subtype"/>
    <PARAM name="version" value="1" arraysize="*" datatype="char" \
utype="voprov:ActivityDescription.version"/>
    <PARAM name="contact_name" value="opus-admin" arraysize="*" datatype="char" \
utype="voprov:Agent.name"/>
    <PARAM name="contact_email" value="admin@opus" arraysize="*" datatype="char" \
utype="voprov:Agent.email"/>
    <PARAM name="executionDuration" value="20" datatype="int" utype="uws:Job.executionDuration"/>
    <PARAM name="quote" value="10" datatype="int" utype="uws:Job.quote"/>
    <PARAM name="script" \
value="cat $input &gt; out.txt&#13;&#10;echo $text &gt;&gt; out.txt&#13;&#10;" \
arraysize="*" datatype="char"/>
    <GROUP name="InputParams">
      <PARAM ID="text" name="text" datatype="char" value="!" arraysize="*">
        <DESCRIPTION>Input text</DESCRIPTION>
      </PARAM>
      <PARAM ID="times" name="times" datatype="int" value="" type="no_query">
        <DESCRIPTION>How many times</DESCRIPTION>
        <VALUES><MIN value="1"/><MAX value="10"/></VALUES>
      </PARAM>
      <PARAM ID="mode" name="mode" datatype="char" value="a" arraysize="*" type="no_query">
        <DESCRIPTION/>
        <VALUES><OPTION value="a"/><OPTION value="b"/></VALUES>
      </PARAM>
    </GROUP>
    <GROUP name="Used">
      <GROUP name="input" utype="voprov:UsedDescription">
        <DESCRIPTION>Input entity</DESCRIPTION>
        <PARAM name="role" value="" arraysize="*" datatype="char" \
utype="voprov:UsedDescription.role"/>
        <PARAM name="multiplicity" value="" arraysize="*" datatype="char" \
utype="voprov:UsedDescription.multiplicity"/>
        <PARAM name="default" value="" arraysize="*" datatype="char" utype="voprov:Entity.id"/>
        <PARAM name="content_type" value="" arraysize="*" datatype="char" \
utype="voprov:EntityDescription.content_type"/>
        <PARAM name="url" value="file://$ID" arraysize="*" datatype="char" \
utype="voprov:EntityDescription.url"/>
      </GROUP>
    </GROUP>
    <GROUP name="Generated">
      <GROUP name="output" utype="voprov:WasGeneratedBy">
        <DESCRIPTION>Output file</DESCRIPTION>
        <PARAM name="role" value="" arraysize="*" datatype="char" \
utype="voprov:WasGeneratedByDescription.role"/>
        <PARAM name="multiplicity" value="" arraysize="*" datatype="char" \
utype="voprov:WasGeneratedByDescription.multiplicity"/>
        <PARAM name="default" value="out.txt" arraysize="*" datatype="char" \
utype="voprov:Entity.id"/>
        <PARAM name="content_type" value="text/plain" arraysize="*" datatype="char" \
utype="voprov:EntityDescription.content_type"/>
      </GROUP>
    </GROUP>
  </RESOURCE>
</VOTABLE>
"""


def test_reads_original_opus_votable() -> None:
    jd = parse_definition(ORIGINAL_OPUS_VOTABLE, "votable", source="copy_text_vot.xml")
    assert jd.name == "copy_text"
    assert jd.annotation == "Adds input text to a given file"
    assert (jd.type, jd.version, jd.contact_email) == ("test", "1", "admin@opus")
    assert (jd.execution_duration, jd.quote) == (20, 10)
    assert jd.script == "cat $input > out.txt\necho $text >> out.txt\n"
    assert jd.parameters[0] == ParameterDefinition(
        "text", "xs:string", "!", required=True, annotation="Input text"
    )
    assert jd.parameters[1] == ParameterDefinition(
        "times", "xs:int", None, required=False, annotation="How many times", min="1", max="10"
    )
    assert jd.parameters[2].options == ["a", "b"] and jd.parameters[2].annotation == ""
    assert not any(p.normalize for p in jd.parameters)  # no normalize GROUP: none
    assert jd.used == [UsedEntity("input", None, "", "1", "file://$ID", "Input entity")]
    assert jd.generated == [GeneratedEntity("output", "out.txt", "text/plain", "1", "Output file")]


def test_votable_read_write_read_is_equal() -> None:
    first = parse_definition(ORIGINAL_OPUS_VOTABLE, "votable")
    written = dump_definition(first, "votable")
    assert parse_definition(written, "votable") == first
    assert dump_definition(parse_definition(written, "votable"), "votable") == written


def test_votable_encoding_follows_the_original() -> None:
    jd = canonical(rich_definition())
    text = dump_definition(jd, "votable")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<VOTABLE')
    assert 'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"' in text
    assert 'type="meta" utype="voprov:ActivityDescription"' in text
    for group in ("InputParams", "Used", "Generated"):
        assert f'<GROUP name="{group}">' in text
    # required: no type attribute; optional: type="no_query"
    assert '<PARAM ID="nodefault" name="nodefault" datatype="char" arraysize="*">' in text
    assert 'name="text" datatype="char" arraysize="*" value="" type="no_query"' in text
    assert 'xtype="application/octet-stream"' in text  # the file parameter
    assert 'xtype="xs:anyURI"' in text
    assert '<MIN value="-5"/>' in text and '<MAX value="5"/>' in text
    assert '<OPTION value="-32768"/>' in text
    assert (
        'name="url" value="file://$ID"' in text and 'utype="voprov:EntityDescription.url"' in text
    )
    assert '<GROUP name="images" utype="voprov:WasGeneratedBy">' in text
    assert 'name="executionDuration" value="0" datatype="int"' in text
    assert "&#10;" in text  # the script's newlines survive in an attribute


def test_votable_without_namespace_and_quote() -> None:
    text = (
        '<VOTABLE version="1.3"><RESOURCE name="bare">'
        '<PARAM name="script" value="true" datatype="char" arraysize="*"/>'
        '<GROUP name="InputParams"><PARAM name="x" datatype="double" value="1"/></GROUP>'
        "</RESOURCE></VOTABLE>"
    )
    jd = parse_definition(text, "votable")
    assert jd.name == "bare" and jd.quote is None and jd.execution_duration is None
    assert jd.doculink == ""
    linked = text.replace("<PARAM", '<LINK href="https://example.org/doc"/><PARAM', 1)
    assert parse_definition(linked, "votable").doculink == "https://example.org/doc"
    assert jd.parameters == [ParameterDefinition("x", "xs:double", "1", required=True)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('name="InputParams"', 'name="Inputs"'), "unknown GROUP 'Inputs'"),
        (('datatype="int" value=""', 'datatype="floatComplex" value=""'), "not supported"),
        (('name="quote"', 'name="quota"'), "unknown PARAM 'quota'"),
        (('name="role" value=""', 'name="rôle" value=""'), "unknown PARAM"),
        (('value="20"', 'value="twenty"'), "execution_duration: 'twenty'"),
        (('<MIN value="1"/>', '<MIN value="1" inclusive="no"/>'), "exclusive MIN"),
        (("VOTABLE", "TABLE"), "not VOTABLE"),
        (("</VOTABLE>", "</VOTABL>"), "not valid XML"),
        (('RESOURCE ID="copy_text" name="copy_text"', "RESOURCE"), "no name"),
    ],
)
def test_votable_errors(change: tuple[str, str], message: str) -> None:
    text = ORIGINAL_OPUS_VOTABLE.replace(*change)
    assert text != ORIGINAL_OPUS_VOTABLE
    with pytest.raises(JDLError, match=message) as caught:
        parse_definition(text, "votable", source="up.xml")
    assert str(caught.value).startswith("up.xml: ")


def test_votable_rules_apply_too() -> None:
    text = ORIGINAL_OPUS_VOTABLE.replace(
        'name="text" datatype="char"', 'name="PATH" datatype="char"'
    )
    with pytest.raises(JDLError, match=r"^up.xml: parameters\[0\].name: 'PATH' is a shell"):
        parse_definition(text, "votable", source="up.xml")


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE VOTABLE [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<VOTABLE xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE name="x">
<DESCRIPTION>&x;</DESCRIPTION>
<PARAM name="script" value="echo" datatype="char" arraysize="*"/></RESOURCE></VOTABLE>
"""


def billion_laughs() -> bytes:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    return (
        f'<?xml version="1.0"?><!DOCTYPE VOTABLE [{entities}]>'
        '<VOTABLE><RESOURCE name="lol"><DESCRIPTION>&lol9;</DESCRIPTION>'
        '<PARAM name="script" value="&lol9;" datatype="char" arraysize="*"/>'
        "</RESOURCE></VOTABLE>"
    ).encode()


@pytest.mark.parametrize("document", [XXE, billion_laughs()], ids=["external-entity", "laughs"])
def test_votable_entities_are_refused(document: bytes) -> None:
    with pytest.raises(JDLError, match="DOCTYPE") as caught:
        parse_definition(document, "votable", source="evil.xml")
    assert "root:" not in str(caught.value)


def test_votable_entities_hidden_by_encoding_are_refused() -> None:
    with pytest.raises(JDLError, match="UTF-8"):
        parse_definition(
            XXE.replace(b'"1.0"?', b'"1.0" encoding="UTF-16"?').decode().encode("utf-16"), "votable"
        )
    internal = XXE.replace(b'SYSTEM "file:///etc/passwd"', b'"expanded"')
    with pytest.raises(JDLError, match="DOCTYPE"):
        parse_definition(internal, "votable")


def test_votable_parser_settings_alone_expand_nothing() -> None:
    """The parser is the second line of defence, behind the refusal of any DOCTYPE."""
    from lxml import etree

    from opus.server.jdl.votable import safe_parser

    parser = safe_parser()
    root = etree.fromstring(XXE, parser)
    assert "root:" not in etree.tostring(root, encoding="unicode")
    try:
        root = etree.fromstring(billion_laughs(), parser)
    except etree.XMLSyntaxError as error:
        assert "amplification" in str(error)
    else:
        assert len(etree.tostring(root)) < 100_000


# --- defaults as written, and normalize --------------------------------------------------

# (datatype, the default as written in YAML and in JSON, the text kept, its canonical form).
# YAML would read the plain scalars as numbers, booleans or dates (0255 even as the octal
# 173, 1:30 as 90), JSON its numbers as floats or ints: the definition keeps the text. The
# VOTable's value attribute holds the text kept.
WRITTEN_DEFAULTS = [
    ("xs:float", "1.50", "1.50", "1.50", "1.5"),
    ("xs:float", "1", "1", "1", "1.0"),
    ("xs:float", "'1e0'", "1e0", "1e0", "1.0"),
    ("xs:double", "1.0e+3", "1.0e+3", "1.0e+3", "1000.0"),
    ("xs:double", "' 2.50'", '" 2.50"', " 2.50", "2.5"),
    ("xs:boolean", "TRUE", '"TRUE"', "TRUE", "true"),
    ("xs:boolean", "yes", '"yes"', "yes", "true"),
    ("xs:boolean", "No", '"No"', "No", "false"),
    ("xs:boolean", "0", "0", "0", "false"),
    ("xs:int", "+07", '"+07"', "+07", "7"),
    ("xs:int", "007", '"007"', "007", "7"),
    ("xs:int", "-0", "-0", "-0", "0"),
    ("xs:long", "-0042", '"-0042"', "-0042", "-42"),
    ("xs:short", "-32768", "-32768", "-32768", "-32768"),
    ("xs:unsignedByte", "0255", '"0255"', "0255", "255"),
    (
        "xs:anyURI",
        "' https://x.org/a '",
        '" https://x.org/a "',
        " https://x.org/a ",
        "https://x.org/a",
    ),
    ("xs:string", "1:30", '"1:30"', "1:30", "1:30"),
    ("xs:string", "TRUE", '"TRUE"', "TRUE", "TRUE"),
    ("xs:string", "2001-02-03 10:00:00", '"2001-02-03 10:00:00"', "2001-02-03 10:00:00", None),
]


def one_parameter_documents(
    datatype: str, yaml_default: str, json_default: str, kept: str, normalize: bool
) -> dict[str, str]:
    """The same one-parameter definition in the three forms, as a person would write it."""
    from opus.server.jdl.votable import XS_TO_VO

    yaml_text = (
        f"name: x\nscript: a\nparameters:\n  - name: x\n    datatype: {datatype}\n"
        f"    default: {yaml_default}\n" + ("    normalize: true\n" if normalize else "")
    )
    json_text = (
        f'{{"name": "x", "script": "a", "parameters": [{{"name": "x", "datatype": "{datatype}", '
        f'"default": {json_default}' + (', "normalize": true' if normalize else "") + "}]}"
    )
    vo_type = XS_TO_VO[datatype]
    extra = ' arraysize="*"' if vo_type == "char" else ""
    extra += ' xtype="xs:anyURI"' if datatype == "xs:anyURI" else ""
    refs = '<GROUP name="normalize"><PARAMref ref="x"/></GROUP>' if normalize else ""
    votable = (
        '<VOTABLE xmlns="http://www.ivoa.net/xml/VOTable/v1.3" version="1.3">'
        '<RESOURCE name="x"><PARAM name="script" value="a" datatype="char" arraysize="*"/>'
        f'<GROUP name="InputParams"><PARAM ID="x" name="x" datatype="{vo_type}"{extra} '
        f'value="{kept}"/>{refs}</GROUP></RESOURCE></VOTABLE>'
    )
    return {"yaml": yaml_text, "json": json_text, "votable": votable}


@pytest.mark.parametrize(
    ("datatype", "yaml_default", "json_default", "kept", "canonical"), WRITTEN_DEFAULTS
)
def test_defaults_are_read_as_written_in_every_form(
    datatype: str, yaml_default: str, json_default: str, kept: str, canonical: str | None
) -> None:
    canonical = kept if canonical is None else canonical
    for normalize, expected in ((False, kept), (True, canonical)):
        documents = one_parameter_documents(datatype, yaml_default, json_default, kept, normalize)
        for fmt, text in documents.items():
            jd = parse_definition(text, fmt, source=f"x.{fmt}")
            param = jd.parameters[0]
            assert (param.default, param.normalize) == (expected, normalize), (fmt, text)
            assert coerce_parameters(jd, {}) == {"x": expected}
            for other in FORMATS:  # and written back as it was read
                assert parse_definition(dump_definition(jd, other), other) == jd


def test_yaml_and_json_numbers_keep_their_spelling_where_text_is_expected() -> None:
    yaml_text = (
        "name: x\nversion: 1.10\nscript: a\nparameters:\n"
        "  - name: a\n    datatype: xs:float\n    options: [1.50, 2]\n    min: 0\n    max: 1e1\n"
    )
    jd = parse_definition(yaml_text, "yaml")
    assert jd.version == "1.10"  # no longer "1.1"
    assert jd.parameters[0].options == ["1.5", "2.0"]  # limits: canonical
    assert (jd.parameters[0].min, jd.parameters[0].max) == ("0.0", "10.0")
    json_text = (
        '{"name": "x", "version": 1.10, "script": "a", "execution_duration": 60, "quote": 0,'
        ' "parameters": [{"name": "a", "datatype": "xs:string", "default": 1E5}]}'
    )
    jd = parse_definition(json_text, "json")
    assert (jd.version, jd.parameters[0].default) == ("1.10", "1E5")
    assert (jd.execution_duration, jd.quote) == (60, 0)


@pytest.mark.parametrize(
    ("required", "normalize", "expected"),
    [
        ("yes", "YES", True),
        ("true", "True", True),
        ("'TRUE'", "' false '", False),
        ("no", "Off", False),
        ("false", "No", False),
    ],
)
def test_yaml_boolean_fields_accept_yaml_booleans(
    required: str, normalize: str, expected: bool
) -> None:
    text = (
        "name: x\nscript: a\nparameters:\n  - name: a\n    datatype: xs:boolean\n"
        f"    default: yes\n    required: {required}\n    normalize: {normalize}\n"
    )
    param = parse_definition(text, "yaml").parameters[0]
    assert param.normalize is expected
    assert param.required is (required.strip("'").strip().lower() in ("yes", "true"))
    assert param.default == ("true" if expected else "yes")


@pytest.mark.parametrize(
    ("fmt", "text", "field", "message"),
    [
        ("yaml", "normalize: maybe", "parameters[0].normalize", "'maybe' is not true or false"),
        ("yaml", "normalize: 1", "parameters[0].normalize", "1 is not true or false"),
        ("yaml", "normalize: [true]", "parameters[0].normalize", "is not true or false"),
        ("yaml", "required: 2001-02-30", None, "not valid YAML: a value cannot be read"),
        ("json", '"normalize": 1', "parameters[0].normalize", "1 is not true or false"),
        ("json", '"normalize": "on"', "parameters[0].normalize", "'on' is not true or false"),
        ("yaml", "normalize: true\n    datatype: file", "parameters[0].normalize", "file"),
        ("yaml", "default: 1_000\n    datatype: xs:int", "parameters[0].default", "not an integer"),
        ("yaml", "default: 0x10\n    datatype: xs:int", "parameters[0].default", "not an integer"),
        ("yaml", "default: on\n    datatype: xs:boolean", "parameters[0].default", "not a boolean"),
    ],
)
def test_normalize_and_written_default_errors(
    fmt: str, text: str, field: str | None, message: str
) -> None:
    if fmt == "yaml":
        document = f"name: x\nscript: a\nparameters:\n  - name: a\n    {text}\n"
    else:
        document = f'{{"name": "x", "script": "a", "parameters": [{{"name": "a", {text}}}]}}'
    with pytest.raises(JDLError, match=message) as caught:
        parse_definition(document, fmt, source="x")
    assert caught.value.field == field
    assert len(str(caught.value).splitlines()) == 1


def test_normalize_is_written_only_when_true() -> None:
    plain = ParameterDefinition("a", "xs:float", "1")
    jd = JobDefinition(name="x", script="a", parameters=[plain])
    assert "normalize" not in dump_definition(jd, "yaml")
    assert "normalize" not in dump_definition(jd, "json")
    assert "normalize" not in dump_definition(jd, "votable")
    jd.parameters[0].normalize = True
    assert "  normalize: true\n" in dump_definition(jd, "yaml")
    assert json.loads(dump_definition(jd, "json"))["parameters"][0]["normalize"] is True
    votable = dump_definition(jd, "votable")
    assert '<GROUP name="normalize">' in votable and '<PARAMref ref="a"/>' in votable
    assert "normalize=" not in votable  # no attribute VOTable does not know


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('<GROUP name="normalize"><PARAMref ref="nope"/></GROUP>', "'nope' .* not the ID"),
        ('<GROUP name="normalize"><PARAMref ref="times"/></GROUP>', "'times' .* not the ID"),
        ('<GROUP name="Normalise"><PARAMref ref="text"/></GROUP>', "unknown GROUP 'Normalise'"),
    ],
)
def test_votable_normalize_errors(change: str, message: str) -> None:
    # A PARAMref names a PARAM by its ID: without its ID, "times" is only a name.
    text = ORIGINAL_OPUS_VOTABLE.replace('ID="times" ', "").replace(
        '    </GROUP>\n    <GROUP name="Used">', f'    {change}</GROUP>\n    <GROUP name="Used">'
    )
    assert change in text
    with pytest.raises(JDLError, match=message) as caught:
        parse_definition(text, "votable", source="up.xml")
    assert caught.value.field == "parameters"


def test_votable_normalize_reads_from_a_hand_written_file() -> None:
    text = ORIGINAL_OPUS_VOTABLE.replace(
        '    </GROUP>\n    <GROUP name="Used">',
        '      <GROUP name="normalize"><DESCRIPTION>any</DESCRIPTION>'
        '<PARAMref ref="times"/><PARAMref ref="times"/></GROUP>\n'
        '    </GROUP>\n    <GROUP name="Used">',
    )
    jd = parse_definition(text, "votable")
    assert [p.normalize for p in jd.parameters] == [False, True, False]


def votable_schema():
    """The VOTable 1.3 XML Schema, as astropy (installed with pyvo) ships it."""
    import importlib.util

    from lxml import etree

    spec = importlib.util.find_spec("astropy")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("astropy (with the VOTable schema) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "io/votable/data/VOTable.v1.3.xsd"
    if not path.is_file():
        pytest.skip(f"no {path}")
    return etree.XMLSchema(etree.parse(str(path)))


def test_votable_with_normalize_is_valid_votable_1_3() -> None:
    from lxml import etree

    schema = votable_schema()
    # Every parameter with a default: VOTable 1.3 requires a PARAM's value, which this
    # form leaves out for "no default".
    jd = canonical(rich_definition())
    jd.parameters = [p for p in jd.parameters if p.default is not None]
    assert any(p.normalize for p in jd.parameters)
    document = etree.fromstring(dump_definition(jd, "votable").encode())
    assert schema.validate(document), schema.error_log
    attribute = etree.fromstring(
        dump_definition(jd, "votable")
        .replace('name="flag"', 'name="flag" normalize="true"')
        .encode()
    )
    assert not schema.validate(attribute)  # why normalize is not a PARAM attribute


# --- files on disk -----------------------------------------------------------------


def test_save_and_load(tmp_path: Path) -> None:
    jd = canonical(rich_definition())
    for fmt, suffix in (("yaml", ".yml"), ("json", ".json"), ("votable", ".xml")):
        directory = tmp_path / fmt
        path = save_definition(jd, directory, fmt)
        assert path == directory / f"every-thing_1{suffix}"
        assert (directory / "every-thing_1.sh").read_text() == jd.script
        assert "exit 0" not in path.read_text()  # the script lives in NAME.sh only
        assert load_definition(path) == jd
        assert sorted(p.name for p in directory.iterdir()) == sorted(
            [path.name, "every-thing_1.sh"]
        )


def test_save_refuses_a_broken_definition(tmp_path: Path) -> None:
    broken = JobDefinition(name="ok", script="", parameters=[ParameterDefinition("x")])
    with pytest.raises(JDLError, match=r"ok.yml: script: the job has no script"):
        save_definition(broken, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_load_script_inline_or_beside(tmp_path: Path) -> None:
    (tmp_path / "inline.yml").write_text("name: inline\nscript: echo inline\n")
    assert load_definition(tmp_path / "inline.yml").script == "echo inline"
    (tmp_path / "beside.yml").write_text("name: beside\n")
    (tmp_path / "beside.sh").write_text("echo beside\r\n")
    assert load_definition(tmp_path / "beside.yml").script == "echo beside\n"
    (tmp_path / "inline.sh").write_text("echo other\n")
    with pytest.raises(JDLError, match=r"inline.yml: script: .*both inline and in inline.sh"):
        load_definition(tmp_path / "inline.yml")


def test_load_original_votable_file_name(tmp_path: Path) -> None:
    (tmp_path / "copy_text_vot.xml").write_text(ORIGINAL_OPUS_VOTABLE)
    (tmp_path / "copy_text.vot").write_text(ORIGINAL_OPUS_VOTABLE)
    assert load_definition(tmp_path / "copy_text_vot.xml").name == "copy_text"
    assert load_definition(tmp_path / "copy_text.vot").name == "copy_text"


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(JDLError, match=r"missing.yml: cannot read the file"):
        load_definition(tmp_path / "missing.yml")
    (tmp_path / "x.toml").write_text("")
    with pytest.raises(JDLError, match=r"x.toml: unknown extension '.toml'"):
        load_definition(tmp_path / "x.toml")
    (tmp_path / "bad.sh").write_bytes(b"\xff\xfe")
    (tmp_path / "bad.yml").write_text("name: bad\n")
    with pytest.raises(JDLError, match=r"bad.yml: script: bad.sh is not UTF-8"):
        load_definition(tmp_path / "bad.yml")

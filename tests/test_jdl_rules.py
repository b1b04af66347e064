"""The rules checked when a definition is loaded: each broken rule is refused with a
message naming the file, the field and the problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from opus.server.jdl import DATATYPES, JDLError, load_definition, validate_definition
from opus.server.jdl.model import JobDefinition, ParameterDefinition


def base() -> dict:
    """A valid definition in dict form, for each test to break."""
    return {
        "name": "job",
        "script": "echo ok > out.txt\n",
        "parameters": [
            {"name": "a", "datatype": "xs:string", "default": "x"},
            {"name": "n", "datatype": "xs:int", "default": 1, "min": 0, "max": 10},
        ],
        "used": [{"name": "infile", "url": "file://$ID", "content_type": "text/plain"}],
        "generated": [{"name": "out", "default": "out.txt", "content_type": "text/plain"}],
    }


def write(tmp_path: Path, data: dict, name: str = "job") -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def refused(tmp_path: Path, data: dict, field: str, message: str, name: str = "job") -> str:
    """Load ``data`` from a file; check the error names the file and ``field``."""
    path = write(tmp_path, data, name)
    with pytest.raises(JDLError) as caught:
        load_definition(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: {field}: "), text
    assert re.search(message, text), text
    assert caught.value.field == field
    return text


def test_base_is_valid(tmp_path: Path) -> None:
    jd = load_definition(write(tmp_path, base()))
    assert [p.name for p in jd.parameters] == ["a", "n"]


@pytest.mark.parametrize("name", ["1job", "-job", "job.x", "j/b", "", "a" * 65, "jöb"])
def test_job_name_rule(tmp_path: Path, name: str) -> None:
    data = base() | {"name": name}
    with pytest.raises(JDLError, match=r"name: .* is not a job name"):
        load_definition(write(tmp_path, data, "job"))


def test_job_name_may_be_64_long_with_dash_and_underscore(tmp_path: Path) -> None:
    name = "J" + "-_9" * 21
    assert len(name) == 64
    assert load_definition(write(tmp_path, base() | {"name": name}, name)).name == name


@pytest.mark.parametrize("name", ["admin", "all", "anonymous", "Admin"])
def test_job_names_that_are_roles_or_owners_are_refused(tmp_path: Path, name: str) -> None:
    """Under CHECK_PERMISSIONS a job type is used by the role of its name: a type named
    admin would make the admin role the role of that job type."""
    refused(tmp_path, base() | {"name": name}, "name", "is reserved", name=name)


def test_name_must_match_file_stem(tmp_path: Path) -> None:
    refused(tmp_path, base() | {"name": "other"}, "name", "differs from the file name")


@pytest.mark.parametrize("name", ["1a", "a-b", "a b", "a.b", "é", ""])
def test_parameter_name_rule(tmp_path: Path, name: str) -> None:
    data = base()
    data["parameters"][1]["name"] = name
    refused(tmp_path, data, "parameters[1].name", "is not a valid name")


@pytest.mark.parametrize(
    "name",
    [
        "phase",
        "PHASE",
        "RunId",
        "executionDuration",
        "destruction",
        "quote",
        "action",
        "owner",
        "wait",
        "LAST",
        "after",
        "JOB_ID",
        "job_dir",
        "OPUS_X",
        "opus_token",
        "BASH_ENV",
        "bashopts",
        "SLURM_JOB_ID",
        "slurm_x",
        "PATH",
        "HOME",
        "IFS",
        "SHELL",
        "ENV",
        "PS4",
        "PWD",
        "OLDPWD",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "TMPDIR",
        "USER",
        "LANG",
        "UID",
    ],
)
def test_reserved_names(tmp_path: Path, name: str) -> None:
    data = base()
    data["parameters"][0]["name"] = name
    refused(tmp_path, data, "parameters[0].name", "UWS control parameter|reserved|shell variable")


@pytest.mark.parametrize("name", ["path", "user", "home", "lang", "job", "opus", "waiting"])
def test_ordinary_names_are_allowed(tmp_path: Path, name: str) -> None:
    data = base()
    data["parameters"][0]["name"] = name
    assert load_definition(write(tmp_path, data)).parameters[0].name == name


def test_reserved_used_and_generated_names(tmp_path: Path) -> None:
    data = base()
    data["used"][0]["name"] = "SLURM_FILE"
    refused(tmp_path, data, "used[0].name", "reserved")
    data = base()
    data["generated"][0]["name"] = "phase"
    refused(tmp_path, data, "generated[0].name", "UWS control parameter")


@pytest.mark.parametrize(
    ("group", "index", "name", "field"),
    [
        ("parameters", 1, "a", "parameters[1].name"),
        ("parameters", 1, "A", "parameters[1].name"),
        ("used", 0, "a", "used[0].name"),
        ("generated", 0, "infile", "generated[0].name"),
    ],
)
def test_names_are_unique(tmp_path: Path, group: str, index: int, name: str, field: str) -> None:
    data = base()
    data[group][index]["name"] = name
    refused(tmp_path, data, field, "is already the name of")


def test_unknown_datatype_message(tmp_path: Path) -> None:
    data = base()
    data["parameters"].append({"name": "count", "datatype": "xs:integer"})
    text = refused(tmp_path, data, "parameters[2].datatype", "'xs:integer' is not one of")
    assert text.endswith(", ".join(DATATYPES))


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"default": "abc"}, "parameters[1].default", r"'abc' is not an integer \(xs:int\)"),
        ({"default": 11}, "parameters[1].default", "greater than the maximum 10"),
        ({"default": -1}, "parameters[1].default", "less than the minimum 0"),
        ({"min": "zero"}, "parameters[1].min", "not an integer"),
        ({"max": 1.5}, "parameters[1].max", "not an integer"),
        ({"min": 5, "max": 4, "default": 4}, "parameters[1]", "min 5 is greater than max 4"),
        ({"options": [2, 3]}, "parameters[1].default", "'1' is not one of 2, 3"),
        ({"options": [1, "x"]}, "parameters[1].options[1]", "not an integer"),
        ({"options": [1, "01"], "default": 1}, "parameters[1].options", "repeat"),
        (
            {"datatype": "xs:unsignedByte", "default": 256, "max": None},
            "parameters[1].default",
            "out of range for xs:unsignedByte",
        ),
        (
            {"datatype": "xs:boolean", "min": None, "max": None, "default": "maybe"},
            "parameters[1].default",
            "not a boolean",
        ),
        ({"datatype": "xs:string", "default": "x"}, "parameters[1]", "min and max only apply"),
        (
            {"datatype": "file", "min": None, "max": None, "options": ["a"], "default": None},
            "parameters[1]",
            "file parameter has no options",
        ),
        ({"required": "sometimes"}, "parameters[1].required", "not true or false"),
    ],
)
@pytest.mark.parametrize("normalize", [False, True])
def test_parameter_value_rules(
    tmp_path: Path, change: dict, field: str, message: str, normalize: bool
) -> None:
    # The same checks and messages whether the default is kept as written or normalised.
    data = base()
    data["parameters"][1].update(change, normalize=normalize)
    data["parameters"][1] = {k: v for k, v in data["parameters"][1].items() if v is not None}
    refused(tmp_path, data, field, message)


@pytest.mark.parametrize(
    ("datatype", "default", "canonical", "limits"),
    [
        ("xs:int", "+05", "5", {"min": "-0", "max": "010", "options": ["05", "+7"]}),
        ("xs:float", "1", "1.0", {"min": 0, "max": "1e1", "options": [1, 2.50]}),
        ("xs:boolean", "Yes", "true", {"options": ["TRUE", "0"]}),
        ("xs:anyURI", " ivo://x/y", "ivo://x/y", {"options": [" ivo://x/y ", "urn:z"]}),
        ("xs:string", " x ", " x ", {"options": [" x ", "y"]}),
    ],
)
def test_defaults_are_kept_as_written_unless_normalize(
    tmp_path: Path, datatype: str, default: str, canonical: str, limits: dict
) -> None:
    data = base()
    data["parameters"][1] = {"name": "n", "datatype": datatype, "default": default, **limits}
    jd = load_definition(write(tmp_path, data))
    assert jd.parameters[1].default == default
    # Options, min and max are limits: always in canonical form, compared in that form.
    checked = validate_definition(
        JobDefinition(
            name="job",
            script="x",
            parameters=[ParameterDefinition("n", datatype, canonical, **_strings(limits))],
        )
    )
    assert (jd.parameters[1].options, jd.parameters[1].min, jd.parameters[1].max) == (
        checked.parameters[0].options,
        checked.parameters[0].min,
        checked.parameters[0].max,
    )
    data["parameters"][1]["normalize"] = True
    jd = load_definition(write(tmp_path, data))
    assert (jd.parameters[1].default, jd.parameters[1].normalize) == (canonical, True)
    assert validate_definition(jd) == jd


def _strings(limits: dict) -> dict:
    return {
        key: [str(v) for v in value] if isinstance(value, list) else str(value)
        for key, value in limits.items()
    }


def test_normalize_rules(tmp_path: Path) -> None:
    data = base()
    data["parameters"][1]["normalize"] = "sometimes"
    refused(tmp_path, data, "parameters[1].normalize", "'sometimes' is not true or false")
    data = base()
    data["parameters"].append({"name": "table", "datatype": "file", "normalize": True})
    refused(tmp_path, data, "parameters[2].normalize", "normalize does not apply to a file")
    with pytest.raises(JDLError, match=r"^parameters\[0\].normalize: 1 is not true or false"):
        validate_definition(
            JobDefinition(name="j", script="x", parameters=[ParameterDefinition("a", normalize=1)])  # type: ignore[arg-type]
        )


def test_string_default_within_options_and_no_control_characters(tmp_path: Path) -> None:
    data = base()
    data["parameters"][0].update(options=["y", "z"])
    refused(tmp_path, data, "parameters[0].default", "'x' is not one of y, z")
    data = base()
    data["parameters"][0]["default"] = "bell\x07"
    refused(tmp_path, data, "parameters[0].default", "control character")


@pytest.mark.parametrize(
    "glob", ["../out.txt", "/etc/passwd", "sub/out.txt", ".hidden", "-rf", "", "a b", "out$x"]
)
def test_generated_default_must_be_a_safe_glob(tmp_path: Path, glob: str) -> None:
    data = base()
    data["generated"][0]["default"] = glob
    refused(tmp_path, data, "generated[0].default", "is not a file name or glob")


@pytest.mark.parametrize("glob", ["out.txt", "*.png", "plot_[0-9].svg", "?x", "a-b.tar.gz"])
def test_generated_default_globs_allowed(tmp_path: Path, glob: str) -> None:
    data = base()
    data["generated"][0]["default"] = glob
    assert load_definition(write(tmp_path, data)).generated[0].default == glob


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"execution_duration": -1}, "execution_duration", "not a whole number of seconds"),
        ({"execution_duration": "soon"}, "execution_duration", "not a whole number"),
        ({"execution_duration": True}, "execution_duration", "not a whole number"),
        ({"quote": -5}, "quote", "not a whole number"),
        ({"script": "  \n"}, "script", "the job has no script"),
        ({"script": "echo \x00"}, "script", "control character"),
        ({"doculink": "javascript:alert(1)"}, "doculink", "not a URL starting with http"),
        ({"doculink": "example.org"}, "doculink", "not a URL"),
        ({"contact_email": "nobody"}, "contact_email", "not an e-mail address"),
        ({"version": "1\n2"}, "version", "single line"),
        ({"colour": "red"}, "colour", "unknown key"),
        ({"Name": "job"}, "Name", "did you mean 'name'"),
    ],
)
def test_top_level_rules(tmp_path: Path, change: dict, field: str, message: str) -> None:
    refused(tmp_path, base() | change, field, message)


def test_no_script_anywhere(tmp_path: Path) -> None:
    data = base()
    del data["script"]
    refused(tmp_path, data, "script", "no script .* NAME.sh")


@pytest.mark.parametrize(
    ("group", "change", "field", "message"),
    [
        ("used", {"url": "no scheme"}, "used[0].url", "not a URL"),
        ("used", {"content_type": "text"}, "used[0].content_type", "not a content type"),
        ("used", {"multiplicity": "many"}, "used[0].multiplicity", "not a multiplicity"),
        ("used", {"colour": "x"}, "used[0].colour", "unknown key"),
        (
            "generated",
            {"content_type": "text/plain\r\nX-Evil: 1"},
            "generated[0].content_type",
            "not a content type",
        ),
        (
            "generated",
            {"content_type": "text/plain, image/png"},
            "generated[0].content_type",
            "not a content type",
        ),
        ("generated", {"multiplicity": "-1"}, "generated[0].multiplicity", "not a multiplicity"),
    ],
)
def test_entity_rules(tmp_path: Path, group: str, change: dict, field: str, message: str) -> None:
    data = base()
    data[group][0].update(change)
    refused(tmp_path, data, field, message)


def test_entity_canonical_values(tmp_path: Path) -> None:
    data = base()
    data["used"][0].update(default="", multiplicity="", content_type="image/png, image/*")
    data["generated"][0].update(multiplicity="0..*", content_type='text/plain; charset="utf-8"')
    jd = load_definition(write(tmp_path, data))
    assert jd.used[0].default is None and jd.used[0].multiplicity == "1"
    assert jd.generated[0].multiplicity == "0..*"


def test_validate_definition_in_code() -> None:
    jd = JobDefinition(name="coded", script="echo\r\n")
    checked = validate_definition(jd)
    assert checked.script == "echo\n" and jd.script == "echo\r\n"  # a copy, not changed
    with pytest.raises(JDLError, match=r"^name: "):
        validate_definition(JobDefinition(name="bad name", script="echo"))

"""The shipped job definitions (jdl/): they load, convert between forms, and their scripts
do what their definitions promise when run the way OPUS runs them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from opus.server.jdl import (
    JobDefinition,
    coerce_parameters,
    dump_definition,
    load_definition,
    parse_definition,
)

ROOT = Path(__file__).resolve().parents[1]
JDL_DIR = ROOT / "jdl"
EXAMPLES = sorted(JDL_DIR.glob("*.yml"))


def test_the_examples_are_shipped() -> None:
    assert {p.stem for p in EXAMPLES} >= {"sleep", "fail", "append_text", "plot", "fits_image"}
    for path in EXAMPLES:
        assert path.with_suffix(".sh").is_file(), f"{path.name} has no script file"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_loads_with_its_script(path: Path) -> None:
    jd = load_definition(path)
    assert jd.name == path.stem
    assert jd.annotation and jd.contact_email and jd.version
    assert jd.execution_duration > 0
    assert jd.script == path.with_suffix(".sh").read_text()
    assert jd.generated or jd.name == "fail"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("fmt", ["yaml", "json", "votable"])
def test_example_round_trips_through_every_form(path: Path, fmt: str) -> None:
    jd = load_definition(path)
    text = dump_definition(jd, fmt)
    assert parse_definition(text, fmt) == jd
    # And once more from the written form: writing is stable.
    assert dump_definition(parse_definition(text, fmt), fmt) == text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_yaml_to_votable_to_model(path: Path) -> None:
    jd = load_definition(path)
    votable = dump_definition(jd, "votable")
    assert 'utype="voprov:ActivityDescription"' in votable
    assert parse_definition(votable.encode(), "votable", source="x.xml") == jd


def test_example_values_are_kept_as_written() -> None:
    sleep = load_definition(JDL_DIR / "sleep.yml")
    assert sleep.parameter("duration") is not None
    # The script trims what sleep(1) would refuse: the value stays the client's own.
    assert sleep.parameter("duration").normalize is False
    assert sleep.parameter("duration").default == "1"  # written "1" in YAML
    assert coerce_parameters(sleep, {}) == {"duration": "1"}
    assert coerce_parameters(sleep, {"duration": " 2 "}) == {"duration": " 2 "}
    plot = load_definition(JDL_DIR / "plot.yml")
    assert coerce_parameters(plot, {"cycles": "20"})["cycles"] == "20"
    # Python's int() reads any valid xs:int: the value is kept as the client wrote it.
    assert plot.parameter("cycles").normalize is False
    assert coerce_parameters(plot, {"cycles": " +07"})["cycles"] == " +07"
    assert plot.file_inputs() == []
    append = load_definition(JDL_DIR / "append_text.yml")
    assert append.file_inputs() == ["input"]
    assert append.used_entity("input") is not None
    assert append.used_entity("input").url == "file://$ID"


# --- running the scripts as a job would run ---------------------------------------


def run_job(
    jd: JobDefinition, workdir: Path, values: dict[str, str], files: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a definition's script with bash in ``workdir``, variables exported; ``files``
    maps file inputs to the names of their files in ``workdir``."""
    env = {"PATH": os.environ["PATH"], "HOME": str(workdir)}
    env.update(coerce_parameters(jd, values))
    env.update(files or {})
    env.update(JOB_ID="job1", JOB_DIR=str(workdir), JOB_OUTPUT_DIR=str(workdir / "out"))
    return subprocess.run(
        ["bash", "-c", jd.script],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


needs_shell = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("python3") is None,
    reason="needs bash and python3",
)


@needs_shell
def test_sleep_script_writes_its_result(tmp_path: Path) -> None:
    jd = load_definition(JDL_DIR / "sleep.yml")
    done = run_job(jd, tmp_path, {"duration": "0.1"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "output.txt").read_text() == "OPUS job job1 slept for 0.1 seconds.\n"
    # sleep(1) refuses " 1e-1 ", a valid xs:float given as written: the script trims it.
    done = run_job(jd, tmp_path, {"duration": " 1e-1 "})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "output.txt").read_text() == "OPUS job job1 slept for 1e-1 seconds.\n"
    # "-0" passes min: 0; sleep(1) would read it as an option.
    done = run_job(jd, tmp_path, {"duration": "-0"})
    assert done.returncode == 0, done.stderr


@needs_shell
def test_fail_script_fails_with_its_message(tmp_path: Path) -> None:
    jd = load_definition(JDL_DIR / "fail.yml")
    done = run_job(jd, tmp_path, {})
    assert done.returncode == 1
    assert done.stderr == "this job fails on purpose\n"
    done = run_job(jd, tmp_path, {"message": "$(touch pwned) `id` ; rm -rf x"})
    assert done.returncode == 1
    assert done.stderr == "$(touch pwned) `id` ; rm -rf x\n"
    assert not (tmp_path / "pwned").exists()


@needs_shell
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("line 1\nline 2\n", "line 1\nline 2\nadded\n"),
        ("no newline at end", "no newline at end\nadded\n"),
        ("", "added\n"),
    ],
)
def test_append_text_script(tmp_path: Path, content: str, expected: str) -> None:
    jd = load_definition(JDL_DIR / "append_text.yml")
    (tmp_path / "-my input.txt").write_text(content)
    # The used entity's variable holds the uploaded file's name (here an awkward one).
    done = run_job(jd, tmp_path, {"text": "added"}, files={"input": "-my input.txt"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "output.txt").read_text() == expected


@needs_shell
@pytest.mark.parametrize("function", ["sin", "cos", "square", "triangle", "sawtooth"])
def test_plot_script_writes_valid_svg(tmp_path: Path, function: str) -> None:
    jd = load_definition(JDL_DIR / "plot.yml")
    values = {"function": function, "cycles": "3", "title": 'a <b>&"title"'}
    done = run_job(jd, tmp_path, values)
    assert done.returncode == 0, done.stderr
    svg = etree.parse(str(tmp_path / "plot.svg")).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert svg.findtext("s:title", namespaces=ns) == 'a <b>&"title"'
    points = svg.find("s:polyline", ns).get("points").split()
    assert len(points) > 1000
    ys = [float(p.split(",")[1]) for p in points]
    assert max(ys) - min(ys) > 250  # the curve spans the plot height
    assert re.fullmatch(r"[a-z]+", svg.find("s:polyline", ns).get("stroke"))


@needs_shell
def test_plot_script_reads_cycles_as_the_client_wrote_them(tmp_path: Path) -> None:
    jd = load_definition(JDL_DIR / "plot.yml")
    done = run_job(jd, tmp_path, {"cycles": " +03\n"})  # a valid xs:int, kept as written
    assert done.returncode == 0, done.stderr
    svg = etree.parse(str(tmp_path / "plot.svg")).getroot()
    assert svg.findtext("{http://www.w3.org/2000/svg}title") == "sin, 3 cycles"


# --- the examples in docs/jdl.md ---------------------------------------------------


def doc_blocks(language: str) -> list[str]:
    text = (ROOT / "docs" / "jdl.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.parametrize(
    ("language", "fmt"), [("yaml", "yaml"), ("json", "json"), ("xml", "votable")]
)
def test_docs_examples_are_the_shipped_append_text(language: str, fmt: str) -> None:
    shipped = load_definition(JDL_DIR / "append_text.yml")
    complete = [b for b in doc_blocks(language) if "append_text" in b and "script" in b]
    assert complete, f"docs/jdl.md has no complete {language} example"
    assert parse_definition(complete[0], fmt, source=f"docs/jdl.md ({language})") == shipped

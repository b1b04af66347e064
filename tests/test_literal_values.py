"""Values are kept as the client sent them: stored, listed, returned and exported.

A value is checked against its definition (datatype, options, min/max) but what the job
keeps is the client's literal, on every datatype: ``1`` for an xs:float is listed in
``uws:parameters``, returned by /parameters/{name} and handed to the job's script as
``1``, not ``1.0``. A definition that says ``normalize`` gets the canonical form instead,
and a default the client did not send is the definition's own text.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import webtest

from opus.core.layout import INTERNAL_DIR, STATUS_FILE
from opus.server.app import build_service, create_app
from opus.server.service import JobService, reconcile
from opus.server.uwsxml import UWS_NS
from tests.conftest import make_settings

# One parameter per datatype, each with a literal that is not its canonical form.
LITERALS = {
    "a_string": ("xs:string", "  two  words \t"),
    "a_uri": ("xs:anyURI", "HTTPS://Example.org/a%20b"),
    "a_boolean": ("xs:boolean", "TRUE"),
    "an_int": ("xs:int", "+007"),
    "a_long": ("xs:long", "-0042"),
    "a_short": ("xs:short", "0012"),
    "a_byte": ("xs:unsignedByte", "+9"),
    "a_float": ("xs:float", "1"),
    "a_double": ("xs:double", " 2.50E0 "),
}
CANONICAL = {
    "a_boolean": "true",
    "an_int": "7",
    "a_long": "-42",
    "a_short": "12",
    "a_byte": "9",
    "a_float": "1.0",
    "a_double": "2.5",
}
DEFINITION = """\
name: types
execution_duration: 60
parameters:
{parameters}
  - name: a_default
    datatype: xs:float
    default: 1.50
  - name: a_normalized
    datatype: xs:float
    default: 1.50
    normalize: true
script: |
  for name in {names} a_default a_normalized; do
    printf '%s' "${{!name}}" > "$JOB_OUTPUT_DIR/$name"
  done
"""


def types_definition() -> str:
    parameters = "\n".join(
        f"  - name: {name}\n    datatype: {datatype}\n    required: true"
        for name, (datatype, _literal) in LITERALS.items()
    )
    return DEFINITION.format(parameters=parameters, names=" ".join(LITERALS))


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> tuple[webtest.TestApp, JobService]:
    settings = make_settings(tmp_path, DATABASE_URL=database_url)
    (settings.jdl_path / "types.yml").write_text(types_definition())
    service = build_service(settings)
    return webtest.TestApp(create_app(settings, service)), service


def create(app: webtest.TestApp, **values: str) -> str:
    response = app.post("/rest/types", values, status=303)
    return urlsplit(response.location).path


def listed(app: webtest.TestApp, path: str, validate) -> dict[str, str]:
    root = validate(app.get(f"{path}/parameters").body)
    return {p.get("id"): p.text or "" for p in root.iter(f"{{{UWS_NS}}}parameter")}


def test_every_datatype_keeps_the_literal_the_client_sent(site, validate) -> None:
    app, _service = site
    path = create(app, **{name: literal for name, (_t, literal) in LITERALS.items()})
    values = listed(app, path, validate)
    for name, (_datatype, literal) in LITERALS.items():
        assert values[name] == literal, name
        assert app.get(f"{path}/parameters/{name}").text == literal, name
    # The job document lists the same values.
    job = validate(app.get(path).body)
    in_job = {p.get("id"): p.text or "" for p in job.iter(f"{{{UWS_NS}}}parameter")}
    assert {name: in_job[name] for name in LITERALS} == {n: v for n, (_, v) in LITERALS.items()}


def test_defaults_are_listed_as_the_definition_writes_them(site, validate) -> None:
    app, _service = site
    path = create(app, **{name: literal for name, (_t, literal) in LITERALS.items()})
    values = listed(app, path, validate)
    assert values["a_default"] == "1.50"
    assert values["a_normalized"] == "1.5"  # normalize: the canonical form


def test_a_normalized_parameter_gets_the_canonical_form(site, validate) -> None:
    app, _service = site
    given = {name: literal for name, (_t, literal) in LITERALS.items()}
    path = create(app, **given, a_normalized="+3E0")
    assert app.get(f"{path}/parameters/a_normalized").text == "3.0"
    # An update keeps the literal too.
    app.post(f"{path}/parameters", {"a_float": "2", "a_normalized": "4"}, status=303)
    assert app.get(f"{path}/parameters/a_float").text == "2"
    assert app.get(f"{path}/parameters/a_normalized").text == "4.0"


def test_refused_values_are_still_refused(site) -> None:
    app, service = site
    given = {name: literal for name, (_t, literal) in LITERALS.items()}
    for name, bad in [("a_float", "1,5"), ("a_boolean", "maybe"), ("a_byte", "256")]:
        response = app.post("/rest/types", {**given, name: bad}, status=400)
        assert name in response.text
    assert list(service.settings.jobs_path.iterdir()) == []


def test_the_script_gets_the_literals_byte_for_byte(site) -> None:
    app, service = site
    given = {name: literal for name, (_t, literal) in LITERALS.items()}
    path = create(app, **given, PHASE="RUN")
    job_id = path.rsplit("/", 1)[1]
    job_dir = service.files.directory(job_id)
    status = job_dir / INTERNAL_DIR / STATUS_FILE
    deadline = time.monotonic() + 30
    while not status.exists():
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)
    reconcile(service)
    assert status.read_text().startswith("COMPLETED")
    seen = {name: (job_dir / "results" / name).read_text() for name in LITERALS}
    assert seen == given
    assert (job_dir / "results" / "a_default").read_text() == "1.50"
    assert (job_dir / "results" / "a_normalized").read_text() == "1.5"
    # The canonical forms were not what the script saw (the test could not pass by them).
    assert all(seen[name] != canonical for name, canonical in CANONICAL.items())

"""The provenance documents of opus/server/provenance/, from hand-built graphs.

A chain of three jobs (job1 generates e1, job2 uses e1 and generates e2, job3 uses e2)
is written in every format and read back: PROV-JSON as JSON, PROV-XML with lxml, PROV-N
as text, and the W3C model by the current prov release (the project's .venv-prov, which
`make test` installs: without it these tests fail). Internal provenance is merged from a
real logprov log, written by running jdl/provenance_demo.sh, and from PROV-JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import prov.constants
import prov.model
import pytest
from lxml import etree

from opus.core.phases import Phase
from opus.core.records import Job, Parameter
from opus.server import provenance, provinternal
from opus.server.jdl import JobDefinition
from opus.server.jdl.model import GeneratedEntity, ParameterDefinition, UsedEntity
from opus.server.provmodel import (
    DocumentOptions,
    EntityNode,
    Format,
    Generation,
    InternalProvenance,
    JobNode,
    Model,
    ProvenanceGraph,
    Usage,
)

ROOT = Path(__file__).resolve().parents[1]
PROV_PYTHON = ROOT / ".venv-prov" / "bin" / "python"
BASE = "https://opus.example.org/opus"
T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
JOB_IDS = ("aaaa2222", "bbbb3333", "cccc4444")
E1, E2 = "1" * 32, "2" * 32
HASH = "0123456789abcdef" * 4
VOPROV_URI = "http://www.ivoa.net/documents/ProvenanceDM/index.html#"
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def definition() -> JobDefinition:
    return JobDefinition(
        name="wordy",
        annotation="Does things to words.",
        version="2.1",
        doculink="https://docs.example.org/wordy",
        type="test",
        subtype="text",
        contact_name="Ada Admin",
        contact_email="ada@example.org",
        parameters=[
            ParameterDefinition(
                name="count",
                datatype="xs:int",
                default="3",
                annotation="How many.",
                min="1",
                max="10",
                unit="s",
                ucd="meta.number",
                utype="x:count",
            ),
            ParameterDefinition(name="mode", options=["fast", "slow"], default="fast"),
        ],
        used=[UsedEntity(name="input", content_type="text/plain", annotation="The text.")],
        generated=[GeneratedEntity(name="output", default="out.txt", content_type="text/plain")],
    )


def job(job_id: str, minutes: int, **changes: Any) -> Job:
    values: dict[str, Any] = {
        "id": job_id,
        "jobname": "wordy",
        "run_id": f"run {minutes}",
        "owner": "bob.smith@example.org",
        "phase": Phase.COMPLETED,
        "creation_time": T0 + timedelta(minutes=minutes),
        "start_time": T0 + timedelta(minutes=minutes, seconds=1),
        "end_time": T0 + timedelta(minutes=minutes, seconds=5),
        "destruction_time": None,
        "quote": None,
        "phase_time": T0,
        "execution_duration": 60,
        "error_type": None,
        "error_message": None,
        "external_id": None,
        "token_hash": "x",
        "definition_revision": 3,
        "definition_hash": HASH,
    }
    values.update(changes)
    return Job(**values)


def job_node(job_id: str, minutes: int, **changes: Any) -> JobNode:
    params = (
        Parameter("count", "4"),
        Parameter("mode", "slow"),
        Parameter("input", f"https://data.example.org/{job_id}.txt", by_reference=True),
    )
    return JobNode(
        job=job(job_id, minutes, **changes),
        parameters=params,
        definition=definition(),
        url=f"{BASE}/rest/wordy/{job_id}",
        page_url=f"{BASE}/jobs/wordy/{job_id}",
    )


def entity(entity_id: str, job_id: str, location: bool = True) -> EntityNode:
    return EntityNode(
        id=entity_id,
        name="out.txt",
        kind="result",
        owner="bob.smith@example.org",
        content_type="text/plain",
        size=42,
        sha256="ab" * 32,
        creation_time=T0,
        url=f"{BASE}/entities/{entity_id}",
        location=f"{BASE}/store/{entity_id}" if location else None,
        generated_by=job_id,
    )


def chain_graph(jobs: int = 3) -> ProvenanceGraph:
    """job1 → e1 → job2 → e2 → job3 (or a longer chain of the same pattern)."""
    ids = JOB_IDS if jobs == 3 else tuple(f"job{index}" for index in range(jobs))
    entity_ids = [f"{index:032x}" for index in range(1, jobs)] if jobs != 3 else [E1, E2]
    nodes = tuple(job_node(job_id, index) for index, job_id in enumerate(ids))
    entities = tuple(entity(eid, ids[i]) for i, eid in enumerate(entity_ids))
    generations = tuple(
        Generation(eid, ids[i], "output", T0 + timedelta(minutes=i, seconds=5))
        for i, eid in enumerate(entity_ids)
    )
    usages = tuple(
        Usage(ids[i + 1], eid, "input", T0 + timedelta(minutes=i + 1, seconds=1))
        for i, eid in enumerate(entity_ids)
    )
    return ProvenanceGraph(nodes, entities, usages, generations, BASE, frozenset({ids[-1]}))


def as_json(graph: ProvenanceGraph, **options: Any) -> dict[str, Any]:
    data = provenance.document_bytes(graph, DocumentOptions(**options), Format.JSON)
    result: dict[str, Any] = json.loads(data)
    return result


def relations(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return list(doc.get(kind, {}).values())


def read_with_current_prov(data: bytes, fmt: str, tmp_path: Path) -> dict[str, Any]:
    """What the current prov release makes of a document: its records, by kind."""
    assert PROV_PYTHON.is_file(), (
        f"{PROV_PYTHON} is missing: `make install-test` installs the current prov release "
        "there, to check that MODEL=W3C documents are plain PROV"
    )
    path = tmp_path / f"doc.{fmt}"
    path.write_bytes(data)
    script = (
        "import json, sys, prov\n"
        "doc = prov.read(sys.argv[1], format=sys.argv[2])\n"
        "records = [(r.get_type().uri, str(r.identifier or ''), "
        "[[str(k), str(v)] for k, v in r.attributes]) for r in doc.get_records()]\n"
        "print(json.dumps(records))\n"
    )
    done = subprocess.run(
        [str(PROV_PYTHON), "-c", script, str(path), fmt],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"prov could not read the {fmt} document:\n{done.stderr}"
    by_kind: dict[str, Any] = {}
    for uri, identifier, attributes in json.loads(done.stdout):
        by_kind.setdefault(uri.split("#")[-1], []).append((identifier, dict(attributes)))
    return by_kind


# --- identifiers and content ----------------------------------------------------------


def test_identifiers_are_derived_from_the_ids_and_safe_everywhere() -> None:
    assert provenance.activity_id("2abc") == "opus_job:job_2abc"
    assert provenance.entity_id(E1) == f"opus_entity:entity_{E1}"
    doc = as_json(chain_graph())
    assert set(doc["activity"]) == {provenance.activity_id(j) for j in JOB_IDS}
    assert set(doc["entity"]) == {provenance.entity_id(E1), provenance.entity_id(E2)}
    assert doc["prefix"]["opus_job"] == f"{BASE}/jobs/"
    assert doc["prefix"]["opus_entity"] == f"{BASE}/entities/"
    # A user name's @ and . are escaped: PROV-N and XML QNames forbid them.
    assert "opus_user:user_bob-2esmith-40example-2eorg" in doc["agent"]


def test_json_holds_the_chain_with_roles_and_times() -> None:
    doc = as_json(chain_graph())
    first = doc["activity"][provenance.activity_id(JOB_IDS[0])]
    assert first["prov:label"] == "wordy run 0"
    assert first["prov:startTime"].startswith("2024-05-06T07:08:10")
    assert first["prov:endTime"].startswith("2024-05-06T07:08:14")
    used = {(u["prov:activity"], u["prov:entity"], u["prov:role"]) for u in relations(doc, "used")}
    assert used == {
        (provenance.activity_id(JOB_IDS[1]), provenance.entity_id(E1), "input"),
        (provenance.activity_id(JOB_IDS[2]), provenance.entity_id(E2), "input"),
    }
    generated = {
        (g["prov:entity"], g["prov:activity"], g["prov:role"])
        for g in relations(doc, "wasGeneratedBy")
    }
    assert generated == {
        (provenance.entity_id(E1), provenance.activity_id(JOB_IDS[0]), "output"),
        (provenance.entity_id(E2), provenance.activity_id(JOB_IDS[1]), "output"),
    }
    assert all(
        g["prov:time"].startswith("2024-05-06T07:") for g in relations(doc, "wasGeneratedBy")
    )
    e1 = doc["entity"][provenance.entity_id(E1)]
    assert e1["opus:sha256"] == "ab" * 32
    assert e1["opus:size"]["$"] == 42
    assert e1["voprov:location"] == f"{BASE}/store/{E1}"
    assert e1["voprov:contentType"] == "text/plain"


def test_xml_holds_the_chain() -> None:
    data = provenance.document_bytes(chain_graph(), DocumentOptions(), Format.XML)
    root = etree.fromstring(data, SAFE_PARSER)
    ns = {"voprov": VOPROV_URI, "prov": prov.constants.PROV.uri}
    ids = {a.get(f"{{{VOPROV_URI}}}id") for a in root.findall("voprov:activity", ns)}
    assert ids == {provenance.activity_id(j) for j in JOB_IDS}
    used = [
        (
            u.find("prov:activity", ns).get(f"{{{VOPROV_URI}}}ref"),  # type: ignore[union-attr]
            u.find("prov:entity", ns).get(f"{{{VOPROV_URI}}}ref"),  # type: ignore[union-attr]
            u.findtext("prov:role", namespaces=ns),
        )
        for u in root.findall("voprov:used", ns)
    ]
    assert (provenance.activity_id(JOB_IDS[1]), provenance.entity_id(E1), "input") in used
    assert len(root.findall("voprov:wasGeneratedBy", ns)) == 2


def test_provn_holds_the_chain() -> None:
    text = provenance.document_bytes(chain_graph(), DocumentOptions(), Format.PROVN).decode()
    assert text.startswith("document")
    assert f"activity({provenance.activity_id(JOB_IDS[0])}, 2024-05-06T07:08:10" in text
    assert f"used({provenance.activity_id(JOB_IDS[1])}, {provenance.entity_id(E1)}, " in text
    assert '[prov:role="input"' in text
    assert (
        f"wasGeneratedBy({provenance.entity_id(E2)}, {provenance.activity_id(JOB_IDS[1])}" in text
    )


def test_agents_and_configuration_follow_the_options() -> None:
    doc = as_json(chain_graph())
    roles = {(a["prov:agent"], a["prov:role"]) for a in relations(doc, "wasAssociatedWith")}
    assert roles == {
        ("opus_user:user_bob-2esmith-40example-2eorg", "owner"),
        ("opus_user:contact_ada-40example-2eorg", "contact"),
    }
    assert len(doc["agent"]) == 2  # each agent once, for the three jobs
    assert (
        doc["agent"]["opus_user:contact_ada-40example-2eorg"]["voprov:email"] == "ada@example.org"
    )
    first = f"opus_job:job_{JOB_IDS[0]}_param_"
    values = {
        k[len(first) :]: p["prov:value"] for k, p in doc["parameter"].items() if k.startswith(first)
    }
    # A file given by reference is a parameter too: its value is the URL.
    assert values == {
        "count": "4",
        "mode": "slow",
        "input": "https://data.example.org/aaaa2222.txt",
    }
    assert doc["parameter"][f"{first}input"]["opus:byReference"] is True
    configured = {
        (c["voprov:configured"], c["voprov:configurator"])
        for c in relations(doc, "wasConfiguredBy")
    }
    assert (
        len(configured) == 9 and (provenance.activity_id(JOB_IDS[0]), f"{first}count") in configured
    )
    bare = as_json(chain_graph(), agents=False, configuration=False)
    assert "agent" not in bare and "wasAssociatedWith" not in bare
    assert "parameter" not in bare and "wasConfiguredBy" not in bare


def test_description_levels() -> None:
    graph = chain_graph()
    plain = as_json(graph, descriptions=0)
    assert not {"activityDescription", "isDescribedBy", "usageDescription"} & set(plain)
    one = as_json(graph, descriptions=1)
    assert list(one["activityDescription"]) == [f"opus_desc:desc_wordy_{HASH[:12]}"]
    described = one["activityDescription"][f"opus_desc:desc_wordy_{HASH[:12]}"]
    assert described["prov:name"] == "wordy"
    assert described["voprov:version"] == "2.1"
    assert described["voprov:description"] == "Does things to words."
    assert described["voprov:docurl"] == "https://docs.example.org/wordy"
    assert (described["voprov:type"], described["voprov:subtype"]) == ("test", "text")
    assert len(relations(one, "isDescribedBy")) == 3
    assert not {"usageDescription", "parameterDescription"} & set(one)
    two = as_json(graph, descriptions=2)
    jd = definition()
    assert len(two["usageDescription"]) == len(jd.used)
    assert len(two["generationDescription"]) == len(jd.generated)
    assert len(two["parameterDescription"]) == len(jd.parameters)
    assert len(two["datasetDescription"]) == len(jd.used) + len(jd.generated)
    count = two["parameterDescription"][f"opus_desc:desc_wordy_{HASH[:12]}_param_count"]
    assert count["voprov:valueType"] == "xs:int"
    assert (count["voprov:min"], count["voprov:max"], count["voprov:default"]) == ("1", "10", "3")
    assert (count["voprov:unit"], count["voprov:ucd"], count["voprov:utype"]) == (
        "s",
        "meta.number",
        "x:count",
    )
    mode = two["parameterDescription"][f"opus_desc:desc_wordy_{HASH[:12]}_param_mode"]
    assert json.loads(mode["voprov:options"]) == ["fast", "slow"]
    usage_description = f"opus_desc:desc_wordy_{HASH[:12]}_used_input"
    assert two["usageDescription"][usage_description]["prov:role"] == "input"
    assert all(u["voprov:descriptor"] == usage_description for u in relations(two, "used"))
    # Activities, parameters and entities are described (3 + 6 + 2 used + 2 generated).
    assert len(relations(two, "isDescribedBy")) == 3 + 6 + 4


def test_two_versions_of_a_job_type_have_two_descriptions() -> None:
    graph = chain_graph()
    other = dataclasses.replace(
        graph.jobs[2], job=job(JOB_IDS[2], 2, definition_hash="f" * 64, definition_revision=4)
    )
    doc = as_json(dataclasses.replace(graph, jobs=(*graph.jobs[:2], other)), descriptions=1)
    assert set(doc["activityDescription"]) == {
        f"opus_desc:desc_wordy_{HASH[:12]}",
        f"opus_desc:desc_wordy_{'f' * 12}",
    }


def test_an_entity_whose_job_is_gone_says_so() -> None:
    graph = dataclasses.replace(chain_graph(), entities=(entity(E1, JOB_IDS[0], location=False),))
    e1 = as_json(graph)["entity"][provenance.entity_id(E1)]
    assert "voprov:location" not in e1
    assert "no longer stored" in e1["voprov:comment"]
    assert e1["opus:stored"] is False


def test_bad_requests_raise_value_error() -> None:
    with pytest.raises(ValueError, match="graph"):
        provenance.document_bytes(chain_graph(), DocumentOptions(), Format.SVG)
    with pytest.raises(ValueError, match="descriptions"):
        provenance.document_bytes(chain_graph(), DocumentOptions(descriptions=3), Format.JSON)


def test_same_graph_same_bytes() -> None:
    graph = chain_graph()
    shuffled = dataclasses.replace(graph, jobs=graph.jobs[::-1], usages=graph.usages[::-1])
    for model in Model:
        options = DocumentOptions(model=model, descriptions=2)
        first = provenance.document_bytes(graph, options, Format.JSON)
        assert provenance.document_bytes(shuffled, options, Format.JSON) == first


# --- W3C ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [Format.JSON, Format.XML, Format.PROVN])
def test_w3c_documents_are_read_by_the_current_prov(fmt: Format, tmp_path: Path) -> None:
    options = DocumentOptions(model=Model.W3C, descriptions=2)
    data = provenance.document_bytes(chain_graph(), options, fmt)
    assert b"voprov" not in data and b"ivoa.net" not in data
    if fmt is Format.PROVN:  # prov 3 reads PROV-N only with extras; check the text
        assert b"activity(opus_job:job_aaaa2222" in data
        return
    records = read_with_current_prov(data, fmt.name.lower(), tmp_path)
    assert {i for i, _ in records["Activity"]} == {provenance.activity_id(j) for j in JOB_IDS}
    roles = sorted(attrs["prov:role"] for _, attrs in records["Usage"])
    assert roles == ["input", "input"]
    assert len(records["Generation"]) == 2
    types = {attrs.get("prov:type") for _, attrs in records["Entity"]}
    assert {"opus:ActivityDescription", "opus:Parameter", "opus:UsageDescription"} <= types
    described = [a for _, a in records["Influence"] if a.get("prov:type") == "opus:isDescribedBy"]
    assert len(described) == 3 + 6 + 4


def prov_tables() -> list[Any]:
    return [
        dict(prov.model.DEFAULT_NAMESPACES),
        dict(prov.constants.PROV_N_MAP),
        dict(prov.constants.ADDITIONAL_N_MAP),
        dict(prov.constants.PROV_BASE_CLS),
        dict(prov.model.PROV_REC_CLS),
        set(prov.constants.PROV_ATTRIBUTE_QNAMES),
        set(prov.constants.PROV_ATTRIBUTE_LITERALS),
    ]


def test_w3c_output_leaves_prov_as_it_found_it() -> None:
    before = prov_tables()
    assert "voprov" in before[0]  # voprov is imported: the tables hold its additions
    provenance.document_bytes(chain_graph(), DocumentOptions(model=Model.W3C), Format.XML)
    assert prov_tables() == before


def test_plain_prov_is_prov_without_voprov() -> None:
    # In a fresh interpreter: prov's tables before voprov is imported are the reference.
    script = """
import prov.constants, prov.model
def tables():
    return [dict(prov.model.DEFAULT_NAMESPACES), dict(prov.constants.PROV_N_MAP),
            dict(prov.constants.ADDITIONAL_N_MAP), dict(prov.constants.PROV_BASE_CLS),
            dict(prov.model.PROV_REC_CLS), set(prov.constants.PROV_ATTRIBUTE_QNAMES),
            set(prov.constants.PROV_ATTRIBUTE_LITERALS)]
pure = tables()
from opus.server import provenance
polluted = tables()
assert polluted != pure, "voprov no longer changes prov's tables"
with provenance.plain_prov():
    assert tables() == pure, [a == b for a, b in zip(tables(), pure)]
assert tables() == polluted
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr


# --- internal provenance --------------------------------------------------------------


def run_demo(tmp_path: Path) -> bytes:
    """The prov.log of jdl/provenance_demo.sh, run the way a batch script runs it."""
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "upload.txt").write_text("The cat sat on the mat.\nThe end.\n")
    env = {
        **os.environ,
        "JOB_DIR": str(job_dir),
        "JOB_OUTPUT_DIR": str(job_dir / "results"),
        "JOB_PYTHON": sys.executable,
        "input": "upload.txt",
        "min_length": "3",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "jdl" / "provenance_demo.sh")],
        cwd=job_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (job_dir / "word_counts.csv").read_text().splitlines()[:2] == ["word,count", "the,3"]
    return (job_dir / "prov.log").read_bytes()


def with_internal(kind: str, data: bytes) -> ProvenanceGraph:
    graph = chain_graph()
    first = dataclasses.replace(graph.jobs[0], internal=InternalProvenance(kind, data))
    return dataclasses.replace(graph, jobs=(first, *graph.jobs[1:]))


def job_note(doc: dict[str, Any]) -> str:
    note: str = doc["activity"][provenance.activity_id(JOB_IDS[0])]["opus:internalProvenance"]
    return note


def test_a_logprov_log_is_merged_under_the_job(tmp_path: Path) -> None:
    graph = with_internal("logprov", run_demo(tmp_path))
    doc = as_json(graph)
    assert "merged from logprov" in job_note(doc)
    steps = {
        key: value["prov:label"]
        for key, value in doc["activity"].items()
        if not key.startswith("opus_job:")
    }
    assert sorted(steps.values()) == ["count_words", "read_words"]
    started = {(s["prov:activity"], s["prov:starter"]) for s in relations(doc, "wasStartedBy")}
    assert started == {(step, provenance.activity_id(JOB_IDS[0])) for step in steps}
    # The step's records are there: the counts file it generated, the parameter it used.
    files = [e for e in doc["entity"].values() if "word_counts.csv" in str(e.get("prov:location"))]
    assert len(files) == 1
    generated = {(g["prov:activity"], g["prov:role"]) for g in relations(doc, "wasGeneratedBy")}
    assert any(role == "counts" and activity in steps for activity, role in generated)
    # Their namespaces (logprov writes "session:") are made URLs under the job.
    assert doc["prefix"]["session"] == f"{BASE}/jobs/job_{JOB_IDS[0]}/session/"
    w3c = provenance.document_bytes(graph, DocumentOptions(model=Model.W3C), Format.JSON)
    records = read_with_current_prov(w3c, "json", tmp_path)
    assert len(records["Start"]) == 2


def test_a_prov_json_file_is_merged_with_its_own_ids() -> None:
    internal = {
        "prefix": {"ex": "https://example.org/steps/"},
        "activity": {"ex:step1": {"prov:startTime": "2024-05-06T07:08:11+00:00"}},
        "entity": {"ex:table": {"prov:label": "a table"}},
        "wasGeneratedBy": {"_:g": {"prov:entity": "ex:table", "prov:activity": "ex:step1"}},
    }
    doc = as_json(with_internal("json", json.dumps(internal).encode()))
    assert doc["prefix"]["ex"] == "https://example.org/steps/"
    assert "ex:step1" in doc["activity"] and "ex:table" in doc["entity"]
    (start,) = relations(doc, "wasStartedBy")
    assert start["prov:activity"] == "ex:step1"
    assert start["prov:starter"] == provenance.activity_id(JOB_IDS[0])
    assert "3 records merged from json" == job_note(doc)


@pytest.mark.parametrize(
    ("kind", "data", "reason"),
    [
        ("json", b'{"activity": {"ex:a": ', "JSONDecodeError"),
        ("json", b'{"activity": {"nowhere:a": {}}}', "identifier"),
        (
            "logprov",
            b"INFO _PROV_2024-01-01T00:00:00_PROV_{'activity_id': \"it\\'s\"}\n",
            "ScannerError",
        ),
        ("logprov", b"INFO _PROV_not a date_PROV_{}\n", "ValueError"),
        ("json", b" " * (provinternal.MAX_BYTES + 1), "larger than"),
        ("yaml", b"{}", "unknown kind"),
    ],
)
def test_unreadable_internal_provenance_is_noted_not_fatal(
    kind: str, data: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    graph = with_internal(kind, data)
    doc = as_json(graph)
    assert job_note(doc).startswith("could not be read")
    assert reason in job_note(doc)
    assert len(doc["activity"]) == 3  # nothing of it merged
    assert "internal provenance not merged" in caplog.text
    for fmt in (Format.XML, Format.PROVN):
        assert b"could not be read" in provenance.document_bytes(graph, DocumentOptions(), fmt)

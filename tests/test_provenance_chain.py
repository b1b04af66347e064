"""Provenance across jobs, in process with real jobs (local manager): a chain of three
append_text jobs, each fed the previous one's result by reference; ProvSAP walks of it
in both directions and at every depth; entities and their files; who may see what; a
job deleted in the middle of the chain; every parameter checked."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import prov.model
import pytest
import webtest
from lxml import etree
from prov.serializers.provjson import ProvJSONSerializer
from prov.serializers.provxml import ProvXMLSerializer

from opus.core.access import Caller
from opus.core.layout import INTERNAL_DIR, STATUS_FILE
from opus.server.app import build_service, create_app
from opus.server.auth import UserManager
from opus.server.provenance import activity_id, entity_id
from opus.server.routes.provenance import TRUNCATED_HEADER
from opus.server.service import JobService, reconcile
from opus.server.service import provenance as provenance_walk
from opus.server.service.inputs import Upload
from opus.server.storage import UserStore
from opus.server.storage.entities import result_entity_id
from tests.conftest import make_settings

ALICE = Caller("alice")
BOB = Caller("bob")


class Chain:
    """alice's three jobs: j1 (an upload) → e1 → j2 → e2 → j3 → e3."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.settings = make_settings(
            tmp_path, DATABASE_URL=database_url, ALLOW_ANONYMOUS=False, AUTH_FREE_FAILURES=1000
        )
        self.service: JobService = build_service(self.settings)
        self.app = webtest.TestApp(create_app(self.settings, self.service))
        users = UserManager(UserStore(self.service.store.engine))
        self.tokens = {
            "alice": users.add("alice", [], None)[1],
            "bob": users.add("bob", [], None)[1],
            "root": users.add("root", ["admin"], None)[1],
        }
        self.j1 = self.finished(ALICE, upload=b"original\n", text="one")
        self.e1 = result_entity_id(self.j1, "output")
        self.j2 = self.finished(ALICE, input=self.e1, text="two")
        self.e2 = result_entity_id(self.j2, "output")
        # The result's UWS URL names it as well as its entity id.
        self.j3 = self.finished(
            ALICE, input=f"{self.settings.BASE_URL}/store/{self.j2}/output", text="three"
        )
        self.e3 = result_entity_id(self.j3, "output")

    def finished(
        self,
        caller: Caller,
        upload: bytes | None = None,
        jobname: str = "append_text",
        **values: str,
    ) -> str:
        uploads = [Upload("input", "in.txt", io.BytesIO(upload))] if upload is not None else []
        job = self.service.create_job(caller, jobname, values, uploads, control={"PHASE": "RUN"})
        status = self.service.files.directory(job.id) / INTERNAL_DIR / STATUS_FILE
        deadline = time.monotonic() + 30
        while not status.exists():
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.05)
        reconcile(self.service)
        done = self.service.store.get_job(job.id)
        assert done is not None and done.phase.value == "COMPLETED", done
        return job.id

    def auth(self, user: str) -> dict[str, str]:
        """The Basic credentials of one of the chain's users."""
        encoded = base64.b64encode(f"{user}:{self.tokens[user]}".encode()).decode()
        return {"Authorization": f"Basic {encoded}"}

    def get(self, path: str, user: str = "alice", status: int = 200) -> webtest.TestResponse:
        return self.app.get(path, headers=self.auth(user), status=status)

    def post(
        self, path: str, form: dict[str, str], user: str = "alice", status: int = 303
    ) -> webtest.TestResponse:
        return self.app.post(path, form, headers=self.auth(user), status=status)

    def walk(self, user: str = "alice", **params: Any) -> dict[str, Any]:
        query = "&".join(
            f"{name}={one}"
            for name, value in params.items()
            for one in (value if isinstance(value, list) else [value])
        )
        return json.loads(self.get(f"/provsap?{query}", user).body)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Chain:
    return Chain(tmp_path_factory.mktemp("chain"), module_database_url)


def nodes(document: dict[str, Any]) -> tuple[set[str], set[str]]:
    return set(document.get("activity", {})), set(document.get("entity", {}))


def relations(document: dict[str, Any], kind: str) -> set[tuple[str, str, str]]:
    """(activity, entity, role) of every used / wasGeneratedBy record."""
    found = set()
    for record in document.get(kind, {}).values():
        role = record.get("prov:role")
        role = role.get("$", role) if isinstance(role, dict) else role
        found.add((record["prov:activity"], record["prov:entity"], str(role)))
    return found


def test_results_feed_later_jobs_by_reference(chain: Chain) -> None:
    j3_dir = chain.service.files.directory(chain.j3)
    assert (j3_dir / "results" / "output.txt").read_text() == "original\none\ntwo\nthree\n"
    # Nothing was copied: the later jobs read the earlier results where they are.
    j2_dir = chain.service.files.directory(chain.j2)
    assert sorted(p.name for p in j2_dir.iterdir()) == [".opus", "results"]
    assert not chain.service.files.input_files(chain.j2)
    details = chain.service.store.get_details(chain.j2)
    assert details is not None
    (used,) = [p for p in details.parameters if p.name == "input"]
    assert used.by_reference and used.value == f"{chain.settings.BASE_URL}/store/{chain.e1}"


def test_entity_metadata_names_what_made_it_and_what_used_it(chain: Chain) -> None:
    value = chain.get(f"/entities/{chain.e1}").json
    assert value["kind"] == "result" and value["name"] == "output"
    assert value["generatedBy"]["job"] == chain.j1
    assert [(u["job"], u["role"]) for u in value["usedBy"]] == [(chain.j2, "input")]
    content = chain.get(f"/store/{chain.e1}").body
    assert content == b"original\none\n"
    import hashlib

    assert value["sha256"] == hashlib.sha256(content).hexdigest()
    assert value["size"] == len(content)
    # The upload of j1 is an entity too, hashed.
    (upload,) = [u for u in chain.get("/entities?kind=input").json["entities"]]
    assert upload["sha256"] == hashlib.sha256(b"original\n").hexdigest()
    assert upload["job"] == chain.j1


def test_job_json_names_the_entities_of_its_results(chain: Chain) -> None:
    answer = chain.app.get(
        f"/rest/append_text/{chain.j2}",
        headers={"Accept": "application/json", **chain.auth("alice")},
    )
    assert [r["entity"] for r in answer.json["results"]] == [chain.e2]


@pytest.mark.parametrize(
    ("root", "depth", "direction", "jobs", "entities"),
    [
        ("j3", "1", "BACK", ["j3"], ["e2"]),
        ("j3", "2", "BACK", ["j3", "j2"], ["e2"]),
        ("j3", "3", "BACK", ["j3", "j2"], ["e2", "e1"]),
        ("j1", "1", "FORWARD", ["j1"], ["e1"]),
        ("j1", "2", "FORWARD", ["j1", "j2"], ["e1"]),
        ("j1", "ALL", "FORWARD", ["j1", "j2", "j3"], ["e1", "e2", "e3"]),
        ("j2", "1", "BOTH", ["j2"], ["e1", "e2"]),
        ("j2", "2", "BOTH", ["j1", "j2", "j3"], ["e1", "e2"]),
        ("e2", "1", "BACK", ["j2"], ["e2"]),
        ("e2", "1", "FORWARD", ["j3"], ["e2"]),
        ("e2", "0", "BOTH", [], ["e2"]),
    ],
)
def test_walks(
    chain: Chain, root: str, depth: str, direction: str, jobs: list[str], entities: list[str]
) -> None:
    ids = {name: getattr(chain, name) for name in ("j1", "j2", "j3", "e1", "e2", "e3")}
    document = chain.walk(ID=ids[root], DEPTH=depth, DIRECTION=direction)
    activities, found = nodes(document)
    assert activities == {activity_id(ids[j]) for j in jobs}
    # Entities of the chain (the upload of j1 is reached only past j1).
    assert found == {entity_id(ids[e]) for e in entities}


def test_all_back_reaches_the_upload(chain: Chain) -> None:
    document = chain.walk(ID=chain.j3, DEPTH="ALL")
    activities, found = nodes(document)
    assert activities == {activity_id(j) for j in (chain.j1, chain.j2, chain.j3)}
    assert len(found) == 3  # e1, e2 and j1's upload
    used = relations(document, "used")
    assert (activity_id(chain.j2), entity_id(chain.e1), "input") in used
    assert (activity_id(chain.j3), entity_id(chain.e2), "input") in used
    generated = relations(document, "wasGeneratedBy")
    assert (activity_id(chain.j1), entity_id(chain.e1), "output") in generated


def test_a_walk_stops_at_its_node_limit_and_says_so(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = chain.get(f"/provsap?ID={chain.j3}&DEPTH=ALL")
    assert TRUNCATED_HEADER not in whole.headers
    monkeypatch.setattr(provenance_walk, "MAX_NODES", 3)
    cut = chain.get(f"/provsap?ID={chain.j3}&DEPTH=ALL")
    assert cut.headers[TRUNCATED_HEADER] == "3"
    activities, found = nodes(json.loads(cut.body))
    assert 0 < len(activities) + len(found) <= 3
    assert activity_id(chain.j1) not in activities
    image_map = chain.get(f"/provsap?ID={chain.j3}&DEPTH=ALL&RESPONSEFORMAT=IMAGE-MAP").json
    assert image_map["truncated"] is True


def test_a_job_document_in_every_format(chain: Chain) -> None:
    base = f"/rest/append_text/{chain.j2}"
    as_json = chain.get(f"{base}/provenance?format=json")
    assert as_json.content_type == "application/json"
    assert activity_id(chain.j2) in as_json.json["activity"]
    assert set(as_json.json["parameter"]) and set(as_json.json["used"])
    # The W3C model is plain PROV, which prov's own readers take back (prov.read would
    # load its RDF reader too, which needs rdflib).
    w3c = chain.get(f"{base}/provenance?format=json&MODEL=W3C")
    document = ProvJSONSerializer().deserialize(io.StringIO(w3c.text))
    assert document.get_record(activity_id(chain.j2))
    xml = chain.get(f"{base}/provxml?model=w3c")
    root = etree.fromstring(xml.body, etree.XMLParser(resolve_entities=False, no_network=True))
    assert root.tag.endswith("document")
    from_xml = ProvXMLSerializer().deserialize(io.BytesIO(xml.body))
    assert {str(r.identifier) for r in from_xml.get_records(prov.model.ProvActivity)} == {
        activity_id(chain.j2)
    }
    provn = chain.get(f"{base}/provenance?format=provn").text
    assert activity_id(chain.j2) in provn and "used(" in provn
    svg = chain.get(f"{base}/provsvg")
    assert svg.content_type == "image/svg+xml" and b"<svg" in svg.body[:500]
    png = chain.get(f"{base}/provenance?format=png")
    assert png.body.startswith(b"\x89PNG\r\n\x1a\n")
    assert chain.get(f"{base}/provjson").json == as_json.json


def test_another_user_sees_nothing_of_the_chain(chain: Chain) -> None:
    chain.get(f"/provsap?ID={chain.j2}", "bob", status=404)
    chain.get(f"/entities/{chain.e1}", "bob", status=404)
    chain.get(f"/store/{chain.e1}", "bob", status=404)
    chain.get(f"/rest/append_text/{chain.j2}/provenance", "bob", status=403)
    # Nor can bob use alice's result as his input.
    answer = chain.post("/rest/append_text", {"input": chain.e1}, "bob", status=400)
    assert "no entity" in answer.text and chain.e1 in answer.text
    # An admin sees everything.
    activities, _ = nodes(chain.walk("root", ID=chain.j3, DEPTH="ALL"))
    assert len(activities) == 3


def test_another_users_job_in_a_chain_is_cut_off(chain: Chain) -> None:
    admin_job = chain.finished(Caller("root", frozenset({"admin"})), input=chain.e3, text="x")
    seen_by_alice = chain.walk(ID=chain.e3, DEPTH="ALL", DIRECTION="FORWARD")
    activities, found = nodes(seen_by_alice)
    assert activity_id(admin_job) not in activities and found == {entity_id(chain.e3)}
    seen_by_root = chain.walk("root", ID=chain.e3, DEPTH="ALL", DIRECTION="FORWARD")
    assert activity_id(admin_job) in nodes(seen_by_root)[0]
    # The admin's own job, walked back, shows alice's chain to the admin.
    back = chain.walk("root", ID=admin_job, DEPTH="ALL")
    assert activity_id(chain.j1) in nodes(back)[0]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "ID is required"),
        ("ID=../x", "not a job or entity id"),
        ("ID={j}&DEPTH=-1", "DEPTH must be between"),
        ("ID={j}&DEPTH=deep", "DEPTH 'DEEP' is not an integer"),
        ("ID={j}&DEPTH=1&depth=2", "DEPTH is given 2 times"),
        ("ID={j}&DIRECTION=UP", "DIRECTION 'UP'"),
        ("ID={j}&MODEL=PROVONE", "MODEL 'PROVONE'"),
        ("ID={j}&DESCRIPTIONS=3", "DESCRIPTIONS must be between 0 and 2"),
        ("ID={j}&AGENTS=maybe", "AGENTS 'MAYBE' is not true or false"),
        ("ID={j}&RESPONSEFORMAT=PROV-TXT", "RESPONSEFORMAT 'PROV-TXT'"),
    ],
)
def test_provsap_parameters_are_checked(chain: Chain, query: str, reason: str) -> None:
    answer = chain.get(f"/provsap?{query.format(j=chain.j1)}", status=400)
    assert reason in answer.text


def test_names_are_case_insensitive_and_formats_chosen(chain: Chain) -> None:
    answer = chain.get(f"/provsap?id={chain.j2}&responseformat=PROV-N&direction=both")
    assert answer.content_type.startswith("text/provenance-notation")
    assert activity_id(chain.j2) in answer.text
    areas = chain.get(f"/provsap?ID={chain.j2}&RESPONSEFORMAT=IMAGE-MAP").json["areas"]
    assert any(area["href"].endswith(f"/jobs/append_text/{chain.j2}") for area in areas)


def test_a_running_job_has_no_document_yet(chain: Chain) -> None:
    job = chain.service.create_job(ALICE, "append_text", {"input": chain.e1})
    answer = chain.get(f"/rest/append_text/{job.id}/provenance", status=409)
    assert "PENDING" in answer.text
    # ProvSAP shows it as it is, when asked.
    assert activity_id(job.id) in nodes(chain.walk(ID=job.id))[0]
    chain.service.delete(ALICE, "append_text", job.id)


def test_a_job_s_own_provenance_joins_the_chain(chain: Chain) -> None:
    # Last of the tests of the module's chain: it adds a fourth job after j3.
    demo = chain.finished(ALICE, jobname="provenance_demo", input=chain.e3, min_length="3")
    counts = result_entity_id(demo, "counts")
    assert chain.get(f"/store/{counts}").text.splitlines() == [
        "word,count",
        "one,1",
        "original,1",
        "three,1",
        "two,1",
    ]
    document = json.loads(chain.get(f"/rest/provenance_demo/{demo}/provenance").body)
    activities, entities = nodes(document)
    # The two steps logprov traced in the job are merged under its activity...
    steps = {a: document["activity"][a]["prov:label"] for a in activities - {activity_id(demo)}}
    assert sorted(steps.values()) == ["count_words", "read_words"]
    started = {(r["prov:activity"], r["prov:starter"]) for r in document["wasStartedBy"].values()}
    assert started == {(step, activity_id(demo)) for step in steps}
    assert (
        "merged from logprov" in document["activity"][activity_id(demo)]["opus:internalProvenance"]
    )
    # ... beside what OPUS itself knows: the input (j3's result) and the job's result.
    assert {entity_id(chain.e3), entity_id(counts)} <= entities
    assert (activity_id(demo), entity_id(chain.e3), "input") in relations(document, "used")
    assert (activity_id(demo), entity_id(counts), "counts") in relations(document, "wasGeneratedBy")
    # A walk back from the counts reaches the first job of the chain.
    walked = nodes(chain.walk(ID=counts, DEPTH="ALL"))[0]
    assert {activity_id(j) for j in (chain.j1, chain.j2, chain.j3, demo)} <= walked


def test_a_job_deleted_in_the_middle_of_a_chain(tmp_path: Path, database_url: str) -> None:
    chain = Chain(tmp_path, database_url)
    before = chain.walk(ID=chain.j3, DEPTH="ALL")
    assert len(nodes(before)[0]) == 3
    pending = chain.service.create_job(ALICE, "append_text", {"input": chain.e2})
    chain.service.delete(ALICE, "append_text", chain.j2)
    after = chain.walk(ID=chain.j3, DEPTH="ALL")
    activities, found = nodes(after)
    # j3 still names what it used, with its hash, but the chain stops there.
    assert activities == {activity_id(chain.j3)} and found == {entity_id(chain.e2)}
    value = chain.get(f"/entities/{chain.e2}").json
    assert value["present"] is False and value["location"] is None
    assert value["generatedBy"] == {"job": chain.j2, "deleted": True}
    chain.get(f"/store/{chain.e2}", status=404)
    # A later job can no longer use it; one created before fails to run, saying why.
    answer = chain.post("/rest/append_text", {"input": chain.e2}, "alice", status=400)
    assert "was deleted" in answer.text
    ran = chain.service.run(ALICE, "append_text", pending.id)
    done = chain.service.store.get_job(ran.id)
    assert done is not None and done.phase.value == "ERROR"
    assert "deleted" in (done.error_message or "")
    # j1's side is whole, walked forward: it reaches e1 and stops at the deleted job.
    forward = chain.walk(ID=chain.j1, DEPTH="ALL", DIRECTION="FORWARD")
    assert nodes(forward) == ({activity_id(chain.j1)}, {entity_id(chain.e1)})

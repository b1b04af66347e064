"""/jdl in-process (routes/jdl.py, service/jdlworkflow.py): drafts in the three forms,
every problem at its field and line, who may write, submit (with the e-mail a local
SMTP server receives), approve, versions with diffs and restore, retirement, trial
jobs, jobs keeping their definition, and a second worker serving an approval within a
second."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import webtest
import yaml
from aiosmtpd.controller import Controller

from opus.core.access import ADMIN_ROLE, JDL_AUTHOR_ROLE
from opus.core.phases import Phase
from opus.server.app import build_service, create_app
from opus.server.auth import UserManager
from opus.server.jdl import dump_definition, parse_definition
from opus.server.service import JobService
from opus.server.storage import UserStore
from opus.settings import Settings
from tests.conftest import free_port, make_settings

GREET = """\
# A greeting: written in the editor.
name: greet
annotation: Says hello.
version: "1"
contact_name: Ada
contact_email: ada@example.org
parameters:
  - name: who
    datatype: xs:string
    default: world
generated:
  - name: out
    default: out.txt
    content_type: text/plain
script: |
  echo "hello $who" > out.txt
"""
YAML_TYPE = {"Content-Type": "application/yaml"}


class Users:
    """Bearer headers of the accounts of a test."""

    def __init__(self, service: JobService) -> None:
        self.manager = UserManager(UserStore(service.store.engine))
        self.headers: dict[str, dict[str, str]] = {}

    def add(self, name: str, *roles: str) -> dict[str, str]:
        _user, token = self.manager.add(name, list(roles))
        self.headers[name] = {"Authorization": f"Bearer {token}"}
        return self.headers[name]


@pytest.fixture
def jdl_settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path, DATABASE_URL=database_url, ALLOW_ANONYMOUS=False, CHECK_PERMISSIONS=True
    )


@pytest.fixture
def jdl_service(jdl_settings: Settings) -> JobService:
    return build_service(jdl_settings)


@pytest.fixture
def api(jdl_settings: Settings, jdl_service: JobService) -> webtest.TestApp:
    return webtest.TestApp(create_app(jdl_settings, jdl_service))


@pytest.fixture
def users(jdl_service: JobService) -> Users:
    found = Users(jdl_service)
    found.add("root", ADMIN_ROLE)
    found.add("ada", JDL_AUTHOR_ROLE, "greet")
    found.add("bob", JDL_AUTHOR_ROLE)
    found.add("carl", "sleep")
    return found


def put_draft(api: webtest.TestApp, headers: dict[str, str], text: str = GREET, **kw) -> dict:
    answer = api.put("/jdl/greet/draft", text.encode(), headers={**headers, **YAML_TYPE}, **kw)
    return answer.json


def approved(api: webtest.TestApp, users: Users, text: str = GREET) -> int:
    put_draft(api, users.headers["ada"], text)
    answer = api.post("/jdl/greet/draft/approve", headers=users.headers["root"])
    return answer.json["revision"]


# -- drafts and their problems --------------------------------------------------------------


def test_an_author_writes_a_new_type_that_an_admin_approves(api, users, jdl_settings):
    ada, root, carl = users.headers["ada"], users.headers["root"], users.headers["carl"]
    saved = put_draft(api, ada)
    assert saved["problems"] == [] and saved["draft"]["author"] == "ada"
    listed = {d["name"]: d for d in api.get("/jdl", headers=ada).json["definitions"]}
    assert listed["greet"]["state"] == "new" and listed["greet"]["draft"]["submitted"] is None
    # Drafts are their authors' (and admins'): a plain user sees neither it nor the type.
    assert "greet" not in {d["name"] for d in api.get("/jdl", headers=carl).json["definitions"]}
    api.get("/jdl/greet/draft", headers=carl, status=403)
    api.get("/jdl/greet", headers=ada, status=404)  # nothing active yet
    assert api.post("/jdl/greet/draft/validate", headers=ada).json == {
        "valid": True,
        "problems": [],
    }
    api.post("/jdl/greet/draft/approve", headers=ada, status=403)  # authors do not approve
    submitted = api.post("/jdl/greet/draft/submit", headers=ada).json
    assert submitted["draft"]["submitted"]
    queue = api.get("/jdl?state=submitted", headers=root).json["definitions"]
    assert [d["name"] for d in queue] == ["greet"]
    api.get("/jdl?state=submitted", headers=ada, status=403)
    assert api.post("/jdl/greet/draft/approve", headers=root).json == {
        "name": "greet",
        "revision": 1,
    }
    # Active at once in this process, from the files written in JDL_PATH.
    assert (jdl_settings.jdl_path / "greet.yml").is_file()
    assert (jdl_settings.jdl_path / "greet.sh").read_text() == 'echo "hello $who" > out.txt\n'
    served = yaml.safe_load(api.get("/jdl/greet", headers=ada).text)
    assert served["name"] == "greet" and served["script"].startswith("echo")
    assert api.get("/jdl/greet/script", headers=ada).text == 'echo "hello $who" > out.txt\n'
    api.get("/jdl/greet/draft", headers=ada, status=404)  # the draft became the version
    entry = {d["name"]: d for d in api.get("/jdl", headers=ada).json["definitions"]}["greet"]
    assert entry["state"] == "active" and entry["revision"] == 1 and entry["draft"] is None
    # ada's role names greet: she may run it now; carl's does not.
    api.post("/rest/greet", {"who": "you"}, headers=ada, status=303)
    api.post("/rest/greet", {"who": "you"}, headers=carl, status=403)


def test_validate_lists_every_problem_at_its_field_and_line(api, users):
    ada = users.headers["ada"]
    broken = (
        GREET.replace("ada@example.org", "not-an-address")
        .replace("xs:string", "xs:text")
        .replace("default: out.txt", "default: ../out.txt")
    )
    answer = api.post("/jdl/greet/draft/validate", broken.encode(), headers={**ada, **YAML_TYPE})
    assert answer.json["valid"] is False
    found = {(p["field"], p["line"]) for p in answer.json["problems"]}
    assert found == {
        ("contact_email", 6),
        ("parameters[0].datatype", 9),
        ("generated[0].default", 13),
    }
    assert all(p["message"] for p in answer.json["problems"])
    # A draft with problems is kept (the editor saves work in progress) but not submitted.
    assert len(put_draft(api, ada, broken)["problems"]) == 3
    refused = api.post("/jdl/greet/draft/submit", headers=ada, status=400).json
    assert {p["field"] for p in refused["problems"]} >= {"contact_email"}
    api.post("/jdl/greet/draft/approve", headers=users.headers["root"], status=400)


def test_a_text_that_cannot_be_read_is_refused_and_nothing_is_stored(api, users):
    ada = users.headers["ada"]
    answer = api.put(
        "/jdl/greet/draft",
        b"name: greet\nparameters: [\n",
        headers={**ada, **YAML_TYPE},
        status=400,
    )
    assert answer.json["problems"][0]["line"] == 3
    assert "not valid YAML" in answer.json["problems"][0]["message"]
    api.get("/jdl/greet/draft", headers=ada, status=404)
    # Deep nesting and oversized bodies are refused, not followed.
    deep = "name: greet\nx: " + "[" * 5000 + "]" * 5000
    answer = api.put("/jdl/greet/draft", deep.encode(), headers={**ada, **YAML_TYPE}, status=400)
    assert "nested deeper" in answer.json["problems"][0]["message"]
    big = GREET + "# " + "x" * 1_100_000 + "\n"
    api.put("/jdl/greet/draft", big.encode(), headers={**ada, **YAML_TYPE}, status=413)
    # The name in the text is the type's edited.
    other = put_draft(api, ada, GREET.replace("name: greet", "name: hello"))
    assert other["problems"][0]["field"] == "name"
    # Without a form given, the server does not guess.
    api.put(
        "/jdl/greet/draft",
        GREET.encode(),
        headers={**ada, "Content-Type": "text/plain"},
        status=400,
    )


def test_votable_uploads_resolve_no_entities(api, users, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    votable = dump_definition(parse_definition(GREET, "yaml"), "votable")
    hostile = votable.replace(
        "<?xml version='1.0' encoding='UTF-8'?>",
        f'<?xml version="1.0"?><!DOCTYPE v [<!ENTITY x SYSTEM "file://{secret}">]>',
    ).replace("Says hello.", "&x;")
    assert "&x;" in hostile
    headers = {**users.headers["ada"], "Content-Type": "application/x-votable+xml"}
    answer = api.put("/jdl/greet/draft", hostile.encode(), headers=headers, expect_errors=True)
    assert "TOP SECRET" not in answer.text
    if answer.status_int == 200:
        assert "TOP SECRET" not in api.get("/jdl/greet/draft", headers=users.headers["ada"]).text


@pytest.mark.parametrize("fmt", ["yaml", "json", "votable"])
def test_drafts_in_each_form_read_back_in_every_form(api, users, fmt):
    ada = users.headers["ada"]
    jd = parse_definition(GREET, "yaml")
    text = dump_definition(jd, fmt)
    content_type = {"yaml": "application/yaml", "json": "application/json"}.get(
        fmt, "application/x-votable+xml"
    )
    api.put("/jdl/greet/draft", text.encode(), headers={**ada, "Content-Type": content_type})
    # As written, in its own form; the same definition in the others.
    assert api.get(f"/jdl/greet/draft?format={fmt}", headers=ada).text == text
    for other in ("yaml", "json", "votable"):
        answer = api.get(f"/jdl/greet/draft?format={other}", headers=ada)
        assert parse_definition(answer.body, other) == jd
    accept = api.get("/jdl/greet/draft", headers={**ada, "Accept": "application/json"})
    assert accept.content_type == "application/json" and json.loads(accept.text)["name"] == "greet"
    api.get("/jdl/greet/draft?format=pdf", headers=ada, status=400)


def test_a_multipart_upload_with_the_script_apart(api, users):
    ada = users.headers["ada"]
    jd = parse_definition(GREET, "yaml")
    without_script = dump_definition(jd, "json", include_script=False)
    answer = api.put(
        "/jdl/greet/draft",
        upload_files=[
            ("definition", "greet.json", without_script.encode()),
            ("script", "greet.sh", b'echo "hi $who" > out.txt\n'),
        ],
        headers=ada,
    )
    assert answer.json["problems"] == [] and answer.json["draft"]["format"] == "json"
    assert api.get("/jdl/greet/draft/script", headers=ada).text == 'echo "hi $who" > out.txt\n'
    # A script both inline and apart is one too many.
    both = dump_definition(jd, "json")
    answer = api.put(
        "/jdl/greet/draft",
        upload_files=[("definition", "greet.json", both.encode()), ("script", "s.sh", b"true\n")],
        headers=ada,
        status=400,
    )
    assert answer.json["problems"][0]["field"] == "script"


# -- who may write ----------------------------------------------------------------------------


def test_authors_write_only_their_types_and_admins_the_rest(api, users):
    ada, bob, carl, root = (users.headers[n] for n in ("ada", "bob", "carl", "root"))
    put_draft(api, bob, status=200)  # a new type: anyone with the role may start it…
    api.put("/jdl/greet/draft", GREET.encode(), headers={**ada, **YAML_TYPE}, status=403)
    api.delete("/jdl/greet/draft", headers=bob, status=204)  # …and only they go on with it
    assert approved(api, users) == 1  # ada's now
    put_draft(api, bob, status=403)
    api.get("/jdl/greet/versions", headers=bob, status=403)
    put_draft(api, carl, status=403)  # no jdl_author role
    # sleep came from a file an admin put in JDL_PATH: only admins change it.
    sleep = api.get("/jdl/sleep", headers=root).text
    api.put("/jdl/sleep/draft", sleep.encode(), headers={**ada, **YAML_TYPE}, status=403)
    api.put("/jdl/sleep/draft", sleep.encode(), headers={**root, **YAML_TYPE}, status=200)
    # Reading an active definition takes the right to use its type.
    api.get("/jdl/sleep", headers=carl, status=200)
    api.get("/jdl/greet", headers=carl, status=403)
    # Names the editor writes are lower-case identifiers; retiring is for admins.
    api.put("/jdl/Greet/draft", GREET.encode(), headers={**root, **YAML_TYPE}, status=400)
    api.delete("/jdl/greet", headers=ada, status=403)
    api.get("/jdl", status=401)


# -- versions and jobs ---------------------------------------------------------------------------


def test_jobs_keep_their_version_through_approvals_restores_and_retirement(
    api, users, jdl_service, jdl_settings
):
    ada, root = users.headers["ada"], users.headers["root"]
    assert approved(api, users) == 1
    first = urlsplit(api.post("/rest/greet", {"who": "one"}, headers=ada, status=303).location)
    first_id = first.path.rsplit("/", 1)[1]
    two = GREET.replace('version: "1"', 'version: "2"').replace("hello", "goodbye")
    assert approved(api, users, two) == 2
    job = jdl_service.store.get_job(first_id)
    assert job.definition_revision == 1
    detail = api.get(first.path, headers={**ada, "Accept": "application/json"}).json
    assert detail["definition"]["revision"] == 1
    page = api.get(f"/jobs/greet/{first_id}", headers={**ada, "Accept": "text/html"}).text
    assert "revision 1, version 1" in page and job.definition_hash[:12] in page
    # Run after version 2 was approved, the PENDING job still runs version 1's script.
    api.post(f"{first.path}/phase", {"PHASE": "RUN"}, headers=ada, status=303)
    script = jdl_service.files.layout(first_id).job_script.read_text()
    assert "hello" in script and "goodbye" not in script
    versions = api.get("/jdl/greet/versions", headers=ada).json["versions"]
    assert [(v["revision"], v["version"], v["current"]) for v in versions] == [
        (2, "2", True),
        (1, "1", False),
    ]
    assert versions[0]["approved_by"] == "root" and versions[0]["author"] == "ada"
    diff = api.get("/jdl/greet/diff?from=1&to=2", headers=ada).text
    assert "-version: '1'" in diff and "+version: '2'" in diff and '+  echo "goodbye' in diff
    assert (
        parse_definition(api.get("/jdl/greet/versions/1", headers=ada).body, "yaml").version == "1"
    )
    api.get("/jdl/greet/versions/9", headers=ada, status=404)
    api.get("/jdl/greet/diff?from=1&to=x", headers=ada, status=400)
    # Restoring makes revision 1 active again, as itself.
    api.post("/jdl/greet/versions/1/restore", headers=ada, status=403)
    assert api.post("/jdl/greet/versions/1/restore", headers=root).json["revision"] == 1
    assert yaml.safe_load(api.get("/jdl/greet", headers=ada).text)["version"] == "1"
    second = api.post("/rest/greet", {"who": "two"}, headers=ada, status=303).location
    assert jdl_service.store.get_job(second.rsplit("/", 1)[1]).definition_revision == 1
    # Retired: no new jobs; the old ones stay readable, listed and deletable.
    api.delete("/jdl/greet", headers=root, status=204)
    assert not (jdl_settings.jdl_path / "greet.yml").exists()
    assert any((jdl_settings.jdl_path / ".retired").iterdir())
    api.post("/rest/greet", {"who": "three"}, headers=ada, status=404)
    api.get(first.path, headers=ada, status=200)
    assert first_id.encode() in api.get("/rest/greet", headers=ada).body
    listed = api.get("/jobs", headers={**ada, "Accept": "application/json"}).json["jobs"]
    assert first_id in {job["jobId"] for job in listed}
    api.get("/jobs?TYPE=greet", headers={**ada, "Accept": "application/json"}, status=200)
    retired = {d["name"]: d for d in api.get("/jdl", headers=ada).json["definitions"]}
    assert retired["greet"]["state"] == "retired"
    api.delete(first.path, headers=ada, status=303)


def test_a_trial_job_runs_the_draft_for_its_author_only(api, users, jdl_service):
    ada, bob = users.headers["ada"], users.headers["bob"]
    put_draft(api, ada)
    answer = api.post("/jdl/greet/draft/try", {"who": "trial"}, headers=ada, status=201).json
    assert answer["jobname"] == "greet" and answer["page"].endswith(f"/jobs/greet/{answer['id']}")
    job = jdl_service.store.get_job(answer["id"])
    assert job.owner == "ada" and job.definition_revision is None and job.phase != Phase.PENDING
    api.get(urlsplit(answer["url"]).path, headers=bob, status=403)
    api.get(urlsplit(answer["url"]).path, headers=ada, status=200)
    mine = api.get("/jobs", headers={**ada, "Accept": "application/json"}).json["jobs"]
    assert answer["id"] in {job["jobId"] for job in mine}
    # The type is not active: nobody else can make jobs of it.
    api.post("/rest/greet", {"who": "x"}, headers=ada, status=404)
    api.post("/jdl/greet/draft/try", headers=bob, status=403)
    put_draft(api, ada, GREET.replace("xs:string", "xs:text"))
    api.post("/jdl/greet/draft/try", headers=ada, status=400)


# -- e-mail to admins -----------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler keeping what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        body = envelope.content.decode("utf-8", "replace")
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), body))
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def test_submitting_tells_the_admins_by_mail(tmp_path, database_url, smtp):
    controller, inbox = smtp
    settings = make_settings(
        tmp_path,
        DATABASE_URL=database_url,
        MAIL_HOST="127.0.0.1",
        MAIL_PORT=controller.port,
        MAIL_SECURITY="none",
        MAIL_FROM="opus@example.org",
        MAIL_ADMINS="admin1@example.org, admin2@example.org",
    )
    service = build_service(settings)
    api = webtest.TestApp(create_app(settings, service))
    users = Users(service)
    ada = users.add("ada", JDL_AUTHOR_ROLE)
    put_draft(api, ada)
    api.post("/jdl/greet/draft/submit", headers=ada)
    assert inbox.arrived.wait(10)
    sender, recipients, body = inbox.messages[0]
    assert sender == "opus@example.org"
    assert recipients == ["admin1@example.org", "admin2@example.org"]
    assert "Subject: OPUS: job definition greet submitted for approval" in body
    assert f"{settings.BASE_URL}/admin/jdl/greet" in body and "ada asks" in body


def test_a_mail_server_that_is_down_does_not_fail_the_submission(tmp_path, database_url):
    settings = make_settings(
        tmp_path,
        DATABASE_URL=database_url,
        MAIL_HOST="127.0.0.1",
        MAIL_PORT=free_port(),  # nothing listens
        MAIL_SECURITY="none",
        MAIL_FROM="opus@example.org",
        MAIL_ADMINS="admin@example.org",
    )
    service = build_service(settings)
    api = webtest.TestApp(create_app(settings, service))
    ada = Users(service).add("ada", JDL_AUTHOR_ROLE)
    put_draft(api, ada)
    assert api.post("/jdl/greet/draft/submit", headers=ada).json["draft"]["submitted"]


# -- several workers ------------------------------------------------------------------------------


def test_another_worker_serves_an_approved_version_within_a_second(
    api, users, jdl_settings: Settings
):
    # A second process of the same server: its own service and registry, the same
    # database and JDL_PATH.
    other = webtest.TestApp(create_app(jdl_settings, build_service(jdl_settings)))
    ada = users.headers["ada"]
    assert approved(api, users) == 1
    deadline = time.monotonic() + 5
    while other.get("/jdl/greet", headers=ada, expect_errors=True).status_int != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    two = GREET.replace('version: "1"', 'version: "2"')
    put_draft(api, ada, two)
    api.post("/jdl/greet/draft/approve", headers=users.headers["root"])
    started = time.monotonic()
    while yaml.safe_load(other.get("/jdl/greet", headers=ada).text)["version"] != "2":
        assert time.monotonic() - started < 3, "the other worker still serves version 1"
        time.sleep(0.05)
    # The registry looks at JDL_PATH twice a second: within a second, with slack for a
    # busy machine.
    assert time.monotonic() - started < 1.5
    location = other.post("/rest/greet", {"who": "w"}, headers=ada, status=303).location
    assert location

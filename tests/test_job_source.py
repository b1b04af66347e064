"""Job code from a git repository (a definition's ``source``): real jobs on the local
manager, in process, cloning a local bare repository (file://, no network) at a branch,
a tag, a commit hash and a ref parameter; the commit in the job's JSON, XML and
provenance; refs refused at creation (nothing kept); a clone that fails; the batch
script's clone on its own (a server refusing a want by hash, inherited GIT_* variables);
the JDL forms and rules of ``source``; and one job through SLURM."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import webtest
from lxml import etree

from opus.client import Client as OpusClient
from opus.client import Source
from opus.core.access import ANONYMOUS, Caller
from opus.core.layout import INTERNAL_DIR, RESULTS_DIR, SOURCE_COMMIT_FILE, STATUS_FILE
from opus.core.phases import Phase
from opus.core.records import Job
from opus.server import gitsource
from opus.server.app import build_service, create_app
from opus.server.gitsource import GitSource
from opus.server.jdl import (
    JDLError,
    JobDefinition,
    JobSource,
    ParameterDefinition,
    ParameterError,
    coerce_parameters,
    dump_definition,
    parse_definition,
)
from opus.server.scripts import BatchJob, render_batch_script
from opus.server.service import JobService, reconcile
from opus.server.service.inputs import sanitize_filename
from opus.server.uwsxml import OPUS_NS
from tests.conftest import LiveServer, free_port, make_settings, xml_schema
from tests.live_helpers import Client, assert_clean_log
from tests.test_jsonapi import job_as_json

CALLER = Caller(ANONYMOUS)
JSON = {"Accept": "application/json"}
# Every commit the same whatever the machine's git configuration.
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "OPUS tests",
    "GIT_AUTHOR_EMAIL": "tests@example.org",
    "GIT_COMMITTER_NAME": "OPUS tests",
    "GIT_COMMITTER_EMAIL": "tests@example.org",
}
# The job's script: the file of the clone, then what the batch script exported.
SCRIPT = """\
cat "$JOB_SOURCE_DIR/version.txt" > out.txt
printf '%s\\n' "$GIT_COMMIT_REF" "$SRC_GIT_URL" "$JOB_SOURCE_DIR" "${version-}" >> out.txt
"""
BAD_REFS = ["--upload-pack=touch /tmp/pwned", "-x", "a b", "..", "$(id)", "", "main~1", "a/.b"]


def git(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["git", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


@dataclass(frozen=True)
class Repository:
    """A bare repository: ``first`` (tagged v1, the branch ``stable``), then ``second``
    (``main``); version.txt holds "one", then "two"."""

    path: Path
    first: str
    second: str

    @property
    def url(self) -> str:
        return self.path.as_uri()


def make_repository(root: Path) -> Repository:
    bare, work = root / "code.git", root / "work"
    git("init", "-q", "--bare", "-b", "main", bare)
    git("init", "-q", "-b", "main", work)
    (work / "version.txt").write_text("one\n")
    git("add", "version.txt", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    git("tag", "-a", "v1", "-m", "version 1", cwd=work)
    git("branch", "stable", cwd=work)
    (work / "version.txt").write_text("two\n")
    git("commit", "-q", "-a", "-m", "second", cwd=work)
    git("push", "-q", bare, "main", "stable", "v1", cwd=work)
    return Repository(
        bare, git("rev-parse", "HEAD~1", cwd=work), git("rev-parse", "HEAD", cwd=work)
    )


def write_definitions(jdl: Path, repo: Repository) -> None:
    """``code`` (the ref a parameter, main by default), ``code_tag`` (v1), ``code_commit``
    (the first commit's hash)."""
    jdl.mkdir(parents=True, exist_ok=True)
    common = {
        "script": SCRIPT,
        "generated": [{"name": "out", "default": "out.txt", "content_type": "text/plain"}],
    }
    version = {"name": "version", "default": "main", "annotation": "A branch, tag or commit."}
    definitions = {
        "code": {
            "source": {"git": repo.url, "ref": {"parameter": "version"}},
            "parameters": [version],
        },
        "code_tag": {"source": {"git": repo.url, "ref": "v1"}},
        "code_commit": {"source": {"git": repo.url, "ref": repo.first}},
    }
    for name, fields in definitions.items():
        (jdl / f"{name}.json").write_text(json.dumps({"name": name, **fields, **common}))


class Sources:
    """A service on its own JDL directory (only the definitions above)."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.repo = make_repository(tmp_path / "git")
        write_definitions(tmp_path / "jdl", self.repo)
        self.settings = make_settings(tmp_path, DATABASE_URL=database_url)
        self.service: JobService = build_service(self.settings)
        self.app = webtest.TestApp(create_app(self.settings, self.service))

    def start(self, jobname: str, **values: str) -> Job:
        """A job run at once, its batch script ended (the server told nothing yet: in
        process, nobody listens at its signal URL)."""
        job = self.service.create_job(CALLER, jobname, values, control={"PHASE": "RUN"})
        status = self.service.files.directory(job.id) / INTERNAL_DIR / STATUS_FILE
        deadline = time.monotonic() + 60
        while not status.exists():
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.05)
        return job

    def finished(self, jobname: str, **values: str) -> Job:
        """A job run to its end, as the reconciler finds it."""
        job = self.start(jobname, **values)
        reconcile(self.service)
        done = self.service.store.get_job(job.id)
        assert done is not None and done.phase in (Phase.COMPLETED, Phase.ERROR), done
        return done

    def output(self, job: Job) -> list[str]:
        path = self.service.files.directory(job.id) / RESULTS_DIR / "out.txt"
        return path.read_text().splitlines()

    def job_dirs(self) -> set[str]:
        return {p.name for p in self.settings.jobs_path.iterdir()}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Sources:
    return Sources(tmp_path_factory.mktemp("sources"), module_database_url)


# -- real jobs ---------------------------------------------------------------------------


# "first" and "second" stand for the repository's commit hashes.
@pytest.mark.parametrize(
    ("jobname", "version", "ref", "commit"),
    [
        ("code", None, "main", "second"),  # the ref parameter's default, a branch
        ("code", "stable", "stable", "first"),  # a branch, given as the parameter
        ("code", "v1", "v1", "first"),  # an annotated tag: its commit is checked out
        ("code", "first", "first", "first"),  # a commit hash, given as the parameter
        ("code", "second", "second", "second"),
        ("code_tag", None, "v1", "first"),  # a fixed tag
        ("code_commit", None, "first", "first"),  # a fixed commit hash
    ],
)
def test_jobs_clone_the_ref_and_read_their_code(
    sources: Sources, jobname: str, version: str | None, ref: str, commit: str
) -> None:
    repo = sources.repo
    hashes = {"first": repo.first, "second": repo.second}
    ref, commit = hashes.get(ref, ref), hashes[commit]
    values = {} if version is None else {"version": hashes.get(version, version)}
    job = sources.finished(jobname, **values)
    assert job.phase is Phase.COMPLETED, job.error_message
    job_dir = sources.service.files.directory(job.id)
    text, exported, url, directory, *rest = sources.output(job)
    assert text == ("one" if commit == repo.first else "two")
    assert exported == commit  # GIT_COMMIT_REF: what `git rev-parse HEAD` says
    assert (url, directory) == (repo.url, str(job_dir / "source"))
    assert rest == ([ref] if jobname == "code" else [""])
    assert git("rev-parse", "HEAD", cwd=job_dir / "source") == commit
    assert (job.source_url, job.source_ref, job.source_commit) == (repo.url, ref, commit)
    assert (job_dir / INTERNAL_DIR / SOURCE_COMMIT_FILE).read_text() == commit + "\n"


def test_the_commit_is_in_the_json_the_xml_and_the_provenance(sources: Sources) -> None:
    repo = sources.repo
    job = sources.finished("code", version="v1")
    base = f"/rest/code/{job.id}"
    value = sources.app.get(base, headers=JSON).json
    assert value["source"] == {"git": repo.url, "ref": "v1", "commit": repo.first}

    body = sources.app.get(base).body
    root = etree.fromstring(body)
    schema = xml_schema("UWS-v1.1.xsd")
    assert schema.validate(root), schema.error_log
    assert job_as_json(root)["source"] == value["source"]  # the JSON says what the XML says
    (element,) = root.iter(f"{{{OPUS_NS}}}source")
    assert dict(element.attrib) == {"git": repo.url, "ref": "v1", "commit": repo.first}
    assert element.getparent().tag == "{http://www.ivoa.net/xml/UWS/v1.0}jobInfo"

    document = json.loads(sources.app.get(f"{base}/provenance?format=json").body)
    (activity,) = document["activity"].values()
    assert plain(activity["opus:sourceGit"]) == repo.url
    assert plain(activity["opus:sourceRef"]) == "v1"
    assert plain(activity["opus:sourceCommit"]) == repo.first
    (source_id,) = [k for k, e in document["entity"].items() if plain(e["opus:kind"]) == "source"]
    entity = document["entity"][source_id]
    assert plain(entity["opus:commit"]) == repo.first
    assert plain(entity["voprov:location"]) == repo.url
    (used,) = [u for u in document["used"].values() if u["prov:entity"] == source_id]
    assert plain(used["prov:role"]) == "source"
    # The same commit of the same repository is the same node in every document.
    again = sources.finished("code_tag")
    other = json.loads(sources.app.get(f"/rest/code_tag/{again.id}/provenance").body)
    assert source_id in other["entity"]
    w3c = json.loads(sources.app.get(f"{base}/provenance?format=json&MODEL=W3C").body)
    assert plain(w3c["entity"][source_id]["prov:location"]) == repo.url
    # The job page says it too.
    page = sources.app.get(f"/jobs/code/{job.id}", headers={"Accept": "text/html"}).text
    assert f'data-source-commit="{repo.first}"' in page and f"<code>{repo.url}</code>" in page


def plain(value: Any) -> Any:
    """A PROV-JSON attribute's value (typed literals are {"$": …, "type": …})."""
    if isinstance(value, list):
        (value,) = value
    return value.get("$", value) if isinstance(value, dict) else value


def test_the_commit_is_recorded_when_the_clone_reports_executing(sources: Sources) -> None:
    job = sources.start("code", version="stable")
    # The batch script's signals go nowhere in process: deliver its second EXECUTING.
    token = (sources.service.files.directory(job.id) / INTERNAL_DIR / "token").read_text()
    executing = sources.service.signal(job.id, token, "EXECUTING")
    assert executing.phase is Phase.EXECUTING
    assert executing.source_commit == sources.repo.first
    value = sources.app.get(f"/rest/code/{job.id}", headers=JSON).json
    assert value["phase"] == "EXECUTING" and value["source"]["commit"] == sources.repo.first
    reconcile(sources.service)
    done = sources.service.store.get_job(job.id)
    assert done is not None and done.phase is Phase.COMPLETED
    assert done.source_commit == sources.repo.first


def test_a_pending_job_shows_its_source_and_follows_its_ref_parameter(sources: Sources) -> None:
    created = sources.app.post("/rest/code", {"version": "stable"}, status=303)
    job_id = created.location.rsplit("/", 1)[1]
    value = sources.app.get(f"/rest/code/{job_id}", headers=JSON).json
    assert value["source"] == {"git": sources.repo.url, "ref": "stable", "commit": None}
    root = etree.fromstring(sources.app.get(f"/rest/code/{job_id}").body)
    (element,) = root.iter(f"{{{OPUS_NS}}}source")
    assert "commit" not in element.attrib
    sources.app.post(f"/rest/code/{job_id}/parameters", {"version": "main"}, status=303)
    value = sources.app.get(f"/rest/code/{job_id}", headers=JSON).json
    assert value["source"]["ref"] == "main"
    sources.app.post(f"/rest/code/{job_id}/parameters", {"version": "-x"}, status=400)
    sources.app.delete(f"/rest/code/{job_id}", status=303)


@pytest.mark.parametrize("ref", BAD_REFS)
def test_a_ref_that_is_not_a_git_ref_is_refused_and_nothing_is_kept(
    sources: Sources, ref: str
) -> None:
    before = sources.job_dirs()
    answer = sources.app.post("/rest/code", {"version": ref, "PHASE": "RUN"}, status=400)
    assert "parameter 'version'" in answer.text
    refused = sources.app.post("/rest/code", {"version": ref}, headers=JSON, status=400)
    assert refused.json["error"]["field"] == "version"
    assert sources.job_dirs() == before
    assert not Path("/tmp/pwned").exists()


def test_a_ref_missing_from_the_repository_ends_the_job_in_error(sources: Sources) -> None:
    job = sources.finished("code", version="nope")
    assert job.phase is Phase.ERROR
    message = f"could not clone {sources.repo.url} at nope: "
    assert job.error_message == message + "fatal: Remote branch nope not found in upstream origin"
    assert job.source_commit is None
    stderr = sources.app.get(f"/rest/code/{job.id}/stderr").text
    assert "Remote branch nope not found" in stderr
    value = sources.app.get(f"/rest/code/{job.id}", headers=JSON).json
    assert value["source"] == {"git": sources.repo.url, "ref": "nope", "commit": None}
    assert value["errorSummary"]["message"] == job.error_message

    unknown = "0" * 40
    failed = sources.finished("code", version=unknown)
    assert failed.phase is Phase.ERROR
    assert failed.error_message is not None
    assert failed.error_message.startswith(f"could not clone {sources.repo.url} at {unknown}: ")


def test_an_upload_cannot_take_the_name_of_the_clone() -> None:
    assert sanitize_filename("source") == "input_source"


# -- the batch script's clone, on its own ------------------------------------------------


def run_clone(tmp_path: Path, source: GitSource, env: dict[str, str]) -> Path:
    job_dir = tmp_path / "job"
    internal = job_dir / INTERNAL_DIR
    internal.mkdir(parents=True)
    (internal / "token").write_text("secret")
    (internal / "script.sh").write_text('cat "$JOB_SOURCE_DIR/version.txt" > out.txt\n')
    batch = internal / "batch.sh"
    batch.write_text(
        render_batch_script(
            BatchJob(
                "testjob",
                job_dir,
                f"http://127.0.0.1:{free_port()}/handler/job_event",
                {"GIT_DIR": "/nowhere"},  # a parameter reaches the script, never git
                ["out.txt"],
                0,
                source=source,
            )
        )
    )
    subprocess.run(["bash", str(batch)], env=env, timeout=120, check=False)
    return job_dir


def test_a_server_refusing_a_commit_by_its_hash_is_fetched_whole(tmp_path: Path) -> None:
    repo = make_repository(tmp_path / "git")
    # The first commit is no tip any more: only main, a child of it, is advertised.
    git("--git-dir", repo.path, "branch", "-D", "stable")
    git("--git-dir", repo.path, "tag", "-d", "v1")
    home = tmp_path / "home"
    home.mkdir()
    # Protocol v0: upload-pack refuses a want of an unadvertised object.
    (home / ".gitconfig").write_text("[protocol]\n\tversion = 0\n")
    env = {**os.environ, "HOME": str(home), "GIT_DIR": "/nowhere", "GIT_CONFIG_PARAMETERS": "x"}
    env.pop("GIT_CONFIG_GLOBAL", None)
    job_dir = run_clone(tmp_path, GitSource(repo.url, repo.first), env)
    status = (job_dir / INTERNAL_DIR / STATUS_FILE).read_text().splitlines()
    assert status[0] == "COMPLETED", (job_dir / INTERNAL_DIR / "stderr").read_text()
    assert (job_dir / RESULTS_DIR / "out.txt").read_text() == "one\n"
    assert git("rev-parse", "HEAD", cwd=job_dir / "source") == repo.first
    # Not the shallow fetch of the commit alone: every branch came.
    assert "origin/main" in git("branch", "-r", cwd=job_dir / "source")


def test_a_clone_that_hangs_is_stopped_by_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitsource, "CLONE_TIMEOUT", 1)
    with socket.socket() as silent:  # a git:// server that never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"git://127.0.0.1:{silent.getsockname()[1]}/code.git"
        started = time.monotonic()
        job_dir = run_clone(tmp_path, GitSource(url, "main"), dict(os.environ))
        assert time.monotonic() - started < 30
    status = (job_dir / INTERNAL_DIR / STATUS_FILE).read_text().splitlines()
    assert status == ["ERROR", f"could not clone {url} at main"]
    stderr = (job_dir / INTERNAL_DIR / "stderr").read_text()
    assert "opus: git took more than 1 s" in stderr
    assert not (job_dir / RESULTS_DIR / "out.txt").exists()


@pytest.mark.parametrize(
    "source",
    [
        GitSource("file:///repo.git", "--upload-pack=touch /tmp/pwned"),
        GitSource("file:///repo.git", "a b"),
        GitSource("ext::sh -c touch% /tmp/pwned", "main"),
        GitSource("ssh://-oProxyCommand=touch/x", "main"),
    ],
)
def test_the_script_generator_refuses_an_unsafe_source(source: GitSource, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsafe job source"):
        render_batch_script(
            BatchJob("j", tmp_path, "http://127.0.0.1:1/", {}, [], 0, source=source)
        )


# -- the definition's source in the three forms, and its rules ----------------------------


def source_definition(source: JobSource) -> JobDefinition:
    return JobDefinition(
        name="with_source",
        source=source,
        parameters=[ParameterDefinition("version", default="v1.2", options=["v1.2", "main"])],
        script='ls "$JOB_SOURCE_DIR"\n',
    )


@pytest.mark.parametrize("fmt", ["yaml", "json", "votable"])
@pytest.mark.parametrize(
    "source",
    [
        JobSource("https://example.org/code.git", ref="v1.2"),
        JobSource("ssh://git@example.org/code.git", ref="0123456789abcdef" * 2 + "01234567"),
        JobSource("file:///srv/git/code.git", ref_parameter="version"),
    ],
)
def test_the_source_round_trips_in_every_form(fmt: str, source: JobSource) -> None:
    jd = source_definition(source)
    text = dump_definition(jd, fmt)
    assert parse_definition(text, fmt) == jd
    for other in ("yaml", "json", "votable"):
        assert parse_definition(dump_definition(parse_definition(text, fmt), other), other) == jd


def test_the_source_forms_are_as_documented() -> None:
    jd = source_definition(JobSource("https://example.org/code.git", ref_parameter="version"))
    assert "source:\n  git: https://example.org/code.git\n  ref:\n    parameter: version\n" in (
        dump_definition(jd, "yaml")
    )
    assert json.loads(dump_definition(jd, "json"))["source"] == {
        "git": "https://example.org/code.git",
        "ref": {"parameter": "version"},
    }
    root = etree.fromstring(dump_definition(jd, "votable").encode())
    ns = {"v": "http://www.ivoa.net/xml/VOTable/v1.3"}
    (group,) = root.findall("v:RESOURCE/v:GROUP[@name='Source']", ns)
    (git_param,) = group.findall("v:PARAM", ns)
    assert (git_param.get("name"), git_param.get("value")) == (
        "git",
        "https://example.org/code.git",
    )
    assert [ref.get("ref") for ref in group.findall("v:PARAMref", ns)] == ["version"]
    fixed = source_definition(JobSource("https://example.org/code.git", ref="main"))
    root = etree.fromstring(dump_definition(fixed, "votable").encode())
    ref_param = root.find("v:RESOURCE/v:GROUP[@name='Source']/v:PARAM[@name='ref']", ns)
    assert ref_param is not None and ref_param.get("value") == "main"


def test_a_votable_paramref_names_the_parameter_by_its_id() -> None:
    text = dump_definition(
        source_definition(JobSource("https://e.org/c.git", ref_parameter="version")), "votable"
    )
    text = text.replace('ID="version"', 'ID="p1"').replace('ref="version"', 'ref="p1"')
    assert parse_definition(text, "votable").source == JobSource(
        "https://e.org/c.git", ref_parameter="version"
    )
    with pytest.raises(JDLError, match="PARAMref 'p2' in GROUP Source"):
        parse_definition(text.replace('ref="p1"', 'ref="p2"'), "votable")


BASE = """\
name: src
parameters:
- name: version
  default: main
- name: count
  datatype: xs:int
  default: '1'
- name: optional
script: echo
"""


@pytest.mark.parametrize(
    ("source", "field", "message"),
    [
        ("source: {git: 'ext::sh -c id', ref: main}", "source.git", "contains spaces"),
        ("source: {git: 'ext::sh', ref: main}", "source.git", "is not a URL starting with"),
        ("source: {git: 'git@example.org:code.git', ref: main}", "source.git", "https://"),
        (
            "source: {git: 'https://u:secret@example.org/c.git', ref: main}",
            "source.git",
            "password",
        ),
        ("source: {git: 'ssh://-oProxyCommand=x/c.git', ref: main}", "source.git", "'-'"),
        ("source: {git: 'file://host/c.git', ref: main}", "source.git", "file:///"),
        ("source: {git: 'https:///c.git', ref: main}", "source.git", "no host"),
        ("source: {git: https://example.org/c.git, ref: -x}", "source.ref", "starts with '-'"),
        ("source: {git: https://example.org/c.git, ref: 'a b'}", "source.ref", "not a git ref"),
        ("source: {git: https://example.org/c.git, ref: x..y}", "source.ref", "not a git ref"),
        ("source: {git: https://example.org/c.git, ref: x.lock}", "source.ref", "not a git ref"),
        ("source: {git: https://example.org/c.git}", "source.ref", "missing"),
        ("source: {git: https://example.org/c.git, ref: [a]}", "source.ref", "text value"),
        ("source: {ref: main}", "source.git", "missing"),
        ("source: {git: https://e.org/c.git, ref: main, tag: x}", "source.tag", "unknown key"),
        ("source: {git: https://e.org/c.git, ref: {param: v}}", "source.ref.param", "parameter"),
        (
            "source: {git: https://e.org/c.git, ref: {parameter: nope}}",
            "source.ref.parameter",
            "not a parameter",
        ),
        (
            "source: {git: https://e.org/c.git, ref: {parameter: count}}",
            "source.ref.parameter",
            "xs:string",
        ),
        (
            "source: {git: https://e.org/c.git, ref: {parameter: optional}}",
            "source.ref.parameter",
            "required or have a default",
        ),
        ("source: https://e.org/c.git", "source", "must be a mapping"),
    ],
)
def test_the_rules_refuse_a_bad_source(source: str, field: str, message: str) -> None:
    with pytest.raises(JDLError) as refused:
        parse_definition(BASE + source + "\n", "yaml")
    assert refused.value.field == field
    assert message in refused.value.problem


def test_the_rules_refuse_a_bad_default_or_option_of_the_ref_parameter() -> None:
    text = BASE.replace("default: main", "default: main\n  options: [main, '-x']")
    with pytest.raises(JDLError, match=r"its option '-x' starts with '-'"):
        parse_definition(
            text + "source: {git: https://e.org/c.git, ref: {parameter: version}}\n", "yaml"
        )


def test_names_the_clone_sets_are_refused_with_a_source() -> None:
    text = BASE.replace("name: optional", "name: GIT_COMMIT_REF")
    parse_definition(text, "yaml")  # fine without a source
    with pytest.raises(JDLError, match="set by the clone") as refused:
        parse_definition(text + "source: {git: https://e.org/c.git, ref: main}\n", "yaml")
    assert refused.value.field == "parameters[2].name"


@pytest.mark.parametrize("ref", BAD_REFS)
def test_coerce_refuses_a_ref_value_naming_the_parameter(ref: str) -> None:
    jd = parse_definition(
        BASE + "source: {git: https://e.org/c.git, ref: {parameter: version}}\n", "yaml"
    )
    with pytest.raises(ParameterError) as refused:
        coerce_parameters(jd, {"version": ref})
    assert refused.value.field == "version"
    assert str(refused.value).startswith("parameter 'version': ")
    assert (
        coerce_parameters(jd, {"version": "release/2.0+build.1"})["version"]
        == "release/2.0+build.1"
    )


# -- through SLURM ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm_source_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Repository]]:
    cluster = request.getfixturevalue("slurm_cluster")
    tmp_path = tmp_path_factory.mktemp("slurm_source")
    repo = make_repository(tmp_path / "git")
    write_definitions(tmp_path / "jdl", repo)
    server = LiveServer(tmp_path, MANAGER="slurm")
    server.env.update(SLURM_CONF=str(cluster.conf), PATH=cluster.env["PATH"])
    server.start()
    try:
        yield server, repo
    finally:
        server.stop()
    assert_clean_log(server)


@pytest.mark.live
def test_a_slurm_job_clones_its_source(slurm_source_server: tuple[LiveServer, Repository]) -> None:
    server, repo = slurm_source_server
    client = Client(server)
    job_id = client.create("code", {"version": "v1"}, run=True)
    doc = client.wait_for("code", job_id, timeout=90)
    assert doc.phase == "COMPLETED", doc.body
    (element,) = doc.root.iter(f"{{{OPUS_NS}}}source")
    assert element.get("commit") == repo.first
    lines = client.get(doc.results["out"]["href"]).text.splitlines()
    assert lines[:2] == ["one", repo.first]
    # The signals reached the server: the commit was known while the job ran.
    assert client.get(f"/rest/code/{job_id}", headers=JSON).json()["source"]["commit"] == repo.first
    # The client library reads it the same from the JSON and from the UWS XML.
    expected = Source(repo.url, "v1", repo.first)
    for json_first in (True, False):
        opus_client = OpusClient(server.url, json=json_first)
        assert opus_client.job(f"code/{job_id}").info.source == expected

"""Hostile input against a real `opus serve`: parameter values reach job scripts as
literal text, bad parameter names are refused, file names are sanitised and stay in the
job directory, and RUNID is stored and shown literally. Hostile jobs: results a browser
would run are attachments, links planted where OPUS reads files are not followed, and a
result name that is not UTF-8 does not keep a job from ending."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import EXAMPLES, ROOT, LiveServer
from tests.live_helpers import UWS, Client, file_server, running_server

pytestmark = pytest.mark.live

BASE_TEXT = b"base line\n"
HOSTILE_VALUES = [
    "$(touch PWNED)",
    "`touch PWNED`",
    '"; touch PWNED; "',
    "'; touch PWNED; '",
    "\n touch PWNED",
    "x\ntouch PWNED\n#",
    "$HOME",
    "${HOME}",
    "*",
    "../*",
    "; touch PWNED",
    "| touch PWNED",
    "&& touch PWNED",
    "> PWNED",
    "%s %n %d \\n \\",
    "-n",
    "--help",
    "$((6*7))",
    "!!",
    "~",
    "é ✓ 日本",
    "",
]
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


SECRET = "a secret of the server's account\n"
# Job definitions whose scripts (admin-written code, but buggy or hostile) plant what a
# server must not follow or serve. {secret} is a file of the server's account.
HOSTILE_DEFINITIONS = {
    "page": """
        printf '<script>alert(document.cookie)</script>' > "$JOB_OUTPUT_DIR/evil.html"
        printf '<svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>' \\
            > "$JOB_OUTPUT_DIR/evil.svg"
    """,
    "links": """
        echo "an error of the job's own" >&2
        ln -s {secret} "$JOB_OUTPUT_DIR/link.txt"
        ln {secret} "$JOB_OUTPUT_DIR/hard.txt"
        printf 'fine\\n' > "$JOB_OUTPUT_DIR/ok.txt"
        ln -sf {secret} "$JOB_DIR/.opus/stdout"
        ln -sf {secret} "$JOB_DIR/.opus/stderr"
        exit 1
    """,
    "linked_results": """
        rm -rf "$JOB_OUTPUT_DIR"
        ln -s {elsewhere} "$JOB_OUTPUT_DIR"
    """,
    "bad_name": """
        printf 'x' > "$JOB_OUTPUT_DIR/$(printf 'bad\\377name.txt')"
        printf 'fine\\n' > "$JOB_OUTPUT_DIR/ok.txt"
    """,
}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("live_injection")
    secret = tmp / "secret.txt"
    secret.write_text(SECRET)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "private.txt").write_text(SECRET)
    jdl = tmp / "jdl"
    shutil.copytree(EXAMPLES, jdl)
    for name, script in HOSTILE_DEFINITIONS.items():
        (jdl / f"{name}.yml").write_text(
            f"name: {name}\nannotation: hostile\nexecution_duration: 60\n"
        )
        text = "\n".join(line.strip() for line in script.strip().splitlines())
        (jdl / f"{name}.sh").write_text(text.format(secret=secret, elsewhere=elsewhere) + "\n")
    with running_server(tmp, module_database_url) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Client:
    return Client(server)


def pwned_files(client: Client) -> list[Path]:
    """PWNED files in the server's data, in the test's and server's cwd, in $HOME."""
    found = list(client.server.tmp_path.rglob("PWNED"))
    for directory in {Path.cwd(), ROOT, Path.home()}:
        if (directory / "PWNED").exists():
            found.append(directory / "PWNED")
    return found


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=repr)
def test_parameter_values_reach_the_script_literally(client: Client, value: str) -> None:
    job_id = client.create(
        "append_text", {"text": value}, files={"input": ("in.txt", BASE_TEXT)}, run=True
    )
    doc = client.wait_for("append_text", job_id, timeout=60)
    assert doc.phase == "COMPLETED", doc.body
    assert doc.parameters["text"] == value
    parameter = client.get(client.job_url("append_text", job_id) + "/parameters/text")
    assert parameter.text == value
    output = client.get(doc.results["output"]["href"])
    assert output.status_code == 200
    assert output.content == BASE_TEXT + value.encode() + b"\n"
    assert pwned_files(client) == []
    assert sorted(p.name for p in (client.job_dir(job_id) / "results").iterdir()) == ["output.txt"]


def test_hostile_plot_title_is_escaped_in_the_svg(client: Client) -> None:
    title = """</title><script>alert("x")</script>$(touch PWNED)'"&"""
    job_id = client.create("plot", {"title": title}, run=True)
    doc = client.wait_for("plot", job_id, timeout=60)
    assert doc.phase == "COMPLETED", doc.body
    svg = etree.fromstring(client.get(doc.results["image"]["href"]).content)
    assert svg.findtext("{http://www.w3.org/2000/svg}title") == title
    assert svg.find(".//{http://www.w3.org/2000/svg}script") is None
    assert pwned_files(client) == []


def test_values_refused_by_their_type_never_run(client: Client) -> None:
    before = client.list_ids("sleep")
    for value in ("$(touch PWNED)", "1; touch PWNED", "`touch PWNED`", "1e999999", "nan"):
        response = client.post("/rest/sleep", data={"duration": value, "PHASE": "RUN"})
        assert response.status_code == 400, (value, response.text)
    assert client.list_ids("sleep") == before
    assert pwned_files(client) == []


@pytest.mark.parametrize(
    "name",
    ["a;b", "$(x)", "`x`", "a b", "text;touch PWNED", "x=y", "../text", "PATH", "JOB_DIR", ""],
    ids=repr,
)
def test_parameter_names_with_metacharacters_are_refused(client: Client, name: str) -> None:
    before = client.list_ids("append_text")
    response = client.post(
        "/rest/append_text",
        data={name: "1", "PHASE": "RUN"},
        files={"input": ("in.txt", BASE_TEXT)},
    )
    assert response.status_code == 400, (name, response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("text/plain")
    assert client.list_ids("append_text") == before
    assert pwned_files(client) == []

    # Nor can a PENDING job be given such a parameter later.
    job_id = client.create("append_text", files={"input": ("in.txt", BASE_TEXT)})
    base = client.job_url("append_text", job_id)
    response = client.post(f"{base}/parameters", data={name: "1"})
    assert response.status_code == 400, (name, response.status_code, response.text)
    assert set(client.job("append_text", job_id).parameters) == {"input", "text"}
    assert client.delete(base).status_code == 303


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/x", "x"),
        ("/etc/passwd", "passwd"),
        (".hidden", "hidden"),
        ("-rf", "rf"),
        ("a b;c", None),
        ("$(touch PWNED).txt", None),
        ("..", None),
        ("..\\..\\windows.txt", "windows.txt"),
        (".opus", None),
        ("results", None),
        ("x" * 300, None),
        ("données ✓.txt", "donn_es_.txt"),
    ],
    ids=repr,
)
def test_uploaded_file_names_are_sanitised(
    client: Client, filename: str, expected: str | None
) -> None:
    var = client.server.tmp_path / "var"
    outside_before = sorted(p for p in var.rglob("*") if "jobs" not in p.relative_to(var).parts)
    job_id = client.create(
        "append_text", {"text": "done"}, files={"input": (filename, b"payload\n")}, run=True
    )
    doc = client.wait_for("append_text", job_id, timeout=60)
    assert doc.phase == "COMPLETED", doc.body

    stored = doc.parameters["input"]
    if expected is not None:
        assert stored == expected
    assert SAFE_NAME.fullmatch(stored), stored
    assert "/" not in stored and len(stored) <= 128
    assert stored not in {".opus", "results", ".", ".."}
    job_dir = client.job_dir(job_id).resolve()
    saved = job_dir / stored
    assert saved.is_file()
    assert saved.read_bytes() == b"payload\n"
    for path in job_dir.rglob("*"):
        assert path.resolve().is_relative_to(job_dir), path
    outside_after = sorted(p for p in var.rglob("*") if "jobs" not in p.relative_to(var).parts)
    assert outside_after == outside_before
    assert sorted(p.name for p in client.jobs_path.iterdir() if p.is_file()) == []
    assert client.get(doc.results["output"]["href"]).content == b"payload\ndone\n"
    assert pwned_files(client) == []


def test_input_url_file_names_are_sanitised(client: Client) -> None:
    with file_server({"/dir/a%3Bb%24%28touch%20PWNED%29": b"remote\n"}) as base:
        url = f"{base}/dir/a%3Bb%24%28touch%20PWNED%29"
        job_id = client.create("append_text", {"input": url, "text": "t"}, run=True)
    doc = client.wait_for("append_text", job_id, timeout=60)
    assert doc.phase == "COMPLETED", doc.body
    assert doc.parameters["input"] == url
    names = [p.name for p in client.job_dir(job_id).iterdir() if p.is_file()]
    assert len(names) == 1 and SAFE_NAME.fullmatch(names[0]), names
    assert client.get(doc.results["output"]["href"]).content == b"remote\nt\n"
    assert pwned_files(client) == []


@pytest.mark.parametrize(
    "run_id",
    [
        """<b>&amp;"'$(touch PWNED)`id`</b>""",
        "]]><!-- -->",
        "tab\there, é ✓",
        "line one\nline two",
    ],
    ids=repr,
)
def test_run_id_is_stored_and_shown_literally(client: Client, run_id: str) -> None:
    job_id = client.create("sleep", {"duration": "0", "RUNID": run_id}, run=True)
    doc = client.wait_for("sleep", job_id, timeout=60)
    assert doc.phase == "COMPLETED"
    assert doc.run_id == run_id
    if run_id.startswith("<b>"):
        assert b"<b>" not in doc.body and b"&lt;b&gt;&amp;amp;" in doc.body
    listing = client.get("/rest/sleep")
    refs = {
        ref.get("id"): ref.findtext(UWS + "runId")
        for ref in etree.fromstring(listing.content).iterfind(UWS + "jobref")
    }
    assert refs[job_id] == run_id
    assert pwned_files(client) == []
    assert not (Path(os.getcwd()) / "PWNED").exists()


# -- hostile jobs ------------------------------------------------------------------------


def test_results_a_browser_would_run_are_attachments(client: Client) -> None:
    job_id = client.create("page", run=True)
    doc = client.wait_for("page", job_id, timeout=60)
    assert doc.phase == "COMPLETED", doc.body
    for name, media in (("evil.html", "text/html"), ("evil.svg", "image/svg+xml")):
        response = client.get(doc.results[name]["href"])
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith(media)
        assert response.headers["Content-Disposition"] == f"attachment; filename*=UTF-8''{name}"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == "sandbox"
    stdout = client.get(client.job_url("page", job_id) + "/stdout")
    assert stdout.headers["X-Content-Type-Options"] == "nosniff"
    assert stdout.headers["Content-Security-Policy"] == "sandbox"


def test_links_planted_by_a_job_are_not_followed(client: Client) -> None:
    job_id = client.create("links", run=True)
    doc = client.wait_for("links", job_id, timeout=60)
    assert doc.phase == "ERROR", doc.body
    assert "secret" not in (doc.error_message or "")
    base = client.job_url("links", job_id)
    assert "secret" not in client.get(f"{base}/error").text
    for which in ("stdout", "stderr"):
        response = client.get(f"{base}/{which}")
        assert response.status_code == 403, response.text
        assert "secret" not in response.text
    assert sorted(doc.results) == ["ok.txt"]
    assert client.get(doc.results["ok.txt"]["href"]).text == "fine\n"


def test_a_results_directory_that_is_a_link_is_not_listed(client: Client) -> None:
    job_id = client.create("linked_results", run=True)
    doc = client.wait_for("linked_results", job_id, timeout=60)
    assert doc.phase == "COMPLETED", doc.body
    assert doc.results == {}


def test_a_result_name_that_is_not_utf8_does_not_stop_the_job(client: Client) -> None:
    job_id = client.create("bad_name", run=True)
    # Within the first callback's time: the signal ends the job, not a retry or the
    # reconciler; and the server logs no error (running_server checks its log).
    doc = client.wait_for("bad_name", job_id, timeout=30)
    assert doc.phase == "COMPLETED", doc.body
    assert sorted(doc.results) == ["ok.txt"]
    signals = (client.job_dir(job_id) / ".opus" / "signal.log").read_text()
    assert "error" not in signals.lower() and "retry" not in signals.lower(), signals

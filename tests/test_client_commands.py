"""The `opus` client commands against a real `opus serve`: login and its file, every
verb on real jobs, their tables and JSON, and their exit statuses (docs/python-client.md
has the table): 0 done or COMPLETED, 1 ERROR, 2 usage, 3 ABORTED, 4 ARCHIVED, 5 timeout,
6 refused (4xx), 7 server fault or unreachable. Most run in this process (``main``),
a few as the `opus` command itself: without the server's settings, reading standard
input, following a job's output.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from opus.cli import main
from opus.client.completion import script
from tests.conftest import EXAMPLES, LiveServer, free_port
from tests.live_helpers import add_user, assert_clean_log, eventually

pytestmark = pytest.mark.live
ROOT = Path(__file__).resolve().parents[1]
# A job that prints as it goes, for `opus logs --follow`.
TALK_YML = """name: talk
annotation: Prints a few numbered lines on stdout and stderr, half a second apart.
execution_duration: 60
parameters:
  - {name: lines, datatype: xs:int, default: 3}
"""
TALK_SH = """for ((i = 1; i <= lines; i++)); do
  echo "line $i"; echo "err $i" >&2; sleep 0.5
done
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("client_commands")
    shutil.copytree(EXAMPLES, directory / "jdl")
    (directory / "jdl" / "talk.yml").write_text(TALK_YML)
    (directory / "jdl" / "talk.sh").write_text(TALK_SH)
    live = LiveServer(directory, ALLOW_ANONYMOUS="false", ARCHIVE_ON_DESTRUCTION="true")
    live.start()
    try:
        yield live
    finally:
        live.stop()
    assert_clean_log(live)


@pytest.fixture(scope="module")
def token(server: LiveServer) -> str:
    return add_user(server, "carol")


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "config"
    monkeypatch.setenv("OPUS_CONFIG_DIR", str(directory))
    return directory


@pytest.fixture
def opus(capsys: pytest.CaptureFixture[str], config: Path):
    """Run `opus ARGS…` in this process: (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def logged_in(opus, server: LiveServer, token: str, tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    code, _, err = opus("login", server.url, "--user", "carol", "--token-file", str(token_file))
    assert code == 0, err
    return opus


def command(*args: str, config: Path, stdin: str | None = None, **env: str):
    """The `opus` command itself, with the saved logins of ``config``."""
    environ = {**os.environ, "OPUS_CONFIG_DIR": str(config), "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-m", "opus", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        check=False,
    )


def test_login_checks_the_token_and_keeps_it_private(
    opus, server: LiveServer, token: str, tmp_path: Path, config: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-a-token\n")
    code, _, err = opus("login", server.url, "--user", "carol", "--token-file", str(wrong))
    assert code == 6 and "invalid" in err.lower() and "(HTTP 401)" in err
    assert not (config / "logins.json").exists()

    good = tmp_path / "token"
    good.write_text(token)
    code, out, err = opus(
        "login", server.url, "--name", "main", "--user", "carol", "--token-file", str(good)
    )
    assert code == 0, err
    assert "saved as 'main'" in out and "sleep" in out
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    assert stat.S_IMODE((config / "logins.json").stat().st_mode) == 0o600
    saved = json.loads((config / "logins.json").read_text())
    assert saved["default"] == "main"
    assert saved["logins"]["main"] == {"url": server.url, "user": "carol", "token": token}

    # The same server again, as a Bearer token, under its default name.
    code, out, _ = opus("login", server.url + "/", "--token-file", str(good))
    name = f"127.0.0.1:{server.port}"
    assert code == 0 and f"saved as '{name}'" in out
    code, out, _ = opus("whoami")
    assert code == 0 and f"(Bearer token) at {server.url}" in out and "(the default)" in out
    code, out, _ = opus("--server", "main", "whoami", "--json")
    assert json.loads(out)["user"] == "carol" and not json.loads(out)["default"]
    code, out, _ = opus("logins", "--json")
    assert [(e["name"], e["default"]) for e in json.loads(out)] == [(name, True), ("main", False)]
    code, out, _ = opus("logins", "--default", "main")
    assert code == 0 and "*  main" in out
    code, out, _ = opus("logout")
    assert code == 0 and "forgot the login 'main'" in out and f"now '{name}'" in out
    code, _, err = opus("logout", "--name", "main")
    assert code == 2 and "no saved login named 'main'" in err


def test_login_refuses_clear_text_to_another_host(opus, server: LiveServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("whatever")
    code, _, err = opus("login", "http://opus.example.org", "--token-file", str(token_file))
    assert code == 2 and "unencrypted" in err and "https://" in err and "--insecure" in err
    # 0.0.0.0 reaches this machine but is no loopback name: --insecure lets it through.
    other = server.url.replace("127.0.0.1", "0.0.0.0")
    code, _, err = opus("login", other, "--token-file", str(token_file))
    assert code == 2 and "--insecure" in err
    code, _, err = opus("login", other, "--token-file", str(token_file), "--insecure")
    assert code == 6 and "401" in err
    code, _, err = opus("login", "ftp://example.org", "--token-file", str(token_file))
    assert code == 2 and "not a server URL" in err


def test_types_and_describe(logged_in) -> None:
    code, out, _ = logged_in("types")
    assert code == 0 and out.splitlines()[0].split() == ["TYPE", "VERSION", "DESCRIPTION"]
    assert any(line.startswith("sleep ") for line in out.splitlines())
    code, out, _ = logged_in("types", "--names")
    assert {"sleep", "talk", "append_text"} <= set(out.split())
    code, out, _ = logged_in("types", "--json")
    assert "sleep" in [t["name"] for t in json.loads(out)]
    code, out, _ = logged_in("describe", "plot")
    assert code == 0 and "cycles" in out and "1 to 20" in out and "plot.svg" in out
    assert "one of sin|cos|square|triangle|sawtooth" in out
    code, out, _ = logged_in("describe", "append_text", "--json")
    described = json.loads(out)
    assert described["inputs"][0]["name"] == "input" and described["inputs"][0]["upload"]
    code, _, err = logged_in("describe", "nosuch")
    assert code == 6 and "no job type named 'nosuch'" in err


def test_submit_wait_results_download(logged_in, tmp_path: Path) -> None:
    code, out, err = logged_in("submit", "sleep", "duration=0.5", "--wait", "--run-id", "cli")
    assert code == 0, err
    url, *phases = out.splitlines()
    ident = url.rsplit("/", 1)[1]
    assert phases[-1] == f"sleep/{ident} COMPLETED"
    code, out, _ = logged_in("status", ident)
    assert code == 0 and "phase        COMPLETED" in out and "duration = 0.5" in out
    assert "run id       cli" in out
    code, out, _ = logged_in("status", f"sleep/{ident}", "--json")
    status = json.loads(out)
    assert (status["phase"], status["type"], status["url"]) == ("COMPLETED", "sleep", url)
    code, out, _ = logged_in("results", url)
    assert code == 0 and out.split()[:4] == ["ID", "SIZE", "TYPE", "URL"]
    code, out, _ = logged_in("results", ident, "--json")
    assert json.loads(out)[0]["id"] == "output"
    code, out, _ = logged_in("download", ident, str(tmp_path / "out"))
    assert code == 0 and out.strip() == str(tmp_path / "out" / "output.txt")
    assert (tmp_path / "out" / "output.txt").read_text().startswith("OPUS job ")
    code, out, _ = logged_in("wait", ident)
    assert code == 0 and out.strip() == f"sleep/{ident} COMPLETED"

    # Options may come before the values, as for `opus batch`.
    code, out, err = logged_in("submit", "plot", "--download", str(tmp_path / "p"), "cycles=3")
    assert code == 0, err
    assert out.splitlines()[-1] == str(tmp_path / "p" / "plot.svg")
    code, shown, _ = logged_in("status", out.splitlines()[0])
    assert "cycles = 3" in shown

    code, out, _ = logged_in("jobs", "--last", "2")
    lines = out.splitlines()
    assert lines[0].split() == ["JOB", "PHASE", "CREATED", "RUN", "ID", "OWNER"]
    assert lines[1].startswith("plot/") and lines[2].startswith(f"sleep/{ident}")
    code, out, _ = logged_in("jobs", "sleep", "--phase", "completed", "--json", "--run-id", "cli")
    assert ident in [j["id"] for j in json.loads(out)]
    code, _, err = logged_in("jobs", "--last", "0")
    assert code == 2 and "--all" in err


def test_the_exit_status_of_every_ending(logged_in, server: LiveServer, token: str) -> None:
    code, _, err = logged_in("submit", "fail", "message=broken on purpose", "--wait")
    assert code == 1 and "ended in ERROR" in err and "broken on purpose" in err

    code, out, _ = logged_in("submit", "sleep", "duration=30")
    ident = out.strip().rsplit("/", 1)[1]
    code, _, err = logged_in("wait", ident, "--timeout", "1")
    assert code == 5 and "still" in err
    code, out, _ = logged_in("abort", ident)
    assert code == 0 and out.strip() == f"aborted sleep/{ident}"
    code, _, _ = logged_in("wait", ident, "--quiet")
    assert code == 3
    code, _, err = logged_in("abort", ident)
    assert code == 6 and "(HTTP 403)" in err

    # ARCHIVED: the job's results are gone (the destruction time passed).
    code, out, _ = logged_in("submit", "sleep", "duration=0", "--wait")
    archived = out.splitlines()[0]
    soon = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    requests.post(
        f"{archived}/destruction", data={"DESTRUCTION": soon}, auth=("carol", token), timeout=60
    )
    eventually(
        lambda: (
            requests.get(f"{archived}/phase", auth=("carol", token), timeout=60).text == "ARCHIVED"
        ),
        timeout=30,
    )
    code, out, _ = logged_in("wait", archived)
    assert code == 4 and out.strip().endswith("ARCHIVED")

    code, _, err = logged_in("submit", "sleep", "duration=x")
    assert code == 6
    assert err == "opus: parameter 'duration': 'x' is not a number (xs:float) (HTTP 400)\n"
    code, _, err = logged_in("status", "sleep/nosuchjob")
    assert code == 6 and "no job 'nosuchjob'" in err
    code, _, err = logged_in("status", "nosuchjob")
    assert code == 6 and "TYPE/ID" in err
    code, _, err = logged_in("--server", f"http://127.0.0.1:{free_port()}", "types")
    assert code == 7 and "cannot reach" in err and "Connection refused" in err
    code, _, err = logged_in("--server", "nosuch", "types")
    assert code == 2 and "no saved login named 'nosuch'" in err
    code, _, err = logged_in("submit", "sleep", "duration")
    assert code == 2 and "expected name=value" in err
    code, _, err = logged_in("submit", "sleep", "--no-run", "--wait")
    assert code == 2 and "--no-run" in err
    with pytest.raises(SystemExit) as usage:
        logged_in("wait")
    assert usage.value.code == 2


def test_inputs_literal_at_signs_and_rerun(logged_in, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("first\n")
    code, out, err = logged_in(
        "submit", "append_text", f"input=@{notes}", "text=@@home", "--download", str(tmp_path)
    )
    assert code == 0, err
    assert (tmp_path / "output.txt").read_text() == "first\n@home\n"
    first = out.splitlines()[0]
    code, out, err = logged_in("rerun", first, "text=second", "--wait")
    assert code == 0, err
    rerun = out.splitlines()[0]
    code, out, _ = logged_in("status", rerun, "--json")
    parameters = {p["id"]: p for p in json.loads(out)["parameters"]}
    assert parameters["text"]["value"] == "second" and parameters["input"]["by_reference"]
    code, _, err = logged_in("submit", "append_text", f"input=@{tmp_path / 'missing'}")
    assert code == 2 and "no such file" in err
    code, out, _ = logged_in("delete", first, rerun, "sleep/nosuchjob")
    assert code == 6 and out.split() == [
        "deleted",
        f"append_text/{first.rsplit('/', 1)[1]}",
        "deleted",
        f"append_text/{rerun.rsplit('/', 1)[1]}",
    ]


def test_the_command_needs_no_server_settings_and_reads_stdin(
    logged_in, config: Path, tmp_path: Path
) -> None:
    # A settings file that stops whoever reads it, and a setting that does not parse:
    # the server's commands stop on them, the client's never read them.
    settings = tmp_path / "settings.py"
    settings.write_text("raise SystemExit(9)\n")
    broken = {"OPUS_SETTINGS": str(settings), "OPUS_WAIT_MAX": "soon"}
    assert command("db", "current", config=config, **broken).returncode == 9
    done = command(
        "submit", "append_text", "input=@-", "--wait", config=config, stdin="from stdin\n", **broken
    )
    assert done.returncode == 0, done.stderr
    url = done.stdout.splitlines()[0]
    shown = command("logs", url, config=config, **broken)
    assert shown.returncode == 0 and shown.stdout == ""
    result = command("download", url, str(tmp_path), config=config, **broken)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "output.txt").read_text() == "from stdin\nappended by OPUS\n"


def test_logs_follow_a_running_job(logged_in, config: Path) -> None:
    _, out, _ = logged_in("submit", "talk", "lines=4")
    url = out.strip()
    followed = command("logs", url, "--follow", config=config)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "".join(f"line {i}\n" for i in range(1, 5))
    errors = command("logs", url, "--stderr", config=config)
    assert errors.stdout == "".join(f"err {i}\n" for i in range(1, 5))


def test_progress_is_shown_while_waiting(logged_in) -> None:
    code, out, _ = logged_in("types", "--names")
    if "progress_demo" not in out.split():
        pytest.skip("this server has no progress_demo job type")
    code, out, err = logged_in("submit", "progress_demo", "steps=2", "step_duration=0.5", "--wait")
    assert code == 0, err
    assert out.splitlines()[-1].endswith("COMPLETED 100% step 2/2")


def test_shell_completion(opus, tmp_path: Path) -> None:
    code, bash, _ = opus("completion", "bash")
    assert code == 0 and "complete -F _opus opus" in bash
    code, zsh, _ = opus("completion", "zsh")
    assert "bashcompinit" in zsh and zsh.endswith(bash)
    (tmp_path / "completion.sh").write_text(bash)

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        program = (
            # `opus` as the completion calls it: a fixed list of types.
            "opus() { if [[ $1 == types ]]; then echo sleep; echo plot; fi; }\n"
            f"source {tmp_path / 'completion.sh'}\n"
            f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
            '_opus; printf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        done = subprocess.run(
            ["bash", "-c", program], capture_output=True, text=True, timeout=30, check=True
        )
        return done.stdout.split()

    assert complete("opus sub") == ["submit"]
    assert "--wait" in complete("opus submit --w")
    assert complete("opus describe p") == ["plot"]
    assert complete("opus jobs --phase COMP") == ["COMPLETED"]
    assert complete("opus user a") == ["add"]
    assert complete("opus completion z") == ["zsh"]
    from opus.cli import build_parser

    assert script(build_parser(), "bash") == bash

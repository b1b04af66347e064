"""The `opus` command: init, jdl validate, maintenance, user, serve's port check, and
the command its hints name."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from opus.commandline import MAIN_MODULE, opus_command
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
# The `opus` command as the hints of the processes opus() starts spell it.
COMMAND = opus_command(str(MAIN_MODULE))


def opus(*args: str, var: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, OPUS_VAR_PATH=str(var), OPUS_LOG_LEVEL="WARNING")
    environ.pop("OPUS_SETTINGS", None)
    environ.pop("MAKELEVEL", None)  # under `make test`, hints would name `make run`
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "opus", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_init_seeds_examples_and_database(tmp_path: Path) -> None:
    done = opus("init", var=tmp_path / "var")
    assert done.returncode == 0, done.stderr
    assert {"sleep", "fail", "append_text", "plot"} <= {
        p.stem for p in (tmp_path / "var" / "jdl").glob("*.yml")
    }
    assert (tmp_path / "var" / "opus.db").is_file()
    assert "sleep" in done.stdout
    # The first start creates an admin and shows its token once, with how to use it.
    token = done.stdout.split("shown once):")[1].split()[0]
    assert f"curl -u admin:{token} " in done.stdout
    # Every hint names a command that works as written (see test_opus_command_*).
    assert f"a new token: {COMMAND} user token admin; more users: {COMMAND} user add NAME\n" in (
        done.stdout
    )
    from opus.server.auth import hash_token
    from opus.server.storage import UserStore, make_engine

    users = UserStore(make_engine(f"sqlite:///{tmp_path / 'var' / 'opus.db'}"))
    assert users.get("admin").roles == ("admin",)
    assert users.get("admin").token_hash == hash_token(token)
    again = opus("init", var=tmp_path / "var")
    assert again.returncode == 0 and "shown once" not in again.stdout


def test_jdl_validate(tmp_path: Path) -> None:
    good = opus("jdl", "validate", str(ROOT / "jdl" / "sleep.yml"), var=tmp_path)
    assert good.returncode == 0 and "ok" in good.stdout
    broken = tmp_path / "broken.yml"
    broken.write_text(
        'name: broken\nscript: "true"\nparameters:\n  - name: x\n    datatype: xs:integer\n'
    )
    bad = opus("jdl", "validate", str(broken), var=tmp_path)
    assert bad.returncode == 1
    assert "broken.yml" in bad.stderr and "datatype" in bad.stderr
    missing = opus("jdl", "validate", str(tmp_path / "nosuch.yml"), var=tmp_path)
    assert missing.returncode == 1


def test_maintenance_destroys_expired_jobs(tmp_path: Path) -> None:
    from opus.core.access import Caller
    from opus.core.times import utcnow
    from opus.server.app import build_service
    from tests.conftest import make_settings

    settings = make_settings(tmp_path)
    service = build_service(settings)
    job = service.create_job(Caller("anonymous"), "sleep", {})
    service.store.set_destruction(job.id, utcnow())
    done = opus(
        "maintenance",
        var=settings.VAR_PATH,
        OPUS_JDL_PATH=str(settings.jdl_path),
        OPUS_BASE_URL=settings.BASE_URL,
    )
    assert done.returncode == 0, done.stderr
    assert "destroyed 1" in done.stdout
    assert service.store.get_job(job.id) is None
    assert not service.files.directory(job.id).exists()


def test_bad_setting_is_reported(tmp_path: Path) -> None:
    done = opus("init", var=tmp_path, OPUS_WAIT_MAX="soon")
    assert done.returncode == 2
    assert "WAIT_MAX" in done.stderr


def test_user_commands(tmp_path: Path) -> None:
    var = tmp_path / "var"
    assert opus("db", "upgrade", var=var).returncode == 0
    added = opus("user", "add", "alice", "--admin", "--roles", "sleep,fail", var=var)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]  # the token is the last line
    assert len(token) >= 40
    assert opus("user", "add", "alice", var=var).returncode == 1
    listed = opus("user", "list", var=var).stdout
    assert "alice\tactive\tadmin,sleep,fail" in listed
    assert token not in listed

    from opus.server.auth import hash_token
    from opus.server.storage import UserStore, make_engine

    users = UserStore(make_engine(f"sqlite:///{var / 'opus.db'}"))
    assert users.get("alice").token_hash == hash_token(token)
    rotated = opus("user", "token", "alice", var=var).stdout.strip().splitlines()[-1]
    assert users.get("alice").token_hash == hash_token(rotated) != hash_token(token)
    assert opus("user", "disable", "alice", var=var).returncode == 0
    assert users.get("alice").active is False
    assert opus("user", "delete", "alice", var=var).returncode == 0
    assert users.get("alice") is None
    missing = opus("user", "token", "nobody", var=var)
    assert missing.returncode == 1 and "no user" in missing.stderr
    assert missing.stdout == ""


def test_init_hints_name_the_script_it_was_run_as(tmp_path: Path) -> None:
    """`.venv/bin/opus init` from the project directory, the virtualenv not activated."""
    script = Path(sys.executable).parent / "opus"
    if not script.is_file() or len(script.parents) < 4:
        pytest.skip("no opus script in a virtualenv's bin directory beside the interpreter")
    environ = dict(
        os.environ,
        OPUS_VAR_PATH=str(tmp_path / "var"),
        OPUS_LOG_LEVEL="WARNING",
        PATH="/usr/bin:/bin",
    )
    environ.pop("OPUS_SETTINGS", None)
    relative = os.path.relpath(script, script.parents[2])  # .venv/bin/opus
    done = subprocess.run(
        [relative, "init"],
        cwd=script.parents[2],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"a new token: {relative} user token admin; more users: {relative} user add" in (
        done.stdout
    )


# -- the command hints name -------------------------------------------------------------


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_opus_command_of_the_script(tmp_path: Path) -> None:
    project = tmp_path / "project"
    script = executable(project / ".venv" / "bin" / "opus")
    python = str(executable(project / ".venv" / "bin" / "python"))
    elsewhere = executable(tmp_path / "other" / "opus")
    # Run as .venv/bin/opus from the project, the virtualenv not activated.
    assert opus_command(".venv/bin/opus", executable=python, cwd=str(project), search_path="") == (
        ".venv/bin/opus"
    )
    # Activated: the shell finds this same script as `opus`.
    assert (
        opus_command(str(script), executable=python, cwd="/", search_path=str(script.parent))
        == "opus"
    )
    # From another directory, with another `opus` first on the PATH: the full path.
    assert (
        opus_command(
            str(script), executable=python, cwd=str(tmp_path), search_path=str(elsewhere.parent)
        )
        == "project/.venv/bin/opus"
    )
    assert opus_command(str(script), executable=python, cwd="/", search_path="") == str(script)
    # Quoted for the shell; never a bare name, which the shell would look up in PATH.
    spaced = executable(tmp_path / "my env" / "opus")
    assert opus_command(str(spaced), executable=python, cwd="/", search_path="") == (f"'{spaced}'")
    assert opus_command(str(spaced), executable=python, cwd=str(spaced.parent), search_path="") == (
        "./opus"
    )


def test_opus_command_of_python_m_opus(tmp_path: Path) -> None:
    python = executable(tmp_path / "venv" / "bin" / "python")
    main = str(MAIN_MODULE)
    assert opus_command(main, executable=str(python), cwd=str(tmp_path), search_path="") == (
        "venv/bin/python -m opus"
    )
    assert (
        opus_command(main, executable=str(python), cwd="/", search_path=str(python.parent))
        == "python -m opus"
    )
    # A `python` on the PATH that is a link to this interpreter is another program: the
    # virtualenv's python is one such link, to the system python without its packages.
    other = tmp_path / "bin" / "python"
    other.parent.mkdir()
    other.symlink_to(python)
    assert opus_command(main, executable=str(python), cwd="/", search_path=str(other.parent)) == (
        f"{python} -m opus"
    )


def test_opus_command_run_in_process(tmp_path: Path) -> None:
    """Under another program (a WSGI server, pytest): the script beside the interpreter."""
    python = executable(tmp_path / "venv" / "bin" / "python")
    gunicorn = str(executable(tmp_path / "venv" / "bin" / "gunicorn"))
    assert opus_command(gunicorn, executable=str(python), cwd="/", search_path="") == "opus"
    executable(tmp_path / "venv" / "bin" / "opus")
    assert opus_command(gunicorn, executable=str(python), cwd=str(tmp_path), search_path="") == (
        "venv/bin/opus"
    )


# -- opus serve on a port in use --------------------------------------------------------


def listener(port: int, reuse_port: bool) -> socket.socket:
    """A socket listening on ``port`` of 127.0.0.1, as another server's; with
    ``reuse_port``, as the workers of another `opus serve --workers N`."""
    sock = socket.socket()
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


@pytest.mark.parametrize(
    ("workers", "reuse_port"), [(1, False), (1, True), (2, True)], ids=["1", "1-reuse", "2-reuse"]
)
def test_serve_refuses_a_port_in_use(
    tmp_path: Path, database_url: str, workers: int, reuse_port: bool
) -> None:
    if workers > 1 and not database_url.startswith("postgresql"):
        pytest.skip("several workers need PostgreSQL")
    port = free_port()
    with listener(port, reuse_port):
        done = opus(
            "serve",
            "--port",
            str(port),
            *(["--workers", str(workers)] if workers > 1 else []),
            var=tmp_path / "var",
            OPUS_DATABASE_URL=database_url,
            OPUS_LOG_LEVEL="INFO",
        )
    assert done.returncode == 1, done
    assert done.stdout == ""
    # One line, before anything starts (no "serving on", no traceback).
    other = re.search(r"--port (\d+)", done.stderr)
    assert other is not None and int(other[1]) != port, done.stderr
    assert done.stderr == (
        f"opus: port {port} on 127.0.0.1 is already in use: stop what uses it, or start on "
        f"another port ({COMMAND} serve --port {other[1]}"
        f"{f' --workers {workers}' if workers > 1 else ''})\n"
    )


def test_serve_names_make_run_under_make(tmp_path: Path) -> None:
    var = tmp_path / "var"
    assert opus("db", "upgrade", var=var).returncode == 0
    port = free_port()
    with listener(port, reuse_port=False):
        done = opus("serve", "--host", "127.0.0.1", "--port", str(port), var=var, MAKELEVEL="1")
    assert done.returncode == 1
    assert re.fullmatch(
        rf"opus: port {port} on 127.0.0.1 is already in use: stop what uses it, or start on "
        rf"another port \(make run PORT=(\d+), or {re.escape(COMMAND)} serve --host 127.0.0.1 "
        r"--port \1\)\n",
        done.stderr,
    ), done.stderr


def test_port_check_leaves_the_port_free() -> None:
    from opus.cli import _bind_error

    port = free_port()
    assert _bind_error("127.0.0.1", port) is None
    # Closed at once: a server without SO_REUSEADDR binds the port right after.
    with listener(port, reuse_port=False):
        error = _bind_error("127.0.0.1", port)
    assert error is not None and "in use" in str(error)

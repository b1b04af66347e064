"""The `opus` command: init, jdl validate, maintenance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def opus(*args: str, var: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, OPUS_VAR_PATH=str(var), OPUS_LOG_LEVEL="WARNING", **env)
    environ.pop("OPUS_SETTINGS", None)
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
    from opus.server.app import build_service
    from opus.server.uwsxml import utcnow
    from tests.conftest import make_settings

    settings = make_settings(tmp_path)
    service = build_service(settings)
    job = service.create_job("sleep", "anonymous", {})
    service.store.update_job(job.id, {"destruction_time": utcnow()})
    done = opus(
        "maintenance",
        var=settings.VAR_PATH,
        OPUS_JDL_PATH=str(settings.jdl_path),
        OPUS_BASE_URL=settings.BASE_URL,
    )
    assert done.returncode == 0, done.stderr
    assert "destroyed 1" in done.stdout
    assert service.store.get_job(job.id) is None
    assert not service.job_dir(job.id).exists()


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

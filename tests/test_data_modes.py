"""The data OPUS keeps is its account's alone, whatever the umask it was started with:
VAR_PATH, JOBS_PATH, JDL_PATH and every directory OPUS makes under them 0700, the
database and every file OPUS writes 0600 (the batch script 0700); directories an older
OPUS made with the umask's modes are tightened at start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest

from opus.server.app import build_service, create_app
from tests.conftest import make_settings
from tests.test_rest import finish_for_real, job_id_of, path_of


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_everything_under_var_is_private(tmp_path: Path, database_url: str, umask_022) -> None:
    # As an older OPUS left them: made with the umask's modes.
    var = tmp_path / "var"
    (var / "jobs").mkdir(parents=True)
    for directory in (var, var / "jobs"):
        directory.chmod(0o755)
    settings = make_settings(tmp_path, DATABASE_URL=database_url)
    service = build_service(settings)
    app = webtest.TestApp(create_app(settings, service))
    assert mode(var) == 0o700
    assert mode(settings.jobs_path) == 0o700
    assert mode(settings.jdl_path) == 0o700
    if database_url.startswith("sqlite"):
        assert mode(var / "opus.db") == 0o600

    response = app.post(
        "/rest/append_text",
        {"text": "more", "PHASE": "RUN"},
        upload_files=[("input", "notes.txt", b"first\n")],
    )
    job_id = job_id_of(path_of(response))
    finish_for_real(service, job_id)
    job_dir = service.files.directory(job_id)
    modes = {str(p.relative_to(job_dir)): mode(p) for p in job_dir.rglob("*")}
    assert mode(job_dir) == 0o700
    assert modes.pop(".opus/batch.sh") == 0o700
    for name, found in modes.items():
        expected = 0o700 if (job_dir / name).is_dir() else 0o600
        assert found == expected, (name, oct(found))
    assert {"notes.txt", ".opus/token", ".opus/inputs.json", "results/output.txt"} <= set(modes)


def test_opus_init_makes_private_data(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = {**os.environ, "OPUS_VAR_PATH": str(var)}
    env.pop("OPUS_SETTINGS", None)
    env.pop("OPUS_DATABASE_URL", None)
    done = subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$0" -m opus init', sys.executable],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert mode(var) == 0o700
    for directory in (var / "jobs", var / "jdl"):
        assert mode(directory) == 0o700
    assert mode(var / "opus.db") == 0o600
    definitions = list((var / "jdl").iterdir())
    assert definitions and all(mode(p) == 0o600 for p in definitions)
    assert all(mode(p) == 0o600 for p in var.glob("opus.db*"))

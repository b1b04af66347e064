"""Settings: defaults, settings file, environment, derived paths."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from opus.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_derive_paths_from_var_path(tmp_path: Path) -> None:
    settings = load_settings(environ={"OPUS_VAR_PATH": str(tmp_path)})
    assert settings.VAR_PATH == tmp_path
    assert settings.jdl_path == tmp_path / "jdl"
    assert settings.jobs_path == tmp_path / "jobs"
    assert settings.DATABASE_URL == f"sqlite:///{tmp_path / 'opus.db'}"
    assert settings.MANAGER == "local"
    assert settings.ALLOW_ANONYMOUS is False


def test_file_then_environment_precedence(tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.py"
    settings_file.write_text(
        "WAIT_MAX = 20\nNJOBS_MAX = 3\nBASE_URL = 'http://example.org/opus/'\n"
    )
    env = {
        "OPUS_SETTINGS": str(settings_file),
        "OPUS_VAR_PATH": str(tmp_path),
        "OPUS_NJOBS_MAX": "7",
        "OPUS_ARCHIVE_ON_DESTRUCTION": "yes",
    }
    settings = load_settings(environ=env)
    assert settings.WAIT_MAX == 20  # from the file
    assert settings.NJOBS_MAX == 7  # the environment wins over the file
    assert settings.ARCHIVE_ON_DESTRUCTION is True
    assert settings.BASE_URL == "http://example.org/opus"  # trailing slash dropped


def test_explicit_paths_are_kept(tmp_path: Path) -> None:
    env = {
        "OPUS_VAR_PATH": str(tmp_path / "v"),
        "OPUS_JDL_PATH": str(tmp_path / "defs"),
        "OPUS_DATABASE_URL": "sqlite:///:memory:",
    }
    settings = load_settings(environ=env)
    assert settings.jdl_path == tmp_path / "defs"
    assert settings.DATABASE_URL == "sqlite:///:memory:"


@pytest.mark.parametrize(
    ("key", "value"), [("OPUS_WAIT_MAX", "soon"), ("OPUS_ALLOW_ANONYMOUS", "maybe")]
)
def test_bad_environment_values_are_refused(key: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=key.removeprefix("OPUS_")):
        load_settings(environ={key: value, "OPUS_VAR_PATH": str(tmp_path)})


def test_unknown_name_in_settings_file(tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.py"
    settings_file.write_text("WAIT_MAXX = 3\n")
    with pytest.raises(SettingsError, match="WAIT_MAXX"):
        load_settings(environ={"OPUS_SETTINGS": str(settings_file)})


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (None, "No such file or directory"),
        ("WAIT_MAX = (\n", ", line 1: "),
        ("LOG_LEVEL = 'info'\nWAIT_MAX = undefined_name\n", ", line 2: NameError: "),
    ],
    ids=["missing", "syntax", "raises"],
)
def test_a_settings_file_that_cannot_run_is_one_line(
    text: str | None, said: str, tmp_path: Path
) -> None:
    settings_file = tmp_path / "settings.py"
    if text is not None:
        settings_file.write_text(text)
    with pytest.raises(SettingsError, match=re.escape(said)) as raised:
        load_settings(environ={"OPUS_SETTINGS": str(settings_file)})
    assert str(settings_file) in str(raised.value) and "\n" not in str(raised.value)
    # The command says it in that one line, with no traceback, and exits with 2.
    done = subprocess.run(
        [sys.executable, "-m", "opus", "maintenance"],
        env={**os.environ, "OPUS_SETTINGS": str(settings_file)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.startswith("opus: "), done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr


def test_signal_base_url_defaults_to_base_url(tmp_path: Path) -> None:
    env = {"OPUS_VAR_PATH": str(tmp_path), "OPUS_BASE_URL": "https://opus.example.org/"}
    assert load_settings(environ=env).SIGNAL_BASE_URL == "https://opus.example.org"
    # Compute nodes call back on an internal address; BASE_URL stays the public one.
    env["OPUS_SIGNAL_BASE_URL"] = "http://opus-host.cluster:8080/"
    settings = load_settings(environ=env)
    assert settings.SIGNAL_BASE_URL == "http://opus-host.cluster:8080"
    assert settings.BASE_URL == "https://opus.example.org"
    assert Settings(VAR_PATH=tmp_path).SIGNAL_BASE_URL == Settings().BASE_URL


def test_relative_paths_of_a_settings_file_are_taken_from_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from another directory, `opus` finds the same data, not a second, empty one."""
    etc = tmp_path / "etc"
    etc.mkdir()
    settings_file = etc / "settings.py"
    settings_file.write_text("VAR_PATH = 'data'\nJOBS_PATH = '../jobs'\nJDL_PATH = '~/defs'\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in (str(settings_file), "../etc/settings.py"):
        settings = load_settings(environ={"OPUS_SETTINGS": name})
        assert settings.VAR_PATH == etc / "data"
        assert settings.DATABASE_URL == f"sqlite:///{etc / 'data' / 'opus.db'}"
        assert settings.jobs_path == tmp_path / "jobs"
        assert settings.jdl_path == tmp_path / "home" / "defs"  # ~ is not relative
    # From the environment (or the default), relative to the working directory.
    env = {"OPUS_SETTINGS": str(settings_file), "OPUS_VAR_PATH": "var"}
    settings = load_settings(environ=env)
    assert settings.VAR_PATH == elsewhere / "var"
    assert settings.jobs_path == tmp_path / "jobs"  # still from the file
    assert load_settings(environ={}).VAR_PATH == elsewhere / "var"
    # Absolute paths are kept.
    settings_file.write_text(f"VAR_PATH = {str(tmp_path / 'abs')!r}\n")
    assert load_settings(environ={"OPUS_SETTINGS": str(settings_file)}).VAR_PATH == (
        tmp_path / "abs"
    )


def test_every_field_is_a_setting() -> None:
    """Settings holds the settings and nothing else (no catch-all field)."""
    names = list(Settings.__dataclass_fields__)
    assert names and all(name.isupper() for name in names)
    assert not hasattr(Settings(), "extra")


def test_example_settings_file_lists_every_setting() -> None:
    example = (Path(__file__).resolve().parents[1] / "settings.py.example").read_text()
    names = list(Settings.__dataclass_fields__)
    missing = [name for name in names if f"{name} =" not in example]
    assert not missing, f"settings.py.example lacks {missing}"
    docs = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text()
    assert not [name for name in names if f"`{name}`" not in docs]


def test_example_settings_file_loads_to_the_defaults(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    example = Path(__file__).resolve().parents[1] / "settings.py.example"
    assert load_settings(environ={"OPUS_SETTINGS": str(example)}) == load_settings(environ={})

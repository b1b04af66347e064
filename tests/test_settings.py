"""Settings: defaults, settings file, environment, derived paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.settings import Settings, SettingsError, load_settings


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


def test_example_settings_file_lists_every_setting() -> None:
    example = (Path(__file__).resolve().parents[1] / "settings.py.example").read_text()
    names = [name for name in Settings.__dataclass_fields__ if name.isupper()]
    missing = [name for name in names if f"{name} =" not in example]
    assert not missing, f"settings.py.example lacks {missing}"
    docs = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text()
    assert not [name for name in names if f"`{name}`" not in docs]


def test_example_settings_file_loads_to_the_defaults(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    example = Path(__file__).resolve().parents[1] / "settings.py.example"
    assert load_settings(environ={"OPUS_SETTINGS": str(example)}) == load_settings(environ={})

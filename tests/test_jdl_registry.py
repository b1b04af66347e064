"""JDLRegistry: the definitions of a directory, served while some files are broken, and
reloaded (at most once per check interval) when files change."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from opus.server.jdl import JDLRegistry
from opus.server.jdl.registry import CHECK_INTERVAL

GOOD = "name: {name}\nscript: echo {name}\n"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str) -> None:
    path.write_text(text)
    # Some file systems keep coarse times: make every write visible as a change.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def jdl_dir(tmp_path: Path) -> Path:
    write(tmp_path / "alpha.yml", GOOD.format(name="alpha"))
    write(tmp_path / "beta.json", '{"name": "beta", "script": "echo beta"}')
    write(tmp_path / "gamma.yaml", "name: gamma\n")
    write(tmp_path / "gamma.sh", "echo gamma\n")
    return tmp_path


def test_loads_every_form_and_ignores_other_files(jdl_dir: Path) -> None:
    write(jdl_dir / ".hidden.yml", GOOD.format(name="hidden"))
    write(jdl_dir / "notes.txt", "not a definition")
    write(jdl_dir / "alpha.yml~", "editor backup")
    (jdl_dir / "sub").mkdir()
    write(jdl_dir / "sub" / "delta.yml", GOOD.format(name="delta"))
    registry = JDLRegistry(jdl_dir)
    assert registry.names() == ["alpha", "beta", "gamma"]
    assert registry.get("gamma").script == "echo gamma\n"
    assert registry.get("hidden") is None and registry.get("nope") is None
    assert registry.errors == {}


def test_broken_files_are_reported_and_the_others_served(
    jdl_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(jdl_dir / "broken.yml", "name: broken\nscript: x\nparameters:\n  - name: PATH\n")
    write(jdl_dir / "syntax.yml", "name: [\n")
    write(jdl_dir / "renamed.yml", GOOD.format(name="other"))
    with caplog.at_level(logging.WARNING, logger="opus.jdl"):
        registry = JDLRegistry(jdl_dir)
    assert registry.names() == ["alpha", "beta", "gamma"]
    errors = registry.errors
    assert sorted(errors) == ["broken.yml", "renamed.yml", "syntax.yml"]
    assert errors["broken.yml"].startswith(f"{jdl_dir / 'broken.yml'}: parameters[0].name: ")
    assert "differs from the file name" in errors["renamed.yml"]
    assert "not valid YAML" in errors["syntax.yml"]
    logged = [r.getMessage() for r in caplog.records if r.name == "opus.jdl"]
    assert any("broken.yml: parameters[0].name" in m for m in logged)
    assert all(r.levelno == logging.WARNING for r in caplog.records if "broken" in r.getMessage())


def test_duplicate_job_type_keeps_the_yaml_one(jdl_dir: Path) -> None:
    write(jdl_dir / "alpha.json", '{"name": "alpha", "script": "echo json"}')
    registry = JDLRegistry(jdl_dir)
    assert registry.get("alpha").script == "echo alpha"
    assert "already defined by alpha.yml" in registry.errors["alpha.json"]


def test_reload_is_throttled_then_picks_up_changes(jdl_dir: Path) -> None:
    clock = FakeClock()
    registry = JDLRegistry(jdl_dir, clock=clock)
    write(jdl_dir / "delta.yml", GOOD.format(name="delta"))
    clock.now += CHECK_INTERVAL * 0.8
    assert registry.get("delta") is None  # checked less than CHECK_INTERVAL ago
    clock.now += CHECK_INTERVAL * 0.3
    assert registry.get("delta") is not None
    assert registry.names() == ["alpha", "beta", "delta", "gamma"]


def test_changes_are_seen(jdl_dir: Path) -> None:
    clock = FakeClock()
    registry = JDLRegistry(jdl_dir, clock=clock)

    def later() -> None:
        clock.now += 1.0

    write(jdl_dir / "alpha.yml", "name: alpha\nscript: echo changed\n")
    later()
    assert registry.get("alpha").script == "echo changed"
    write(jdl_dir / "gamma.sh", "echo new script\n")  # the script alone changed
    later()
    assert registry.get("gamma").script == "echo new script\n"
    write(jdl_dir / "alpha.yml", "name: alpha\n")  # broken now: no script
    later()
    assert registry.get("alpha") is None
    assert "alpha.yml" in registry.errors
    (jdl_dir / "beta.json").unlink()
    later()
    assert registry.names() == ["gamma"]
    write(jdl_dir / "alpha.yml", GOOD.format(name="alpha"))
    later()
    assert registry.names() == ["alpha", "gamma"] and registry.errors == {}


def test_forced_reload(jdl_dir: Path) -> None:
    registry = JDLRegistry(jdl_dir, check_interval=3600)
    write(jdl_dir / "delta.yml", GOOD.format(name="delta"))
    assert registry.get("delta") is None
    registry.reload()
    assert registry.get("delta").name == "delta"


def test_no_reload_when_nothing_changed(jdl_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    registry = JDLRegistry(jdl_dir, clock=clock)
    loads = []
    original = registry._load
    monkeypatch.setattr(registry, "_load", lambda sig: (loads.append(sig), original(sig)))
    for _ in range(5):
        clock.now += 2
        registry.get("alpha")
    assert loads == []


def test_missing_directory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="opus.jdl"):
        registry = JDLRegistry(tmp_path / "nowhere", check_interval=0)
    assert registry.names() == [] and registry.get("x") is None
    assert "does not exist" in caplog.text
    (tmp_path / "nowhere").mkdir()
    write(tmp_path / "nowhere" / "late.yml", GOOD.format(name="late"))
    assert registry.names() == ["late"]


def test_concurrent_readers_while_files_change(jdl_dir: Path) -> None:
    registry = JDLRegistry(jdl_dir, check_interval=0)
    failures: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                assert registry.get("alpha") is not None
                assert "beta" in registry.names()
        except BaseException as error:  # reported below, in the test thread
            failures.append(error)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(30):
        write(jdl_dir / f"extra{i}.yml", GOOD.format(name=f"extra{i}"))
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert failures == []
    assert len(registry.names()) == 33

"""The shape of the package: the rules that keep its layers apart, checked on its source.

The domain core imports no framework (a client or a template can use it without the
server's dependencies), the Python client library (opus.client's library modules)
imports neither the server nor its packages, and the HTTP trees reach jobs only through
the service (no route imports storage or writes SQL). Checked two ways: statically on
each module's imports, and by importing the core and the client library in a fresh
interpreter and looking at what came in.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "opus"
FRAMEWORKS = ("bottle", "sqlalchemy", "lxml", "cheroot", "alembic", "psycopg2", "yaml")
MAX_LINES = 500
# opus/client holds two things: the Python client library (scripts, notebooks, the
# `opus` client verbs: requests and the standard library only) and the web client
# (page routes, part of the server). Every module is one or the other.
CLIENT_LIBRARY = (
    "__init__",
    "api",
    "jobs_api",
    "models",
    "errors",
    "transport",
    "uwsdoc",
    "downloads",
    "config",
    "exits",
    "output",
    "cliparse",
    "clicontext",
    "commands",
    "logincmds",
    "completion",
    "batch",
    "batchrun",
    "batchwatch",
    "batchreport",
    "batchcmd",
)
WEB_CLIENT = (
    "web",
    "account",
    "admin",
    "archive",
    "astro",
    "astropages",
    "batchform",
    "context",
    "entitypages",
    "forms",
    "jdleditor",
    "jobpages",
    "newjob",
    "previews",
    "quicklook",
    "rendering",
    "static",
    "views",
)
# What the client library may never import: the server's packages, and the server.
SERVER_PACKAGES = (*FRAMEWORKS, "voprov", "prov", "logprov", "authlib", "joserfc")


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports (absolute names; relative ones resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def modules_under(*parts: str) -> list[Path]:
    return sorted(PACKAGE.joinpath(*parts).rglob("*.py"))


@pytest.mark.parametrize("path", modules_under("core"), ids=lambda p: p.name)
def test_the_core_imports_no_framework_and_no_server_code(path: Path) -> None:
    for name in imported_modules(path):
        top = name.split(".")[0]
        assert top not in FRAMEWORKS, f"{path.name} imports {name}"
        assert not name.startswith("opus.server"), f"{path.name} imports {name}"


def test_importing_the_core_loads_no_framework() -> None:
    code = (
        "import sys, pkgutil, importlib, opus.core\n"
        "for info in pkgutil.iter_modules(opus.core.__path__):\n"
        "    importlib.import_module('opus.core.' + info.name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opus.server')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["[]", "[]"]


def test_every_client_module_is_library_or_web_page() -> None:
    found = {path.stem for path in PACKAGE.joinpath("client").glob("*.py")}
    assert found == set(CLIENT_LIBRARY) | set(WEB_CLIENT), (
        "name each module of opus/client in CLIENT_LIBRARY or WEB_CLIENT"
    )
    assert not set(CLIENT_LIBRARY) & set(WEB_CLIENT)


@pytest.mark.parametrize("name", CLIENT_LIBRARY)
def test_the_client_library_imports_no_server_code(name: str) -> None:
    path = PACKAGE / "client" / f"{name}.py"
    for imported in imported_modules(path):
        top = imported.split(".")[0]
        assert top not in SERVER_PACKAGES, f"{path.name} imports {imported}"
        assert not imported.startswith("opus.server"), f"{path.name} imports {imported}"
        web = {f"opus.client.{page}" for page in WEB_CLIENT}
        assert imported not in web, f"{path.name} imports the web client's {imported}"


def test_importing_the_client_library_loads_no_server_code() -> None:
    code = (
        "import sys, importlib\n"
        f"for name in {CLIENT_LIBRARY!r}:\n"
        "    importlib.import_module('opus.client' + ('' if name == '__init__' else '.' + name))\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SERVER_PACKAGES!r}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opus.server')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["[]", "[]"]


@pytest.mark.parametrize(
    "path",
    modules_under("server", "routes") + modules_under("client"),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_routes_reach_jobs_only_through_the_service(path: Path) -> None:
    """The HTTP trees, the web pages (opus/client) included, never touch a store."""
    for name in imported_modules(path):
        assert not name.startswith("opus.server.storage"), f"{path.name} imports {name}"
        assert not name.startswith("sqlalchemy"), f"{path.name} imports {name}"
    source = path.read_text()
    for reach in (".store.", "service.store", ".users.users"):
        assert reach not in source, f"{path.name} reaches around the service: {reach!r}"


def test_sql_is_written_only_in_storage_and_the_migrations() -> None:
    allowed = {PACKAGE / "server" / "schema.py"}
    for path in modules_under():
        inside = {"storage", "migrations"} & set(path.relative_to(PACKAGE).parts)
        if inside or path in allowed:
            continue
        for name in imported_modules(path):
            if name.startswith("sqlalchemy"):
                assert name in {"sqlalchemy.engine.Engine"} or name.startswith("sqlalchemy.exc"), (
                    f"{path.relative_to(PACKAGE)} imports {name}"
                )


@pytest.mark.parametrize("path", modules_under(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_500_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines"

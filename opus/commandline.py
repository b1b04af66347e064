"""How to write an `opus` command in a hint, so that it works as written.

A hint such as "run `opus db upgrade`" is useless when `opus` is not on the PATH (it is
in `.venv/bin` until the virtualenv is activated) and misleading when another `opus` is.
``opus_command`` spells the command the way this process was started: plain ``opus``
when the ``opus`` the shell finds is this same program, else the path of this program
(relative to the working directory when it is under it, as ``.venv/bin/opus``), and
``python -m opus`` (with the interpreter's path when ``python`` would be another one)
when it was started that way.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

NAME = "opus"
MAIN_MODULE = Path(__file__).resolve().parent / "__main__.py"


def opus_command(
    argv0: str | None = None,
    *,
    executable: str | None = None,
    cwd: str | None = None,
    search_path: str | None = None,
) -> str:
    """The `opus` command as the user can type it from the working directory.

    The arguments default to this process's ``sys.argv[0]``, ``sys.executable``, working
    directory and ``PATH``. Run in-process by another program (a WSGI server, tests),
    it names the ``opus`` script installed beside the interpreter, or plain ``opus``.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    cwd = os.getcwd() if cwd is None else cwd
    search_path = os.environ.get("PATH", os.defpath) if search_path is None else search_path
    if argv0 and _same_file(_absolute(argv0, cwd), MAIN_MODULE):
        # `python -m opus`: argv[0] is the path of opus/__main__.py.
        return f"{_python_command(executable, cwd, search_path)} -m {NAME}"
    if argv0 and Path(argv0).name == NAME:
        script = _absolute(argv0, cwd)
    elif executable:
        # Not started as `opus`: the script installed with this interpreter, if any.
        script = _absolute(str(Path(executable).parent / NAME), cwd)
        if not script.is_file():
            return NAME
    else:
        return NAME
    found = shutil.which(NAME, path=search_path)
    if found is not None and _same_file(_absolute(found, cwd), script):
        return NAME
    return _shown_path(script, cwd)


def _python_command(executable: str, cwd: str, search_path: str) -> str:
    """``python`` or ``python3`` if the shell finds this interpreter under that name."""
    if not executable:
        return "python3"
    interpreter = _absolute(executable, cwd)
    for name in ("python", "python3"):
        found = shutil.which(name, path=search_path)
        # Compared as paths, not as resolved files: a virtualenv's python is a link to
        # the system one, which would run without the virtualenv's packages.
        if found is not None and _absolute(found, cwd) == interpreter:
            return name
    return _shown_path(interpreter, cwd)


def _absolute(path: str, cwd: str) -> Path:
    return Path(os.path.normpath(os.path.join(cwd, os.path.expanduser(path))))


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.samefile(other)
    except OSError:
        return False


def _shown_path(path: Path, cwd: str) -> str:
    """``path`` relative to ``cwd`` when it is inside it (``.venv/bin/opus``), else
    absolute; quoted for the shell, and never a bare name the shell would look up."""
    base = Path(os.path.normpath(cwd))
    inside = path.is_relative_to(base) and base != Path(base.anchor)
    shown = str(path.relative_to(base)) if inside else str(path)
    if os.sep not in shown:
        shown = f".{os.sep}{shown}"
    return shlex.quote(shown)

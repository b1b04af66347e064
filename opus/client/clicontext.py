"""What the `opus` client commands share: the login in use, jobs named on the command
line, ``name=value`` fields, and waiting with the phase shown.

The login in use is ``--server``'s (a saved login's name; or a URL, with the saved
login of that server if there is one, else none), else, for a job named by its URL,
the saved login of its server, else the default login. Credentials are never sent to
another server than their login's (transport.py sees to it), so a job URL of a server
without a login is reached without credentials.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from opus.client import exits
from opus.client.api import Client, FileSpec
from opus.client.config import Login, Logins
from opus.client.jobs_api import Job
from opus.client.output import shown_progress
from opus.core.phases import Phase


class UsageError(Exception):
    """A command line that cannot be carried out as written (exit status 2)."""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def current_login(args: argparse.Namespace, target: str | None = None) -> Login:
    """The login a command uses (see the module's docstring); LoginError if none."""
    logins = Logins()
    server = getattr(args, "server", None)
    if server and "://" in server:
        url = server.rstrip("/")
        return logins.matching(url) or Login(name=url, url=url)
    if server:
        return logins.get(server)
    if target and "://" in target:
        found = logins.matching(target)
        if found is not None:
            return found
        if logins.default is not None:
            default = logins.get()
            if _origin(default.url) == _origin(target):
                return default
        return Login(name=_origin(target), url=_origin(target))
    return logins.get()


def client_for(args: argparse.Namespace, target: str | None = None) -> Client:
    """The client of the login in use."""
    login = current_login(args, target)
    return Client(login.url, login.token, login.user)


def job_for(args: argparse.Namespace, reference: str) -> Job:
    """The job a command line names: its URL, TYPE/ID, or its id alone."""
    if not reference.strip():
        raise UsageError("a job is named by its URL, TYPE/ID or id, not by nothing")
    return client_for(args, reference).job(reference)


def parse_fields(
    items: list[str], stdin: TextIO | None = None
) -> tuple[list[tuple[str, str]], list[tuple[str, FileSpec]]]:
    """The parameters and the files to upload of ``name=value`` arguments:
    ``name=@FILE`` uploads FILE, ``name=@-`` standard input, ``name=@@x`` is the
    value ``@x``; anything else is a value (a URL too: the server fetches it)."""
    params: list[tuple[str, str]] = []
    files: list[tuple[str, FileSpec]] = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"expected name=value, not {item!r}")
        if value.startswith("@@"):
            params.append((name, value[1:]))
        elif value == "@-":
            files.append((name, (stdin or sys.stdin).buffer.read()))
        elif value.startswith("@"):
            path = Path(value[1:]).expanduser()
            if not path.is_file():
                raise UsageError(f"{name}=@{value[1:]}: no such file (@@ starts a value with @)")
            files.append((name, path))
        else:
            params.append((name, value))
    return params, files


def reference(job: Job) -> str:
    """How a job is named to people: ``TYPE/ID``."""
    return f"{job.type}/{job.id}"


def wait_and_show(
    job: Job, timeout: float | None, quiet: bool = False, out: TextIO | None = None
) -> int:
    """Wait for ``job`` to end, printing its phase (and progress) as it changes;
    returns the exit status of the phase it ended in."""
    stream = out or sys.stdout

    def show(seen: Job) -> None:
        info = seen.info
        line = f"{reference(seen)} {info.phase.value}"
        progress = shown_progress(info.progress)
        stream.write(f"{line} {progress}\n" if progress else f"{line}\n")
        stream.flush()
        if info.phase == Phase.PENDING:
            sys.stderr.write("opus: the job is PENDING: it ends only once it is run\n")

    phase = job.wait(timeout, on_change=None if quiet else show)
    error = job.info.error
    if phase == Phase.ERROR and not quiet:
        why = error.message if error else "no error summary"
        sys.stderr.write(f"opus: job {reference(job)} ended in ERROR: {why}\n")
    return exits.for_phase(phase)

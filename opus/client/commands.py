"""The `opus` client commands: job types, jobs and their results, from the terminal.

``run(args)`` carries out a verb parsed by cli.py (cliparse.py has their arguments) and
returns its exit status (exits.py has the table): every failure is one line on stderr,
``opus: <the server's reason>``, and the status of its kind. The verbs use the Python
client library as a script would, with the login in use (clicontext.py); they never
read the server's settings. login, logout, logins, whoami and completion are in
logincmds.py, batch (many datasets at once) in batchcmd.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Literal

from opus.client import batchcmd, exits, logincmds
from opus.client.clicontext import (
    UsageError,
    client_for,
    job_for,
    parse_fields,
    reference,
    wait_and_show,
)
from opus.client.errors import OpusError
from opus.client.jobs_api import Job
from opus.client.models import Definition, ParameterSpec
from opus.client.output import (
    ProgressBar,
    job_status,
    plain,
    print_json,
    results_table,
    shown_time,
    table,
)
from opus.core.phases import TERMINAL

# Seconds of one WAIT while following a running job's output: how fresh it is.
FOLLOW_INTERVAL = 2


def run(args: argparse.Namespace) -> int:
    """Carry out the client verb of ``args``; its exit status."""
    try:
        return HANDLERS[args.client_command](args)
    except OpusError as exc:
        status = f" (HTTP {exc.status})" if exc.status else ""
        print(f"opus: {exc}{status}", file=sys.stderr)
        return exits.for_error(exc)
    except UsageError as exc:
        print(f"opus: {exc}", file=sys.stderr)
        return exits.USAGE
    except BrokenPipeError:  # `opus jobs | head`: the reader has what it wanted
        _silence_stdout()
        return exits.OK
    except OSError as exc:  # a local file: an upload, the download directory
        where = f": {exc.filename}" if exc.filename else ""
        print(f"opus: {exc.strerror or exc}{where}", file=sys.stderr)
        return exits.USAGE
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return exits.INTERRUPTED


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# -- job types -----------------------------------------------------------------------


def _types(args: argparse.Namespace) -> int:
    types = client_for(args).types()
    if args.json:
        print_json(types)
    elif args.names:
        for job_type in types:
            print(job_type.name)
    else:
        table(
            ["TYPE", "VERSION", "DESCRIPTION"], [[t.name, t.version, t.annotation] for t in types]
        )
    return exits.OK


def _limits(p: ParameterSpec) -> str:
    parts = []
    if p.options:
        parts.append("one of " + "|".join(p.options))
    if p.min is not None and p.max is not None:
        parts.append(f"{p.min} to {p.max}")
    elif p.min is not None:
        parts.append(f"≥ {p.min}")
    elif p.max is not None:
        parts.append(f"≤ {p.max}")
    return ", ".join(parts)


def _describe(args: argparse.Namespace) -> int:
    definition = client_for(args).definition(args.type)
    if args.json:
        print_json(definition)
        return exits.OK
    _print_definition(definition)
    return exits.OK


def _print_definition(d: Definition) -> None:
    print(f"{d.name} {d.version}".strip() + (f": {d.annotation}" if d.annotation else ""))
    if d.contact_name or d.contact_email:
        print(f"contact: {d.contact_name} <{d.contact_email}>".replace(" <>", ""))
    if d.doculink:
        print(f"documentation: {d.doculink}")
    if d.execution_duration:
        print(f"stopped after: {d.execution_duration} s")
    if d.parameters:
        print()
        rows = []
        for p in d.parameters:
            # An empty default is a value (""); no default is nothing, or required.
            default = (p.default or '""') if p.default is not None else ""
            if p.default is None and p.required:
                default = "required"
            rows.append([p.name, p.datatype, default, _limits(p), p.unit, p.annotation])
        table(["PARAMETER", "TYPE", "DEFAULT", "LIMITS", "UNIT", "DESCRIPTION"], rows)
    if d.inputs:
        print()
        rows = [
            [i.name, i.content_type, "upload or URL" if i.upload else "URL", i.annotation]
            for i in d.inputs
        ]
        table(["INPUT", "TYPE", "GIVEN AS", "DESCRIPTION"], rows)
    if d.results:
        print()
        rows = [[r.name, r.file, r.content_type, r.annotation] for r in d.results]
        table(["RESULT", "FILE", "TYPE", "DESCRIPTION"], rows)


# -- creating jobs -------------------------------------------------------------------


def _then(job: Job, args: argparse.Namespace) -> int:
    """What --wait and --download ask for after a job was created."""
    if not (args.wait or args.download):
        return exits.OK
    code = wait_and_show(job, args.timeout)
    if code == exits.OK and args.download:
        _download_into(job, args.download, None)
    return code


def _check_waiting(args: argparse.Namespace) -> None:
    if not args.run and (args.wait or args.download):
        raise UsageError("--wait and --download need the job to run: leave out --no-run")


def _submit(args: argparse.Namespace) -> int:
    _check_waiting(args)
    params, files = parse_fields(args.fields)
    job = client_for(args).submit(
        args.type,
        params,
        files,
        run=args.run,
        run_id=args.run_id,
        execution_duration=args.execution_duration,
    )
    print(job.url, flush=True)
    return _then(job, args)


def _rerun(args: argparse.Namespace) -> int:
    _check_waiting(args)
    params, files = parse_fields(args.fields)
    job = job_for(args, args.job).rerun(dict(params), run=args.run, files=files)
    print(job.url, flush=True)
    return _then(job, args)


# -- jobs ----------------------------------------------------------------------------


def _jobs(args: argparse.Namespace) -> int:
    if args.last < 1:
        raise UsageError("--last takes a number of jobs, 1 or more (--all: every job)")
    found = client_for(args).jobs(
        args.type,
        args.phase,
        args.after,
        None if args.all else args.last,
        run_id=args.run_id,
    )
    lines = [job.listed for job in found if job.listed is not None]
    if args.json:
        print_json(lines)
        return exits.OK
    rows = [
        [f"{j.type}/{j.id}", j.phase.value, shown_time(j.creation_time), j.run_id, j.owner]
        for j in lines
    ]
    table(["JOB", "PHASE", "CREATED", "RUN ID", "OWNER"], rows)
    return exits.OK


def _status(args: argparse.Namespace) -> int:
    job = job_for(args, args.job)
    info = job.refresh()
    if args.json:
        print_json({"url": job.url, **plain(info), "type": job.type})
    else:
        job_status(reference(job), job.url, info)
    return exits.OK


def _wait(args: argparse.Namespace) -> int:
    return wait_and_show(job_for(args, args.job), args.timeout, args.quiet)


def _results(args: argparse.Namespace) -> int:
    results = job_for(args, args.job).results()
    if args.json:
        print_json(results)
    else:
        results_table(results)
    return exits.OK


def _download_into(job: Job, directory: str, only: list[str] | None) -> None:
    for path in job.download(directory, progress=ProgressBar(), results=only):
        print(path, flush=True)


def _download(args: argparse.Namespace) -> int:
    _download_into(job_for(args, args.job), args.dir, args.result)
    return exits.OK


def _logs(args: argparse.Namespace) -> int:
    job = job_for(args, args.job)
    stream: Literal["stdout", "stderr"] = "stderr" if args.stderr else "stdout"
    out = sys.stdout.buffer
    offset = 0
    ended = not args.follow or job.refresh().phase in TERMINAL
    while True:
        chunk = job.log(stream, offset)
        out.write(chunk)
        out.flush()
        offset += len(chunk)
        if ended:
            return exits.OK
        # The server waits (WAIT), answering at once when the job's phase changes.
        ended = job.wait_once(FOLLOW_INTERVAL).phase in TERMINAL


def _each(args: argparse.Namespace, act: Callable[[Job], str]) -> int:
    """Do ``act`` to each job named, going on after a failure; the worst status."""
    worst = exits.OK
    for name in args.jobs:
        try:
            job = job_for(args, name)
            print(f"{act(job)} {reference(job)}", flush=True)
        except OpusError as exc:
            status = f" (HTTP {exc.status})" if exc.status else ""
            print(f"opus: {name}: {exc}{status}", file=sys.stderr)
            worst = max(worst, exits.for_error(exc))
    return worst


def _abort(args: argparse.Namespace) -> int:
    def abort(job: Job) -> str:
        job.abort()
        return "aborted"

    return _each(args, abort)


def _delete(args: argparse.Namespace) -> int:
    def delete(job: Job) -> str:
        job.delete()
        return "deleted"

    return _each(args, delete)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "login": logincmds.login,
    "logout": logincmds.logout,
    "logins": logincmds.logins,
    "whoami": logincmds.whoami,
    "completion": logincmds.completion,
    "types": _types,
    "describe": _describe,
    "submit": _submit,
    "jobs": _jobs,
    "status": _status,
    "wait": _wait,
    "results": _results,
    "download": _download,
    "logs": _logs,
    "abort": _abort,
    "delete": _delete,
    "rerun": _rerun,
    "batch": batchcmd.batch,
}

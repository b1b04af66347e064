"""The arguments of the `opus` client commands (added to the `opus` parser of cli.py).

The client verbs share the `opus` command with the admin ones but none of their
needs: they run without the server's settings, database or packages (cli.py hands
them to commands.py before it reads any setting). ``--server NAME`` (a saved login's
name, or a server URL) is taken before the verb or after it. JOB is a job's URL,
``TYPE/ID``, or its id alone (looked for among the job types).
"""

from __future__ import annotations

import argparse

from opus.client.exits import SUMMARY

PHASES = ("PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED", "ARCHIVED")
JOB_HELP = "the job: its URL, TYPE/ID, or its id alone"
FIELDS_HELP = (
    "name=value: a parameter or an input given by URL; name=@FILE uploads FILE"
    " (@- reads standard input); name=@@text is the literal value @text"
)

CLIENT_COMMANDS = frozenset(
    {
        "login",
        "logout",
        "logins",
        "whoami",
        "types",
        "describe",
        "submit",
        "jobs",
        "status",
        "wait",
        "results",
        "download",
        "logs",
        "abort",
        "delete",
        "rerun",
        "batch",
        "completion",
    }
)


def _server(parser: argparse.ArgumentParser) -> None:
    # Also after the verb; SUPPRESS keeps a --server given before it.
    parser.add_argument(
        "--server",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="the saved login to use, or a server's URL (default: the default login)",
    )


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _waiting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", action="store_true", help="wait for the job to end; exit with its status"
    )
    parser.add_argument(
        "--download", metavar="DIR", help="when it has completed, download its results to DIR"
    )
    parser.add_argument("--timeout", type=float, metavar="S", help="wait at most S seconds")


class IntermixedParser(argparse.ArgumentParser):
    """A verb whose positionals may come among its options (`opus batch TYPE --over P
    --as input text=x`, `opus submit TYPE --wait x=1`): argparse's intermixed parsing,
    which calls parse_known_args itself, in two passes."""

    _inner = False

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._inner:
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def _batch(batch: argparse.ArgumentParser) -> None:
    batch.__class__ = IntermixedParser
    batch.add_argument("type", nargs="?", help="the job type (with --resume: the report's)")
    batch.add_argument(
        "fields", nargs="*", metavar="name=value", help=FIELDS_HELP + ": the same for every job"
    )
    batch.add_argument(
        "--over",
        action="append",
        metavar="PATTERN",
        help="the local files PATTERN matches, quoted ('data/*.fits'), or one file or URL;"
        " repeatable",
    )
    batch.add_argument(
        "--over-file",
        action="append",
        metavar="FILE",
        help="the datasets FILE lists, one a line (- for standard input): local paths,"
        " http(s) URLs, entity ids or result URLs of the server; # starts a comment",
    )
    batch.add_argument(
        "--as", dest="as_input", metavar="NAME", help="the input each dataset is given as"
    )
    batch.add_argument(
        "--parallel", type=int, default=4, metavar="N", help="at most N jobs at a time (4)"
    )
    batch.add_argument(
        "--report", metavar="FILE", help="write the report to FILE (.json, or .csv), as it goes"
    )
    batch.add_argument(
        "--resume",
        metavar="REPORT",
        help="go on with the batch of REPORT: skip what COMPLETED, follow the jobs still"
        " running, submit the others again",
    )
    batch.add_argument(
        "--download", metavar="DIR", help="download each job's results to DIR/DATASET/"
    )
    batch.add_argument(
        "--timeout", type=float, metavar="S", help="stop after S seconds (jobs go on running)"
    )
    batch.add_argument("--run-id", help="the run id (RUNID) of every job")
    batch.add_argument(
        "--execution-duration", type=int, metavar="S", help="stop each job after S seconds"
    )
    batch.add_argument("--json", action="store_true", help="print the report as JSON")


def add_client_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the client verbs to the subcommands of the `opus` parser."""

    def verb(name: str, text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=text, description=text, epilog=SUMMARY)
        _server(parser)
        parser.set_defaults(client_command=name)
        return parser

    login = verb("login", "save a server and a token to use (checked with the server first)")
    login.add_argument("url", help="the server's base URL (https://opus.example.org)")
    login.add_argument("--name", help="the login's name (default: the server's host)")
    login.add_argument("--user", help="the user name (without it, the token is a Bearer token)")
    login.add_argument(
        "--token-file",
        metavar="FILE",
        help="read the token from FILE (- for standard input); without it, it is asked for",
    )
    login.add_argument(
        "--insecure",
        action="store_true",
        help="accept an http:// URL to another host than this one (the token goes in clear)",
    )
    logout = verb("logout", "forget a saved login (the default one unless named)")
    logout.add_argument("--name", help="the login to forget")
    logins = verb("logins", "list the saved logins (* marks the default)")
    logins.add_argument("--default", metavar="NAME", help="make NAME the default login")
    _json(logins)
    whoami = verb("whoami", "the server, user and login in use, checked with the server")
    _json(whoami)

    types = verb("types", "the job types you may run")
    types.add_argument("--names", action="store_true", help="the names only, one a line")
    _json(types)
    describe = verb("describe", "a job type's parameters, input files and results")
    describe.add_argument("type")
    _json(describe)

    submit = verb("submit", "create a job (and start it)")
    submit.__class__ = IntermixedParser
    submit.add_argument("type", help="the job type")
    submit.add_argument("fields", nargs="*", metavar="name=value", help=FIELDS_HELP)
    submit.add_argument(
        "--run",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start the job at once (default), or leave it PENDING",
    )
    submit.add_argument("--run-id", help="the job's run id (RUNID)")
    submit.add_argument(
        "--execution-duration", type=int, metavar="S", help="stop the job after S seconds"
    )
    _waiting(submit)

    jobs = verb("jobs", "your jobs, newest first")
    jobs.add_argument("type", nargs="?", help="only jobs of this type")
    jobs.add_argument(
        "--phase",
        action="append",
        type=str.upper,
        metavar="PHASE",
        help="only jobs in PHASE (repeatable)",
    )
    jobs.add_argument("--last", type=int, default=50, metavar="N", help="at most N jobs (50)")
    jobs.add_argument("--all", action="store_true", help="every job, however many")
    jobs.add_argument("--after", metavar="TIME", help="only jobs created after TIME (ISO 8601)")
    jobs.add_argument("--run-id", help="only jobs whose run id contains this text")
    _json(jobs)

    status = verb("status", "a job's phase, times, parameters and results")
    status.add_argument("job", help=JOB_HELP)
    _json(status)
    wait = verb("wait", "wait for a job to end, showing its phase; exit with its status")
    wait.add_argument("job", help=JOB_HELP)
    wait.add_argument("--timeout", type=float, metavar="S", help="wait at most S seconds")
    wait.add_argument("--quiet", action="store_true", help="print nothing")
    results = verb("results", "a job's results")
    results.add_argument("job", help=JOB_HELP)
    _json(results)
    download = verb("download", "download a job's results (into DIR, default .)")
    download.add_argument("job", help=JOB_HELP)
    download.add_argument("dir", nargs="?", default=".")
    download.add_argument(
        "--result", action="append", metavar="ID", help="only this result (repeatable)"
    )
    logs = verb("logs", "what a job's script printed (its standard output)")
    logs.add_argument("job", help=JOB_HELP)
    logs.add_argument("--stderr", action="store_true", help="its standard error instead")
    logs.add_argument("--follow", "-f", action="store_true", help="go on until the job ends")
    for name, text in [("abort", "abort jobs"), ("delete", "delete jobs and their files")]:
        verb(name, text).add_argument("jobs", nargs="+", metavar="job", help=JOB_HELP)
    rerun = verb("rerun", "a new job with another's type and parameters (inputs reused)")
    rerun.__class__ = IntermixedParser
    rerun.add_argument("job", help=JOB_HELP)
    rerun.add_argument("fields", nargs="*", metavar="name=value", help="values to change")
    rerun.add_argument(
        "--run", action=argparse.BooleanOptionalAction, default=True, help="start it at once"
    )
    _waiting(rerun)

    _batch(verb("batch", "one job per dataset: many files, URLs or results at once"))

    completion = verb("completion", "print a shell completion script")
    completion.add_argument("shell", choices=("bash", "zsh"))

"""`opus batch`: one job per dataset, from the terminal (the library's batch.py does it).

    opus batch TYPE --over 'data/*.fits' --as input [name=value…] [--parallel N]
               [--report report.json|.csv] [--resume report.json] [--download DIR]

The datasets are the files a pattern of ``--over`` matches (expanded here: quote it), a
URL given to ``--over``, and the lines of ``--over-file`` lists. While it runs, a
summary on stderr: redrawn in place on a terminal (the count of each phase, the last
datasets ended, the last notice), one line per dataset ended otherwise. At the end a
table of the datasets on stdout (the report as JSON with ``--json``), and the exit
status of the whole: 0 every job COMPLETED, 1 a dataset failed (ERROR, ABORTED, refused
or unreadable), 5 ``--timeout``, 6 the server refused every job to come (a limit),
7 unreachable, 130 interrupted; the report says which dataset is where, and
``--resume`` goes on from it.
"""

from __future__ import annotations

import argparse
import glob
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TextIO

from opus.client import exits
from opus.client.api import Client
from opus.client.batch import Batch, BatchError, BatchProgress, BatchReport, plan
from opus.client.batchreport import REFUSED, UNREADABLE, Entry, ReportError, read_list, read_report
from opus.client.clicontext import UsageError, client_for, parse_fields
from opus.client.output import print_json, table

# Datasets ended that the terminal's summary shows, and how often it is redrawn.
SHOWN_ENDED = 4
REDRAW = 0.1
GLOB_CHARACTERS = frozenset("*?[")
# The order of the counts on a terminal: from waiting to ended, so that they stay put.
ORDER = (
    "NOT_SUBMITTED",
    "PENDING",
    "QUEUED",
    "EXECUTING",
    "HELD",
    "SUSPENDED",
    "UNKNOWN",
    "COMPLETED",
    "ERROR",
    "ABORTED",
    "ARCHIVED",
    "REFUSED",
    "UNREADABLE",
)


def batch(args: argparse.Namespace) -> int:
    """`opus batch`: its exit status."""
    fields = list(args.fields)
    job_type = args.type
    if job_type and "=" in job_type:  # `opus batch --resume r.json name=value`
        fields.insert(0, job_type)
        job_type = None
    if any(f.partition("=")[2] == "@-" for f in fields):
        raise UsageError("name=@- is not for a batch: every job would need standard input")
    datasets = _datasets(args)
    previous = _previous(args.resume) if args.resume else None
    if isinstance(previous, BatchReport):
        _check_same(previous, job_type, args.as_input, fields)
        client = client_for(args, previous.server or None)
        report = _planned(client, args, previous, datasets)
    else:
        if not job_type or not args.as_input:
            raise UsageError("a batch needs a job type and --as NAME (the input of each dataset)")
        if previous is None and not datasets:
            raise UsageError("no datasets: name them with --over PATTERN or --over-file FILE")
        client = client_for(args)
        params, files = parse_fields(fields)
        uploads = [(name, str(path)) for name, path in files]
        report = _planned(client, args, None, datasets, job_type, params, uploads)
        if previous is not None:  # a CSV report: its lines, then the datasets it lacks
            known = {e.dataset for e in previous}
            report.entries = previous + [e for e in report.entries if e.dataset not in known]
    summary = Summary(report, args.parallel)
    report_path = args.report or args.resume
    interrupted = False
    try:
        runner = Batch(
            client,
            report,
            parallel=args.parallel,
            report_path=report_path,
            timeout=args.timeout,
            progress=summary,
        )
        with _stopped_by_signals(runner):
            runner.run()
    except BatchError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        interrupted = True
    summary.close(report_path)
    if args.json:
        print_json(report.as_json())
    else:
        rows = [
            [e.dataset, e.phase, f"{report.job_type}/{e.job_id}" if e.job_id else "", e.error]
            for e in report.entries
        ]
        table(["DATASET", "PHASE", "JOB", "ERROR"], rows)
    return exits.INTERRUPTED if interrupted else exit_status(report)


def _planned(
    client: Client,
    args: argparse.Namespace,
    previous: BatchReport | None,
    datasets: list[str],
    job_type: str = "",
    params: list[tuple[str, str]] | None = None,
    uploads: list[tuple[str, str]] | None = None,
) -> BatchReport:
    """The batch's report: new, or ``previous``'s settings and lines (and the datasets
    it lacks)."""
    try:
        if previous is not None:
            return plan(
                client,
                previous.job_type,
                datasets,
                previous.as_input,
                previous.params,
                previous.files,
                run_id=previous.run_id,
                execution_duration=previous.execution_duration,
                download=args.download or previous.download,
                previous=previous,
            )
        return plan(
            client,
            job_type,
            datasets,
            args.as_input,
            params,
            uploads,
            run_id=args.run_id,
            execution_duration=args.execution_duration,
            download=args.download,
        )
    except BatchError as exc:
        raise UsageError(str(exc)) from None


def exit_status(report: BatchReport) -> int:
    """The status of a batch (exits.py's table)."""
    if report.stopped == "interrupted":
        return exits.INTERRUPTED
    if report.error is not None:
        return exits.for_error(report.error)
    if report.stopped == "timeout":
        return exits.TIMEOUT
    if report.failures():
        return exits.JOB_ERROR
    return exits.OK if report.completed else exits.JOB_NOT_COMPLETED


def _datasets(args: argparse.Namespace) -> list[str]:
    found: list[str] = []
    for pattern in args.over or []:
        if "://" in pattern or not GLOB_CHARACTERS & set(pattern):
            found.append(pattern)
            continue
        matched = sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True))
        files = [m for m in matched if not Path(m).is_dir()]
        if not files:
            raise UsageError(f"--over {pattern}: no file matches")
        found += files
    for name in args.over_file or []:
        try:
            if name == "-":
                found += read_list(sys.stdin)
            else:
                with open(name, encoding="utf-8") as listing:
                    found += read_list(listing)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise UsageError(f"--over-file {name}: {reason}") from None
    return found


def _previous(path: str) -> BatchReport | list[Entry]:
    try:
        return read_report(path)
    except ReportError as exc:
        raise UsageError(str(exc)) from None


def _check_same(
    previous: BatchReport, job_type: str | None, as_input: str | None, fields: list[str]
) -> None:
    """A resumed batch is the report's: a command line naming another type, input or
    parameters is refused (the datasets done ran with the report's)."""
    if job_type and job_type != previous.job_type:
        raise UsageError(f"the report is of a batch of {previous.job_type}, not {job_type}")
    if as_input and as_input != previous.as_input:
        raise UsageError(f"the report's datasets are given as {previous.as_input}, not {as_input}")
    if fields:
        raise UsageError("--resume goes on with the report's parameters: leave out name=value")


@contextmanager
def _stopped_by_signals(runner: Batch) -> Iterator[None]:
    """Ctrl-C (SIGINT) or `kill` (SIGTERM) stops the batch between two of its events,
    its report written; a second one interrupts at once."""

    def stop(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        runner.interrupt()

    try:
        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Summary:
    """A batch's progress on ``stream`` (stderr): redrawn in place when it is a
    terminal, a line per dataset ended (and per notice) otherwise."""

    def __init__(self, report: BatchReport, parallel: int, stream: TextIO | None = None) -> None:
        self.report = report
        self.parallel = parallel
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.started = time.monotonic()
        self.ended: deque[str] = deque(maxlen=SHOWN_ENDED)
        self.told: set[int] = set()
        self.note: str | None = None
        self.drawn = 0
        self.last_draw = 0.0

    def __call__(self, event: BatchProgress) -> None:
        entry = event.entry
        if event.note is not None:
            self.note = event.note
            if not self.live:
                self._write(f"opus: {event.note}")
        elif entry is not None and id(entry) not in self.told and _has_ended(entry):
            self.told.add(id(entry))
            line = f"{entry.phase} {entry.dataset}" + (f": {entry.error}" if entry.error else "")
            self.ended.append(line)
            if not self.live:
                done = len(self.told)
                self._write(f"[{done}/{len(self.report.entries)}] {line}")
        if self.live and time.monotonic() - self.last_draw >= REDRAW:
            self._draw()

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def _lines(self) -> list[str]:
        seconds = time.monotonic() - self.started
        found = self.report.counts()
        ordered = sorted(found, key=lambda p: ORDER.index(p) if p in ORDER else len(ORDER))
        counts = "  ".join(f"{phase} {found[phase]}" for phase in ordered)
        head = (
            f"opus batch {self.report.job_type}: {len(self.report.entries)} datasets,"
            f" {self.parallel} at a time, {seconds:.0f} s"
        )
        lines = [head, f"  {counts}", *(f"  {line}" for line in self.ended)]
        if self.note:
            lines.append(f"  ({self.note})")
        width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
        return [line[:width] for line in lines]

    def _draw(self) -> None:
        lines = self._lines()
        # Back to the block's first line, cleared to the end of the screen, redrawn.
        up = f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""
        self.stream.write(up + "".join(f"{line}\n" for line in lines))
        self.stream.flush()
        self.drawn = len(lines)
        self.last_draw = time.monotonic()

    def close(self, report_path: str | None) -> None:
        """The last drawing, and a line of the counts (and where the report is)."""
        if self.live:
            self._draw()
        counts = ", ".join(f"{n} {phase}" for phase, n in self.report.counts().items())
        where = f"; report: {report_path}" if report_path else ""
        why = f" ({self.report.stop_reason})" if self.report.stop_reason else ""
        stopped = f"; stopped: {self.report.stopped}{why}" if self.report.stopped else ""
        self._write(f"opus: {len(self.report.entries)} datasets: {counts}{stopped}{where}")


def _has_ended(entry: Entry) -> bool:
    """Whether a dataset is done with (for now): its job ended and was read, or it
    could not be submitted."""
    return bool(entry.ended) or entry.phase in (REFUSED, UNREADABLE)

"""What the `opus` client commands print: tables for people, JSON for machines.

A table is aligned columns under a header, with ``-`` for an empty cell; ``--json``
prints the same records as JSON (times in UTC, ISO 8601 with a ``Z``, phases as their
names), one document per command, so ``opus jobs --json | jq`` works. A download's
progress bar goes to stderr, only when stderr is a terminal and the file is large,
and is redrawn at most ten times a second.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, TextIO

from opus.client.models import JobInfo, Progress, Result, Source
from opus.core.times import format_time

# Files smaller than this download without a bar: it would only flash.
BAR_THRESHOLD = 1024 * 1024
BAR_WIDTH = 30


def plain(value: Any) -> Any:
    """A record as JSON values: dataclasses as objects, times as UTC strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def print_json(value: Any, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    json.dump(plain(value), stream, indent=2, ensure_ascii=False)
    stream.write("\n")


def shown_time(value: datetime | None) -> str:
    """A time for people: ``2026-12-02 16:31:36Z`` (UTC)."""
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


def shown_size(size: int | None) -> str:
    if size is None:
        return "-"
    amount = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{size} B"  # pragma: no cover - the loop returns


def shown_progress(progress: Progress | None) -> str:
    if progress is None:
        return ""
    parts = []
    if progress.percent is not None:
        parts.append(f"{progress.percent:g}%")
    if progress.message:
        parts.append(progress.message)
    return " ".join(parts)


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], out: TextIO | None = None
) -> None:
    """Print ``rows`` in columns under ``headers`` (the last column is not padded)."""
    stream = out or sys.stdout
    cells = [[("-" if c is None or c == "" else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    for row in [list(headers), *cells]:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        stream.write("  ".join([*padded, row[-1]]).rstrip() + "\n")


def fields(pairs: Iterable[tuple[str, object]], out: TextIO | None = None) -> None:
    """Print ``name value`` lines, the values aligned."""
    stream = out or sys.stdout
    listed = [(name, "-" if value is None or value == "" else str(value)) for name, value in pairs]
    width = max((len(name) for name, _ in listed), default=0)
    for name, value in listed:
        stream.write(f"{name.ljust(width)}  {value}\n")


def shown_source(source: Source | None) -> str:
    """``URL @ ref (commit)`` of a job's git source; empty for a job without one."""
    if source is None:
        return ""
    shown = f"{source.git} @ {source.ref}" if source.ref else source.git
    return f"{shown} ({source.commit})" if source.commit else shown


def job_status(reference: str, url: str, info: JobInfo, out: TextIO | None = None) -> None:
    """A job's document for people."""
    stream = out or sys.stdout
    duration = None
    if info.start_time and info.end_time:
        duration = f"{(info.end_time - info.start_time).total_seconds():.1f} s"
    fields(
        [
            ("job", reference),
            ("url", url),
            ("phase", info.phase.value),
            ("progress", shown_progress(info.progress)),
            ("source", shown_source(info.source)),
            ("error", info.error.message if info.error else None),
            ("run id", info.run_id),
            ("owner", info.owner),
            ("created", shown_time(info.creation_time)),
            ("started", shown_time(info.start_time)),
            ("ended", shown_time(info.end_time)),
            ("ran", duration),
            ("destruction", shown_time(info.destruction)),
        ],
        stream,
    )
    if info.parameters:
        stream.write("\nparameters\n")
        for p in info.parameters:
            by = "  (by reference)" if p.by_reference else ""
            stream.write(f"  {p.id} = {p.value}{by}\n")
    if info.results:
        stream.write("\nresults\n")
        results_table(info.results, stream, indent="  ")


def results_table(results: Sequence[Result], out: TextIO | None = None, indent: str = "") -> None:
    stream = out or sys.stdout
    rows = [[indent + r.id, shown_size(r.size), r.mime_type, r.href] for r in results]
    if indent:
        table([indent + "ID", "SIZE", "TYPE", "URL"], rows, stream)
    else:
        table(["ID", "SIZE", "TYPE", "URL"], rows, stream)


class ProgressBar:
    """A download's bar on stderr, for files of BAR_THRESHOLD bytes or more (or of
    unknown size), when stderr is a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._drawn = 0.0
        self._current: Path | None = None

    def __call__(self, result: Result, target: Path, done: int, total: int | None) -> None:
        if not self.enabled or (total is not None and total < BAR_THRESHOLD):
            return
        now = time.monotonic()
        finished = total is not None and done >= total
        if target == self._current and not finished and now - self._drawn < 0.1:
            return
        self._current, self._drawn = target, now
        if total:
            filled = int(BAR_WIDTH * done / total)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            line = f"{target.name} [{bar}] {100 * done // total:3d}% {shown_size(done)}"
        else:
            line = f"{target.name} {shown_size(done)}"
        self.stream.write("\r" + line[:100] + ("\n" if finished else ""))
        self.stream.flush()

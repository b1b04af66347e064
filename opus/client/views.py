"""What the templates write about jobs: times, durations, sizes, phases, URLs.

Pure functions of the core's records, given to every template (``HELPERS``); they
return text, which the templates escape like any other value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from opus.core.phases import ACTIVE, TERMINAL, Phase
from opus.core.records import JobSummary
from opus.core.times import format_time, utcnow

# Colours of the phase badges; the phase is always written too (not colour alone).
PHASE_STYLES = {
    Phase.PENDING: "text-bg-secondary",
    Phase.QUEUED: "text-bg-info",
    Phase.EXECUTING: "text-bg-primary",
    Phase.COMPLETED: "text-bg-success",
    Phase.ERROR: "text-bg-danger",
    Phase.ABORTED: "text-bg-warning",
    Phase.ARCHIVED: "text-bg-light",
}
# The phases a job list can be filtered on, in the order of a job's life.
LIST_PHASES = (
    Phase.PENDING,
    Phase.QUEUED,
    Phase.EXECUTING,
    Phase.COMPLETED,
    Phase.ERROR,
    Phase.ABORTED,
    Phase.HELD,
    Phase.SUSPENDED,
    Phase.UNKNOWN,
    Phase.ARCHIVED,
)


def when(value: datetime | None) -> str:
    """A time as people read it, to the second, UTC ("2026-11-22 10:15:03 UTC")."""
    if value is None:
        return ""
    return format_time(value)[:19].replace("T", " ") + " UTC"


def iso(value: datetime | None) -> str:
    """A time as a ``<time datetime>`` attribute holds it."""
    return format_time(value)


def duration(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    """How long a job ran (so far, while it runs): "4.2 s", "3 min 05 s", "2 h 01 min"."""
    if start is None:
        return ""
    seconds = ((end or now or utcnow()) - start).total_seconds()
    return seconds_text(max(0.0, seconds))


def seconds_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def size(count: int) -> str:
    """A size in bytes as people read it ("532 B", "12.4 kB", "3.1 MB")."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"


def phase_style(phase: Phase | str) -> str:
    """The Bootstrap classes of a phase badge."""
    return PHASE_STYLES.get(Phase(phase), "text-bg-dark")


def q(value: str) -> str:
    """A path segment, quoted (a result named "a b?.txt")."""
    return quote(value, safe="")


def query(**values: Any) -> str:
    """A query string ("?a=1&b=2&b=3") of the values given (lists repeat, None is left
    out); empty when there are none."""
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        if value is None or value == "":
            continue
        items = value if isinstance(value, list | tuple) else [value]
        pairs += [(name, str(item)) for item in items]
    return "?" + urlencode(pairs) if pairs else ""


def job_url(jobname: str, job_id: str) -> str:
    return f"/jobs/{q(jobname)}/{q(job_id)}"


def row_duration(job: JobSummary) -> str:
    return duration(job.start_time, job.end_time)


def is_active(phase: Phase) -> bool:
    return phase in ACTIVE


def can_abort(phase: Phase) -> bool:
    return phase not in TERMINAL


HELPERS: dict[str, Any] = {
    "when": when,
    "iso": iso,
    "duration": duration,
    "row_duration": row_duration,
    "size": size,
    "phase_style": phase_style,
    "q": q,
    "query": query,
    "job_url": job_url,
    "is_active": is_active,
    "can_abort": can_abort,
    "Phase": Phase,
    "LIST_PHASES": LIST_PHASES,
}

"""Reading the query of a JSON job list and of the change feed.

One reading for both JSON lists (``GET /jobs`` and ``GET /rest/{jobname}`` asking for
JSON): parameter names are case-insensitive, as UWS's are; ``TYPE`` and ``PHASE`` may
be repeated, the others given once; every refusal names its parameter. ``OWNER``
(one owner's jobs) is read here too; the service refuses it to a caller who is not an
admin asking for another owner's jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from opus.core.errors import BadRequest
from opus.core.phases import Phase, parse_phase
from opus.core.times import parse_time
from opus.server.routes.common import control_value
from opus.server.service.listing import PAGE_SIZE

Pairs = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class PageQuery:
    """What a JSON list asks for (the arguments of JobService.list_user_jobs)."""

    types: tuple[str, ...]
    phases: tuple[Phase, ...]
    run_id: str | None
    after: datetime | None
    cursor: str | None
    limit: int
    owner: str | None = None


def once(pairs: Pairs, name: str, field: str | None = None) -> str | None:
    """The value of a parameter given at most once (BadRequest, naming ``field`` or
    ``name``, if more)."""
    values = control_value(pairs, name)
    if len(values) > 1:
        raise BadRequest(f"{field or name} may be given once", field or name)
    return values[0] if values else None


def count(pairs: Pairs, name: str, default: int) -> int:
    """A positive integer parameter (``default`` when absent)."""
    raw = once(pairs, name)
    if raw is None:
        return default
    # isdecimal, not isdigit ('²' is a digit int() refuses).
    if not raw.strip().isdecimal() or len(raw.strip()) > 18 or int(raw) < 1:
        raise BadRequest(f"{name} must be a positive integer, not {raw!r}", name)
    return int(raw)


def page_query(pairs: Pairs, types: Sequence[str] = ()) -> PageQuery:
    """The list query of ``pairs`` (TYPE, PHASE, RUNID, AFTER, LAST, CURSOR, OWNER);
    ``types`` given by the path replace TYPE."""
    try:
        phases = tuple(parse_phase(v) for v in control_value(pairs, "PHASE"))
    except ValueError as exc:
        raise BadRequest(f"PHASE: {exc}", "PHASE") from None
    after_text = once(pairs, "AFTER")
    try:
        after = parse_time(after_text) if after_text is not None else None
    except ValueError as exc:
        raise BadRequest(f"AFTER: {exc}", "AFTER") from None
    return PageQuery(
        types=tuple(types) or tuple(control_value(pairs, "TYPE")),
        phases=phases,
        run_id=once(pairs, "RUNID") or None,
        after=after,
        cursor=once(pairs, "CURSOR") or None,
        limit=count(pairs, "LAST", PAGE_SIZE),
        owner=once(pairs, "OWNER") or None,
    )


def wait_seconds(pairs: Pairs, wait_max: int) -> int:
    """WAIT in seconds, as a job's WAIT reads it: -1 is ``wait_max``, more is capped by
    it, absent is 0 (answer at once)."""
    raw = once(pairs, "WAIT")
    if raw is None:
        return 0
    try:
        wait = int(raw.strip())
    except ValueError:
        raise BadRequest(f"WAIT must be an integer, not {raw!r}", "WAIT") from None
    if wait < -1:
        raise BadRequest("WAIT must be -1 or more", "WAIT")
    return wait_max if wait == -1 else min(wait, wait_max)

"""UWS execution phases and the one table of allowed transitions.

Every phase change in OPUS is checked against ``TRANSITIONS``: a signal or request
that would break it (COMPLETED → EXECUTING, say) is refused.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """The UWS 1.1 execution phases."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    ABORTED = "ABORTED"
    UNKNOWN = "UNKNOWN"
    HELD = "HELD"
    SUSPENDED = "SUSPENDED"
    ARCHIVED = "ARCHIVED"


# Phases in which the job may still change by itself (WAIT blocks on these).
ACTIVE = frozenset({Phase.PENDING, Phase.QUEUED, Phase.EXECUTING})
# Phases in which the manager holds the job: the reconciler asks about these.
RUNNING = frozenset({Phase.QUEUED, Phase.EXECUTING, Phase.HELD, Phase.SUSPENDED, Phase.UNKNOWN})
TERMINAL = frozenset({Phase.COMPLETED, Phase.ERROR, Phase.ABORTED, Phase.ARCHIVED})

TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset({Phase.QUEUED, Phase.ABORTED, Phase.ERROR, Phase.ARCHIVED}),
    Phase.QUEUED: frozenset(
        {
            Phase.EXECUTING,
            Phase.COMPLETED,
            Phase.ERROR,
            Phase.ABORTED,
            Phase.HELD,
            Phase.SUSPENDED,
            Phase.UNKNOWN,
        }
    ),
    Phase.EXECUTING: frozenset(
        {Phase.COMPLETED, Phase.ERROR, Phase.ABORTED, Phase.SUSPENDED, Phase.UNKNOWN}
    ),
    Phase.HELD: frozenset({Phase.QUEUED, Phase.EXECUTING, Phase.ERROR, Phase.ABORTED}),
    Phase.SUSPENDED: frozenset(
        {Phase.EXECUTING, Phase.QUEUED, Phase.COMPLETED, Phase.ERROR, Phase.ABORTED}
    ),
    Phase.UNKNOWN: frozenset(
        {Phase.QUEUED, Phase.EXECUTING, Phase.COMPLETED, Phase.ERROR, Phase.ABORTED}
    ),
    Phase.COMPLETED: frozenset({Phase.ARCHIVED}),
    Phase.ERROR: frozenset({Phase.ARCHIVED}),
    Phase.ABORTED: frozenset({Phase.ARCHIVED}),
    Phase.ARCHIVED: frozenset(),
}


def can_change(current: Phase, new: Phase) -> bool:
    """True when the phase table allows ``current`` → ``new``."""
    return new in TRANSITIONS[current]


def allowed_predecessors(phase: Phase) -> frozenset[Phase]:
    """Phases from which the table allows a change to ``phase`` (for compare-and-set)."""
    return frozenset(p for p, targets in TRANSITIONS.items() if phase in targets)


def parse_phase(text: str) -> Phase:
    """The Phase named by ``text`` (case-insensitive); ValueError if there is none."""
    try:
        return Phase(text.strip().upper())
    except ValueError:
        raise ValueError(f"unknown phase {text!r}") from None

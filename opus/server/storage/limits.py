"""Per-owner limits in SQL: what an owner keeps, stores and runs, checked by the write
that would break them.

A limit checked by one statement and enforced by the next is no limit under
concurrent requests (90 RUNs at once once left 79 active jobs against a limit of 50).
Here the check is a condition of the write itself (``INSERT … SELECT … WHERE``,
``UPDATE … WHERE``) that counts the owner's jobs in the same statement:

- SQLite runs one write transaction at a time, and a write statement takes the write
  lock before it reads: the count and the write see the same jobs.
- PostgreSQL (READ COMMITTED) gives each statement a snapshot of its own start, so two
  transactions could count the same jobs and both write. There the transaction first
  takes an advisory lock of the owner (``pg_advisory_xact_lock``, released at commit):
  the limited writes of one owner take turns, and each count sees those before it.

The sums read the index ``(owner, phase, stored_bytes)`` alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opus.core.phases import RUNNING, Phase

# First key of pg_advisory_xact_lock(int, int) for the per-owner locks; the second is
# a hash of the owner. (The reconciler's lock is a one-bigint key: another key space.)
OWNER_LOCK_CLASS = 0x0B05
OWNER_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s, %s)"

_ACTIVE = ", ".join(f"'{phase.value}'" for phase in sorted(RUNNING))
_KEPT = f"phase <> '{Phase.ARCHIVED.value}'"
# What an owner keeps, stores and runs, in one read (every phase but ARCHIVED).
USAGE_SQL = (
    "SELECT count(*), coalesce(sum(stored_bytes), 0), "  # noqa: S608 - constants
    f"coalesce(sum(CASE WHEN phase IN ({_ACTIVE}) THEN 1 ELSE 0 END), 0) "
    f"FROM jobs WHERE owner = ? AND {_KEPT}"
)


@dataclass(frozen=True)
class Usage:
    """What one owner has: jobs kept (every phase but ARCHIVED), the bytes they store,
    and how many of them are active (queued, executing, held, suspended, unknown)."""

    jobs: int = 0
    stored_bytes: int = 0
    active: int = 0

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | None) -> Usage:
        if row is None:
            return cls()
        return cls(*(int(value or 0) for value in row))


@dataclass(frozen=True)
class Quota:
    """The conditions of one write on its owner's jobs, as they are where it checks
    them (after an insert, before an update; None: no condition): fewer than
    ``jobs_below`` kept, at most ``bytes_at_most`` stored, fewer than ``active_below``
    active."""

    owner: str
    jobs_below: int | None = None
    bytes_at_most: int | None = None
    active_below: int | None = None

    def lock_key(self) -> tuple[int, int]:
        """The owner's advisory-lock key (PostgreSQL)."""
        digest = hashlib.sha256(self.owner.encode("utf-8", "surrogatepass")).digest()
        return OWNER_LOCK_CLASS, int.from_bytes(digest[:4], "big", signed=True)

    def condition(self, marker: Callable[[str], str]) -> tuple[str, dict[str, Any]]:
        """The SQL condition (``1 = 1`` when there is none) and its parameters by name,
        in the order of their markers; ``marker(name)`` writes one parameter (``?``,
        ``%s``, ``:name``)."""
        parts: list[str] = []
        values: dict[str, Any] = {}

        def bind(name: str, value: Any) -> str:
            values[name] = value
            return marker(name)

        def owned(tests: list[str], key: str, phases: str) -> str:
            # One pass over the owner's jobs (in the index) for all of its tests.
            owner = bind(f"quota_owner_{key}", self.owner)
            checked = " AND ".join(tests)
            return f"(SELECT {checked} FROM jobs WHERE owner = {owner} AND {phases})"  # noqa: S608

        kept: list[str] = []
        if self.jobs_below is not None:
            kept.append(f"count(*) < {bind('quota_jobs', self.jobs_below)}")
        if self.bytes_at_most is not None:
            limit = bind("quota_bytes", self.bytes_at_most)
            kept.append(f"coalesce(sum(stored_bytes), 0) <= {limit}")
        if kept:
            parts.append(owned(kept, "k", _KEPT))
        if self.active_below is not None:
            active = f"count(*) < {bind('quota_active', self.active_below)}"
            parts.append(owned([active], "a", f"phase IN ({_ACTIVE})"))
        return " AND ".join(parts) or "1 = 1", values

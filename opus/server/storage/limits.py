"""Per-owner limits in SQL: what an owner keeps, stores and runs, checked by the write
that would break them.

A limit checked by one statement and enforced by the next is no limit under
concurrent requests (90 RUNs at once once left 79 active jobs against a limit of 50).
Here the check is a condition of the write itself (``UPDATE … WHERE``, or a check
after the ``INSERT`` in its transaction) on what the owner's jobs add up to. The sums
are the row of ``owner_usage``, which triggers on ``jobs`` keep in the transaction of
every write of a job (migration 0003): one row's read, however many jobs the owner has.

- SQLite runs one write transaction at a time, and a write statement takes the write
  lock before it reads: the count and the write see the same jobs.
- PostgreSQL (READ COMMITTED) gives each statement a snapshot of its own start, so two
  transactions could count the same jobs and both write. There the transaction first
  takes an advisory lock of the owner (``pg_advisory_xact_lock``, released at commit):
  the limited writes of one owner take turns, and each count sees those before it.

"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# First key of pg_advisory_xact_lock(int, int) for the per-owner locks; the second is
# a hash of the owner. (The reconciler's lock is a one-bigint key: another key space.)
OWNER_LOCK_CLASS = 0x0B05
OWNER_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s, %s)"

# What an owner keeps, stores and runs, in one read.
USAGE_SQL = "SELECT kept, stored, active FROM owner_usage WHERE owner = ?"


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

        def usage(column: str, key: str) -> str:
            # The owner's sum; an owner without a row has no jobs.
            owner = bind(f"quota_owner_{key}", self.owner)
            select = f"SELECT {column} FROM owner_usage WHERE owner = {owner}"  # noqa: S608
            return f"coalesce(({select}), 0)"

        if self.jobs_below is not None:
            parts.append(f"{usage('kept', 'k')} < {bind('quota_jobs', self.jobs_below)}")
        if self.bytes_at_most is not None:
            # Bound in the order of their markers: the owner, then the limit.
            stored = usage("stored", "s")
            parts.append(f"{stored} <= {bind('quota_bytes', self.bytes_at_most)}")
        if self.active_below is not None:
            parts.append(f"{usage('active', 'a')} < {bind('quota_active', self.active_below)}")
        return " AND ".join(parts) or "1 = 1", values

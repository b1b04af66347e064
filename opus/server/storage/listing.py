"""Job lists a page at a time, newest first: keyset paging over the list indexes.

A page is the jobs older than a position, the (creation_time, id) of the last job of
the page before, in the order of the indexes that list them: ``ix_jobs_owner_list``
(an owner's jobs), ``ix_jobs_owner_phase`` (an owner's jobs in one phase), and for
every owner's jobs (admins) ``ix_jobs_list`` and ``ix_jobs_list_phase`` (a job type's,
in one phase). A filter the index orders by is a *branch*, read as an index range from
the position down; several phases (or, for every owner, several job types) are several
branches, merged in order. So a page costs one index descent and ``limit`` rows per
branch however many jobs come before or after it: the tenth-thousandth page costs what
the first does, where OFFSET would read every row before it.

The other filters (the job types of an owner's list, the run id, ARCHIVED left out)
are tested on the rows as they come, and a request reads at most ``budget`` rows: when
they are spent before the page is full, the page ends there and its position says where
the next one starts. A search that matches few jobs answers in bounded time, with
fewer jobs than asked for and a next position, never by reading a whole table.

The way back (``newer_page``, a page's "Newer jobs" link) reads the same ranges upwards
from a position, oldest first, and hands the page back newest first.

An admin's list of one owner's jobs is an owner's list like any other (the owner
indexes); ``phase_counts`` counts the jobs in some phases (``ix_jobs_phase``), for the
server's status page.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.engine import Connection, Engine

from opus.core.phases import Phase
from opus.core.records import JobSummary
from opus.server.storage.engine import storable
from opus.server.storage.models import JobRow

# What a list line shows (JobSummary's fields, in its order).
SUMMARY_COLUMNS = (
    JobRow.id,
    JobRow.phase,
    JobRow.run_id,
    JobRow.owner,
    JobRow.creation_time,
    JobRow.jobname,
    JobRow.start_time,
    JobRow.end_time,
    JobRow.version,
)
# Rows a branch reads at a time past its first read (a page's worth): twice what the
# page still lacks, within these bounds.
CHUNK_ROWS_MIN = 16
CHUNK_ROWS_MAX = 500


def summary_from_row(row: Sequence[Any]) -> JobSummary:
    """A JobSummary from a row of SUMMARY_COLUMNS."""
    job_id, phase, run_id, owner, created, jobname, started, ended, version = row[:9]
    return JobSummary(
        job_id, Phase(phase), run_id, owner, created, jobname, started, ended, int(version)
    )


@dataclass(frozen=True)
class Position:
    """Where a page of a list ends: the (creation_time, id) of its last job."""

    creation_time: datetime
    job_id: str


@dataclass(frozen=True)
class ListFilter:
    """Which jobs a list holds.

    ``owner`` None lists every owner's jobs, else that owner's; ``jobnames`` are the job
    types listed (never empty); ``phases`` empty means every phase but ARCHIVED;
    ``run_id`` is a part of the run id, in any case; ``after``, a time the jobs were
    created strictly after.
    """

    owner: str | None
    jobnames: tuple[str, ...]
    phases: tuple[Phase, ...] = ()
    run_id: str | None = None
    after: datetime | None = None

    def branches(self) -> list[list[Any]]:
        """The conditions of each index range to read (see the module's docstring)."""
        phases: list[Phase | None] = list(self.phases) or [None]
        if self.owner is not None:
            return [
                [JobRow.owner == self.owner, *([] if p is None else [JobRow.phase == p.value])]
                for p in phases
            ]
        return [
            [JobRow.jobname == name, *([] if p is None else [JobRow.phase == p.value])]
            for name in self.jobnames
            for p in phases
        ]

    def keeps(self, row: Sequence[Any]) -> bool:
        """Whether a row of a branch belongs to the list (the filters no index orders)."""
        if not self.phases and row[1] == Phase.ARCHIVED.value:
            return False
        if self.owner is not None and row[5] not in self.jobnames:
            return False
        if self.run_id is not None:
            return self.run_id.casefold() in (row[2] or "").casefold()
        return True


def _order(row: Sequence[Any]) -> tuple[Any, Any]:
    """The key the lists are ordered by: (creation_time, id)."""
    return (row[4], row[0])


def _position(row: Sequence[Any]) -> Position:
    return Position(row[4], row[0])


class JobLists:
    """Pages of job lists (one connection per page, released before it is returned)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def page(
        self, where: ListFilter, before: Position | None, limit: int, budget: int
    ) -> tuple[list[JobSummary], Position | None]:
        """The first ``limit`` jobs of the list older than ``before`` (newest first),
        and the position after which the list goes on (None: it ends here).

        At most ``budget`` rows are read (at least ``limit + 1``): a page they do not
        fill ends where they did, with fewer jobs and a position.
        """
        kept, position = self._read(where, before, limit, budget, upwards=False)
        return [summary_from_row(r) for r in kept], position

    def newer_page(
        self, where: ListFilter, newer_than: Position, limit: int, budget: int
    ) -> tuple[list[JobSummary], Position | None]:
        """The ``limit`` jobs of the list just newer than ``newer_than``, newest first,
        and the position of the page's newest job when the list has newer ones still
        (None: the page is the list's newest). ``budget`` bounds the rows read as for
        ``page``: a page it cuts short ends at the newest row read."""
        kept, position = self._read(where, newer_than, limit, budget, upwards=True)
        return [summary_from_row(r) for r in reversed(kept)], position

    def _read(
        self,
        where: ListFilter,
        start: Position | None,
        limit: int,
        budget: int,
        upwards: bool,
    ) -> tuple[list[Sequence[Any]], Position | None]:
        """Up to ``limit`` rows of the list from ``start`` on, in reading order (newest
        first, or oldest first ``upwards``), and the position to go on from: the last
        row kept when there are more, the last row read when the budget ran out, else
        None. Every branch is merged in that order; at most ``budget`` rows are read."""
        budget = max(budget, limit + 1)
        kept: list[Sequence[Any]] = []
        if where.owner is not None and not storable(where.owner):
            return kept, None  # no job has such an owner (and PostgreSQL refuses NUL)

        def lacking() -> int:
            return limit + 1 - len(kept)

        read = 0
        last: Sequence[Any] | None = None
        with self.engine.connect() as conn:
            branches = [
                self._branch(conn, conditions, where.after, start, lacking, upwards)
                for conditions in where.branches()
            ]
            for row in heapq.merge(*branches, key=_order, reverse=not upwards):
                read += 1
                last = row
                if where.keeps(row):
                    kept.append(row)
                    if len(kept) > limit:
                        break
                if read >= budget:
                    break
        if len(kept) > limit:
            return kept[:limit], _position(kept[limit - 1])
        if read >= budget and last is not None:
            return kept, _position(last)
        return kept, None

    def phase_counts(self, phases: Sequence[Phase]) -> dict[Phase, int]:
        """How many jobs are in each of ``phases`` now (every owner's; a phase no job
        is in counts 0): one grouped count over the phase index."""
        counts = dict.fromkeys(phases, 0)
        if not phases:
            return counts
        statement = (
            select(JobRow.phase, func.count())
            .where(JobRow.phase.in_([phase.value for phase in phases]))
            .group_by(JobRow.phase)
        )
        with self.engine.connect() as conn:
            for phase, count in conn.execute(statement):
                counts[Phase(phase)] = int(count)
        return counts

    @staticmethod
    def _branch(
        conn: Connection,
        conditions: list[Any],
        after: datetime | None,
        start: Position | None,
        lacking: Callable[[], int],
        upwards: bool = False,
    ) -> Iterator[Sequence[Any]]:
        """One index range, newest first from ``start`` down (oldest first from it up,
        ``upwards``), read in chunks (each a keyset query: no cursor stays open between
        them): first what the page lacks, then twice what it still lacks."""
        rows_wanted = lacking()
        position = start
        key = tuple_(JobRow.creation_time, JobRow.id)
        while True:
            statement = select(*SUMMARY_COLUMNS).where(*conditions)
            if position is not None:
                mark = tuple_(position.creation_time, position.job_id)
                statement = statement.where(key > mark if upwards else key < mark)
            if after is not None:
                statement = statement.where(JobRow.creation_time > after)
            if upwards:
                statement = statement.order_by(JobRow.creation_time, JobRow.id)
            else:
                statement = statement.order_by(JobRow.creation_time.desc(), JobRow.id.desc())
            rows = conn.execute(statement.limit(rows_wanted)).all()
            yield from rows
            if len(rows) < rows_wanted:
                return
            position = _position(rows[-1])
            rows_wanted = min(CHUNK_ROWS_MAX, max(CHUNK_ROWS_MIN, 2 * lacking()))

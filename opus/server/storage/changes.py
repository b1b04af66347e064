"""The change feed: which jobs changed (or went) since a token, in one indexed read.

Every insert and update of a job sets its ``change_seq``, and every delete leaves a
tombstone with one, from triggers of the database itself (migration 0005), so that no
writer can change a job unseen. A token says how far a reader has read:

- SQLite (``s<N>``): writers take turns, and the number is a counter incremented in the
  change's own transaction, so when the counter reads N every change up to N has
  committed. The changes since a token are those numbered in (token, N], and the next
  token is ``s<N>``.
- PostgreSQL (``p<snapshot>``): transactions commit in any order, so no counter read
  tells which smaller numbers are still to come. A change is numbered by the id of its
  transaction, and the token is the reader's snapshot (``pg_current_snapshot()``: the
  transactions done, the ones running). The changes since a token are those whose
  transaction the token's snapshot did not see and the reader's does, read in one
  REPEATABLE READ transaction with the snapshot that becomes the next token: a change
  committed late is reported once it has committed, never skipped, and never twice.

Neither depends on a clock. Tombstones are forgotten after ``TOMBSTONE_DAYS``; a token
older than the last one forgotten (``change_marks.pruned``) is answered ``reset``, as is
one with more than ``limit`` changes since: the reader reloads its list instead.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, cast, delete, func, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import String

from opus.core.records import JobChanges
from opus.server.storage.listing import SUMMARY_COLUMNS, summary_from_row
from opus.server.storage.models import ChangeMarkRow, JobRow, JobTombstoneRow

TOMBSTONE_DAYS = 7
PRUNE_INTERVAL = timedelta(minutes=10)
_SQLITE_TOKEN = re.compile(r"s(\d{1,18})")
_POSTGRESQL_TOKEN = re.compile(r"p(\d{1,18}):(\d{1,18}):((?:\d{1,18})(?:,\d{1,18})*)?")


@dataclass(frozen=True)
class Snapshot:
    """A PostgreSQL snapshot as a token holds it: ids below ``xmin`` are done, ids from
    ``xmax`` on had not started, those of ``running`` were running."""

    xmin: int
    xmax: int
    running: tuple[int, ...]

    @classmethod
    def parse(cls, value: str) -> Snapshot:
        xmin, xmax, running = value.split(":")
        return cls(int(xmin), int(xmax), tuple(int(x) for x in running.split(",") if x))

    def __str__(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(str(x) for x in self.running)}"


def _invalid(token: str) -> ValueError:
    return ValueError(f"not a change token of this server: {token[:40]!r}")


class ChangeFeed:
    """Reads of the change feed, and the forgetting of old tombstones."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgresql = engine.dialect.name == "postgresql"
        self._pruned: datetime | None = None

    # -- tokens -------------------------------------------------------------------------

    def token(self) -> str:
        """The token of now: the changes from now on are reported from it."""
        with self.engine.connect() as conn:
            if self.postgresql:
                return f"p{conn.execute(select(self._snapshot_text())).scalar_one()}"
            return f"s{self._marks(conn)[0]}"

    def _parse_sqlite(self, token: str) -> int:
        match = _SQLITE_TOKEN.fullmatch(token)
        if match is None:
            raise _invalid(token)
        return int(match.group(1))

    def _parse_postgresql(self, token: str) -> Snapshot:
        match = _POSTGRESQL_TOKEN.fullmatch(token)
        if match is None:
            raise _invalid(token)
        snapshot = Snapshot.parse(token[1:])
        running = snapshot.running
        # What pg_snapshot's input accepts: xmin ≤ running (ascending) < xmax.
        ordered = all(a < b for a, b in itertools.pairwise(running))
        if not (
            0 < snapshot.xmin <= snapshot.xmax
            and ordered
            and all(snapshot.xmin <= x < snapshot.xmax for x in running)
        ):
            raise _invalid(token)
        return snapshot

    # -- reads --------------------------------------------------------------------------

    def since(self, token: str, owner: str | None, limit: int) -> JobChanges:
        """The jobs of ``owner`` (every owner's for None) changed since ``token``, as they
        are now, and the ids of those deleted; ``reset`` when more than ``limit``
        changed, or the token is older than what is kept. ValueError for a token that is
        not one of this database's kind."""
        if self.postgresql:
            return self._since_postgresql(self._parse_postgresql(token), owner, limit)
        return self._since_sqlite(self._parse_sqlite(token), owner, limit)

    def _since_sqlite(self, seen: int, owner: str | None, limit: int) -> JobChanges:
        with self.engine.connect() as conn:
            last, pruned = self._marks(conn)
            token = f"s{last}"
            if seen < pruned or seen > last:
                return JobChanges((), (), token, reset=True)
            if seen == last:
                return JobChanges((), (), token)
            window = (JobRow.change_seq > seen, JobRow.change_seq <= last)
            gone = (JobTombstoneRow.change_seq > seen, JobTombstoneRow.change_seq <= last)
            return self._read(conn, owner, window, gone, limit, token)

    def _since_postgresql(self, seen: Snapshot, owner: str | None, limit: int) -> JobChanges:
        def unseen(table: str) -> tuple[Any, ...]:
            condition = (
                f"{table}.change_seq >= :xmin AND NOT pg_visible_in_snapshot("
                f"{table}.change_seq::text::xid8, CAST(:snapshot AS pg_snapshot))"
            )
            return (text(condition).bindparams(xmin=seen.xmin, snapshot=str(seen)),)

        options = {"isolation_level": "REPEATABLE READ"}
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            now, pruned = conn.execute(select(self._snapshot_text(), self._mark("pruned"))).one()
            token = f"p{now}"
            if seen.xmin <= pruned or seen.xmin > Snapshot.parse(now).xmax:
                return JobChanges((), (), token, reset=True)
            return self._read(conn, owner, unseen("jobs"), unseen("job_tombstones"), limit, token)

    @staticmethod
    def _read(
        conn: Connection,
        owner: str | None,
        window: tuple[Any, ...],
        gone: tuple[Any, ...],
        limit: int,
        token: str,
    ) -> JobChanges:
        changed = select(*SUMMARY_COLUMNS).where(*window).order_by(JobRow.change_seq)
        deleted = select(JobTombstoneRow.id).where(*gone).order_by(JobTombstoneRow.change_seq)
        if owner is not None:
            changed = changed.where(JobRow.owner == owner)
            deleted = deleted.where(JobTombstoneRow.owner == owner)
        rows = conn.execute(changed.limit(limit + 1)).all()
        ids = list(conn.execute(deleted.limit(limit + 1)).scalars())
        if len(rows) + len(ids) > limit:
            return JobChanges((), (), token, reset=True)
        jobs = tuple(summary_from_row(row) for row in rows)
        # A job deleted after it was changed is only deleted.
        return JobChanges(jobs, tuple(ids), token)

    @staticmethod
    def _snapshot_text() -> Any:
        return cast(func.pg_current_snapshot(), String)

    @staticmethod
    def _mark(name: str) -> Any:
        return select(ChangeMarkRow.value).where(ChangeMarkRow.name == name).scalar_subquery()

    def _marks(self, conn: Connection) -> tuple[int, int]:
        """(last, pruned) of change_marks, read in one statement."""
        last, pruned = conn.execute(select(self._mark("last"), self._mark("pruned"))).one()
        return int(last), int(pruned)

    # -- forgetting ---------------------------------------------------------------------

    def prune_now_and_then(self, now: datetime) -> None:
        """``prune``, unless this process did less than PRUNE_INTERVAL ago."""
        if self._pruned is not None and now - self._pruned < PRUNE_INTERVAL:
            return
        self._pruned = now
        self.prune(now)

    def prune(self, now: datetime, keep: timedelta = timedelta(days=TOMBSTONE_DAYS)) -> int:
        """Forget the tombstones of jobs deleted more than ``keep`` before ``now`` (the
        reconciler's); how many went. The highest number forgotten is kept first, in
        the same transaction (the write that starts it, for SQLite's lock)."""
        cutoff = bindparam("cutoff", now - keep, type_=JobTombstoneRow.deleted_time.type)
        oldest = (
            select(func.coalesce(func.max(JobTombstoneRow.change_seq), 0))
            .where(JobTombstoneRow.deleted_time < cutoff)
            .scalar_subquery()
        )
        with self.engine.begin() as conn:
            conn.execute(
                update(ChangeMarkRow)
                .where(ChangeMarkRow.name == "pruned", ChangeMarkRow.value < oldest)
                .values(value=oldest)
            )
            gone = conn.execute(
                delete(JobTombstoneRow).where(JobTombstoneRow.deleted_time < cutoff)
            )
        return int(gone.rowcount)

"""JobStore: every SQL statement about jobs, their parameters and their results.

Write transactions start with their write (an INSERT or a conditional UPDATE), which
keeps SQLite from failing lock upgrades under concurrent requests. Phase changes are
compare-and-set (``UPDATE … WHERE phase IN (…)``) so that a signal and the reconciler
never both win. Every write of a job, its parameters or its results increments the
job's ``version`` in the same transaction: a job read with the same version is the
same job. Every write but a progress report (progress.py) is also announced, with the
job's owner, to the other processes of the server (Coordination): phase changes and
deletions wake their WAIT requests, and every change the readers of their owner's
change feed.

A job is read with its parameters and results in one statement (``get_details``), so
what a client sees is one consistent state, read in one round trip; a job this process
read before is reused after one read of its version, while the version is the same.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import BindParameter

from opus.core.phases import Phase
from opus.core.records import Job, JobDetails, JobSummary, Parameter, Result
from opus.server.storage.changes import ChangeFeed
from opus.server.storage.coordination import Coordination
from opus.server.storage.engine import HotInsert, HotQuery, driver_marker, storable
from opus.server.storage.limits import OWNER_LOCK_SQL, USAGE_SQL, Quota, Usage
from opus.server.storage.listing import SUMMARY_COLUMNS, JobLists, summary_from_row
from opus.server.storage.models import JobRow, ParameterRow, ResultRow
from opus.server.storage.progress import ProgressStore
from opus.server.storage.sources import SourceStore

# A Job's columns: change_seq is the change feed's, set by the database (changes.py).
_JOB_COLUMNS = [column for column in JobRow.__table__.columns if column.name != "change_seq"]
_JOB_KEYS = [column.name for column in _JOB_COLUMNS]
_NEXT_VERSION = {"version": JobRow.version + 1}


def _job_from_row(row: Any) -> Job:
    values = dict(zip(_JOB_KEYS, row, strict=False))
    values["phase"] = Phase(values["phase"])
    return Job(**values)


def _phases(phases: Collection[Phase]) -> list[str]:
    return [phase.value for phase in phases]


def _details_statement() -> Any:
    """One statement for a job, its parameters and its results (one snapshot).

    Each row is the job's columns, then a kind ('p' parameter, 'r' result) and the
    item's columns; a job without parameters still gives one 'p' row, with no item.
    """
    job_id: BindParameter[str] = bindparam("job_id")
    parameters = (
        select(
            *_JOB_COLUMNS,
            literal_column("'p'").label("kind"),
            ParameterRow.name.label("item"),
            ParameterRow.value.label("text"),
            ParameterRow.by_reference.label("flag"),
            null().label("content_type"),
            null().label("size"),
            null().label("sha256"),
        )
        .select_from(
            JobRow.__table__.outerjoin(ParameterRow.__table__, ParameterRow.job_id == JobRow.id)
        )
        .where(JobRow.id == job_id)
    )
    results = (
        select(
            *_JOB_COLUMNS,
            literal_column("'r'"),
            ResultRow.result_id,
            ResultRow.path,
            null(),
            ResultRow.content_type,
            ResultRow.size,
            ResultRow.sha256,
        )
        .select_from(JobRow.__table__.join(ResultRow.__table__, ResultRow.job_id == JobRow.id))
        .where(JobRow.id == job_id)
    )
    combined = union_all(parameters, results).subquery()
    return select(combined).order_by(combined.c.kind, combined.c.item)


def _details_from_rows(rows: list[Any]) -> JobDetails | None:
    if not rows:
        return None
    width = len(_JOB_KEYS)
    parameters: list[Parameter] = []
    results: list[Result] = []
    for row in rows:
        kind, item, text, flag, content_type, size, sha256 = row[width:]
        if item is None:
            continue
        if kind == "p":
            parameters.append(Parameter(item, text, bool(flag)))
        else:
            results.append(Result(item, text, content_type, int(size), sha256))
    return JobDetails(_job_from_row(rows[0]), tuple(parameters), tuple(results))


class RecentJobs:
    """The jobs this process read last, each at the version it was read at (bounded).

    A job is the same at the same version (every write increments it), so an entry is
    valid for exactly as long as the database still has its version: nothing here is
    ever stale, only unused. Jobs whose parameters hold much text are not kept.
    """

    SIZE = 4096
    MAX_TEXT = 64 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, JobDetails] = OrderedDict()

    def get(self, job_id: str, version: int) -> JobDetails | None:
        with self._lock:
            details = self._jobs.get(job_id)
            if details is None or details.job.version != version:
                return None
            self._jobs.move_to_end(job_id)
            return details

    def keep(self, details: JobDetails) -> None:
        if sum(len(p.value) for p in details.parameters) > self.MAX_TEXT:
            return
        with self._lock:
            self._jobs[details.job.id] = details
            self._jobs.move_to_end(details.job.id)
            while len(self._jobs) > self.SIZE:
                self._jobs.popitem(last=False)

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)


class JobStore:
    """All reads and writes of jobs, parameters and results."""

    def __init__(self, engine: Engine, coordination: Coordination | None = None) -> None:
        self.engine = engine
        self.coordination = coordination or Coordination(engine)
        # SQLite has one writer at a time: queueing writers on a lock in this process
        # is fair and prompt, where SQLite's busy handler sleeps in steps of up to
        # 100 ms (creation p99 went from ~400 ms to ~40 ms with 8 clients).
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )
        # Built once: the statements of every job GET.
        self._job_by_id = select(*_JOB_COLUMNS).where(JobRow.id == bindparam("job_id"))
        self._details = _details_statement()
        self._version = HotQuery(engine, "SELECT version FROM jobs WHERE id = ?")
        self._usage = HotQuery(engine, USAGE_SQL)
        self._marker = driver_marker(engine)
        self._locks_owners = engine.dialect.name == "postgresql"
        self._recent = RecentJobs()
        tables = JobRow.metadata.tables
        self._insert_job = HotInsert(engine, tables[JobRow.__tablename__])
        self._insert_parameters = HotInsert(engine, tables[ParameterRow.__tablename__])
        # Pages of job lists, the change feed, progress reports, git sources (listing.py,
        # changes.py, progress.py, sources.py).
        self.lists = JobLists(engine)
        self.changes = ChangeFeed(engine)
        self.progress = ProgressStore(self._writing)
        self.sources = SourceStore(self._writing, self.coordination)

    @contextlib.contextmanager
    def _writing(self, quota: Quota | None = None) -> Iterator[Connection]:
        """A write transaction (serialised within the process on SQLite); with a quota,
        holding its owner's lock on PostgreSQL (storage/limits.py)."""
        with self._write_lock, self.engine.begin() as conn:
            if quota is not None and self._locks_owners:
                conn.execute(select(func.pg_advisory_xact_lock(*quota.lock_key())))
            yield conn

    @staticmethod
    def _quota_clause(quota: Quota) -> Any:
        condition, values = quota.condition(lambda name: f":{name}")
        return text(condition).bindparams(**values)

    # -- reads ------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job | None:
        """The job (without parameters and results), or None."""
        if not storable(job_id):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(self._job_by_id, {"job_id": job_id}).first()
        return None if row is None else _job_from_row(row)

    def get_details(self, job_id: str) -> JobDetails | None:
        """The job with its parameters (by name) and results (by id), or None.

        The job's version is read first (one small read); the job as last read by this
        process is reused when it has that version, else the job is read whole.
        """
        if not storable(job_id):
            return None
        probed = self._version.one((job_id,))
        if probed is None:
            self._recent.forget(job_id)
            return None
        recent = self._recent.get(job_id, probed[0])
        if recent is not None:
            return recent
        with self.engine.connect() as conn:
            rows = list(conn.execute(self._details, {"job_id": job_id}))
        details = _details_from_rows(rows)
        if details is not None:
            self._recent.keep(details)
        return details

    def list_jobs(
        self,
        jobname: str,
        phases: Collection[Phase] = (),
        after: datetime | None = None,
        last: int | None = None,
        owner: str | None = None,
    ) -> Iterator[JobSummary]:
        """Stream a job list: oldest first, or the ``last`` newest, newest first.

        ``phases`` empty means every phase except ARCHIVED; ``owner`` None means every
        owner's. The rows are fetched in batches while the caller iterates, so memory
        does not grow with the list.
        """
        statement = select(*SUMMARY_COLUMNS).where(JobRow.jobname == jobname)
        if phases:
            statement = statement.where(JobRow.phase.in_(_phases(phases)))
        else:
            statement = statement.where(JobRow.phase != Phase.ARCHIVED.value)
        if after is not None:
            statement = statement.where(JobRow.creation_time > after)
        if owner is not None:
            statement = statement.where(JobRow.owner == owner)
        if last is not None:
            statement = statement.order_by(JobRow.creation_time.desc(), JobRow.id.desc()).limit(
                last
            )
        else:
            statement = statement.order_by(JobRow.creation_time, JobRow.id)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(statement)
            for row in result:
                yield summary_from_row(row)

    def running_jobs(self, phases: Collection[Phase], batch: int = 1000) -> Iterator[list[Job]]:
        """Jobs in the given phases (the reconciler's working set), in batches."""
        statement = select(*_JOB_COLUMNS).where(JobRow.phase.in_(_phases(phases)))
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(statement)
            for rows in result.partitions():
                yield [_job_from_row(row) for row in rows]

    def expired_job_ids(self, now: datetime, limit: int = 1000) -> list[str]:
        """Ids of jobs whose destruction time has passed (ARCHIVED ones excluded)."""
        statement = (
            select(JobRow.id)
            .where(JobRow.destruction_time < now, JobRow.phase != Phase.ARCHIVED.value)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(statement).scalars())

    def usage(self, owner: str) -> Usage:
        """What ``owner`` keeps, stores and runs (one small read, on the driver)."""
        if not storable(owner):
            return Usage()
        return Usage.from_row(self._usage.one((owner,)))

    # -- writes -----------------------------------------------------------------------

    def insert_job(
        self, job: Job, parameters: Iterable[Parameter], quota: Quota | None = None
    ) -> bool:
        """Store a new job and its parameters in one transaction; True if stored, False
        if the owner's jobs broke ``quota`` (checked in the transaction, after the
        insert, the new job not counted: nothing is stored then).

        Raises the driver's IntegrityError when the id is already taken (JobFiles.create
        gives every job a new id and directory first).
        """
        values = {key: getattr(job, key) for key in _JOB_KEYS}
        values["phase"] = job.phase.value
        values["change_seq"] = 0  # numbered by the database's trigger
        rows = [
            {"job_id": job.id, "name": p.name, "value": p.value, "by_reference": p.by_reference}
            for p in parameters
        ]
        with self._write_lock:
            connection = self.engine.raw_connection()
            try:
                cursor = connection.cursor()
                try:
                    if quota is not None and self._locks_owners:
                        cursor.execute(OWNER_LOCK_SQL, quota.lock_key())
                    self._insert_job.rows(cursor, [values])
                    if quota is not None and not self._holds(cursor, quota):
                        connection.rollback()
                        return False
                    self._insert_parameters.rows(cursor, rows)
                    self.coordination.announce_on(cursor, job.id, job.owner, phase=False)
                finally:
                    cursor.close()
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
            finally:
                connection.close()
        return True

    def _holds(self, cursor: Any, quota: Quota) -> bool:
        condition, values = quota.condition(lambda _name: self._marker)
        cursor.execute(f"SELECT 1 WHERE {condition}", tuple(values.values()))
        return cursor.fetchone() is not None

    def change_phase(
        self,
        job_id: str,
        allowed_from: Collection[Phase],
        new_phase: Phase,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        token_hash: str | None = None,
        results: Iterable[Result] = (),
        stored_bytes: int | None = None,
        quota: Quota | None = None,
    ) -> str | None:
        """Set the phase if the job is in one of ``allowed_from`` (and its owner's jobs
        meet ``quota``); the job's owner if it changed, else None.

        The other values given (None leaves a column as it is) and the job's results
        (replacing any registered before) are written in the same transaction, so that
        a waiter woken by the phase sees them.
        """
        values: dict[str, Any] = {
            "phase": new_phase.value,
            "phase_time": datetime.now(UTC),
            **_NEXT_VERSION,
        }
        for key, value in (
            ("start_time", start_time),
            ("end_time", end_time),
            ("error_type", error_type),
            ("error_message", error_message),
            ("token_hash", token_hash),
            ("stored_bytes", stored_bytes),
        ):
            if value is not None:
                values[key] = value
        statement = (
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.phase.in_(_phases(allowed_from)))
            .values(**values)
        )
        if quota is not None:
            statement = statement.where(self._quota_clause(quota))
        result_rows = [
            {
                "job_id": job_id,
                "result_id": r.result_id,
                "path": r.path,
                "content_type": r.content_type,
                "size": r.size,
                "sha256": r.sha256,
            }
            for r in results
        ]
        with self._writing(quota) as conn:
            owner = conn.execute(statement.returning(JobRow.owner)).scalar_one_or_none()
            if owner is not None and result_rows:
                conn.execute(delete(ResultRow).where(ResultRow.job_id == job_id))
                conn.execute(insert(ResultRow), result_rows)
            if owner is not None:
                self.coordination.announce(conn, job_id, owner)
        return owner

    def set_external_id(self, job_id: str, external_id: str) -> bool:
        """Record the id the manager gave the job; True if the job exists."""
        return self._update(job_id, {"external_id": external_id})

    def set_execution_duration(self, job_id: str, seconds: int, only_in: Collection[Phase]) -> bool:
        """Change the job's execution duration while it is in ``only_in``; True if done."""
        return self._update(job_id, {"execution_duration": seconds}, only_in)

    def set_destruction(self, job_id: str, when: datetime) -> bool:
        """Change the job's destruction time; True if the job exists."""
        return self._update(job_id, {"destruction_time": when})

    def _update(
        self, job_id: str, values: dict[str, Any], only_in: Collection[Phase] | None = None
    ) -> bool:
        statement = update(JobRow).where(JobRow.id == job_id).values(**values, **_NEXT_VERSION)
        if only_in is not None:
            statement = statement.where(JobRow.phase.in_(_phases(only_in)))
        with self._writing() as conn:
            owner = conn.execute(statement.returning(JobRow.owner)).scalar_one_or_none()
            if owner is not None:
                self.coordination.announce(conn, job_id, owner, phase=False)
            return owner is not None

    def set_parameters(
        self,
        job_id: str,
        parameters: Iterable[Parameter],
        only_in: Collection[Phase],
        stored_bytes: int | None = None,
        quota: Quota | None = None,
    ) -> bool:
        """Replace some parameters of a job (and the bytes it stores), only while it is
        in ``only_in`` phases and its owner's jobs meet ``quota``; True if done.

        The check is the transaction's first statement (the UPDATE of the job's
        version takes the write lock), so a RUN racing with the change cannot slip in
        between.
        """
        changes: dict[str, Any] = dict(_NEXT_VERSION)
        if stored_bytes is not None:
            changes["stored_bytes"] = stored_bytes
        with self._writing(quota) as conn:
            guard = (
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.phase.in_(_phases(only_in)))
                .values(**changes)
            )
            if quota is not None:
                guard = guard.where(self._quota_clause(quota))
            owner = conn.execute(guard.returning(JobRow.owner)).scalar_one_or_none()
            if owner is None:
                return False
            self.coordination.announce(conn, job_id, owner, phase=False)
            for param in parameters:
                conn.execute(
                    delete(ParameterRow).where(
                        ParameterRow.job_id == job_id, ParameterRow.name == param.name
                    )
                )
                conn.execute(
                    insert(ParameterRow).values(
                        job_id=job_id,
                        name=param.name,
                        value=param.value,
                        by_reference=param.by_reference,
                    )
                )
        return True

    def delete_results(self, job_id: str) -> None:
        """Forget the job's results (an ARCHIVED job keeps none)."""
        with self._writing() as conn:
            conn.execute(update(JobRow).where(JobRow.id == job_id).values(**_NEXT_VERSION))
            conn.execute(delete(ResultRow).where(ResultRow.job_id == job_id))

    def delete_job(self, job_id: str) -> None:
        """Delete the job with its parameters and results."""
        with self._writing() as conn:
            # The job row first, as every writer of a job does: PostgreSQL locks rows,
            # and a delete taking the results first deadlocked with a change_phase
            # recording them. Its parameters and results go with it (ON DELETE CASCADE),
            # and are deleted explicitly too, for a connection without foreign keys.
            deleted = delete(JobRow).where(JobRow.id == job_id).returning(JobRow.owner)
            owner = conn.execute(deleted).scalar_one_or_none()
            conn.execute(delete(ResultRow).where(ResultRow.job_id == job_id))
            conn.execute(delete(ParameterRow).where(ParameterRow.job_id == job_id))
            self.coordination.announce(conn, job_id, owner)

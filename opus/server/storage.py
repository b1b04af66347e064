"""SQLAlchemy models and JobStore: every SQL statement of OPUS lives here.

One engine per process. SQLite runs in WAL mode with a busy timeout; no SQLite-only
SQL is used, so PostgreSQL works with the same code. Write transactions start with
their write (an INSERT or a conditional UPDATE), which keeps SQLite from failing
lock upgrades under concurrent requests. Phase changes are compare-and-set
(``UPDATE … WHERE phase IN (…)``) so that a signal and the reconciler never both win.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select as select_module
import socket
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from opus.server.phases import Phase


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes, stored naive-UTC (portable across databases)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of the OPUS tables."""


class JobRow(Base):
    """A UWS job."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jobname: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(Text, default=None)
    owner: Mapped[str] = mapped_column(String(255))
    phase: Mapped[str] = mapped_column(String(16))
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    destruction_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    quote: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # When the phase last changed: lets the reconciler give a new phase a grace time.
    phase_time: Mapped[datetime] = mapped_column(UTCDateTime)
    execution_duration: Mapped[int] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(16), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    external_id: Mapped[str | None] = mapped_column(String(255), default=None)
    token_hash: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        # Job lists: per job type, newest first, optionally by phase.
        Index("ix_jobs_list", "jobname", "creation_time", "id"),
        Index("ix_jobs_list_phase", "jobname", "phase", "creation_time", "id"),
        # Reconciler (active jobs), destruction sweep, per-owner limits.
        Index("ix_jobs_phase", "phase"),
        Index("ix_jobs_destruction", "destruction_time"),
        Index("ix_jobs_owner_phase", "owner", "phase"),
    )


class ParameterRow(Base):
    """A job parameter (value as text, no length limit)."""

    __tablename__ = "job_parameters"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    by_reference: Mapped[bool] = mapped_column(Boolean, default=False)


class ResultRow(Base):
    """A file a job produced, registered when it ended."""

    __tablename__ = "job_results"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    result_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))


@dataclass(frozen=True)
class Job:
    """A stored job, detached from the database session."""

    id: str
    jobname: str
    run_id: str | None
    owner: str
    phase: Phase
    creation_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    destruction_time: datetime | None
    quote: datetime | None
    phase_time: datetime
    execution_duration: int
    error_type: str | None
    error_message: str | None
    external_id: str | None
    token_hash: str


@dataclass(frozen=True)
class Parameter:
    """A stored job parameter."""

    name: str
    value: str
    by_reference: bool = False


@dataclass(frozen=True)
class Result:
    """A stored job result; ``path`` is relative to the job directory."""

    result_id: str
    path: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class JobListEntry:
    """The columns a job list shows."""

    job_id: str
    phase: str
    run_id: str | None
    owner: str
    creation_time: datetime


_JOB_COLUMNS = [c for c in JobRow.__table__.columns]


def _job_from_row(row: Any) -> Job:
    values = dict(row._mapping)
    values["phase"] = Phase(values["phase"])
    return Job(**values)


def _storable(key: str) -> bool:
    """False for a key no row can have: PostgreSQL text cannot hold NUL (the driver
    refuses the query), so a look-up by such a key (from a URL, a form, credentials)
    finds nothing, on every database, instead of failing."""
    return "\x00" not in key


def make_engine(url: str) -> Engine:
    """The process's engine; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=20,
            max_overflow=40,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=40)


class JobStore:
    """All reads and writes of jobs, parameters and results."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite has one writer at a time: queueing writers on a lock in this process
        # is fair and prompt, where SQLite's busy handler sleeps in steps of up to
        # 100 ms (creation p99 went from ~400 ms to ~40 ms with 8 clients).
        self._write_lock = (
            threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )
        # PostgreSQL carries job changes between the processes of a server.
        self.listens = engine.dialect.name == "postgresql"
        self.process_tag = secrets.token_hex(8)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction (serialised within the process on SQLite)."""
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    def _announce(self, conn: Connection, job_id: str) -> None:
        """Tell the other server processes that a job changed (PostgreSQL NOTIFY).

        Sent in the transaction of the change: PostgreSQL delivers it at commit, so a
        process woken by it reads the new phase. The payload names this process, whose
        own waiters were woken directly and are not woken twice.
        """
        if self.listens:
            conn.execute(select(func.pg_notify(PHASE_CHANNEL, f"{self.process_tag} {job_id}")))

    def open_feed(self) -> PhaseFeed | None:
        """A connection receiving the job changes of other processes (None on SQLite)."""
        return PhaseFeed(self.engine, self.process_tag) if self.listens else None

    def reconciler_lock(self) -> ReconcilerLock:
        """The lock that lets one process at a time run the reconciler."""
        if self.listens:
            return AdvisoryLock(self.engine)
        return LeaseLock(self.engine)

    def create_schema(self) -> None:
        """Create the tables that do not exist yet."""
        Base.metadata.create_all(self.engine)

    # -- jobs ---------------------------------------------------------------------

    def insert_job(self, job: Job, parameters: Iterable[Parameter]) -> None:
        """Store a new job and its parameters in one transaction.

        Raises sqlalchemy.exc.IntegrityError when the id is already taken.
        """
        values = {c.name: getattr(job, c.name) for c in _JOB_COLUMNS}
        values["phase"] = job.phase.value
        rows = [
            {"job_id": job.id, "name": p.name, "value": p.value, "by_reference": p.by_reference}
            for p in parameters
        ]
        with self._writing() as conn:
            conn.execute(insert(JobRow), [values])
            if rows:
                conn.execute(insert(ParameterRow), rows)

    def get_job(self, job_id: str) -> Job | None:
        if not _storable(job_id):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(*_JOB_COLUMNS).where(JobRow.id == job_id)).first()
        return None if row is None else _job_from_row(row)

    def change_phase(
        self,
        job_id: str,
        allowed_from: Collection[Phase],
        new_phase: Phase,
        fields: Mapping[str, Any] | None = None,
        results: Iterable[Result] = (),
    ) -> bool:
        """Set the phase if the job is in one of ``allowed_from``; True if it changed.

        Other columns in ``fields`` and the job's results are written in the same
        transaction, so that a waiter woken by the phase sees them.
        """
        values = dict(fields or {})
        values["phase"] = new_phase.value
        values.setdefault("phase_time", datetime.now(UTC))
        statement = (
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.phase.in_([p.value for p in allowed_from]))
            .values(**values)
        )
        with self._writing() as conn:
            changed = conn.execute(statement).rowcount == 1
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
            if changed and result_rows:
                conn.execute(delete(ResultRow).where(ResultRow.job_id == job_id))
                conn.execute(insert(ResultRow), result_rows)
            if changed:
                self._announce(conn, job_id)
        return changed

    def update_job(
        self, job_id: str, fields: Mapping[str, Any], only_in: Collection[Phase] | None = None
    ) -> bool:
        """Update columns of a job (only while in ``only_in`` phases when given)."""
        statement = update(JobRow).where(JobRow.id == job_id).values(**fields)
        if only_in is not None:
            statement = statement.where(JobRow.phase.in_([p.value for p in only_in]))
        with self._writing() as conn:
            return conn.execute(statement).rowcount == 1

    def delete_job(self, job_id: str) -> None:
        with self._writing() as conn:
            # The job row first, as every writer of a job does: PostgreSQL locks rows,
            # and a delete taking the results first deadlocked with a change_phase
            # recording them. Its parameters and results go with it (ON DELETE CASCADE),
            # and are deleted explicitly too, for a connection without foreign keys.
            conn.execute(delete(JobRow).where(JobRow.id == job_id))
            conn.execute(delete(ResultRow).where(ResultRow.job_id == job_id))
            conn.execute(delete(ParameterRow).where(ParameterRow.job_id == job_id))
            self._announce(conn, job_id)

    def list_jobs(
        self,
        jobname: str,
        phases: Collection[Phase] = (),
        after: datetime | None = None,
        last: int | None = None,
        owner: str | None = None,
    ) -> Iterator[JobListEntry]:
        """Stream a job list: oldest first, or the ``last`` newest, newest first.

        ``phases`` empty means every phase except ARCHIVED. The rows are fetched in
        batches while the caller iterates, so memory does not grow with the list.
        """
        statement = select(
            JobRow.id, JobRow.phase, JobRow.run_id, JobRow.owner, JobRow.creation_time
        ).where(JobRow.jobname == jobname)
        if phases:
            statement = statement.where(JobRow.phase.in_([p.value for p in phases]))
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
                yield JobListEntry(*row)

    def running_jobs(self, phases: Collection[Phase], batch: int = 1000) -> Iterator[list[Job]]:
        """Jobs in the given phases (the reconciler's working set), in batches."""
        statement = select(*_JOB_COLUMNS).where(JobRow.phase.in_([p.value for p in phases]))
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

    def count_jobs(self, owner: str, phases: Collection[Phase]) -> int:
        statement = select(func.count()).where(
            JobRow.owner == owner, JobRow.phase.in_([p.value for p in phases])
        )
        with self.engine.connect() as conn:
            return int(conn.execute(statement).scalar_one())

    # -- parameters and results ---------------------------------------------------

    def get_parameters(self, job_id: str) -> list[Parameter]:
        statement = (
            select(ParameterRow.name, ParameterRow.value, ParameterRow.by_reference)
            .where(ParameterRow.job_id == job_id)
            .order_by(ParameterRow.name)
        )
        with self.engine.connect() as conn:
            return [Parameter(*row) for row in conn.execute(statement)]

    def set_parameters(
        self, job_id: str, parameters: Iterable[Parameter], only_in: Collection[Phase]
    ) -> bool:
        """Replace some parameters of a job, only while it is in ``only_in`` phases.

        The phase check is the transaction's first statement (a no-op UPDATE that takes
        the write lock), so a RUN racing with the change cannot slip in between.
        """
        allowed = [p.value for p in only_in]
        with self._writing() as conn:
            guard = (
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.phase.in_(allowed))
                .values(phase=JobRow.phase)
            )
            if conn.execute(guard).rowcount != 1:
                return False
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

    def get_results(self, job_id: str) -> list[Result]:
        statement = (
            select(
                ResultRow.result_id,
                ResultRow.path,
                ResultRow.content_type,
                ResultRow.size,
                ResultRow.sha256,
            )
            .where(ResultRow.job_id == job_id)
            .order_by(ResultRow.result_id)
        )
        with self.engine.connect() as conn:
            return [Result(*row) for row in conn.execute(statement)]

    def delete_results(self, job_id: str) -> None:
        with self._writing() as conn:
            conn.execute(delete(ResultRow).where(ResultRow.job_id == job_id))


class LeaseRow(Base):
    """A named lease held by one process until ``expires`` (the SQLite reconciler lock)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires: Mapped[datetime] = mapped_column(UTCDateTime)


class UserRow(Base):
    """A user: roles, active flag, API token (hash only) and optional web password."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    roles: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text, default=None)
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class User:
    """A stored user (the token itself is never stored, only its hash)."""

    name: str
    roles: tuple[str, ...]
    active: bool
    token_hash: str
    password_hash: str | None
    creation_time: datetime


def _user_from_row(row: Any) -> User:
    values = dict(row._mapping)
    values["roles"] = tuple(r for r in values["roles"].split(",") if r)
    return User(**values)


_USER_COLUMNS = [c for c in UserRow.__table__.columns]


class UserStore:
    """All reads and writes of users."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, user: User) -> None:
        """Store a new user; IntegrityError if the name is taken."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(UserRow).values(
                    name=user.name,
                    roles=",".join(user.roles),
                    active=user.active,
                    token_hash=user.token_hash,
                    password_hash=user.password_hash,
                    creation_time=user.creation_time,
                )
            )

    def get(self, name: str) -> User | None:
        if not _storable(name):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(*_USER_COLUMNS).where(UserRow.name == name)).first()
        return None if row is None else _user_from_row(row)

    def by_token_hash(self, token_hash: str) -> User | None:
        statement = select(*_USER_COLUMNS).where(UserRow.token_hash == token_hash)
        with self.engine.connect() as conn:
            row = conn.execute(statement).first()
        return None if row is None else _user_from_row(row)

    def all(self) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_USER_COLUMNS).order_by(UserRow.name))
            return [_user_from_row(row) for row in rows]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(UserRow)).scalar_one())

    def update(self, name: str, **fields: Any) -> bool:
        """Change columns of a user (roles as a sequence); True if the user exists."""
        if "roles" in fields:
            fields["roles"] = ",".join(fields["roles"])
        if not _storable(name):
            return False
        with self.engine.begin() as conn:
            return (
                conn.execute(update(UserRow).where(UserRow.name == name).values(**fields)).rowcount
                == 1
            )

    def delete(self, name: str) -> bool:
        if not _storable(name):
            return False
        with self.engine.begin() as conn:
            return conn.execute(delete(UserRow).where(UserRow.name == name)).rowcount == 1


# -- coordination between the processes of one server --------------------------------

PHASE_CHANNEL = "opus_phase"
# pg_try_advisory_lock key of the reconciler: any constant shared by all processes.
RECONCILER_LOCK_KEY = 0x0B05_7EC0
RECONCILER_LEASE = "reconciler"


def _raw_connection(engine: Engine) -> Any:
    """A DBAPI connection outside the pool, in autocommit mode (kept for a long time)."""
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    connection = engine.dialect.loaded_dbapi.connect(*args, **kwargs)
    connection.autocommit = True
    return connection


class PhaseFeed:
    """LISTEN on the job-change channel: the ids of jobs other processes changed."""

    def __init__(self, engine: Engine, own_tag: str) -> None:
        self.own_tag = own_tag
        self.connection = _raw_connection(engine)
        with self.connection.cursor() as cursor:
            cursor.execute(f"LISTEN {PHASE_CHANNEL}")

    def receive(self, timeout: float) -> list[str]:
        """Job ids changed by other processes, waiting up to ``timeout`` for the first.

        Raises an OSError or a DBAPI error when the connection is lost.
        """
        readable, _, _ = select_module.select([self.connection], [], [], timeout)
        if not readable:
            return []
        self.connection.poll()
        job_ids = []
        while self.connection.notifies:
            tag, _, job_id = self.connection.notifies.pop(0).payload.partition(" ")
            if tag != self.own_tag:
                job_ids.append(job_id)
        return job_ids

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()


class ReconcilerLock:
    """Held by at most one process at a time; ``acquire`` never blocks."""

    def acquire(self) -> bool:
        """True if this process holds the lock (taking it if it is free)."""
        raise NotImplementedError

    def release(self) -> None:
        """Let another process take the lock."""
        raise NotImplementedError


class AdvisoryLock(ReconcilerLock):
    """A PostgreSQL session advisory lock on a connection of its own.

    The lock lives as long as the connection: a process killed with SIGKILL loses it
    the moment PostgreSQL sees its connection close, and another process takes over at
    its next try.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connection: Any = None
        self.held = False

    def acquire(self) -> bool:
        try:
            if self.connection is None:
                self.connection = _raw_connection(self.engine)
            with self.connection.cursor() as cursor:
                if self.held:
                    cursor.execute("SELECT 1")  # still connected, so still held
                else:
                    cursor.execute("SELECT pg_try_advisory_lock(%s)", (RECONCILER_LOCK_KEY,))
                    self.held = bool(cursor.fetchone()[0])
        except Exception:
            # A lost connection loses the lock: start again with a new one next time.
            self.release()
            raise
        return self.held

    def release(self) -> None:
        self.held = False
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.close()
            self.connection = None


class LeaseLock(ReconcilerLock):
    """A lease row (SQLite): held until it expires unless its holder renews it.

    The holder is named ``host:pid``; a lease whose holder process on this host is
    gone is taken over at once instead of after it expires.
    """

    DURATION = timedelta(seconds=60)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.holder = f"{socket.gethostname()}:{os.getpid()}"

    def acquire(self) -> bool:
        now = datetime.now(UTC)
        expires = now + self.DURATION
        with self.engine.begin() as conn:
            row = conn.execute(
                select(LeaseRow.holder, LeaseRow.expires).where(LeaseRow.name == RECONCILER_LEASE)
            ).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(LeaseRow).values(
                                name=RECONCILER_LEASE, holder=self.holder, expires=expires
                            )
                        )
                except IntegrityError:
                    return False
                return True
            holder, until = row
            if holder != self.holder and until > now and not self._holder_is_gone(holder):
                return False
            # Compare-and-set on the holder seen, so two takers cannot both win.
            taken = conn.execute(
                update(LeaseRow)
                .where(LeaseRow.name == RECONCILER_LEASE, LeaseRow.holder == holder)
                .values(holder=self.holder, expires=expires)
            )
            return taken.rowcount == 1

    @staticmethod
    def _holder_is_gone(holder: str) -> bool:
        host, _, pid = holder.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def release(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(LeaseRow).where(
                    LeaseRow.name == RECONCILER_LEASE, LeaseRow.holder == self.holder
                )
            )

"""What the processes of one server share through the database: job changes, one reconciler.

On PostgreSQL every change of a job sends a NOTIFY in the change's own transaction
(delivered at commit, so a process woken by it reads the new state), and each process
LISTENs on a connection of its own (``PhaseFeed``) to wake its WAIT requests and the
readers of the change feed. One process at a time runs the reconciler: the holder of a
PostgreSQL advisory lock, or on SQLite of a lease row. The payload of a notification
names the process that sent it (whose own waiters were woken directly and are not woken
twice), the job, its owner, and whether its phase changed (or it went): only then are
WAIT requests woken, where any change wakes its owner's change-feed readers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select as select_module
import socket
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from opus.server.storage.engine import raw_connection
from opus.server.storage.models import LeaseRow

PHASE_CHANNEL = "opus_phase"
# pg_try_advisory_lock key of the reconciler: any constant shared by all processes.
RECONCILER_LOCK_KEY = 0x0B05_7EC0
RECONCILER_LEASE = "reconciler"


class Announcement(NamedTuple):
    """A change another process made: the job, its owner (None from an older OPUS), and
    whether its phase changed or it was deleted (else some other value changed)."""

    job_id: str
    owner: str | None
    phase: bool


def _payload(tag: str, job_id: str, owner: str | None, phase: bool) -> str:
    # Neither job ids nor owner names hold spaces.
    return f"{tag} {job_id} {owner or '-'} {'p' if phase else 'v'}"


class Coordination:
    """The change feed and the reconciler lock of the processes sharing one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # PostgreSQL carries job changes between the processes of a server.
        self.listens = engine.dialect.name == "postgresql"
        self.process_tag = secrets.token_hex(8)

    def announce(
        self, conn: Connection, job_id: str, owner: str | None, phase: bool = True
    ) -> None:
        """Tell the other server processes that a job of ``owner`` changed (its phase,
        or its being, if ``phase``), in ``conn``'s transaction."""
        if self.listens:
            payload = _payload(self.process_tag, job_id, owner, phase)
            conn.execute(select(func.pg_notify(PHASE_CHANNEL, payload)))

    def announce_on(self, cursor: Any, job_id: str, owner: str, phase: bool = True) -> None:
        """``announce`` on a driver cursor (a transaction written on the driver)."""
        if self.listens:
            payload = _payload(self.process_tag, job_id, owner, phase)
            cursor.execute("SELECT pg_notify(%s, %s)", (PHASE_CHANNEL, payload))

    def open_feed(self) -> PhaseFeed:
        """A connection receiving the job changes of other processes (PostgreSQL only)."""
        if not self.listens:
            raise RuntimeError("only PostgreSQL carries job changes between processes")
        return PhaseFeed(self.engine, self.process_tag)

    def reconciler_lock(self) -> ReconcilerLock:
        """The lock that lets one process at a time run the reconciler."""
        if self.listens:
            return AdvisoryLock(self.engine)
        return LeaseLock(self.engine)


class PhaseFeed:
    """LISTEN on the job-change channel: the jobs other processes changed."""

    def __init__(self, engine: Engine, own_tag: str) -> None:
        self.own_tag = own_tag
        self.connection = raw_connection(engine)
        with self.connection.cursor() as cursor:
            cursor.execute(f"LISTEN {PHASE_CHANNEL}")

    def receive(self, timeout: float) -> list[Announcement]:
        """Changes made by other processes, waiting up to ``timeout`` for the first.

        Raises an OSError or a DBAPI error when the connection is lost.
        """
        readable, _, _ = select_module.select([self.connection], [], [], timeout)
        if not readable:
            return []
        self.connection.poll()
        changes = []
        while self.connection.notifies:
            tag, _, change = self.connection.notifies.pop(0).payload.partition(" ")
            if tag != self.own_tag:
                job_id, owner, kind = [*change.split(" "), "-", "p"][:3]
                changes.append(Announcement(job_id, None if owner == "-" else owner, kind != "v"))
        return changes

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
                self.connection = raw_connection(self.engine)
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
        if self.connection is not None:
            with contextlib.suppress(Exception):
                if self.held:
                    # Unlocked before the connection closes: PostgreSQL would free it
                    # only once the backend has ended, a moment later.
                    with self.connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_unlock(%s)", (RECONCILER_LOCK_KEY,))
            with contextlib.suppress(Exception):
                self.connection.close()
            self.connection = None
        self.held = False


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

"""How the processes of one server coordinate, against real databases: the reconciler
lock (PostgreSQL advisory lock, SQLite lease) and job-change notifications (LISTEN/NOTIFY)
that wake WAIT requests in other processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from opus.core.phases import Phase
from opus.core.records import Job
from opus.server.notify import FeedListener, PhaseNotifier
from opus.server.storage import AdvisoryLock, Base, JobStore, LeaseLock, make_engine
from opus.server.storage.coordination import RECONCILER_LEASE, Announcement
from opus.server.storage.models import LeaseRow
from tests.live_helpers import eventually


def pending_job(job_id: str) -> Job:
    now = datetime.now(UTC)
    return Job(
        id=job_id,
        jobname="sleep",
        run_id=None,
        owner="anonymous",
        phase=Phase.PENDING,
        creation_time=now,
        start_time=None,
        end_time=None,
        destruction_time=now + timedelta(days=1),
        quote=None,
        phase_time=now,
        execution_duration=60,
        error_type=None,
        error_message=None,
        external_id=None,
        token_hash="",
    )


# -- the reconciler lock ----------------------------------------------------------------


def test_advisory_lock_is_held_by_one_process_and_freed_with_its_connection(
    postgresql_url: str,
) -> None:
    first, second = (
        AdvisoryLock(make_engine(postgresql_url)),
        AdvisoryLock(make_engine(postgresql_url)),
    )
    assert first.acquire()
    assert first.acquire(), "the holder keeps it"
    assert not second.acquire()
    # A holder killed with SIGKILL only leaves its connection behind: closing it (as
    # PostgreSQL does when the process dies) frees the lock.
    first.connection.close()
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error type
        first.acquire()
    assert not first.held
    # The server ends the closed session's backend a moment later.
    eventually(second.acquire, timeout=10, what="the lock to be freed")
    assert not first.acquire()
    second.release()
    assert first.acquire()
    first.release()


def test_advisory_lock_refuses_a_holder_in_another_process(postgresql_url: str) -> None:
    lock = AdvisoryLock(make_engine(postgresql_url))
    assert lock.acquire()
    try:
        code = (
            "import sys\n"
            "from opus.server.storage import AdvisoryLock, make_engine\n"
            "print(AdvisoryLock(make_engine(sys.argv[1])).acquire())\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, postgresql_url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert done.stdout.strip() == "False"
    finally:
        lock.release()


def test_lease_lock_on_sqlite(tmp_path) -> None:
    store = JobStore(make_engine(f"sqlite:///{tmp_path / 'lease.db'}"))
    Base.metadata.create_all(store.engine)
    first, second = LeaseLock(store.engine), LeaseLock(store.engine)
    second.holder = "elsewhere:1"  # another host: only expiry frees its lease
    assert first.acquire()
    assert first.acquire(), "the holder renews it"
    assert not second.acquire()
    first.release()
    assert second.acquire()
    assert not first.acquire()
    # An expired lease is taken over.
    with store.engine.begin() as conn:
        conn.execute(
            update(LeaseRow)
            .where(LeaseRow.name == RECONCILER_LEASE)
            .values(expires=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert first.acquire()
    assert not second.acquire()


def test_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'lease.db'}"
    store = JobStore(make_engine(url))
    Base.metadata.create_all(store.engine)
    code = (
        "import sys\n"
        "from opus.server.storage import LeaseLock, make_engine\n"
        "print(LeaseLock(make_engine(sys.argv[1])).acquire())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "True"
    # That process is gone, its lease not yet expired: a process of this host sees the
    # holder is dead and takes the lease.
    assert LeaseLock(store.engine).acquire()


# -- job-change notifications -----------------------------------------------------------


def test_phase_changes_reach_the_feeds_of_other_processes(postgresql_url: str) -> None:
    here, there = JobStore(make_engine(postgresql_url)), JobStore(make_engine(postgresql_url))
    assert here.coordination.listens and there.coordination.listens
    feed_here, feed_there = here.coordination.open_feed(), there.coordination.open_feed()
    assert feed_here is not None and feed_there is not None
    try:
        here.insert_job(pending_job("job1"), [])
        # A creation is announced to the change feed's readers, not to WAIT's.
        assert feed_there.receive(5.0) == [Announcement("job1", "anonymous", phase=False)]
        assert here.change_phase("job1", {Phase.PENDING}, Phase.QUEUED)
        assert feed_there.receive(5.0) == [Announcement("job1", "anonymous", phase=True)]
        # The changing process's own waiters were woken directly: no echo.
        assert feed_here.receive(0.3) == []
        # A refused compare-and-set changes nothing and announces nothing.
        assert not here.change_phase("job1", {Phase.PENDING}, Phase.QUEUED)
        assert feed_there.receive(0.3) == []
        here.delete_job("job1")
        assert feed_there.receive(5.0) == [Announcement("job1", "anonymous", phase=True)]
    finally:
        feed_here.close()
        feed_there.close()


def test_listener_wakes_waiters_and_survives_a_lost_connection(postgresql_url: str) -> None:
    here, there = JobStore(make_engine(postgresql_url)), JobStore(make_engine(postgresql_url))
    notifier = PhaseNotifier(10)
    feeds = []

    def open_feed():
        feed = there.coordination.open_feed()
        feeds.append(feed)
        return feed

    listener = FeedListener(open_feed, notifier)
    listener.RECONNECT_DELAY = 0.1
    listener.start()
    try:
        assert listener.listening.wait(10)
        here.insert_job(pending_job("job2"), [])
        with notifier.subscribe("job2") as waiter:
            assert waiter is not None
            started = time.monotonic()
            threading.Timer(
                0.2, lambda: here.change_phase("job2", {Phase.PENDING}, Phase.QUEUED)
            ).start()
            assert waiter.wait(5.0) is not None
            assert time.monotonic() - started < 2.0

        # The listener's connection is cut (a database restart, a network fault): it
        # reconnects and wakes every waiter, since changes may have been missed.
        with notifier.subscribe("job2") as waiter:
            assert waiter is not None
            with here.engine.begin() as conn:
                backend = feeds[-1].connection.info.backend_pid
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({backend})")
            assert waiter.wait(10.0) is not None
        assert len(feeds) >= 2
        assert listener.listening.wait(10)
        with notifier.subscribe("job2") as waiter:
            assert waiter is not None
            assert here.change_phase("job2", {Phase.QUEUED}, Phase.EXECUTING)
            assert waiter.wait(5.0) is not None
    finally:
        listener.stop()
        listener.join(10)

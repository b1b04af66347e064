"""JobStore and UserStore on SQLite and PostgreSQL: what the two databases could do
differently (streamed lists, concurrent transactions, text PostgreSQL cannot hold)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select, text, update

from opus.core.phases import RUNNING, Phase
from opus.core.records import Job, Parameter, Result, User
from opus.server.storage import (
    JobRow,
    JobStore,
    ParameterRow,
    ResultRow,
    UserRow,
    UserStore,
    make_engine,
)

START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[JobStore]:
    store = JobStore(make_engine(database_url))
    yield store
    store.engine.dispose()


def a_job(job_id: str, created: datetime = START, phase: Phase = Phase.PENDING) -> Job:
    return Job(
        id=job_id,
        jobname="sleep",
        run_id=None,
        owner="anonymous",
        phase=phase,
        creation_time=created,
        start_time=None,
        end_time=None,
        destruction_time=created + timedelta(days=1),
        quote=None,
        phase_time=created,
        execution_duration=60,
        error_type=None,
        error_message=None,
        external_id="1" if phase != Phase.PENDING else None,
        token_hash="",
    )


def a_result(result_id: str) -> Result:
    return Result(result_id, f"results/{result_id}", "text/plain", 1, "0" * 64)


def insert_many(store: JobStore, count: int, phase: Phase = Phase.PENDING) -> list[str]:
    """``count`` jobs created a second apart; their ids, oldest first."""
    ids = [f"job{index:05d}" for index in range(count)]
    rows = []
    for index, job_id in enumerate(ids):
        job = a_job(job_id, START + timedelta(seconds=index), phase)
        row = {c.name: getattr(job, c.name, None) for c in JobRow.__table__.columns}
        rows.append({**row, "phase": phase.value})
    with store.engine.begin() as conn:
        conn.execute(insert(JobRow), rows)
    return ids


def test_long_job_lists_stream_in_order(store: JobStore) -> None:
    """More rows than one fetch (PostgreSQL streams through a server-side cursor)."""
    ids = insert_many(store, 2345)
    listed = [entry.job_id for entry in store.list_jobs("sleep")]
    assert listed == ids
    newest = [entry.job_id for entry in store.list_jobs("sleep", last=1500)]
    assert newest == ids[::-1][:1500]
    after = [e.job_id for e in store.list_jobs("sleep", after=START + timedelta(seconds=2000))]
    assert after == ids[2001:]


def test_a_list_read_while_jobs_change_sees_one_state(store: JobStore) -> None:
    ids = insert_many(store, 1500)
    entries = store.list_jobs("sleep")
    first = [next(entries).job_id for _ in range(10)]
    # Changes made by other requests while the list is being sent.
    store.delete_job(ids[-1])
    store.insert_job(a_job("newcomer", START + timedelta(days=3)), [])
    rest = [entry.job_id for entry in entries]
    assert first + rest in (ids, ids[:-1], [*ids[:-1], "newcomer"], [*ids, "newcomer"])


def test_running_jobs_come_in_batches(store: JobStore) -> None:
    ids = insert_many(store, 250, Phase.EXECUTING)
    batches = list(store.running_jobs({Phase.EXECUTING}, batch=100))
    assert [len(batch) for batch in batches] == [100, 100, 50]
    assert sorted(job.id for batch in batches for job in batch) == ids


def test_deleting_a_job_while_it_finishes_does_not_deadlock(store: JobStore) -> None:
    """A job deleted (by its owner, or when its destruction time passed) while its end
    is recorded: the two transactions take the job's rows in the same order."""
    store.insert_job(a_job("j1"), [Parameter("duration", "1")])
    store.change_phase("j1", {Phase.PENDING}, Phase.COMPLETED, results=[a_result("old")])
    outcome: list[BaseException | None] = []

    def delete_it() -> None:
        try:
            store.delete_job("j1")
        except BaseException as exc:  # reported by the assertion below
            outcome.append(exc)
        else:
            outcome.append(None)

    # What change_phase does: the job row first, then the job's results.
    with store.engine.connect() as finishing, finishing.begin():
        finishing.execute(update(JobRow).where(JobRow.id == "j1").values(phase="ERROR"))
        deleting = threading.Thread(target=delete_it)
        deleting.start()
        wait_until_blocked(store)
        finishing.execute(delete(ResultRow).where(ResultRow.job_id == "j1"))
        result = {"job_id": "j1", "result_id": "new", "path": "x", "content_type": "x"}
        finishing.execute(insert(ResultRow), [{**result, "size": 1, "sha256": "0" * 64}])
    deleting.join(60)
    assert outcome == [None]
    assert store.get_job("j1") is None
    with store.engine.connect() as conn:
        for table in (ResultRow, ParameterRow):
            rows = conn.execute(select(table).where(table.job_id == "j1")).all()
            assert rows == [], table.__tablename__


def wait_until_blocked(store: JobStore) -> None:
    """Until another transaction waits for a lock (PostgreSQL), or a moment (SQLite)."""
    if store.engine.dialect.name != "postgresql":
        time.sleep(0.5)
        return
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 30
    with store.engine.connect() as conn:
        while conn.execute(query).scalar_one() == 0:
            assert time.monotonic() < deadline, "the delete never waited for the job"
            time.sleep(0.05)
            conn.rollback()  # a fresh snapshot of pg_stat_activity


def test_keys_with_nul_match_nothing(store: JobStore) -> None:
    """PostgreSQL text cannot hold NUL: such a key is no row's, and no error."""
    store.insert_job(a_job("j1"), [])
    assert store.get_job("j1\x00") is None
    users = UserStore(store.engine)
    users.add(User("alice", (), True, "hash", None, START))
    assert users.get("alice\x00") is None
    assert users.set_active("alice\x00", False) is False
    assert users.delete("alice\x00") is False
    assert users.get("alice") is not None and store.get_job("j1") is not None


def test_a_job_changed_by_another_process_is_read_anew(store: JobStore) -> None:
    """A job read before is reused only at the same version: a change made through
    another engine (another process of the server, `opus maintenance`) is seen at once."""
    other = JobStore(make_engine(str(store.engine.url.render_as_string(hide_password=False))))
    try:
        store.insert_job(a_job("j1"), [Parameter("duration", "1")])
        first = store.get_details("j1")
        assert first is not None and first.job.phase == Phase.PENDING
        assert store.get_details("j1") is first, "unchanged: the same record"
        assert other.change_phase("j1", {Phase.PENDING}, Phase.QUEUED)
        changed = store.get_details("j1")
        assert changed is not None and changed.job.phase == Phase.QUEUED
        assert changed.job.version == first.job.version + 1
        other.set_parameters("j1", [Parameter("duration", "2")], {Phase.QUEUED})
        assert store.get_details("j1").parameter("duration").value == "2"
        other.change_phase("j1", {Phase.QUEUED}, Phase.COMPLETED, results=[a_result("out")])
        assert [r.result_id for r in store.get_details("j1").results] == ["out"]
        other.delete_job("j1")
        assert store.get_details("j1") is None
    finally:
        other.engine.dispose()


def test_every_write_of_a_job_increments_its_version(store: JobStore) -> None:
    store.insert_job(a_job("j1"), [])
    versions = [store.get_job("j1").version]
    for write in (
        lambda: store.set_destruction("j1", START + timedelta(days=2)),
        lambda: store.set_execution_duration("j1", 30, {Phase.PENDING}),
        lambda: store.set_parameters("j1", [Parameter("duration", "3")], {Phase.PENDING}),
        lambda: store.change_phase("j1", {Phase.PENDING}, Phase.QUEUED),
        lambda: store.set_external_id("j1", "1234"),
        lambda: store.change_phase("j1", {Phase.QUEUED}, Phase.COMPLETED, results=[a_result("r")]),
        lambda: store.delete_results("j1"),
    ):
        write()
        versions.append(store.get_job("j1").version)
    assert versions == list(range(versions[0], versions[0] + 8))


def test_the_users_hot_query_reads_every_column() -> None:
    from opus.server.storage.users import _SELECT_USER

    listed = _SELECT_USER.removeprefix("SELECT ").partition(" FROM")[0].split(", ")
    assert listed == [column.name for column in UserRow.__table__.columns]


def test_a_job_reads_back_as_it_was_inserted(store: JobStore) -> None:
    """insert_job writes on the driver with the columns' own bind processors: every
    value reads back equal through SQLAlchemy, times to the microsecond and in UTC."""
    created = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
    job = replace(
        a_job("j1", created),
        run_id="run ' \" <&>",
        quote=created + timedelta(seconds=5),
        error_message="x\ny",
    )
    store.insert_job(job, [Parameter("a", "1"), Parameter("url", "http://x/y", True)])
    assert store.get_job("j1") == job
    details = store.get_details("j1")
    assert details.parameters == (Parameter("a", "1"), Parameter("url", "http://x/y", True))
    # Time comparisons in SQL agree with what SQLAlchemy itself writes.
    later = replace(a_job("j2", created + timedelta(microseconds=1000)), jobname="sleep")
    with store.engine.begin() as conn:
        values = {c.name: getattr(later, c.name, None) for c in JobRow.__table__.columns}
        conn.execute(insert(JobRow), [{**values, "phase": later.phase.value}])
    after = [s.job_id for s in store.list_jobs("sleep", after=created)]
    assert after == ["j2"]


def test_moving_a_users_jobs_increments_their_versions(store: JobStore) -> None:
    """Deleting a user gives their jobs to another owner, in the same transaction; so
    does giving the name to a new user (the jobs left under it). Both are writes of the
    jobs: their versions move on."""
    users = UserStore(store.engine)
    dave = User("dave", (), True, "hash-dave", None, START)
    assert users.add(dave)
    store.insert_job(replace(a_job("j1"), owner="dave"), [])
    store.insert_job(replace(a_job("j2"), owner="erin"), [])
    before = store.get_job("j1").version
    assert users.delete("dave", jobs_to="deleted:dave:1")
    assert not users.delete("dave", jobs_to="deleted:dave:2")
    moved = store.get_job("j1")
    assert (moved.owner, moved.version) == ("deleted:dave:1", before + 1)
    assert store.get_details("j1").job.owner == "deleted:dave:1"
    # A name given to a new user: the jobs already under it pass on, once it is stored;
    # a name that is taken leaves its user's jobs as they are.
    assert users.add(dave, earlier_jobs_to="deleted:dave:3")
    store.insert_job(replace(a_job("j3"), owner="dave"), [])
    assert not users.add(replace(dave, token_hash="other"), earlier_jobs_to="deleted:dave:4")
    assert store.get_job("j3").owner == "dave"
    erin = User("erin", (), True, "hash-erin", None, START)
    assert store.get_job("j2").owner == "erin"
    assert users.add(erin, earlier_jobs_to="deleted:erin:1")
    assert store.get_job("j2").owner == "deleted:erin:1"
    assert store.get_job("j2").version == before + 1


def test_limited_writes(store: JobStore) -> None:
    """The quota of a write is checked in its transaction: nothing is written past it."""
    from opus.server.storage.limits import Quota, Usage

    store.insert_job(replace(a_job("j1"), stored_bytes=70), [Parameter("a", "1")])
    assert store.usage("anonymous") == Usage(jobs=1, stored_bytes=70, active=0)
    assert store.usage("nobody") == Usage() == store.usage("no\x00body")
    # After the insert, the new job counted.
    assert not store.insert_job(
        replace(a_job("j2"), stored_bytes=40), [Parameter("a", "1")], Quota("anonymous", 3, 100)
    )
    assert store.get_job("j2") is None and store.get_details("j2") is None
    assert not store.insert_job(a_job("j2"), [], Quota("anonymous", jobs_below=2))
    assert store.insert_job(replace(a_job("j2"), stored_bytes=30), [], Quota("anonymous", 3, 100))
    assert store.usage("anonymous") == Usage(jobs=2, stored_bytes=100, active=0)
    # Before an update: PENDING → QUEUED with fewer than N active.
    assert store.change_phase("j1", {Phase.PENDING}, Phase.QUEUED, quota=Quota("x", active_below=1))
    assert not store.change_phase(
        "j2", {Phase.PENDING}, Phase.QUEUED, quota=Quota("anonymous", active_below=1)
    )
    assert store.get_job("j2").phase == Phase.PENDING
    assert not store.set_parameters(
        "j2", [Parameter("a", "2")], {Phase.PENDING}, 31, Quota("anonymous", bytes_at_most=99)
    )
    assert store.get_details("j2").parameters == ()
    assert store.set_parameters(
        "j2", [Parameter("a", "2")], {Phase.PENDING}, 31, Quota("anonymous", bytes_at_most=100)
    )
    assert store.usage("anonymous") == Usage(jobs=2, stored_bytes=101, active=1)
    # An ended job is measured again; ARCHIVED ones count for nothing.
    store.change_phase("j1", {Phase.QUEUED}, Phase.COMPLETED, stored_bytes=500)
    assert store.usage("anonymous").stored_bytes == 531
    store.change_phase("j1", {Phase.COMPLETED}, Phase.ARCHIVED)
    assert store.usage("anonymous") == Usage(jobs=1, stored_bytes=31, active=0)


def test_the_authentication_read_costs_the_same_for_nobody(store: JobStore) -> None:
    from opus.server.storage.users import _AUTHENTICATE

    listed = _AUTHENTICATE.removeprefix("SELECT ").partition(", (SELECT")[0].split(", ")
    assert listed == [f"u.{column.name}" for column in UserRow.__table__.columns]
    users = UserStore(store.engine)
    assert users.add(User("dave", ("a", "b"), True, "hash-dave", None, START))
    found, until = users.authenticate(("", ""), name="dave")
    assert found == users.get("dave") and until is None
    assert users.authenticate(("", ""), token_hash="hash-dave")[0] == found
    assert users.authenticate(("", ""), name="zelda") == (None, None)
    assert users.authenticate(("", ""), name="da\x00ve") == (None, None)


def test_owner_usage_follows_every_write_of_a_job(store: JobStore) -> None:
    """owner_usage (kept by triggers) equals what the owner's jobs add up to, after
    inserts, phase changes (into and out of the active phases, to ARCHIVED), stored
    bytes measured, a change of owner and deletions."""
    from opus.server.storage.models import OwnerUsageRow

    def recount() -> dict[str, tuple[int, int, int]]:
        usage: dict[str, list[int]] = {}
        with store.engine.connect() as conn:
            for owner, phase, stored in conn.execute(
                select(JobRow.owner, JobRow.phase, JobRow.stored_bytes)
            ):
                row = usage.setdefault(owner, [0, 0, 0])
                if phase != Phase.ARCHIVED.value:
                    row[0] += 1
                    row[1] += stored
                if Phase(phase) in RUNNING:
                    row[2] += 1
        return {o: (k, s, a) for o, (k, s, a) in usage.items() if (k, s, a) != (0, 0, 0)}

    def kept() -> dict[str, tuple[int, int, int]]:
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(
                    OwnerUsageRow.owner,
                    OwnerUsageRow.kept,
                    OwnerUsageRow.stored,
                    OwnerUsageRow.active,
                )
            )
            return {o: (k, s, a) for o, k, s, a in rows if (k, s, a) != (0, 0, 0)}

    for index, owner in enumerate(["alice", "alice", "bob", "alice"]):
        job = replace(a_job(f"j{index}"), owner=owner, stored_bytes=10 * (index + 1))
        store.insert_job(job, [])
    assert kept() == recount() == {"alice": (3, 70, 0), "bob": (1, 30, 0)}
    store.change_phase("j0", {Phase.PENDING}, Phase.QUEUED)
    store.change_phase("j1", {Phase.PENDING}, Phase.QUEUED)
    store.change_phase("j2", {Phase.PENDING}, Phase.QUEUED)
    assert kept() == recount()
    store.change_phase("j0", {Phase.QUEUED}, Phase.COMPLETED, stored_bytes=500)
    assert kept() == recount() == {"alice": (3, 560, 1), "bob": (1, 30, 1)}
    store.change_phase("j0", {Phase.COMPLETED}, Phase.ARCHIVED)
    assert kept() == recount() == {"alice": (2, 60, 1), "bob": (1, 30, 1)}
    with store.engine.begin() as conn:  # what deleting a user does to its jobs
        conn.execute(update(JobRow).where(JobRow.owner == "bob").values(owner="deleted:bob:x"))
    assert kept() == recount() == {"alice": (2, 60, 1), "deleted:bob:x": (1, 30, 1)}
    for job_id in ("j1", "j2", "j3"):
        store.delete_job(job_id)
    assert kept() == recount() == {}

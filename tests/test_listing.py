"""The caller's job list a page at a time (JobService.list_user_jobs, GET /jobs) and the
change feed (JobService.changes, wait_changes, GET /changes), in-process: filters, the
runId search, newest first, cursor paging without duplicates or gaps while jobs are
created, the access rule, the bounded scan, the query plans; tokens, another user's
changes, deletions, resets, and a wait woken by a change."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event

from opus.core.access import ADMIN_ROLE, Caller
from opus.core.errors import BadRequest, NotFound
from opus.core.phases import Phase
from opus.core.records import Job
from opus.core.times import utcnow
from opus.server.service import JobService
from opus.server.service import listing as service_listing
from opus.server.storage.listing import ListFilter

ALICE, BOB = Caller("alice"), Caller("bob")
NUMBERS = itertools.count()
ADMIN = Caller("root", frozenset({ADMIN_ROLE}))


def add_jobs(
    service: JobService,
    owner: str,
    count: int,
    jobname: str = "sleep",
    phase: Phase = Phase.PENDING,
    run_id: str | None = None,
) -> list[str]:
    """``count`` jobs stored directly (a millisecond apart, as creations would be); their
    ids, oldest first."""
    start = utcnow()
    ids = []
    for index in range(count):
        created = start + timedelta(milliseconds=index)
        job = Job(
            id=f"{owner}{jobname}{next(NUMBERS):06d}",
            jobname=jobname,
            run_id=run_id if run_id is None else f"{run_id}-{index}",
            owner=owner,
            phase=phase,
            creation_time=created,
            start_time=None,
            end_time=None,
            destruction_time=created + timedelta(days=30),
            quote=None,
            phase_time=created,
            execution_duration=60,
            error_type=None,
            error_message=None,
            external_id=None,
            token_hash="",
        )
        assert service.store.insert_job(job, [])
        ids.append(job.id)
    return ids


def flat(pages: list[list[str]]) -> list[str]:
    return [job_id for page in pages for job_id in page]


def every_page(service: JobService, caller: Caller, **filters) -> list[list[str]]:
    """The ids of every page of a list, following the cursors."""
    pages = []
    cursor = None
    while len(pages) < 2000:  # a cursor that does not move on would loop forever
        page = service.list_user_jobs(caller, cursor=cursor, **filters)
        pages.append([job.job_id for job in page.jobs])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
    raise AssertionError(f"the list does not end: {pages[:3]}…")


# -- the list ------------------------------------------------------------------------


def test_every_type_newest_first_and_one_type(service: JobService) -> None:
    sleeps = add_jobs(service, "alice", 3)
    fails = add_jobs(service, "alice", 2, jobname="fail")
    page = service.list_user_jobs(ALICE)
    assert {j.job_id for j in page.jobs} == set(sleeps + fails)
    assert page.next_cursor is None and page.changes
    times = [(j.creation_time, j.job_id) for j in page.jobs]
    assert times == sorted(times, reverse=True)
    only = service.list_user_jobs(ALICE, types=["fail"])
    assert {j.job_id for j in only.jobs} == set(fails)
    assert {j.jobname for j in only.jobs} == {"fail"}
    both = service.list_user_jobs(ALICE, types=["fail", "sleep"])
    assert {j.job_id for j in both.jobs} == set(sleeps + fails)
    with pytest.raises(NotFound):
        service.list_user_jobs(ALICE, types=["nosuchtype"])


def test_phases_several_and_archived_hidden(service: JobService) -> None:
    pending = add_jobs(service, "alice", 3)
    running = add_jobs(service, "alice", 2, phase=Phase.EXECUTING)
    done = add_jobs(service, "alice", 2, phase=Phase.COMPLETED)
    archived = add_jobs(service, "alice", 2, phase=Phase.ARCHIVED)
    everything = {j.job_id for j in service.list_user_jobs(ALICE).jobs}
    assert everything == set(pending + running + done)
    phases = [Phase.EXECUTING, Phase.COMPLETED]
    chosen = service.list_user_jobs(ALICE, phases=phases)
    assert {j.job_id for j in chosen.jobs} == set(running + done)
    times = [(j.creation_time, j.job_id) for j in chosen.jobs]
    assert times == sorted(times, reverse=True), "branches merged in order"
    shown = service.list_user_jobs(ALICE, phases=[Phase.ARCHIVED])
    assert {j.job_id for j in shown.jobs} == set(archived)
    for page in every_page(service, ALICE, phases=phases, limit=1):
        assert len(page) <= 1
    assert flat(every_page(service, ALICE, phases=phases, limit=1)) == [
        j.job_id for j in chosen.jobs
    ]


def test_run_id_search_is_a_substring_in_any_case(service: JobService) -> None:
    add_jobs(service, "alice", 4, run_id="Survey-North")
    add_jobs(service, "alice", 3, jobname="fail", run_id="survey-south")
    add_jobs(service, "alice", 2)  # no run id
    assert len(service.list_user_jobs(ALICE, run_id="SURVEY").jobs) == 7
    north = service.list_user_jobs(ALICE, run_id="north")
    assert {j.run_id for j in north.jobs} == {f"Survey-North-{n}" for n in range(4)}
    assert len(service.list_user_jobs(ALICE, run_id="y-s", types=["fail"]).jobs) == 3
    assert service.list_user_jobs(ALICE, run_id="nothing").jobs == ()


def test_after_bounds_the_list(service: JobService) -> None:
    ids = add_jobs(service, "alice", 5)
    fourth = service.store.get_job(ids[3])
    later = service.list_user_jobs(ALICE, after=fourth.creation_time)
    assert [j.job_id for j in later.jobs] == [ids[4]]


def test_another_users_jobs_are_never_listed_and_admins_see_all(service: JobService) -> None:
    mine = add_jobs(service, "alice", 30)
    theirs = add_jobs(service, "bob", 30, jobname="fail")
    for caller, expected in ((ALICE, mine), (BOB, theirs), (ADMIN, mine + theirs)):
        listed = flat(every_page(service, caller, limit=7))
        assert sorted(listed) == sorted(expected), caller.name
        assert len(listed) == len(set(listed))
    assert service.list_user_jobs(BOB, types=["sleep"]).jobs == ()
    admin_fails = flat(every_page(service, ADMIN, types=["fail"], limit=9))
    assert sorted(admin_fails) == sorted(theirs)


def test_paging_through_520_jobs_while_jobs_are_created(service: JobService) -> None:
    before = add_jobs(service, "alice", 520)
    stop = threading.Event()
    created: list[str] = []

    def create_more() -> None:
        # Within the owner's JOBS_PER_USER_MAX (1000).
        while not stop.is_set() and len(created) < 300:
            created.append(service.create_job(ALICE, "sleep", {"duration": "1"}).id)
            time.sleep(0.002)

    creator = threading.Thread(target=create_more)
    creator.start()
    try:
        time.sleep(0.1)
        pages = []
        cursor = None
        while True:
            page = service.list_user_jobs(ALICE, cursor=cursor, limit=50)
            pages.append([j.job_id for j in page.jobs])
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            time.sleep(0.01)
    finally:
        stop.set()
        creator.join(30)
    listed = flat(pages)
    twice = {job_id for job_id in listed if listed.count(job_id) > 1}
    assert not twice, [
        (
            index,
            [
                (j.job_id, j.creation_time)
                for j in service.list_user_jobs(ALICE, limit=500).jobs
                if j.job_id in twice
            ],
            page[:2],
            page[-2:],
        )
        for index, page in enumerate(pages)
        if twice & set(page)
    ]
    assert set(before) <= set(listed), "no job that was there is missed"
    assert set(listed) <= set(before) | set(created)
    assert created, "jobs were created meanwhile"
    assert all(len(page) == 50 for page in pages[:-1])


def test_jobs_created_in_the_same_millisecond_page_by_id(service: JobService) -> None:
    """Ties on the creation time (times are kept to the millisecond) are ordered by id,
    on the way down and the way back: no job twice, none missed."""
    start = utcnow()
    ids = []
    for index in range(40):
        job_id = f"tie{index % 7}{index:03d}"
        created = start + timedelta(milliseconds=index // 8)  # 8 jobs per millisecond
        job = Job(
            *(job_id, "sleep", None, "alice", Phase.PENDING, created, None, None),
            *(created + timedelta(days=1), None, created, 60, None, None, None, ""),
        )
        assert service.store.insert_job(job, [])
        ids.append(job_id)
    expected = [j.job_id for j in service.list_user_jobs(ALICE, limit=100).jobs]
    assert sorted(expected) == sorted(ids)
    for limit in (1, 3, 8):
        assert flat(every_page(service, ALICE, limit=limit)) == expected
        page = service.list_user_jobs(ALICE, limit=limit)
        while page.next_cursor:
            page = service.list_user_jobs(ALICE, cursor=page.next_cursor, limit=limit)
        # Back up: each newer page ends just above the page it was asked from.
        while page.newer_cursor:
            top = expected.index(page.jobs[0].job_id)
            page = service.list_user_jobs(ALICE, newer=page.newer_cursor, limit=limit)
            shown = [j.job_id for j in page.jobs]
            assert shown == expected[max(0, top - limit) : top] or shown == expected[:limit]
        assert [j.job_id for j in page.jobs] == expected[:limit]


def test_a_job_created_on_a_whole_second_ends_a_page_once(service: JobService) -> None:
    """A creation time without a fraction of a second is stored as every other time is
    (storage/engine.py, HotInsert): a page that ends on such a job does not list it
    again at the top of the next one."""
    whole = utcnow().replace(microsecond=0)
    ids = []
    for index in range(4):
        created = whole + timedelta(milliseconds=index - 1)  # .999, .000, .001, .002
        job = Job(
            *(f"whole{index}", "sleep", None, "alice", Phase.PENDING, created, None, None),
            *(created + timedelta(days=1), None, created, 60, None, None, None, ""),
        )
        assert service.store.insert_job(job, [])
        ids.append(job.id)
    for limit in (1, 2, 3):
        assert flat(every_page(service, ALICE, limit=limit)) == ids[::-1]


def pages_back(service: JobService, caller: Caller, newer: str, **filters) -> list[list[str]]:
    """The ids of every page from a "newer" cursor back up to the first page."""
    pages = []
    while True:
        page = service.list_user_jobs(caller, newer=newer, **filters)
        pages.append([job.job_id for job in page.jobs])
        if page.newer_cursor is None:
            return pages
        newer = page.newer_cursor


def test_newer_pages_lead_back_to_the_first(service: JobService) -> None:
    add_jobs(service, "alice", 23)
    add_jobs(service, "alice", 4, phase=Phase.EXECUTING)
    add_jobs(service, "bob", 5)
    forward = every_page(service, ALICE, limit=5)
    assert [len(page) for page in forward] == [5, 5, 5, 5, 5, 2]
    first = service.list_user_jobs(ALICE, limit=5)
    assert first.newer_cursor is None
    # From the last page, each "newer" page is the page before it, the same jobs.
    last = service.list_user_jobs(ALICE, limit=5)
    for _ in range(5):
        last = service.list_user_jobs(ALICE, cursor=last.next_cursor, limit=5)
    assert [j.job_id for j in last.jobs] == forward[-1] and last.newer_cursor
    back = pages_back(service, ALICE, last.newer_cursor, limit=5)
    assert back == forward[-2::-1]
    # A page whose newer jobs do not fill a page: the way back gives the first page, full.
    second = service.list_user_jobs(ALICE, cursor=first.next_cursor, limit=5)
    shifted = service.list_user_jobs(ALICE, cursor=second.next_cursor, limit=3)
    again = service.list_user_jobs(ALICE, newer=shifted.newer_cursor, limit=10)
    assert [j.job_id for j in again.jobs] == flat(forward)[:10] and again.newer_cursor is None
    # Filters apply on the way back too.
    phases = [Phase.EXECUTING]
    running = every_page(service, ALICE, phases=phases, limit=2)
    tail = service.list_user_jobs(ALICE, phases=phases, limit=2, cursor=None)
    tail = service.list_user_jobs(ALICE, phases=phases, limit=2, cursor=tail.next_cursor)
    assert [j.job_id for j in tail.jobs] == running[1]
    assert pages_back(service, ALICE, tail.newer_cursor, phases=phases, limit=2) == [running[0]]
    with pytest.raises(BadRequest):
        service.list_user_jobs(ALICE, newer="not a cursor")


def test_a_search_reads_a_bounded_number_of_jobs(service: JobService, monkeypatch) -> None:
    monkeypatch.setattr(service_listing, "SCAN_BUDGET", 100)
    needles = add_jobs(service, "alice", 3, run_id="needle")
    add_jobs(service, "alice", 250)
    first = service.list_user_jobs(ALICE, run_id="needle", limit=10)
    # 250 newer jobs do not match: the first request stops after 100 of them.
    assert first.jobs == () and first.next_cursor is not None
    pages = every_page(service, ALICE, run_id="needle", limit=10)
    assert sorted(flat(pages)) == sorted(needles)


def test_bad_cursors_and_sizes_are_refused(service: JobService, app) -> None:
    for cursor in ("nope", "bm9zbGFzaA", "x" * 300):
        with pytest.raises(BadRequest) as refused:
            service.list_user_jobs(ALICE, cursor=cursor)
        assert refused.value.field == "CURSOR"
    for limit in (0, service_listing.PAGE_SIZE_MAX + 1):
        with pytest.raises(BadRequest):
            service.list_user_jobs(ALICE, limit=limit)
    assert app.get("/jobs?LAST=0", status=400).json["error"]["field"] == "LAST"
    assert app.get("/jobs?LAST=501", status=400).json["error"]["field"] == "LAST"
    assert app.get("/jobs?TYPE=nosuchtype", status=404).json["error"]["status"] == 404
    assert app.get("/jobs?CURSOR=a&CURSOR=b", status=400).json["error"]["field"] == "CURSOR"


def test_get_jobs_pages_by_cursor(app) -> None:
    for n in range(7):
        app.post("/rest/sleep", {"RUNID": f"job {n}"}, status=303)
        time.sleep(0.002)  # times in milliseconds: not two in one
    app.post("/rest/fail", {}, status=303)
    first = app.get("/jobs", {"LAST": "3", "TYPE": "sleep"})
    assert first.headers["Cache-Control"] == "no-store"
    assert [j["runId"] for j in first.json["jobs"]] == ["job 6", "job 5", "job 4"]
    second = app.get("/jobs", {"LAST": "3", "TYPE": "sleep", "CURSOR": first.json["next"]})
    assert [j["runId"] for j in second.json["jobs"]] == ["job 3", "job 2", "job 1"]
    # Case-insensitive names, as UWS's.
    same = app.get("/jobs", {"last": "3", "type": "sleep", "cursor": first.json["next"]})
    assert same.json["jobs"] == second.json["jobs"]
    assert len(app.get("/jobs").json["jobs"]) == 8
    assert len(app.get("/jobs?PHASE=PENDING&RUNID=JOB").json["jobs"]) == 7


def test_the_list_queries_use_the_list_indexes(service: JobService) -> None:
    engine = service.store.engine
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT JOBS.ID"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        lists = service.store.lists
        for where in (
            ListFilter("alice", ("sleep",)),
            ListFilter("alice", ("sleep",), (Phase.EXECUTING, Phase.ERROR)),
            ListFilter(None, ("sleep", "fail")),
            ListFilter(None, ("sleep",), (Phase.COMPLETED,)),
        ):
            lists.page(where, None, 50, 1000)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(seen) == 6
    expected = ["ix_jobs_owner_list", *["ix_jobs_owner_phase"] * 2, *["ix_jobs_list"] * 2]
    expected.append("ix_jobs_list_phase")
    with engine.connect() as conn:
        for (statement, parameters), index in zip(seen, expected, strict=True):
            if engine.dialect.name == "sqlite":
                plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
                text = " ".join(str(row[-1]) for row in plan)
                assert f"INDEX {index} " in text and "TEMP B-TREE" not in text, text
            else:
                # An empty table: PostgreSQL may take another list index (or rightly a
                # sequential scan); the plans of 10^5 jobs are bench/bench_listing.py's.
                conn.exec_driver_sql("SET enable_seqscan = off")
                plan = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
                text = " ".join(str(row[0]) for row in plan)
                assert "Index" in text and "Sort" not in text, (index, text)
                conn.exec_driver_sql("SET enable_seqscan = on")


# -- the change feed -------------------------------------------------------------------


def test_changes_since_a_token(service: JobService) -> None:
    token = service.list_user_jobs(ALICE).changes
    assert service.changes(ALICE, token).empty
    job = service.create_job(ALICE, "sleep", {"duration": "1"})
    created = service.changes(ALICE, token)
    assert [j.job_id for j in created.jobs] == [job.id] and created.deleted == ()
    assert created.jobs[0].phase == Phase.PENDING and created.token != token
    assert service.changes(ALICE, created.token).empty, "a change is told once"
    service.abort(ALICE, "sleep", job.id)
    aborted = service.changes(ALICE, created.token)
    assert [(j.job_id, j.phase) for j in aborted.jobs] == [(job.id, Phase.ABORTED)]
    assert aborted.jobs[0].version > created.jobs[0].version
    service.delete(ALICE, "sleep", job.id)
    deleted = service.changes(ALICE, aborted.token)
    assert deleted.jobs == () and deleted.deleted == (job.id,)
    # From the first token: the job's last state, deleted.
    assert service.changes(ALICE, token).deleted == (job.id,)


def test_other_users_changes_are_not_told_and_admins_hear_all(service: JobService) -> None:
    token = service.changes_token()
    mine = service.create_job(ALICE, "sleep", {})
    theirs = service.create_job(BOB, "sleep", {})
    service.abort(BOB, "sleep", theirs.id)
    assert [j.job_id for j in service.changes(ALICE, token).jobs] == [mine.id]
    assert [j.job_id for j in service.changes(BOB, token).jobs] == [theirs.id]
    assert {j.job_id for j in service.changes(ADMIN, token).jobs} == {mine.id, theirs.id}
    service.delete(BOB, "sleep", theirs.id)
    assert service.changes(ALICE, token).deleted == ()
    assert service.changes(ADMIN, token).deleted == (theirs.id,)


def test_every_write_is_a_change(service: JobService) -> None:
    job = service.create_job(ALICE, "sleep", {"duration": "1"})
    for change in (
        lambda: service.update_parameters(ALICE, "sleep", job.id, {"duration": "2"}),
        lambda: service.set_execution_duration(ALICE, "sleep", job.id, "30"),
        lambda: service.set_destruction(ALICE, "sleep", job.id, "2030-01-01T00:00:00Z"),
    ):
        token = service.changes_token()
        change()
        assert [j.job_id for j in service.changes(ALICE, token).jobs] == [job.id]


def test_too_many_changes_or_a_forgotten_deletion_say_reset(
    service: JobService, monkeypatch
) -> None:
    token = service.changes_token()
    monkeypatch.setattr(service_listing, "CHANGES_MAX", 5)
    add_jobs(service, "alice", 6)
    many = service.changes(ALICE, token)
    assert many.reset and many.jobs == () and not many.empty
    assert service.changes(ALICE, many.token).empty
    job = service.create_job(ALICE, "sleep", {})
    before_deletion = service.changes_token()
    service.delete(ALICE, "sleep", job.id)
    assert service.changes(ALICE, before_deletion).deleted == (job.id,)
    # The tombstone forgotten (as the reconciler does after TOMBSTONE_DAYS).
    assert service.store.changes.prune(utcnow() + timedelta(days=1), keep=timedelta(0)) == 1
    assert service.changes(ALICE, before_deletion).reset
    assert not service.changes(ALICE, service.changes_token()).reset


def test_tokens_that_are_not_this_servers_are_refused(service: JobService, app) -> None:
    for token in ("", "x", "s", "s-1", "p1:2:3", "p5:3:", "p1:9:4,2", "s" + "9" * 40):
        with pytest.raises(BadRequest) as refused:
            service.changes(ALICE, token)
        assert refused.value.field == "since"
    assert app.get("/changes?since=nope", status=400).json["error"]["field"] == "since"


def test_get_changes_without_since_gives_a_token(app) -> None:
    start = app.get("/changes")
    assert start.headers["Cache-Control"] == "no-store"
    assert start.json["jobs"] == [] and start.json["token"]
    app.post("/rest/sleep", {"RUNID": "new"}, status=303)
    changed = app.get("/changes", {"since": start.json["token"]}).json
    assert [j["runId"] for j in changed["jobs"]] == ["new"]
    assert changed["jobs"][0]["href"].endswith(f"/rest/sleep/{changed['jobs'][0]['jobId']}")


def test_a_wait_for_changes_in_a_thread(service: JobService, app) -> None:
    token = service.changes_token()
    started = time.monotonic()
    quiet = service.wait_changes(ALICE, token, 1.0)
    assert quiet.empty and time.monotonic() - started >= 0.9
    # Another user's change wakes nothing for alice.
    threading.Timer(0.2, lambda: service.create_job(BOB, "sleep", {})).start()
    threading.Timer(0.6, lambda: service.create_job(ALICE, "sleep", {})).start()
    started = time.monotonic()
    found = service.wait_changes(ALICE, quiet.token, 10.0)
    elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 1.6, elapsed
    assert [j.owner for j in found.jobs] == ["alice"]
    # Over HTTP (a thread of the WSGI server).
    token = app.get("/changes").json["token"]
    threading.Timer(0.3, lambda: app.post("/rest/sleep", {}, status=303)).start()
    started = time.monotonic()
    answer = app.get("/changes", {"since": token, "WAIT": "10"}).json
    assert len(answer["jobs"]) == 1 and time.monotonic() - started < 2

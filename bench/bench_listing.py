"""The JSON job list (GET /jobs) at 10^4 and 10^5 jobs of one user, and live pages.

For each size (default 10^4 and 10^5 jobs; --sizes) a fresh database with the real
schema is filled by bench_list.fill_database (every column of ``jobs``; SQLite bulk
inserts, or PostgreSQL COPY + VACUUM ANALYZE with ``--database postgresql``): jobs of
one owner (``anonymous``, not an admin: the owner's indexes), of three job types in
turn, with run ids, phases as bench_list's (60% COMPLETED, 10% EXECUTING, 10% ERROR...).
Then, against a fresh `opus serve`, sequential keep-alive GETs (after a warm-up) of:

- ``first``: ``/jobs?LAST=50`` (every type, newest first);
- ``phases``: ``/jobs?LAST=50&PHASE=EXECUTING&PHASE=ERROR`` (two index ranges merged);
- ``deep``: ``/jobs?LAST=50&CURSOR=…``, the cursor of the job 90% down the list;
- ``type``: ``/jobs?LAST=50&TYPE=fail``;
- ``search``: ``/jobs?LAST=50&RUNID=nosuch`` (a run id search that matches nothing:
  the bounded scan, 5,000 jobs read, an empty page and a cursor).

Printed per query: p50 / p99 of the time the server takes, measured in-process
(JobService.list_user_jobs on the same database, what a route calls), and of the whole
GET on loopback (HTTP, JSON, the round trip). Target: p50 at the largest size within
1.5x of the smallest, for ``first`` and ``deep``. The query plans of the first page
(SQLite EXPLAIN QUERY PLAN, PostgreSQL EXPLAIN) are printed for each size.

Then, on the largest size, LIVE_PAGES clients follow the change feed as a job list
page does (static/js/jobs.js: ``GET /changes?since=TOKEN&WAIT=30``, again with each
answer's token) for --live-seconds while one job changes phase every CHANGE_EVERY
seconds. Printed: requests per page against changes plus 30 s keep-alives (target: no
more), the time from a change to each page's answer (target: < 1 s), and the server's
threads while the pages wait (parked: no thread each).

    .venv/bin/python bench/bench_listing.py [--quick] [--sizes 10000,100000]
        [--database sqlite|postgresql] [--live-seconds 65]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bench_list
import benchlib as b

OWNER = "anonymous"
JOBNAMES = ("sleep", "fail", "append_text")
PAGE = 50
REPEATS = 200
WARMUP = 10
TARGET_RATIO = 1.5
LIVE_PAGES = 20
LIVE_WAIT = 30
CHANGE_EVERY = 10.0
# The reconciler would load every EXECUTING job each pass (10% of the table).
SERVER_ENV = {"OPUS_RECONCILE_INTERVAL": "3600"}


def deep_cursor(service: Any, depth: int) -> str:
    """The cursor of the owner's job ``depth`` down the list, newest first (read once,
    here, by an OFFSET: the server never does)."""
    from sqlalchemy import select

    from opus.server.service.listing import encode_cursor
    from opus.server.storage import JobRow
    from opus.server.storage.listing import Position

    statement = (
        select(JobRow.creation_time, JobRow.id)
        .where(JobRow.owner == OWNER)
        .order_by(JobRow.creation_time.desc(), JobRow.id.desc())
        .offset(depth)
        .limit(1)
    )
    with service.store.engine.connect() as conn:
        created, job_id = conn.execute(statement).one()
    return encode_cursor(Position(created, job_id))


def queries(cursor: str) -> dict[str, dict[str, Any]]:
    """Each query: its keyword arguments of list_user_jobs and its GET path."""
    return {
        "first": {"args": {}, "path": f"/jobs?LAST={PAGE}"},
        "phases": {
            "args": {"phases": ["EXECUTING", "ERROR"]},
            "path": f"/jobs?LAST={PAGE}&PHASE=EXECUTING&PHASE=ERROR",
        },
        "deep": {"args": {"cursor": cursor}, "path": f"/jobs?LAST={PAGE}&CURSOR={cursor}"},
        "type": {"args": {"types": ["fail"]}, "path": f"/jobs?LAST={PAGE}&TYPE=fail"},
        "search": {"args": {"run_id": "nosuch"}, "path": f"/jobs?LAST={PAGE}&RUNID=nosuch"},
    }


def time_service(service: Any, args: dict[str, Any]) -> list[float]:
    from opus.core.access import Caller
    from opus.core.phases import Phase

    caller = Caller(OWNER)
    if "phases" in args:
        args = {**args, "phases": [Phase(p) for p in args["phases"]]}
    times = []
    for i in range(WARMUP + REPEATS):
        started = time.perf_counter()
        page = service.list_user_jobs(caller, limit=PAGE, **args)
        elapsed = time.perf_counter() - started
        if i >= WARMUP:
            times.append(elapsed)
    if not page.jobs and "run_id" not in args:
        raise RuntimeError(f"empty page for {args}")
    return times


def time_http(base_url: str, path: str) -> tuple[list[float], int]:
    conn = b.connection(base_url)
    times = []
    jobs = 0
    try:
        for i in range(WARMUP + REPEATS):
            started = time.perf_counter()
            status, _, body = b.request(conn, "GET", path)
            elapsed = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
            if i >= WARMUP:
                times.append(elapsed)
            jobs = len(json.loads(body)["jobs"])
    finally:
        conn.close()
    return times, jobs


def plans(service: Any) -> list[str]:
    """The database's plans of the first page's statements (one per index range)."""
    from sqlalchemy import event

    from opus.core.access import Caller
    from opus.core.phases import Phase

    engine = service.store.engine
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT JOBS.ID"):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        service.list_user_jobs(Caller(OWNER), limit=PAGE)
        service.list_user_jobs(Caller(OWNER), phases=[Phase.EXECUTING], limit=PAGE)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    lines = []
    with engine.connect() as conn:
        for statement, parameters in captured:
            if engine.dialect.name == "sqlite":
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                lines.append("; ".join(str(row[-1]) for row in rows))
            else:
                rows = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                lines.append("; ".join(" ".join(str(row[0]).split()) for row in rows))
    return lines


def open_service(base: Path, url: str) -> Any:
    from opus.server.app import build_service
    from opus.settings import Settings

    settings = Settings(VAR_PATH=base / "var", JDL_PATH=base / "jdl", DATABASE_URL=url)
    return build_service(settings)


# -- live pages --------------------------------------------------------------------------


class LivePage(threading.Thread):
    """A job list page following the change feed until ``stop``."""

    def __init__(self, base_url: str, token: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base_url, self.token, self.stop = base_url, token, stop
        self.requests = 0
        self.changes: list[float] = []  # when an answer with changes came
        self.quiet: list[float] = []  # when an empty (timed-out) answer came
        self.failure: str | None = None

    def run(self) -> None:
        conn = b.connection(self.base_url, timeout=LIVE_WAIT + 30)
        try:
            while not self.stop.is_set():
                path = f"/changes?since={quote(self.token)}&WAIT={LIVE_WAIT}"
                status, _, body = b.request(conn, "GET", path)
                self.requests += 1
                if status != 200:
                    self.failure = f"{status} {body[:200]!r}"
                    return
                answer = json.loads(body)
                (self.changes if answer["jobs"] else self.quiet).append(time.monotonic())
                self.token = answer["token"]
        except OSError as exc:
            if not self.stop.is_set():
                self.failure = str(exc)
        finally:
            conn.close()


def live_pages(server: b.OpusServer, service: Any, seconds: float) -> dict[str, Any]:
    """LIVE_PAGES pages follow the feed while a job changes every CHANGE_EVERY s."""
    from sqlalchemy import select

    from opus.server.storage import JobRow

    with service.store.engine.connect() as conn:
        pending = conn.execute(
            select(JobRow.jobname, JobRow.id).where(JobRow.phase == "PENDING").limit(100)
        ).all()
    conn = b.connection(server.base_url)
    token = json.loads(b.request(conn, "GET", "/changes")[2])["token"]
    stop = threading.Event()
    pages = [LivePage(server.base_url, token, stop) for _ in range(LIVE_PAGES)]
    for page in pages:
        page.start()
    changed_at: list[float] = []
    threads = []
    started = time.monotonic()
    try:
        for jobname, job_id in pending:
            if time.monotonic() - started > seconds - CHANGE_EVERY:
                break
            time.sleep(CHANGE_EVERY / 2)
            threads.append(b.proc_status_kb(server.pid, "Threads"))
            time.sleep(CHANGE_EVERY / 2)
            changed_at.append(time.monotonic())
            status, _, _ = b.request(conn, "POST", f"/rest/{jobname}/{job_id}/phase", "PHASE=ABORT")
            if status != 303:
                raise RuntimeError(f"abort answered {status}")
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    finally:
        stop.set()
        conn.close()
    latencies = []
    for page in pages:
        for when in changed_at:
            later = [t - when for t in page.changes if t >= when]
            if later:
                latencies.append(min(later))
    elapsed = time.monotonic() - started
    allowed = len(changed_at) + int(elapsed // LIVE_WAIT) + 1
    return {
        "changes": len(changed_at),
        "seconds": elapsed,
        "requests": [page.requests for page in pages],
        "allowed": allowed,
        "seen": min(len(page.changes) for page in pages),
        "latencies": latencies,
        "threads": max(threads) if threads else 0,
        "failures": [page.failure for page in pages if page.failure],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 jobs, 35 s live")
    parser.add_argument("--sizes", help="comma-separated job counts")
    parser.add_argument("--database", choices=b.DATABASES, default="sqlite")
    parser.add_argument("--live-seconds", type=float, default=None)
    args = parser.parse_args()
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = [10**3, 10**4] if args.quick else [10**4, 10**5]
    live_seconds = args.live_seconds or (35.0 if args.quick else 65.0)
    b.heading(
        f"bench_listing: GET /jobs with {', '.join(f'{n:,}' for n in sizes)} jobs of one "
        f"user ({args.database}), then {LIVE_PAGES} live pages"
    )
    p50: dict[str, dict[int, float]] = {}
    live: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(b.postgres_cluster()) if args.database != "sqlite" else None
        for count in sizes:
            with (
                b.workdir(f"listing{count}") as base,
                bench_list.size_database(cluster, base, count) as url,
            ):
                seconds = bench_list.fill_database(url, count, jobnames=JOBNAMES, run_ids=True)
                print(f"\n  -- {count:,} jobs --")
                b.line("database fill", f"{seconds:.1f} s")
                service = open_service(base, url)
                for plan in plans(service):
                    b.line("plan", plan)
                server = b.OpusServer(
                    base / "var",
                    base / "jdl",
                    SERVER_ENV,
                    database_url=None if cluster is None else url,
                )
                with server:
                    for label, query in queries(deep_cursor(service, count * 9 // 10)).items():
                        inside = time_service(service, query["args"])
                        outside, jobs = time_http(server.base_url, query["path"])
                        p50.setdefault(label, {})[count] = b.median(inside)
                        b.line(
                            f"{label}: server p50 / p99, GET p50 / p99",
                            f"{b.ms(b.median(inside))} / {b.ms(b.percentile(inside, 0.99))}, "
                            f"{b.ms(b.median(outside))} / {b.ms(b.percentile(outside, 0.99))}"
                            f"  ({jobs} jobs)",
                        )
                    if count == sizes[-1]:
                        live = live_pages(server, service, live_seconds)
                service.store.engine.dispose()
    print()
    figures: dict[str, object] = {"database": args.database}
    small, large = sizes[0], sizes[-1]
    for label, by_size in p50.items():
        ratio = by_size[large] / by_size[small]
        target = label in ("first", "deep")
        b.line(
            f"{label}: server p50 {large:,} / {small:,}",
            f"{ratio:.2f}x"
            + (f"  ({b.verdict(ratio <= TARGET_RATIO)}: within 1.5x)" if target else ""),
        )
        figures[f"{label}_ms"] = f"{by_size[large] * 1000:.2f}"
        figures[f"{label}_ratio"] = f"{ratio:.2f}"
    if live:
        worst = max(live["requests"])
        b.line(
            "live pages: requests per page (changes + 30 s keep-alives)",
            f"max {worst}, allowed {live['allowed']} ({live['changes']} changes in "
            f"{live['seconds']:.0f} s)  ({b.verdict(worst <= live['allowed'])})",
        )
        latencies = live["latencies"]
        if latencies:
            b.line(
                "live pages: change to answer p50 / max",
                f"{b.ms(b.median(latencies))} / {b.ms(max(latencies))}  "
                f"({b.verdict(max(latencies) < 1.0)}: < 1 s; every page saw "
                f"{live['seen']} of {live['changes']})",
            )
        b.line("live pages: server threads while they wait", f"{live['threads']}")
        if live["failures"]:
            b.line("live pages: failures", "; ".join(live["failures"][:3]))
        figures["live_requests_max"] = worst
        figures["live_allowed"] = live["allowed"]
        figures["live_max_ms"] = f"{max(latencies) * 1000:.0f}" if latencies else "nan"
    b.result("bench_listing", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

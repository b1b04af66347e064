"""Job-list latency against the number of jobs stored, and the memory of a full list.

For each size (10^3, 10^5, 10^6 jobs; --quick: 10^3, 10^4, 10^5) a fresh database is
created with the real schema (the migrations, `opus db upgrade`) and filled directly:
SQLite (the default) with SQLAlchemy Core bulk inserts into ``jobs``; PostgreSQL
(``--database postgresql``: a throwaway server, tests/pg_cluster.py, one database per
size) with COPY (psycopg2 ``copy_expert``) followed by VACUUM ANALYZE. In both, the
secondary indexes are dropped before the rows go in and built once after. Ids have the
real format (24 lowercase base32 characters), creation times are spread over the past
year and inserted in time order (as a live server would), phases are ~60% COMPLETED,
10% EXECUTING, 10% ERROR, 10% ABORTED, 7% PENDING, 3% ARCHIVED, all of type ``sleep``
and owner ``anonymous``. Rows
are made so that the server's reconciler leaves them alone: no QUEUED job (one without
an external id would be declared lost), no external id, destruction a year ahead.

Then a fresh `opus serve` answers ~30 sequential keep-alive requests (after 3 warm-up
requests) of ``GET /rest/sleep?LAST=50&PHASE=EXECUTING`` and ``GET /rest/sleep?LAST=50``;
median and p95 are printed, and the ratio largest/smallest size (target: within 2x).
On the largest size the FULL list (``GET /rest/sleep``, streamed) is read in chunks,
counting bytes and jobrefs, and the server's peak RSS (VmHWM) is read before and after
(target: < 300 MB peak).

The servers run with RECONCILE_INTERVAL=3600 so that the reconciler (which loads
every active job each pass: 10% of the table here) does not mix into the list figures;
one reconciler pass is measured on its own, as `opus maintenance` in a fresh process.

    .venv/bin/python bench/bench_list.py [--quick] [--sizes 1000,100000]
        [--database sqlite|postgresql] [--no-full-list]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import benchlib as b

JOBNAME = "sleep"
OWNER = "anonymous"
QUERIES = {
    "LAST=50&PHASE=EXECUTING": f"/rest/{JOBNAME}?LAST=50&PHASE=EXECUTING",
    "LAST=50": f"/rest/{JOBNAME}?LAST=50",
}
REPEATS = 30
WARMUP = 3
BATCH = 50_000
PHASES = [
    ("COMPLETED", 0.60),
    ("EXECUTING", 0.10),
    ("ERROR", 0.10),
    ("ABORTED", 0.10),
    ("PENDING", 0.07),
    ("ARCHIVED", 0.03),
]
TARGET_RATIO = 2.0
TARGET_PEAK_MB = 300.0
FULL_LIST_TIMEOUT = 1800.0
READ_CHUNK = 256 * 1024
JOBREF = b"<uws:jobref "
# The reconciler of the server would load every EXECUTING job each 5 s (100,000 of
# them at 10^6 jobs): measured on its own (reconcile pass), kept out of the list figures.
SERVER_ENV = {"OPUS_RECONCILE_INTERVAL": "3600"}
TOKEN_HASH = "0" * 64
ERROR_MESSAGE = "the job script exited with status 1"  # never checked here: no job of these signals


# -- filling the database ---------------------------------------------------------------


def _db_time(value: datetime) -> str:
    """The text of a naive-UTC timestamp (what SQLAlchemy's SQLite DateTime stores, and
    what PostgreSQL's COPY reads into a timestamp without time zone)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _rows(
    count: int,
    first: int,
    now: datetime,
    rng: random.Random,
    jobnames: tuple[str, ...] = (JOBNAME,),
    run_ids: bool = False,
    owner: str = OWNER,
) -> list[dict[str, Any]]:
    """Rows first..first+BATCH-1 of a table of ``count`` jobs of ``owner``, oldest first
    (of the job types ``jobnames`` in turn; with run ids ``run-N`` if ``run_ids``)."""
    year = 365 * 86400.0
    start = now - timedelta(seconds=year)
    destruction = _db_time(now + timedelta(days=366))
    names = [p for p, _ in PHASES]
    weights = [w for _, w in PHASES]
    end = min(count, first + BATCH)
    raw = base64.b32encode(os.urandom(15 * (end - first))).decode().lower()
    phases = rng.choices(names, weights, k=end - first)
    rows = []
    for k, i in enumerate(range(first, end)):
        created = start + timedelta(seconds=(i + rng.random()) * year / count)
        created = created.replace(microsecond=created.microsecond // 1000 * 1000)
        phase = phases[k]
        started = ended = None
        if phase != "PENDING":
            started = created + timedelta(seconds=rng.uniform(0.1, 5))
            if phase != "EXECUTING":
                ended = started + timedelta(seconds=rng.uniform(1, 60))
        changed = ended or started or created
        rows.append(
            {
                "id": raw[24 * k : 24 * (k + 1)],
                "jobname": jobnames[i % len(jobnames)],
                "run_id": f"run-{i}" if run_ids else None,
                "owner": owner,
                "phase": phase,
                "creation_time": _db_time(created),
                "start_time": _db_time(started) if started else None,
                "end_time": _db_time(ended) if ended else None,
                "destruction_time": destruction,
                "quote": None,
                "phase_time": _db_time(changed),
                "execution_duration": 60,
                "error_type": "fatal" if phase == "ERROR" else None,
                "error_message": ERROR_MESSAGE if phase == "ERROR" else None,
                "external_id": None,
                "token_hash": TOKEN_HASH,
                "version": 0,
                "stored_bytes": 0,
                # Older than any token of the change feed (SQLite's triggers number the
                # rows as they go in; PostgreSQL's are off for the load).
                "change_seq": 0,
            }
        )
    return rows


def _copy_text(rows: list[dict[str, Any]], columns: list[str]) -> io.StringIO:
    """The rows in COPY's text format (no value here holds a tab, newline or backslash)."""
    out = io.StringIO()
    for row in rows:
        out.write("\t".join("\\N" if row[c] is None else str(row[c]) for c in columns))
        out.write("\n")
    out.seek(0)
    return out


def fill_database(
    url: str,
    count: int,
    seed: int = 1,
    jobnames: tuple[str, ...] = (JOBNAME,),
    run_ids: bool = False,
    owner: str = OWNER,
) -> float:
    """Migrate the database at ``url`` and insert ``count`` jobs (``_rows``); seconds taken."""
    from sqlalchemy import column, insert, table, text

    from opus.server import schema
    from opus.server.storage import JobRow, make_engine

    started = time.monotonic()
    schema.upgrade(url)
    engine = make_engine(url)
    columns = [c.name for c in JobRow.__table__.columns]
    # Untyped columns: the values go in as the text SQLAlchemy would have written.
    jobs = table("jobs", *(column(name) for name in columns))
    indexes = list(JobRow.__table__.indexes)
    now = datetime.now(UTC)
    rng = random.Random(seed)
    postgresql = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if not postgresql:
            conn.execute(text("PRAGMA synchronous=OFF"))
            conn.execute(text("PRAGMA cache_size=-524288"))
        else:
            conn.execute(text("SET maintenance_work_mem = '256MB'"))
            # The owner_usage triggers off for the load (the throwaway cluster's user is
            # a superuser); the usage is counted once at the end instead.
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        # Secondary indexes are built once at the end: much faster than row by row.
        for index in indexes:
            index.drop(conn)
        cursor = conn.connection.driver_connection.cursor() if postgresql else None
        for first in range(0, count, BATCH):
            rows = _rows(count, first, now, rng, jobnames, run_ids, owner)
            if cursor is not None:
                copy = f"COPY jobs ({', '.join(columns)}) FROM STDIN"
                cursor.copy_expert(copy, _copy_text(rows, columns))
            else:
                conn.execute(insert(jobs), rows)
        for index in indexes:
            index.create(conn)
        if postgresql:
            conn.execute(text("DELETE FROM owner_usage"))
            conn.execute(
                text(
                    "INSERT INTO owner_usage (owner, kept, stored, active) SELECT owner, "
                    "SUM(CASE WHEN phase <> 'ARCHIVED' THEN 1 ELSE 0 END), "
                    "SUM(CASE WHEN phase <> 'ARCHIVED' THEN stored_bytes ELSE 0 END), "
                    "SUM(CASE WHEN phase IN ('QUEUED', 'EXECUTING', 'HELD', 'SUSPENDED', "
                    "'UNKNOWN') THEN 1 ELSE 0 END) FROM jobs GROUP BY owner"
                )
            )
    if postgresql:
        # What autovacuum would do soon after a bulk load (statistics, visibility map);
        # VACUUM runs outside a transaction.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE jobs"))
    engine.dispose()
    return time.monotonic() - started


def database_mb(url: str, var: Path) -> float:
    """The size of the database: its file (SQLite), pg_database_size (PostgreSQL)."""
    if url.startswith("sqlite"):
        return (var / "opus.db").stat().st_size / 2**20
    from sqlalchemy import text

    from opus.server.storage import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    engine.dispose()
    return int(size) / 2**20


def check_database(url: str, count: int) -> None:
    """Read one stored job back through JobStore: the text written parses."""
    from sqlalchemy import func, select

    from opus.server.storage import JobRow, JobStore, make_engine

    engine = make_engine(url)
    store = JobStore(engine)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(JobRow)).scalar_one()
        some_id = conn.execute(select(JobRow.id).limit(1)).scalar_one()
    job = store.get_job(some_id)
    engine.dispose()
    if stored != count or job is None or job.creation_time.tzinfo is None:
        raise RuntimeError(f"database check failed: {stored} rows, job {job}")


def query_plans(url: str) -> dict[str, str]:
    """The database's plan for the SQL that JobStore.list_jobs runs for each query."""
    from sqlalchemy import event

    from opus.core.phases import Phase
    from opus.server.storage import JobStore, make_engine

    engine = make_engine(url)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    store = JobStore(engine)
    postgresql = engine.dialect.name == "postgresql"
    plans = {}
    for label, phases in (("LAST=50&PHASE=EXECUTING", [Phase.EXECUTING]), ("LAST=50", [])):
        captured.clear()
        for _ in store.list_jobs(JOBNAME, phases, None, 50, owner=OWNER):
            break
        statement, parameters = captured[-1]
        with engine.connect() as conn:
            dbapi = conn.connection.driver_connection
            if postgresql:
                with dbapi.cursor() as cursor:
                    cursor.execute(f"EXPLAIN {statement}", parameters)
                    rows = cursor.fetchall()
                plans[label] = "; ".join(" ".join(str(row[0]).split()) for row in rows)
            else:
                rows = dbapi.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
                plans[label] = "; ".join(str(row[-1]) for row in rows)
    engine.dispose()
    return plans


# -- measuring --------------------------------------------------------------------------

RECONCILE_CODE = """
import time
from pathlib import Path
from opus.cli import main
started = time.monotonic()
main(["maintenance"])
print("SECONDS", time.monotonic() - started)
for line in Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmHWM:"):
        print("HWM_KB", line.split()[1])
"""


def reconcile_pass(server: b.OpusServer) -> tuple[float, float, str]:
    """One reconciler pass (`opus maintenance` in a fresh process): seconds, peak MB, report."""
    done = subprocess.run(
        [b.PYTHON, "-c", RECONCILE_CODE],
        cwd=b.ROOT,
        env=server.environ(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    figures = dict(
        ln.split(None, 1) for ln in done.stdout.splitlines() if ln.startswith(("SECONDS", "HWM"))
    )
    report = next((ln for ln in done.stdout.splitlines() if ln.startswith("checked")), "")
    if done.returncode != 0 or len(figures) != 2:
        raise RuntimeError(f"opus maintenance failed: {done.stdout}{done.stderr[-2000:]}")
    return float(figures["SECONDS"]), int(figures["HWM_KB"]) / 1024, report


def time_query(base_url: str, path: str) -> tuple[list[float], int]:
    """Latencies of REPEATS sequential keep-alive GETs (after WARMUP), jobrefs of the last."""
    conn = b.connection(base_url)
    latencies = []
    refs = 0
    try:
        for i in range(WARMUP + REPEATS):
            started = time.monotonic()
            status, _, body = b.request(conn, "GET", path)
            elapsed = time.monotonic() - started
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
            if i >= WARMUP:
                latencies.append(elapsed)
            refs = body.count(JOBREF)
    finally:
        conn.close()
    return latencies, refs


def full_list(base_url: str, pid: int) -> dict[str, float]:
    """Read GET /rest/sleep in chunks; bytes, jobrefs, seconds, server memory figures."""
    before_hwm = b.proc_status_kb(pid, "VmHWM")
    before_rss = b.proc_status_kb(pid, "VmRSS")
    conn = b.connection(base_url, timeout=300)
    started = time.monotonic()
    size = refs = 0
    first_byte = float("nan")
    complete = False
    tail = b""
    max_rss = before_rss
    try:
        conn.request("GET", f"/rest/{JOBNAME}")
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"full list answered {response.status}")
        first_byte = time.monotonic() - started
        reads = 0
        while time.monotonic() - started < FULL_LIST_TIMEOUT:
            chunk = response.read1(READ_CHUNK)
            if not chunk:
                complete = True
                break
            size += len(chunk)
            window = tail + chunk
            refs += window.count(JOBREF)
            # Keep the end of this chunk, but never a complete marker: counted already.
            tail = chunk[-(len(JOBREF) - 1) :]
            reads += 1
            if reads % 64 == 0:
                max_rss = max(max_rss, b.proc_status_kb(pid, "VmRSS"))
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    return {
        "bytes": size,
        "refs": refs,
        "seconds": elapsed,
        "first_byte": first_byte,
        "complete": complete,
        "hwm_before_mb": before_hwm / 1024,
        "hwm_after_mb": b.proc_status_kb(pid, "VmHWM") / 1024,
        "rss_before_mb": before_rss / 1024,
        "rss_max_mb": max_rss / 1024,
    }


@contextlib.contextmanager
def size_database(cluster: Any, base: Path, count: int) -> Iterator[str]:
    """The URL of a new database for one size: a file in base/var (SQLite, when there
    is no cluster) or a database of the PostgreSQL cluster, dropped at the end."""
    if cluster is None:
        yield f"sqlite:///{base / 'var' / 'opus.db'}"
        return
    url = cluster.create_database(f"list{count}")
    try:
        yield url
    finally:
        cluster.drop_database(url)


def measure(
    server: b.OpusServer, count: int, read_full: bool, medians: dict[str, dict[int, float]]
) -> dict[str, float]:
    """One size: a reconciler pass, the list GETs (medians stored), the full list."""
    seconds, peak, report = reconcile_pass(server)
    b.line("reconcile pass (opus maintenance)", f"{seconds:.1f} s, VmHWM {peak:.0f} MB")
    b.line("  its report", report)
    full: dict[str, float] = {}
    with server:
        for label, path in QUERIES.items():
            latencies, refs = time_query(server.base_url, path)
            medians[label][count] = b.median(latencies)
            b.line(
                f"{label}: median / p95 ({len(latencies)} GETs)",
                f"{b.ms(b.median(latencies))} / {b.ms(b.percentile(latencies, 0.95))}"
                f"  ({refs} jobrefs)",
            )
        if read_full:
            full = full_list(server.base_url, server.pid)
            full["jobs"] = count
            b.line(
                "full list: jobrefs / bytes",
                f"{full['refs']:,} / {full['bytes'] / 2**20:.0f} MB"
                + ("" if full["complete"] else " (stopped: time limit)"),
            )
            b.line(
                "full list: duration (first byte)",
                f"{full['seconds']:.1f} s ({b.ms(full['first_byte'])}), "
                f"{full['refs'] / full['seconds']:,.0f} jobrefs/s",
            )
            b.line(
                "server VmHWM before / after",
                f"{full['hwm_before_mb']:.0f} MB / {full['hwm_after_mb']:.0f} MB  "
                f"({b.verdict(full['hwm_after_mb'] < TARGET_PEAK_MB)}: < 300 MB)",
            )
            b.line(
                "server VmRSS before / max seen",
                f"{full['rss_before_mb']:.0f} MB / {full['rss_max_mb']:.0f} MB",
            )
    return full


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^3, 10^4, 10^5 jobs")
    parser.add_argument("--sizes", help="comma-separated job counts (overrides --quick)")
    parser.add_argument("--no-full-list", action="store_true", help="skip the full list")
    parser.add_argument("--database", choices=b.DATABASES, default="sqlite")
    args = parser.parse_args()
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = [10**3, 10**4, 10**5] if args.quick else [10**3, 10**5, 10**6]

    b.heading(
        f"bench_list: GET /rest/{JOBNAME} with {', '.join(f'{n:,}' for n in sizes)} jobs "
        f"({args.database})"
    )
    medians: dict[str, dict[int, float]] = {q: {} for q in QUERIES}
    full: dict[str, float] = {}
    plan_name = "SQLite plan" if args.database == "sqlite" else "PostgreSQL plan"
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(b.postgres_cluster()) if args.database != "sqlite" else None
        for count in sizes:
            with b.workdir(f"list{count}") as base, size_database(cluster, base, count) as url:
                var = base / "var"
                seconds = fill_database(url, count)
                check_database(url, count)
                print(f"\n  -- {count:,} jobs --")
                b.line("database fill", f"{seconds:.1f} s ({database_mb(url, var):.0f} MB)")
                for label, plan in query_plans(url).items():
                    b.line(f"{plan_name}, {label}", plan)
                server = b.OpusServer(
                    var, base / "jdl", SERVER_ENV, database_url=None if cluster is None else url
                )
                read_full = count == sizes[-1] and not args.no_full_list
                full = measure(server, count, read_full, medians) or full

    small, large = sizes[0], sizes[-1]
    print()
    figures: dict[str, object] = {}
    for label in QUERIES:
        ratio = medians[label][large] / medians[label][small]
        b.line(
            f"{label}: median {large:,} / {small:,}",
            f"{ratio:.2f}x  ({b.verdict(ratio <= TARGET_RATIO)}: within 2x)",
        )
        key = "exec" if "PHASE" in label else "all"
        figures[f"{key}_ms_{large}"] = f"{medians[label][large] * 1000:.1f}"
        figures[f"{key}_ratio"] = f"{ratio:.2f}"
        figures[f"{key}_target"] = "met" if ratio <= TARGET_RATIO else "missed"
    if full:
        figures["full_list_s"] = f"{full['seconds']:.1f}"
        figures["full_list_jobs"] = int(full["refs"])
        figures["peak_mb"] = f"{full['hwm_after_mb']:.0f}"
        figures["peak_target"] = "met" if full["hwm_after_mb"] < TARGET_PEAK_MB else "missed"
    b.result("bench_list", {"database": args.database, **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())

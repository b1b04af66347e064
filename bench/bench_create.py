"""Job creation throughput: POST /rest/sleep duration=1 from 8 concurrent clients.

Each request creates a PENDING job and is answered 303. The reference is a bare bottle
handler (bench/bare_app.py: reads the form, answers 303, stores nothing) served by the
same HTTP server as `opus serve` (opus.server.httpserver), measured in the same run: both
servers run side by side and are loaded in turn (2 rounds each, alternating), so that both see
the same load of the shared machine. p50 is the median of the rounds' p50, p99 the
highest of their p99.

The load comes from `wrk` (one thread, 8 keep-alive connections, a Lua script posting
the form) when it is installed, else from 8 Python client processes using http.client
with keep-alive. Targets: >= 300 jobs/s and >= 25% of the bare handler's rate.

``--database postgresql`` stores the jobs in a throwaway PostgreSQL server
(tests/pg_cluster.py) instead of SQLite; ``--workers N`` (PostgreSQL only) runs `opus
serve --workers N`, and the bare handler with as many processes sharing its port the
same way (opus.server.workers.Supervisor, SO_REUSEPORT). Server CPU is summed over the
supervisor and its workers.

    .venv/bin/python bench/bench_create.py [--quick] [--python-client]
        [--database sqlite|postgresql] [--workers N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import benchlib as b

CLIENTS = 8
JOBNAME = "sleep"
BODY = "duration=1"
TARGET_RATE = 300.0
TARGET_RATIO = 0.25
MAX_REQUESTS_PER_CLIENT = 1_000_000
ROUNDS = 2

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = "%(body)s"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; other = 0 end
function response(status, headers, body)
  if status == 303 then ok = ok + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local ok_total, other_total = 0, 0
  for _, t in ipairs(threads) do
    ok_total = ok_total + t:get("ok")
    other_total = other_total + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%%d duration_us=%%d p50_us=%%d p99_us=%%d ok=%%d other=%%d errors=%%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    ok_total, other_total, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50: float
    p99: float
    ok: int
    other: int
    errors: int
    server_cpu: float = 0.0
    database_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


# -- load generators ------------------------------------------------------------------


def run_wrk(url: str, seconds: float, script: Path) -> LoadResult:
    command = [
        "wrk",
        "-t1",
        f"-c{CLIENTS}",
        f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    match = re.search(r"^BENCH (.*)$", done.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk failed:\n{done.stdout}\n{done.stderr}")
    f = {k: int(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    return LoadResult(
        requests=f["requests"],
        seconds=f["duration_us"] / 1e6,
        p50=f["p50_us"] / 1e6,
        p99=f["p99_us"] / 1e6,
        ok=f["ok"],
        other=f["other"],
        errors=f["errors"],
    )


def _python_client(
    base_url: str, path: str, body: str, start_at: float, end_at: float
) -> tuple[list[float], int, int, int]:
    """One keep-alive client: POST until end_at; (latencies, 303s, other statuses, errors)."""
    time.sleep(max(0.0, start_at - time.monotonic()))
    conn = b.connection(base_url, timeout=10)
    latencies: list[float] = []
    ok = other = errors = 0
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        started = time.monotonic()
        if started >= end_at:
            break
        try:
            status, _, _ = b.request(conn, "POST", path, body)
        except OSError:
            errors += 1
            conn.close()
            conn = b.connection(base_url, timeout=10)
            continue
        latencies.append(time.monotonic() - started)
        if status == 303:
            ok += 1
        else:
            other += 1
    conn.close()
    return latencies, ok, other, errors


def run_python(pool: concurrent.futures.Executor, base_url: str, seconds: float) -> LoadResult:
    start_at = time.monotonic() + 0.5
    end_at = start_at + seconds
    futures = [
        pool.submit(_python_client, base_url, f"/rest/{JOBNAME}", BODY, start_at, end_at)
        for _ in range(CLIENTS)
    ]
    latencies: list[float] = []
    ok = other = errors = 0
    for future in futures:
        lat, o, x, e = future.result(timeout=seconds + 60)
        latencies += lat
        ok, other, errors = ok + o, other + x, errors + e
    elapsed = max(time.monotonic(), end_at) - start_at
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        p50=b.percentile(latencies, 0.50),
        p99=b.percentile(latencies, 0.99),
        ok=ok,
        other=other,
        errors=errors,
    )


class Load:
    """The chosen load generator (wrk, or the Python fallback)."""

    def __init__(self, force_python: bool, tmp: Path) -> None:
        self.wrk = None if force_python else shutil.which("wrk")
        self.script = tmp / "post.lua"
        self.script.write_text(WRK_SCRIPT % {"body": BODY})
        self.pool: concurrent.futures.ProcessPoolExecutor | None = None
        if self.wrk is None:
            self.pool = concurrent.futures.ProcessPoolExecutor(CLIENTS)

    @property
    def name(self) -> str:
        if self.wrk:
            return f"wrk ({self.wrk}, 1 thread, {CLIENTS} keep-alive connections)"
        return f"Python http.client, {CLIENTS} processes with keep-alive (wrk not found)"

    def run(
        self, base_url: str, seconds: float, server_pids: list[int], db: b.Database
    ) -> LoadResult:
        cpu_before = sum(b.cpu_seconds(pid) for pid in server_pids)
        # PostgreSQL's backends come and go with the pools' connections: read at both ends.
        db_before = {pid: b.cpu_seconds(pid) for pid in db.server_pids()}
        if self.wrk:
            res = run_wrk(f"{base_url}/rest/{JOBNAME}", seconds, self.script)
        else:
            assert self.pool is not None
            res = run_python(self.pool, base_url, seconds)
        res.server_cpu = sum(b.cpu_seconds(pid) for pid in server_pids) - cpu_before
        db_after = {pid: b.cpu_seconds(pid) for pid in db.server_pids()}
        res.database_cpu = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items())
        return res

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


# -- the benchmark --------------------------------------------------------------------


def combine(parts: list[LoadResult]) -> LoadResult:
    """Rounds added up; p50 is the median of the rounds' p50, p99 the highest p99."""
    return LoadResult(
        requests=sum(p.requests for p in parts),
        seconds=sum(p.seconds for p in parts),
        p50=b.median([p.p50 for p in parts]),
        p99=max(p.p99 for p in parts),
        ok=sum(p.ok for p in parts),
        other=sum(p.other for p in parts),
        errors=sum(p.errors for p in parts),
        server_cpu=sum(p.server_cpu for p in parts),
        database_cpu=sum(p.database_cpu for p in parts),
    )


def report(label: str, res: LoadResult) -> None:
    b.line(f"{label}: requests answered 303", f"{res.ok} in {res.seconds:.1f} s")
    if res.other or res.errors:
        b.line(f"{label}: other answers / socket errors", f"{res.other} / {res.errors}")
    b.line(f"{label}: rate", f"{res.rate:.0f} /s")
    b.line(f"{label}: latency p50 / p99", f"{b.ms(res.p50)} / {b.ms(res.p99)}")
    per_request = res.server_cpu / res.requests if res.requests else float("nan")
    b.line(
        f"{label}: server CPU",
        f"{res.server_cpu:.1f} s ({res.server_cpu / res.seconds:.2f} cores, "
        f"{per_request * 1000:.2f} ms/request)",
    )
    if res.database_cpu:
        per_request = res.database_cpu / res.requests if res.requests else float("nan")
        b.line(
            f"{label}: PostgreSQL CPU",
            f"{res.database_cpu:.1f} s ({res.database_cpu / res.seconds:.2f} cores, "
            f"{per_request * 1000:.2f} ms/request)",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 s per server instead of 10 s")
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    parser.add_argument("--database", choices=b.DATABASES, default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    args = parser.parse_args()
    if args.workers < 1 or (args.workers > 1 and args.database != "postgresql"):
        parser.error("--workers N > 1 needs --database postgresql")
    seconds, warmup = (4.0, 1.0) if args.quick else (10.0, 2.0)

    from opus.settings import Settings

    threads = Settings().SERVER_THREADS
    b.heading(
        f"bench_create: POST /rest/{JOBNAME} {BODY}, {CLIENTS} concurrent clients, "
        f"{args.database}, {args.workers} worker{'s' if args.workers > 1 else ''}"
    )
    with b.workdir("create") as base, b.database(args.database, "create") as db:
        load = Load(args.python_client, base)
        try:
            b.line("load generator", load.name)
            b.line("database", args.database + (" (tests/pg_cluster.py)" if db.url else ""))
            b.line("server processes / threads each (both servers)", f"{args.workers} / {threads}")
            b.line(
                "runs",
                f"{ROUNDS} x {seconds / ROUNDS:.1f} s on each server, alternating, "
                f"after {warmup:.0f} s of warm-up",
            )
            with (
                b.bare_server(threads, args.workers, base / "bare.log") as bare,
                b.OpusServer(
                    base / "var", base / "jdl", workers=args.workers, database_url=db.url
                ) as server,
            ):
                bare_pids = [bare.pid, *b.children(bare.pid)]
                opus_pids = [server.pid, *b.children(server.pid)]
                if len(bare_pids) < args.workers or len(opus_pids) < args.workers:
                    raise RuntimeError(f"processes missing: bare {bare_pids}, OPUS {opus_pids}")
                load.run(bare.url, warmup, bare_pids, db)
                load.run(server.base_url, warmup, opus_pids, db)
                ref_parts, res_parts = [], []
                # Alternating, so that both servers see the same load of the machine.
                for _ in range(ROUNDS):
                    ref_parts.append(load.run(bare.url, seconds / ROUNDS, bare_pids, db))
                    res_parts.append(load.run(server.base_url, seconds / ROUNDS, opus_pids, db))
                jobs_dirs = sum(1 for _ in (base / "var" / "jobs").iterdir())
        finally:
            load.close()
    ref, res = combine(ref_parts), combine(res_parts)

    report("bare handler", ref)
    report("OPUS", res)
    b.line("OPUS: job directories (warm-up included)", str(jobs_dirs))
    ratio = res.rate / ref.rate if ref.rate else 0.0
    b.line("OPUS rate", f"{res.rate:.0f} jobs/s  ({b.verdict(res.rate >= TARGET_RATE)}: >= 300)")
    b.line(
        "OPUS / bare handler",
        f"{ratio:.1%}  ({b.verdict(ratio >= TARGET_RATIO)}: >= {TARGET_RATIO:.0%})",
    )
    b.result(
        "bench_create",
        {
            "database": args.database,
            "workers": args.workers,
            "jobs_per_s": f"{res.rate:.0f}",
            "p50_ms": f"{res.p50 * 1000:.1f}",
            "p99_ms": f"{res.p99 * 1000:.1f}",
            "cpu_ms_per_job": f"{res.server_cpu / max(res.requests, 1) * 1000:.2f}",
            "bare_per_s": f"{ref.rate:.0f}",
            "ratio": f"{ratio:.2f}",
            "client": "wrk" if load.wrk else "python",
            "rate_target": "met" if res.rate >= TARGET_RATE else "missed",
            "ratio_target": "met" if ratio >= TARGET_RATIO else "missed",
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

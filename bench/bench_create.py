"""Job creation throughput: POST /rest/sleep duration=1 from 8 concurrent clients.

Each request creates a PENDING job and is answered 303. The reference is a bare bottle
handler (bench/bare_app.py: reads the form, answers 303, stores nothing) served by the
same HTTP server as `opus serve` (opus.server.httpserver), measured in the same run: both
servers run side by side and are loaded in turn (2 rounds each, alternating), so that both see
the same load of the shared machine. p50 is the median of the rounds' p50, p99 the
highest of their p99.

The load comes from `wrk` (one thread, 8 keep-alive connections, a Lua script posting
the form) when it is installed, else from 8 Python client processes using http.client
with keep-alive (bench/loadgen.py). Targets: >= 300 jobs/s and >= 30% of the bare
handler's rate.

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
import sys

import benchlib as b
from loadgen import CLIENTS, Load, Requests, combine, report

JOBNAME = "sleep"
BODY = "duration=1"
TARGET_RATE = 300.0
TARGET_RATIO = 0.30
ROUNDS = 2
CREATE = Requests("POST", [f"/rest/{JOBNAME}"], expected=303, body=BODY)


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
                load.run(bare.url, CREATE, warmup, bare_pids, db)
                load.run(server.base_url, CREATE, warmup, opus_pids, db)
                ref_parts, res_parts = [], []
                # Alternating, so that both servers see the same load of the machine.
                for _ in range(ROUNDS):
                    ref_parts.append(load.run(bare.url, CREATE, seconds / ROUNDS, bare_pids, db))
                    res_parts.append(
                        load.run(server.base_url, CREATE, seconds / ROUNDS, opus_pids, db)
                    )
                jobs_dirs = sum(1 for _ in (base / "var" / "jobs").iterdir())
        finally:
            load.close()
    ref, res = combine(ref_parts), combine(res_parts)

    report("bare handler", ref, "303")
    report("OPUS", res, "303")
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

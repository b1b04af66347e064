"""Job GET throughput: what every polling client (pyvo, the web client) does most.

8 keep-alive clients GET the documents of 8 completed sleep jobs (one each, in turn),
as fast as answers come. The reference is a bare bottle handler (bench/bare_app.py:
GET /rest/<jobname>/<job_id> answers a job-sized document held in memory) served by
the same HTTP server as `opus serve`, measured in the same run: the servers are loaded
in turn, alternating, 2 rounds each, so that both see the same load of the machine.

Three ways of polling, each against the same reference:
- ``get``: a plain GET, answered 200 with the job document (as the shared anonymous
  owner, like the other benchmarks);
- ``get-304``: a conditional GET (If-None-Match with the job's ETag), answered 304;
- ``get-auth``: a plain GET with HTTP Basic credentials of a user (the token checked
  against the database on every request).

Target: the plain job GET at >= 40 % of the bare handler's requests per second.

    .venv/bin/python bench/bench_get.py [--quick] [--python-client]
        [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
import time

import benchlib as b
from bare_app import JOB_BODY
from loadgen import CLIENTS, Load, LoadResult, Requests, combine, report

JOBNAME = "sleep"
TARGET_RATIO = 0.40
ROUNDS = 2


def completed_jobs(server: b.OpusServer, count: int) -> list[str]:
    """``count`` sleep jobs run to COMPLETED (with their result); their paths."""
    conn = b.connection(server.base_url)
    paths = [b.create_job(conn, JOBNAME, "duration=0&PHASE=RUN") for _ in range(count)]
    deadline = time.monotonic() + 60
    for path in paths:
        while True:
            _status, _headers, body = b.request(conn, "GET", f"{path}?WAIT=5")
            match = b.PHASE_RE.search(body)
            if match and match.group(1).decode() in b.FINAL_PHASES:
                if match.group(1) != b"COMPLETED":
                    raise RuntimeError(f"{path} ended {match.group(1).decode()}")
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} did not complete")
    conn.close()
    return paths


def add_user(server: b.OpusServer, name: str) -> str:
    """A user of the server (`opus user add`); its Basic credentials."""
    done = subprocess.run(
        [b.PYTHON, "-m", "opus", "user", "add", name, "--admin"],
        cwd=b.ROOT,
        env=server.environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = done.stdout.strip().splitlines()[-1]
    return "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()


def etags_of(server: b.OpusServer, paths: list[str]) -> list[str] | None:
    """The ETags of the jobs' documents (None from a server that gives none)."""
    conn = b.connection(server.base_url)
    etags = [b.request(conn, "GET", path)[1].get("etag") for path in paths]
    conn.close()
    return None if None in etags else [etag for etag in etags if etag]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 s per server instead of 10 s")
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    parser.add_argument("--database", choices=b.DATABASES, default="sqlite")
    args = parser.parse_args()
    seconds, warmup = (4.0, 1.0) if args.quick else (10.0, 2.0)

    from opus.settings import Settings

    threads = Settings().SERVER_THREADS
    b.heading(
        f"bench_get: GET /rest/{JOBNAME}/<id> of {CLIENTS} completed jobs, "
        f"{CLIENTS} concurrent clients, {args.database}"
    )
    results: dict[str, tuple[LoadResult, LoadResult]] = {}
    with b.workdir("get") as base, b.database(args.database, "get") as db:
        load = Load(args.python_client, base)
        try:
            b.line("load generator", load.name)
            b.line("database", args.database + (" (tests/pg_cluster.py)" if db.url else ""))
            b.line("threads (both servers)", str(threads))
            b.line(
                "runs",
                f"{ROUNDS} x {seconds / ROUNDS:.1f} s on each server per way of polling, "
                f"alternating, after {warmup:.0f} s of warm-up",
            )
            with (
                b.bare_server(threads, 1, base / "bare.log") as bare,
                b.OpusServer(base / "var", base / "jdl", database_url=db.url) as server,
            ):
                paths = completed_jobs(server, CLIENTS)
                etags = etags_of(server, paths)
                credentials = add_user(server, "poller")
                size = len(b.request(b.connection(server.base_url), "GET", paths[0])[2])
                b.line("job document", f"{size} bytes (bare handler: {len(JOB_BODY)} bytes)")
                reference = Requests("GET", [f"/rest/{JOBNAME}/job{i}" for i in range(8)], 200)
                ways = {"get": Requests("GET", paths, 200)}
                if etags is not None:
                    conditional = [{"If-None-Match": etag} for etag in etags]
                    ways["get-304"] = Requests("GET", paths, 304, path_headers=conditional)
                else:
                    b.line("get-304", "skipped: the server gives no ETag")
                authorized = {"Authorization": credentials}
                ways["get-auth"] = Requests("GET", paths, 200, headers=authorized)
                bare_pids, opus_pids = [bare.pid], [server.pid]
                load.run(bare.url, reference, warmup, bare_pids, db)
                for way, spec in ways.items():
                    load.run(server.base_url, spec, warmup, opus_pids, db)
                    ref_parts, res_parts = [], []
                    for _ in range(ROUNDS):
                        part = load.run(bare.url, reference, seconds / ROUNDS, bare_pids, db)
                        ref_parts.append(part)
                        part = load.run(server.base_url, spec, seconds / ROUNDS, opus_pids, db)
                        res_parts.append(part)
                    results[way] = (combine(ref_parts), combine(res_parts))
        finally:
            load.close()

    figures: dict[str, object] = {"database": args.database}
    for way, (ref, res) in results.items():
        b.heading(way)
        report("bare handler", ref, "200")
        report(f"OPUS {way}", res, str(ways[way].expected))
        ratio = res.rate / ref.rate if ref.rate else 0.0
        b.line(f"OPUS {way} / bare handler", f"{ratio:.1%}")
        figures[f"{way}_per_s"] = f"{res.rate:.0f}"
        figures[f"{way}_ratio"] = f"{ratio:.2f}"
        figures[f"{way}_cpu_ms"] = f"{res.server_cpu / max(res.requests, 1) * 1000:.3f}"
        figures[f"{way}_bare_per_s"] = f"{ref.rate:.0f}"
    ratio = float(str(figures["get_ratio"]))
    b.line(
        "plain job GET / bare handler",
        f"{ratio:.1%}  ({b.verdict(ratio >= TARGET_RATIO)}: >= {TARGET_RATIO:.0%})",
    )
    figures["client"] = "wrk" if load.wrk else "python"
    figures["ratio_target"] = "met" if ratio >= TARGET_RATIO else "missed"
    b.result("bench_get", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The load generator of the throughput benchmarks (bench_create, bench_get).

8 keep-alive clients send one kind of request as fast as answers come, for a given
time: `wrk` (one thread, a Lua script that counts the expected status and rotates
through the request paths) when it is installed, else 8 Python client processes using
http.client. Server CPU is read from /proc before and after, summed over the server's
processes; on PostgreSQL the database's CPU too.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import benchlib as b

CLIENTS = 8
MAX_REQUESTS_PER_CLIENT = 1_000_000

WRK_SCRIPT = """\
wrk.method = "%(method)s"
wrk.body = "%(body)s"
%(headers)s
local paths = {%(paths)s}
local path_headers = {%(path_headers)s}
local threads = {}
local turn = 0
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; other = 0 end
function request()
  turn = turn %% #paths + 1
  return wrk.format(nil, paths[turn], path_headers[turn])
end
function response(status, headers, body)
  if status == %(expected)d then ok = ok + 1 else other = other + 1 end
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


@dataclass(frozen=True)
class Requests:
    """What the clients send: one method, paths taken in turn, one body and headers."""

    method: str
    paths: Sequence[str]
    expected: int
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    # Headers of each path's requests (an If-None-Match per job, say), beside ``headers``.
    path_headers: Sequence[Mapping[str, str]] = ()

    def headers_of(self, index: int) -> dict[str, str]:
        """The headers of the requests to ``paths[index]``."""
        extra = self.path_headers[index] if self.path_headers else {}
        return {**self.headers, **extra}

    def wrk_script(self) -> str:
        headers = dict(self.headers)
        if self.body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return WRK_SCRIPT % {
            "method": self.method,
            "body": self.body,
            "headers": "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
            "paths": ", ".join(f'"{path}"' for path in self.paths),
            "path_headers": ", ".join(
                "{"
                + ", ".join(
                    f'["{k}"] = {_lua(v)}' for k, v in (headers | self.headers_of(i)).items()
                )
                + "}"
                for i in range(len(self.paths))
            ),
            "expected": self.expected,
        }


def _lua(text: str) -> str:
    """A Lua string literal (ETags hold double quotes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
    base_url: str, spec: Requests, first: int, start_at: float, end_at: float
) -> tuple[list[float], int, int, int]:
    """One keep-alive client until end_at; (latencies, expected answers, others, errors)."""
    time.sleep(max(0.0, start_at - time.monotonic()))
    conn = b.connection(base_url, timeout=10)
    latencies: list[float] = []
    ok = other = errors = 0
    turns = itertools.islice(itertools.cycle(range(len(spec.paths))), first, None)
    for _, index in zip(range(MAX_REQUESTS_PER_CLIENT), turns, strict=False):
        path, headers = spec.paths[index], spec.headers_of(index)
        started = time.monotonic()
        if started >= end_at:
            break
        try:
            status, _, _ = b.request(conn, spec.method, path, spec.body or None, headers)
        except OSError:
            errors += 1
            conn.close()
            conn = b.connection(base_url, timeout=10)
            continue
        latencies.append(time.monotonic() - started)
        if status == spec.expected:
            ok += 1
        else:
            other += 1
    conn.close()
    return latencies, ok, other, errors


def run_python(
    pool: concurrent.futures.Executor, base_url: str, spec: Requests, seconds: float
) -> LoadResult:
    start_at = time.monotonic() + 0.5
    end_at = start_at + seconds
    futures = [
        pool.submit(_python_client, base_url, spec, index, start_at, end_at)
        for index in range(CLIENTS)
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
        self.tmp = tmp
        self.pool: concurrent.futures.ProcessPoolExecutor | None = None
        if self.wrk is None:
            self.pool = concurrent.futures.ProcessPoolExecutor(CLIENTS)

    @property
    def name(self) -> str:
        if self.wrk:
            return f"wrk ({self.wrk}, 1 thread, {CLIENTS} keep-alive connections)"
        return f"Python http.client, {CLIENTS} processes with keep-alive (wrk not found)"

    def run(
        self,
        base_url: str,
        spec: Requests,
        seconds: float,
        server_pids: list[int],
        db: b.Database,
    ) -> LoadResult:
        cpu_before = sum(b.cpu_seconds(pid) for pid in server_pids)
        # PostgreSQL's backends come and go with the pools' connections: read at both ends.
        db_before = {pid: b.cpu_seconds(pid) for pid in db.server_pids()}
        if self.wrk:
            script = self.tmp / f"load-{abs(hash(spec.wrk_script()))}.lua"
            script.write_text(spec.wrk_script())
            res = run_wrk(f"{base_url}{spec.paths[0]}", seconds, script)
        else:
            assert self.pool is not None
            res = run_python(self.pool, base_url, spec, seconds)
        res.server_cpu = sum(b.cpu_seconds(pid) for pid in server_pids) - cpu_before
        db_after = {pid: b.cpu_seconds(pid) for pid in db.server_pids()}
        res.database_cpu = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items())
        return res

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


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


def report(label: str, res: LoadResult, answered: str) -> None:
    b.line(f"{label}: requests answered {answered}", f"{res.ok} in {res.seconds:.1f} s")
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

"""WAIT wake-up latency: 200 clients blocked on one PENDING job, then its phase changes.

The server runs with OPUS_SERVER_THREADS=256 (waiters are capped at SERVER_THREADS-8,
see opus/server/notify.py). A separate client process opens 200 connections with
asyncio and sends ``GET /rest/sleep/{job}?WAIT=60`` on each. Once the requests are sent,
the 200 connections are seen ESTABLISHED on the server port (/proc/net/tcp) and one
more second has passed, the parent times ~30 plain job-list GETs (``GET /rest/sleep``,
100 jobs) while the 200 are blocked, then changes the job's phase and measures, for
each client, the time from just before the change request was sent (and from its 303
answer) to the end of that client's response. Clocks: CLOCK_MONOTONIC, shared by the
processes of the machine.

Two rounds: the change is ``PHASE=RUN`` (the job runs ``sleep 0``), then ``PHASE=ABORT``
on another job. Target: p99 wake-up < 100 ms. The reference for the list GETs is the
same GET with no waiter, measured first on the same server.

    .venv/bin/python bench/bench_wait.py [--quick] [--clients N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import re
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import benchlib as b

JOBNAME = "sleep"
SERVER_THREADS = 256
WAIT_SECONDS = 60
LIST_JOBS = 100
LIST_REPEATS = 30
READY_TIMEOUT = 30.0
ANSWER_TIMEOUT = WAIT_SECONDS + 30.0
TARGET_P99 = 0.100
PHASE_RE = re.compile(rb"<uws:phase>(\w+)</uws:phase>")
TCP_ESTABLISHED = "01"


# -- the client process -----------------------------------------------------------------


async def _one_waiter(port: int, path: str, sent: asyncio.Event, counter: list[int]):
    """Send one WAIT request; (monotonic time of the end of the answer, status, phase)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = (
            f"GET {path}?WAIT={WAIT_SECONDS} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        counter[0] += 1
        if counter[0] == counter[1]:
            sent.set()
        data = await asyncio.wait_for(reader.read(), ANSWER_TIMEOUT)
        done = time.monotonic()
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    match = PHASE_RE.search(data)
    return done, status, match.group(1).decode() if match else "?"


async def _waiters(port: int, path: str, count: int, pipe: Connection):
    sent = asyncio.Event()
    counter = [0, count]
    tasks = [asyncio.create_task(_one_waiter(port, path, sent, counter)) for _ in range(count)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sent.wait(), READY_TIMEOUT)
    pipe.send(("sent", counter[0]))
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    pipe.send(("done", [a if isinstance(a, tuple) else (0.0, 0, repr(a)) for a in answers]))


def client_process(port: int, path: str, count: int, pipe: Connection) -> None:
    asyncio.run(_waiters(port, path, count, pipe))
    pipe.close()


# -- the parent -------------------------------------------------------------------------


def established(port: int) -> int:
    """Established TCP connections whose local port is ``port`` (the server's side)."""
    count = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in lines:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == TCP_ESTABLISHED:
                count += 1
    return count


def list_latencies(base_url: str, repeats: int) -> list[float]:
    conn = b.connection(base_url)
    latencies = []
    try:
        for _ in range(repeats):
            started = time.monotonic()
            status, _, body = b.request(conn, "GET", f"/rest/{JOBNAME}")
            latencies.append(time.monotonic() - started)
            if status != 200:
                raise RuntimeError(f"job list answered {status}: {body[:200]!r}")
    finally:
        conn.close()
    return latencies


def settle(base_url: str, job_path: str) -> None:
    """Leave no job process behind: wait (bounded) for the job to end, else abort it."""
    conn = b.connection(base_url)
    try:
        for _ in range(10):
            _, _, body = b.request(conn, "GET", f"{job_path}?WAIT=3")
            match = PHASE_RE.search(body)
            if match and match.group(1) in (b"COMPLETED", b"ERROR", b"ABORTED"):
                return
        b.request(conn, "POST", f"{job_path}/phase", "PHASE=ABORT")
    finally:
        conn.close()


def one_round(server: b.OpusServer, clients: int, change: str, repeats: int) -> dict:
    """Block ``clients`` WAITers on a new job, time list GETs, change the phase."""
    conn = b.connection(server.base_url)
    job_path = b.create_job(conn, JOBNAME, "duration=0")
    conn.close()
    parent_end, child_end = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=client_process, args=(server.port, job_path, clients, child_end), daemon=True
    )
    process.start()
    try:
        if not parent_end.poll(READY_TIMEOUT):
            raise RuntimeError("client process did not send its requests in time")
        _, sent = parent_end.recv()
        deadline = time.monotonic() + READY_TIMEOUT
        while established(server.port) < clients and time.monotonic() < deadline:
            time.sleep(0.05)
        connected = established(server.port)
        time.sleep(1.0)
        blocked_lists = list_latencies(server.base_url, repeats)

        trigger = b.connection(server.base_url)
        trigger.connect()
        started = time.monotonic()
        status, _, body = b.request(trigger, "POST", f"{job_path}/phase", f"PHASE={change}")
        answered = time.monotonic()
        trigger.close()
        if status != 303:
            raise RuntimeError(f"PHASE={change} answered {status}: {body[:200]!r}")
        if not parent_end.poll(ANSWER_TIMEOUT + 10):
            raise RuntimeError("client process did not report its answers in time")
        _, answers = parent_end.recv()
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(10)
    if change == "RUN":
        settle(server.base_url, job_path)
    woken = [a for a in answers if a[1] == 200 and a[0] >= started]
    return {
        "sent": sent,
        "connected": connected,
        "blocked_lists": blocked_lists,
        "change_seconds": answered - started,
        "from_request": [a[0] - started for a in woken],
        "from_answer": [a[0] - answered for a in woken],
        "early": sum(1 for a in answers if a[1] == 200 and a[0] < started),
        "failed": [a for a in answers if a[1] != 200],
        "phases": sorted({a[2] for a in woken}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 clients, 10 list GETs")
    parser.add_argument("--clients", type=int, help="number of WAIT clients (default 200)")
    args = parser.parse_args()
    clients = args.clients or (50 if args.quick else 200)
    repeats = 10 if args.quick else LIST_REPEATS

    b.heading(f"bench_wait: {clients} clients WAITing on one job (server threads {SERVER_THREADS})")
    env = {"OPUS_SERVER_THREADS": str(SERVER_THREADS), "OPUS_SIGNAL_RETRY_SECONDS": "30"}
    rounds = {}
    with b.workdir("wait") as base, b.OpusServer(base / "var", base / "jdl", env) as server:
        conn = b.connection(server.base_url)
        for _ in range(LIST_JOBS):
            b.create_job(conn, JOBNAME, "duration=1")
        conn.close()
        reference = list_latencies(server.base_url, repeats)
        for change in ("RUN", "ABORT"):
            rounds[change] = one_round(server, clients, change, repeats)

    ref_median = b.median(reference)
    b.line(
        f"job list GET, no waiter: median / p95 ({repeats})",
        f"{b.ms(ref_median)} / {b.ms(b.percentile(reference, 0.95))}",
    )
    figures: dict[str, object] = {}
    for change, r in rounds.items():
        print(f"\n  -- change: PHASE={change} --")
        b.line("requests sent / connections established", f"{r['sent']} / {r['connected']}")
        b.line(
            "answers woken by the change",
            f"{len(r['from_request'])} (returned before it: {r['early']}, "
            f"failed: {len(r['failed'])}) phases {','.join(r['phases'])}",
        )
        for failure in r["failed"][:3]:
            b.line("  a failure", str(failure)[:100])
        blocked = r["blocked_lists"]
        b.line(
            f"job list GET, {clients} blocked: median / p95",
            f"{b.ms(b.median(blocked))} / {b.ms(b.percentile(blocked, 0.95))}  "
            f"({b.median(blocked) / ref_median:.2f}x the no-waiter median)",
        )
        b.line(f"PHASE={change} request → 303", b.ms(r["change_seconds"]))
        p50 = b.percentile(r["from_request"], 0.50)
        p99 = b.percentile(r["from_request"], 0.99)
        b.line(
            "wake-up from request sent: p50 / p99 / max",
            f"{b.ms(p50)} / {b.ms(p99)} / {b.ms(max(r['from_request'], default=float('nan')))}"
            f"  ({b.verdict(p99 < TARGET_P99)}: p99 < 100 ms)",
        )
        b.line(
            "wake-up from the 303: p50 / p99",
            f"{b.ms(b.percentile(r['from_answer'], 0.5))} / "
            f"{b.ms(b.percentile(r['from_answer'], 0.99))}",
        )
        met = p99 < TARGET_P99 and len(r["from_request"]) == clients
        key = change.lower()
        figures[f"{key}_p50_ms"] = f"{p50 * 1000:.1f}"
        figures[f"{key}_p99_ms"] = f"{p99 * 1000:.1f}"
        figures[f"{key}_woken"] = len(r["from_request"])
        figures[f"{key}_list_ratio"] = f"{b.median(blocked) / ref_median:.2f}"
        figures[f"{key}_target"] = "met" if met else "missed"
    b.result("bench_wait", {"clients": clients, **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())

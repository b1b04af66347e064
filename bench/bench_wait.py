"""WAIT wake-up latency: 200 clients blocked on one PENDING job, then its phase changes.

The server runs with OPUS_SERVER_THREADS=256 (waiters are capped at SERVER_THREADS-8,
see opus/server/notify.py). A separate client process opens 200 connections with
asyncio and sends ``GET /rest/sleep/{job}?WAIT=60`` on each. Once the requests are sent,
every connection has been accepted by the server and its request read (/proc/net/tcp:
the socket belongs to a server process, its receive queue is empty) and two more
seconds have passed (the workers' CPU use over them is printed: what blocked requests
cost while nothing changes), the parent times ~30 plain job-list GETs (``GET /rest/sleep``,
100 jobs) while the 200 are blocked, then changes the job's phase and measures, for
each client, the time from just before the change request was sent (and from its 303
answer) to the end of that client's response. Clocks: CLOCK_MONOTONIC, shared by the
processes of the machine.

Two rounds: the change is ``PHASE=RUN`` (the job runs ``sleep 0``), then ``PHASE=ABORT``
on another job. Reference for the wake-up, measured in the same run: bench/bare_app.py
(``GET /wait``, as many processes and threads, the same cheroot server) with the same
clients blocked, all released at once by SIGUSR1 and answered a job-sized document:
the cost of answering that many blocked requests with one thread each and no
application work, the floor of this server design on this machine. Target: p99
wake-up < 100 ms (``--target-ms``). The reference for the list GETs is the same GET
with no waiter, measured first on the same server.

Memory per waiting client: the summed VmRSS of the processes that serve (the workers,
children of the supervisor) once every client waits, minus the same just before the
clients connect, divided by the number of clients.

Several workers (``--workers N --database postgresql``, `opus serve --workers N` on a
throwaway PostgreSQL server): the kernel spreads the connections over the workers
(SO_REUSEPORT); the split is read from /proc (each worker's socket inodes matched
against /proc/net/tcp) and printed, and each client's wake-up is attributed to its
worker through its port, so the workers woken through PostgreSQL's NOTIFY (not the one
that made the change) show apart. The clients are spread over ``--client-processes``
asyncio processes (default: one per 250 clients), and SERVER_THREADS is raised so that
each worker can hold its share with room to spare (``--threads``; default
max(256, 1.2 x clients / workers + 8)): waiters are capped at SERVER_THREADS-8 per
process, and a client past the cap is answered at once (counted as "returned before").

    .venv/bin/python bench/bench_wait.py [--quick] [--clients N] [--workers N]
        [--database sqlite|postgresql] [--client-processes N] [--threads N] [--target-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import benchlib as b

JOBNAME = "sleep"
SERVER_THREADS = 256
CLIENTS_PER_PROCESS = 250
WAIT_SECONDS = 60
LIST_JOBS = 100
LIST_REPEATS = 30
READY_TIMEOUT = 60.0
SETTLE_SECONDS = 2.0
ANSWER_TIMEOUT = WAIT_SECONDS + 30.0
TARGET_P99 = 0.100

# One client's answer: (monotonic end of the answer, HTTP status, phase, local port).
Answer = tuple[float, int, str, int]


# -- the client processes ---------------------------------------------------------------


async def _one_waiter(port: int, path: str, sent: asyncio.Event, counter: list[int]) -> Answer:
    """Send one WAIT request; the time its answer ended, its status and phase."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    local_port = int(writer.get_extra_info("sockname")[1])
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
    match = b.PHASE_RE.search(data)
    return done, status, match.group(1).decode() if match else "?", local_port


async def _waiters(port: int, path: str, count: int, pipe: Connection) -> None:
    sent = asyncio.Event()
    counter = [0, count]
    tasks = [asyncio.create_task(_one_waiter(port, path, sent, counter)) for _ in range(count)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sent.wait(), READY_TIMEOUT)
    pipe.send(("sent", counter[0], time.process_time()))
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    answers = [a if isinstance(a, tuple) else (0.0, 0, repr(a), 0) for a in answers]
    pipe.send(("done", answers, time.process_time()))


def client_process(port: int, path: str, count: int, pipe: Connection) -> None:
    asyncio.run(_waiters(port, path, count, pipe))
    pipe.close()


class Clients:
    """``count`` WAIT clients spread over ``processes`` asyncio processes."""

    def __init__(self, port: int, path: str, count: int, processes: int) -> None:
        context = multiprocessing.get_context("fork")
        shares = [count // processes + (i < count % processes) for i in range(processes)]
        self.pipes: list[Connection] = []
        self.processes = []
        # CPU seconds the client processes used from "sent" to "done" (reading answers).
        self.cpu_sent: list[float] = []
        self.cpu_done: list[float] = []
        for share in shares:
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=client_process, args=(port, path, share, child_end), daemon=True
            )
            self.pipes.append(parent_end)
            self.processes.append(process)

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def _collect(self, kind: str, timeout: float, cpu: list[float]) -> list[Any]:
        deadline = time.monotonic() + timeout
        values = []
        for pipe in self.pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"a client process did not report {kind!r} in time")
            got, value, cpu_seconds = pipe.recv()
            if got != kind:
                raise RuntimeError(f"a client process reported {got!r}, not {kind!r}")
            values.append(value)
            cpu.append(cpu_seconds)
        return values

    def sent(self) -> int:
        """How many requests were sent (once every process has sent its own)."""
        return sum(self._collect("sent", READY_TIMEOUT, self.cpu_sent))

    def answers(self) -> list[Answer]:
        shares = self._collect("done", ANSWER_TIMEOUT + 10, self.cpu_done)
        return [a for share in shares for a in share]

    def answer_cpu(self) -> float:
        """CPU seconds the client processes spent from "sent" to "done"."""
        return sum(self.cpu_done) - sum(self.cpu_sent)

    def stop(self) -> None:
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(10)


# -- the parent -------------------------------------------------------------------------


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
            match = b.PHASE_RE.search(body)
            if match and match.group(1) in (b"COMPLETED", b"ERROR", b"ABORTED"):
                return
        b.request(conn, "POST", f"{job_path}/phase", "PHASE=ABORT")
    finally:
        conn.close()


def one_round(
    server: b.OpusServer,
    db: b.Database,
    clients: int,
    processes: int,
    change: str,
    repeats: int,
) -> dict[str, Any]:
    """Block ``clients`` WAITers on a new job, time list GETs, change the phase."""
    conn = b.connection(server.base_url)
    job_path = b.create_job(conn, JOBNAME, "duration=0")
    conn.close()
    workers = server.worker_pids()
    rss_before = b.rss_kb(workers)
    group = Clients(server.port, job_path, clients, processes)
    group.start()
    try:
        sent = group.sent()
        # Ready: every connection accepted by a worker, which has read its request.
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            split = b.connections_by_process(server.port, workers, idle_only=True)
            if sum(len(ports) for ports in split.values()) >= clients:
                break
            time.sleep(0.05)
        ready = time.monotonic() - (deadline - READY_TIMEOUT)
        # What the blocked requests cost while nothing changes (their periodic re-reads).
        idle_before = sum(b.cpu_seconds(pid) for pid in workers)
        time.sleep(SETTLE_SECONDS)
        idle_cpu = (sum(b.cpu_seconds(pid) for pid in workers) - idle_before) / SETTLE_SECONDS
        connected = len(b.tcp_sockets(server.port, b.TCP_ESTABLISHED))
        split = b.connections_by_process(server.port, workers)
        rss_waiting = b.rss_kb(workers)
        blocked_lists = list_latencies(server.base_url, repeats)

        trigger = b.connection(server.base_url)
        trigger.connect()
        cpu_before = sum(b.cpu_seconds(pid) for pid in workers)
        db_cpu_before = {pid: b.cpu_seconds(pid) for pid in db.server_pids()}
        started = time.monotonic()
        status, _, body = b.request(trigger, "POST", f"{job_path}/phase", f"PHASE={change}")
        answered = time.monotonic()
        trigger.close()
        if status != 303:
            raise RuntimeError(f"PHASE={change} answered {status}: {body[:200]!r}")
        answers = group.answers()
        server_cpu = sum(b.cpu_seconds(pid) for pid in workers) - cpu_before
        db_cpu = sum(
            cpu - db_cpu_before.get(pid, 0.0)
            for pid, cpu in ((pid, b.cpu_seconds(pid)) for pid in db.server_pids())
        )
        wake_window = max((a[0] for a in answers), default=started) - started
    finally:
        group.stop()
    if change == "RUN":
        settle(server.base_url, job_path)
    woken = [a for a in answers if a[1] == 200 and a[0] >= started]
    worker_of = {port: pid for pid, ports in split.items() for port in ports}
    by_worker: dict[int, list[float]] = {pid: [] for pid in workers}
    for a in woken:
        if a[3] in worker_of:
            by_worker[worker_of[a[3]]].append(a[0] - started)
    return {
        "sent": sent,
        "ready_seconds": ready,
        "idle_cpu": idle_cpu,
        "connected": connected,
        "split": {pid: len(ports) for pid, ports in split.items()},
        "rss_before_kb": rss_before,
        "rss_waiting_kb": rss_waiting,
        "blocked_lists": blocked_lists,
        "change_seconds": answered - started,
        "wake_window": wake_window,
        "server_cpu": server_cpu,
        "database_cpu": db_cpu,
        "client_cpu": group.answer_cpu(),
        "from_request": [a[0] - started for a in woken],
        "from_answer": [a[0] - answered for a in woken],
        "by_worker": by_worker,
        "early": sum(1 for a in answers if a[1] == 200 and a[0] < started),
        "failed": [a for a in answers if a[1] != 200],
        "phases": sorted({a[2] for a in woken}),
    }


def reference_round(
    clients: int, processes: int, workers: int, threads: int, log: Path
) -> list[float]:
    """The bare handler's wake-up latencies: ``clients`` blocked on GET /wait, released
    by SIGUSR1 to every serving process, timed from just before the first signal."""
    with b.bare_server(threads, workers, log) as bare:
        pids = bare.serving_pids()
        group = Clients(bare.port, "/wait", clients, processes)
        group.start()
        try:
            group.sent()
            deadline = time.monotonic() + READY_TIMEOUT
            while time.monotonic() < deadline:
                split = b.connections_by_process(bare.port, pids, idle_only=True)
                if sum(len(ports) for ports in split.values()) >= clients:
                    break
                time.sleep(0.05)
            time.sleep(SETTLE_SECONDS)
            started = time.monotonic()
            for pid in pids:
                os.kill(pid, signal.SIGUSR1)
            answers = group.answers()
        finally:
            group.stop()
    return [a[0] - started for a in answers if a[1] == 200 and a[0] >= started]


def report_round(
    change: str,
    r: dict[str, Any],
    clients: int,
    ref_median: float,
    target: float,
    bare_p99: float,
) -> dict[str, object]:
    """Print one round's figures; its RESULT figures."""
    print(f"\n  -- change: PHASE={change} --")
    b.line("requests sent / connections established", f"{r['sent']} / {r['connected']}")
    b.line("all requests accepted and read after", f"{r['ready_seconds']:.1f} s")
    b.line(
        f"workers' CPU while all wait ({SETTLE_SECONDS:.0f} s, no change)",
        f"{r['idle_cpu']:.2f} cores",
    )
    split = r["split"]
    b.line(
        "waiting connections per worker",
        ", ".join(f"pid {pid}: {n}" for pid, n in split.items()),
    )
    b.line(
        "answers woken by the change",
        f"{len(r['from_request'])} (returned before it: {r['early']}, "
        f"failed: {len(r['failed'])}) phases {','.join(r['phases'])}",
    )
    for failure in r["failed"][:3]:
        b.line("  a failure", str(failure)[:100])
    per_client = (r["rss_waiting_kb"] - r["rss_before_kb"]) / clients
    b.line(
        "workers' RSS: before / all waiting",
        f"{r['rss_before_kb'] / 1024:.1f} MB / {r['rss_waiting_kb'] / 1024:.1f} MB "
        f"({per_client:.1f} kB per waiting client)",
    )
    blocked = r["blocked_lists"]
    b.line(
        f"job list GET, {clients} blocked: median / p95",
        f"{b.ms(b.median(blocked))} / {b.ms(b.percentile(blocked, 0.95))}  "
        f"({b.median(blocked) / ref_median:.2f}x the no-waiter median)",
    )
    b.line(f"PHASE={change} request → 303", b.ms(r["change_seconds"]))
    window = r["wake_window"]
    b.line(
        "CPU from the change to the last answer",
        f"{window:.2f} s: workers {r['server_cpu']:.2f} s, clients {r['client_cpu']:.2f} s"
        + (f", PostgreSQL {r['database_cpu']:.2f} s" if r["database_cpu"] else ""),
    )
    p50 = b.percentile(r["from_request"], 0.50)
    p99 = b.percentile(r["from_request"], 0.99)
    answer_p99 = b.percentile(r["from_answer"], 0.99)
    b.line(
        "wake-up from request sent: p50 / p99 / max",
        f"{b.ms(p50)} / {b.ms(p99)} / {b.ms(max(r['from_request'], default=float('nan')))}"
        f"  ({b.verdict(p99 < target)}: p99 < {target * 1000:.0f} ms)",
    )
    b.line(
        "wake-up from the 303: p50 / p99",
        f"{b.ms(b.percentile(r['from_answer'], 0.5))} / {b.ms(answer_p99)}",
    )
    b.line("p99 / the bare handler's p99", f"{p99 / bare_p99:.2f}x")
    if len(r["by_worker"]) > 1:
        for pid, values in r["by_worker"].items():
            b.line(
                f"  worker pid {pid}: woken / p50 / p99",
                f"{len(values)} / {b.ms(b.percentile(values, 0.5))} / "
                f"{b.ms(b.percentile(values, 0.99))}",
            )
    met = p99 < target and len(r["from_request"]) == clients
    key = change.lower()
    return {
        f"{key}_p50_ms": f"{p50 * 1000:.1f}",
        f"{key}_p99_ms": f"{p99 * 1000:.1f}",
        f"{key}_p99_from_303_ms": f"{answer_p99 * 1000:.1f}",
        f"{key}_woken": len(r["from_request"]),
        f"{key}_split": "/".join(str(n) for n in split.values()),
        f"{key}_kb_per_client": f"{per_client:.1f}",
        f"{key}_rss_mb": f"{r['rss_waiting_kb'] / 1024:.0f}",
        f"{key}_list_ratio": f"{b.median(blocked) / ref_median:.2f}",
        f"{key}_bare_ratio": f"{p99 / bare_p99:.2f}",
        f"{key}_target": "met" if met else "missed",
    }


def default_threads(clients: int, workers: int) -> int:
    """Threads per worker: each worker's share of waiters with 20% to spare, + the 8
    threads kept free of waiters."""
    return max(SERVER_THREADS, math.ceil(1.2 * clients / workers) + 8)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 clients, 10 list GETs")
    parser.add_argument("--clients", type=int, help="number of WAIT clients (default 200)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    parser.add_argument("--database", choices=b.DATABASES, default="sqlite")
    parser.add_argument(
        "--client-processes", type=int, help=f"default: one per {CLIENTS_PER_PROCESS} clients"
    )
    parser.add_argument("--threads", type=int, help="OPUS_SERVER_THREADS of each worker")
    parser.add_argument(
        "--target-ms", type=float, default=TARGET_P99 * 1000, help="p99 target (default 100)"
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or (args.workers > 1 and args.database != "postgresql"):
        parser.error("--workers N > 1 needs --database postgresql")
    clients = args.clients or (50 if args.quick else 200)
    processes = args.client_processes or math.ceil(clients / CLIENTS_PER_PROCESS)
    threads = args.threads or default_threads(clients, args.workers)
    repeats = 10 if args.quick else LIST_REPEATS
    target = args.target_ms / 1000

    b.heading(
        f"bench_wait: {clients} clients WAITing on one job ({args.database}, "
        f"{args.workers} worker{'s' if args.workers > 1 else ''} of {threads} threads)"
    )
    b.line("client processes (asyncio)", str(processes))
    env = {"OPUS_SERVER_THREADS": str(threads), "OPUS_SIGNAL_RETRY_SECONDS": "30"}
    rounds = {}
    with (
        b.workdir("wait") as base,
        b.database(args.database, "wait") as db,
        b.OpusServer(
            base / "var", base / "jdl", env, workers=args.workers, database_url=db.url
        ) as server,
    ):
        conn = b.connection(server.base_url)
        for _ in range(LIST_JOBS):
            b.create_job(conn, JOBNAME, "duration=1")
        conn.close()
        reference = list_latencies(server.base_url, repeats)
        for change in ("RUN", "ABORT"):
            rounds[change] = one_round(server, db, clients, processes, change, repeats)
        bare = reference_round(clients, processes, args.workers, threads, base / "bare.log")

    ref_median = b.median(reference)
    b.line(
        f"job list GET, no waiter: median / p95 ({repeats})",
        f"{b.ms(ref_median)} / {b.ms(b.percentile(reference, 0.95))}",
    )
    bare_p99 = b.percentile(bare, 0.99)
    b.line(
        "bare handler, same clients: woken p50 / p99",
        f"{len(bare)} / {b.ms(b.percentile(bare, 0.5))} / {b.ms(bare_p99)}  "
        "(released by SIGUSR1, no application work)",
    )
    figures: dict[str, object] = {"bare_p99_ms": f"{bare_p99 * 1000:.1f}"}
    for change, r in rounds.items():
        figures.update(report_round(change, r, clients, ref_median, target, bare_p99))
    b.result(
        "bench_wait",
        {
            "database": args.database,
            "workers": args.workers,
            "clients": clients,
            "target_ms": f"{args.target_ms:.0f}",
            **figures,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

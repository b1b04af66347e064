"""Normal-request latency while 500 slow or silent clients are connected (slowloris).

A separate client process (asyncio) keeps ``--slow`` connections (default 400) sending a
request head a header line every ``--interval`` seconds (2 s), never finishing it, and
``--silent`` connections (default 100) that connect and send nothing; each one the
server closes (a head that took longer than REQUEST_HEADER_TIMEOUT gets 408) is opened
again at once, so that as many stay connected all the time. Meanwhile the parent sends
normal requests one after the other, each on a new connection, one every 50 ms for
``--seconds`` (10 s; ``--quick``: 4 s): ``GET /rest/sleep/<id>`` of a PENDING job. The
same is timed first with no hostile client. A request that gets no answer within 10 s
counts as timed out.

Reference, measured in the same run: bench/bare_app.py (``GET /rest/sleep/job0``, a
job-sized document held in memory), served by the same HTTP server function with the
same threads, under the same clients. Target: p99 of the normal requests < 1 s with the
hostile clients connected (the issue's "within a second"), none timed out.

Printed per server: p50, p99 and max latency with 0 and with the hostile clients, the
timeouts, the hostile connections the server holds (/proc/net/tcp), the server's
threads, and the 408s the hostile clients got (their reconnections).

    .venv/bin/python bench/bench_slowloris.py [--quick] [--slow N] [--silent N]
        [--interval S] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection

import benchlib as b

JOBNAME = "sleep"
PACE = 0.05
REQUEST_TIMEOUT = 10.0
READY_TIMEOUT = 60.0
TARGET_P99 = 1.0


# -- the hostile clients (their own process) -------------------------------------------


async def _slow(
    port: int, index: int, interval: float, stop: asyncio.Event, seen: list[int]
) -> None:
    """One slow client: a head that never ends; connected again whenever it is closed."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        try:
            writer.write(f"GET /rest?slow={index} HTTP/1.1\r\nHost: x\r\n".encode())
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    data = await asyncio.wait_for(reader.read(4096), interval)
                    if data.startswith(b"HTTP/1.1 408"):
                        seen[0] += 1
                    break  # answered, or closed: connect again
                writer.write(b"X-Slow: x\r\n")
        except OSError:
            pass
        finally:
            writer.close()


async def _silent(port: int, stop: asyncio.Event) -> None:
    """One silent client: connects and sends nothing; connected again when closed."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(4096), 1.0)
                    break
        except OSError:
            pass
        finally:
            writer.close()


async def _hostile(port: int, slow: int, silent: int, interval: float, pipe: Connection) -> None:
    stop = asyncio.Event()
    seen = [0]
    tasks = [asyncio.create_task(_slow(port, i, interval, stop, seen)) for i in range(slow)]
    tasks += [asyncio.create_task(_silent(port, stop)) for _ in range(silent)]
    await asyncio.sleep(1.0)
    pipe.send("connected")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, pipe.recv)  # "stop"
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    pipe.send(seen[0])


def hostile_process(port: int, slow: int, silent: int, interval: float, pipe: Connection) -> None:
    asyncio.run(_hostile(port, slow, silent, interval, pipe))


@contextlib.contextmanager
def hostile_clients(port: int, slow: int, silent: int, interval: float) -> Iterator[list[int]]:
    """The hostile clients, connected for the block; yields a list that receives the
    number of 408s they got once they stop."""
    parent_end, child_end = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=hostile_process, args=(port, slow, silent, interval, child_end), daemon=True
    )
    process.start()
    refused: list[int] = []
    try:
        if not parent_end.poll(READY_TIMEOUT):
            raise RuntimeError("the hostile clients did not connect in time")
        parent_end.recv()
        yield refused
    finally:
        parent_end.send("stop")
        if parent_end.poll(30):
            refused.append(parent_end.recv())
        process.join(10)
        if process.is_alive():
            process.kill()


# -- the normal requests -----------------------------------------------------------------


@dataclass
class Timing:
    latencies: list[float]
    timeouts: int


def normal_requests(port: int, path: str, seconds: float) -> Timing:
    """GET ``path`` on a new connection every PACE seconds for ``seconds``."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    latencies, timeouts = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as sock:
                sock.sendall(request.encode())
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            if not data.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"a normal request answered {data[:100]!r}")
            latencies.append(time.monotonic() - started)
        except TimeoutError:
            timeouts += 1
        time.sleep(max(0.0, PACE - (time.monotonic() - started)))
    return Timing(latencies, timeouts)


def measure(
    name: str, port: int, pid: int, path: str, args: argparse.Namespace, seconds: float
) -> dict[str, object]:
    quiet = normal_requests(port, path, seconds)
    with hostile_clients(port, args.slow, args.silent, args.interval) as refused:
        held = len(b.connections_by_process(port, [pid])[pid])
        threads = b.proc_status_kb(pid, "Threads")
        loud = normal_requests(port, path, seconds)
    b.heading(name)
    for label, timing in (
        ("no hostile client", quiet),
        (f"{args.slow + args.silent} hostile", loud),
    ):
        values = timing.latencies
        b.line(
            label,
            f"p50 {b.ms(b.percentile(values, 0.5))}  p99 {b.ms(b.percentile(values, 0.99))}"
            f"  max {b.ms(max(values, default=float('nan')))}  ({len(values)} requests,"
            f" {timing.timeouts} timed out)",
        )
    b.line("connections the server held (hostile ones)", str(held))
    b.line("server threads meanwhile", str(threads))
    b.line("408s the slow clients got", str(refused[0] if refused else "?"))
    p99 = b.percentile(loud.latencies, 0.99)
    return {
        f"{name}_p50_ms": f"{b.percentile(quiet.latencies, 0.5) * 1000:.1f}",
        f"{name}_p99_ms": f"{b.percentile(quiet.latencies, 0.99) * 1000:.1f}",
        f"{name}_hostile_p50_ms": f"{b.percentile(loud.latencies, 0.5) * 1000:.1f}",
        f"{name}_hostile_p99_ms": f"{p99 * 1000:.1f}",
        f"{name}_timeouts": loud.timeouts,
        f"{name}_met": p99 < TARGET_P99 and not loud.timeouts,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 s per measure instead of 10 s")
    parser.add_argument("--slow", type=int, default=400, help="slow clients (default 400)")
    parser.add_argument("--silent", type=int, default=100, help="silent clients (default 100)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between lines")
    parser.add_argument("--seconds", type=float, help="seconds per measure")
    args = parser.parse_args()
    seconds = args.seconds or (4.0 if args.quick else 10.0)

    from opus.settings import Settings

    defaults = Settings()
    threads = defaults.SERVER_THREADS
    b.heading(
        f"bench_slowloris: normal GETs with {args.slow} slow and {args.silent} silent clients"
    )
    b.line("threads (both servers)", str(threads))
    b.line("REQUEST_HEADER_TIMEOUT", f"{defaults.REQUEST_HEADER_TIMEOUT:g} s")
    b.line("normal requests", f"one every {PACE * 1000:.0f} ms, new connection, {seconds:g} s")
    figures: dict[str, object] = {}
    with b.workdir("slowloris") as base:
        with b.bare_server(threads, 1, base / "bare.log") as bare:
            figures.update(measure("bare", bare.port, bare.pid, "/rest/sleep/job0", args, seconds))
        with b.OpusServer(base / "var", base / "jdl") as server:
            path = b.create_job(b.connection(server.base_url), JOBNAME, "duration=1")
            figures.update(measure("opus", server.port, server.pid, path, args, seconds))
    met = bool(figures["opus_met"])
    b.heading("target")
    b.line(
        "OPUS p99 with the hostile clients",
        f"{figures['opus_hostile_p99_ms']} ms  ({b.verdict(met)}: < {TARGET_P99 * 1000:.0f} ms,"
        " none timed out)",
    )
    figures = {k: v for k, v in figures.items() if not k.endswith("_met")}
    figures["clients"] = args.slow + args.silent
    figures["p99_target"] = "met" if met else "missed"
    b.result("bench_slowloris", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

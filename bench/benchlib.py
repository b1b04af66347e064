"""Helpers shared by the benchmarks: a throw-away `opus serve`, timing and reporting.

Every benchmark starts its own server on a free loopback port, with its data in a
temporary directory and a copy of the shipped job definitions, and removes both when
it ends. Figures are printed, never asserted: the machine is shared and noisy, so each
figure comes with a reference measured in the same run.

The server's database is SQLite (a file in its data directory) or, with
``postgres_database()``, a database of a throwaway PostgreSQL server
(tests/pg_cluster.py), which `opus serve --workers N` needs for N > 1. Either way the
database is migrated (`opus db upgrade`) before the server starts.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    # The benchmarks import tests.pg_cluster and tests.slurm_cluster.
    sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
DATABASES = ("sqlite", "postgresql")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

# A job type that does nothing: the smallest possible job, for round trips.
# The phase in a UWS document, and the phases a job never leaves.
PHASE_RE = re.compile(rb"<uws:phase>(\w+)</uws:phase>")
FINAL_PHASES = {"COMPLETED", "ERROR", "ABORTED"}

NOOP_JDL = """\
# Benchmark job type: runs `true`, takes no parameters, produces nothing.
name: noop
annotation: Does nothing (benchmarks).
version: "1.0"
execution_duration: 60
script: "true"
"""


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds the benchmark: its servers are stopped, its directories removed.
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _exit_on_sigterm)


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Return once something accepts connections on ``port`` (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout:.0f} s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM this one process, then SIGKILL it if it does not leave in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


class OpusServer:
    """An `opus serve` subprocess on a free port, its data in ``var``.

    ``database_url`` (None: SQLite in ``var``) is migrated before the server starts;
    ``workers`` > 1 runs `opus serve --workers N` (PostgreSQL only): ``pid`` is then
    the supervisor's, ``worker_pids()`` the processes that serve.
    """

    def __init__(
        self,
        var: Path,
        jdl: Path,
        env: Mapping[str, str] | None = None,
        *,
        workers: int = 1,
        database_url: str | None = None,
    ) -> None:
        self.var = var
        self.jdl = jdl
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.extra_env = dict(env or {})
        self.workers = workers
        self.database_url = database_url
        self.log_path = var.parent / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPUS_")}
        env.update(
            OPUS_VAR_PATH=str(self.var),
            OPUS_BASE_URL=self.base_url,
            OPUS_LOG_LEVEL="WARNING",
            # The benchmarks measure the job machinery, as the shared anonymous owner.
            OPUS_ALLOW_ANONYMOUS="true",
            # They create more jobs than one owner may keep by default: limits far above
            # what they create, still checked (their cost is part of what is measured).
            OPUS_JOBS_PER_USER_MAX="1000000000",
            OPUS_STORAGE_PER_USER_MAX=str(2**62),
            OPUS_JDL_PATH=str(self.jdl),
        )
        if self.database_url:
            env["OPUS_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def upgrade_database(self) -> None:
        """`opus db upgrade` with the server's environment (a server refuses otherwise)."""
        done = subprocess.run(
            [PYTHON, "-m", "opus", "db", "upgrade"],
            cwd=ROOT,
            env=self.environ(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        if done.returncode != 0:
            raise RuntimeError(f"opus db upgrade failed:\n{done.stdout}{done.stderr}")

    def start(self) -> OpusServer:
        self.upgrade_database()
        command = [PYTHON, "-m", "opus", "serve", "--port", str(self.port)]
        if self.workers != 1:
            command += ["--workers", str(self.workers)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.environ(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(self.port, self.process, START_TIMEOUT)
            self._wait_for_workers()
        except RuntimeError:
            self.stop()
            print(self.log_tail(), file=sys.stderr)
            raise
        return self

    def _wait_for_workers(self) -> None:
        """Return once every worker listens on the port (each has its own socket)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if len(tcp_sockets(self.port, TCP_LISTEN)) >= self.workers:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.workers} workers not listening after {START_TIMEOUT:.0f} s")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """The processes that serve: the workers, or the server itself with one."""
        if self.workers == 1:
            return [self.pid]
        return children(self.pid)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> OpusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        tail = self.log_tail()
        if "Traceback" in tail or "ERROR" in tail:
            print(f"--- server log ({self.log_path.name}) ---\n{tail}", file=sys.stderr)


BARE_APP = Path(__file__).with_name("bare_app.py")


@dataclass
class BareServer:
    """bench/bare_app.py serving on ``port``: the references of bench_create and
    bench_wait. ``pid`` is the supervisor's with several workers."""

    port: int
    pid: int
    workers: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serving_pids(self) -> list[int]:
        """The processes that serve: the workers, or the server itself with one."""
        return [self.pid] if self.workers == 1 else children(self.pid)


@contextmanager
def bare_server(threads: int, workers: int, log: Path) -> Iterator[BareServer]:
    """Start bare_app.py on a free port with as many threads and processes as OPUS;
    return once every process listens; stop it at the end."""
    port = free_port()
    command = [PYTHON, str(BARE_APP), "--port", str(port), "--threads", str(threads)]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process, START_TIMEOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while len(tcp_sockets(port, TCP_LISTEN)) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bare handler's {workers} processes did not listen")
            time.sleep(0.05)
        yield BareServer(port, process.pid, workers)
    finally:
        stop_process(process)


@contextmanager
def postgres_cluster() -> Iterator[Any]:
    """A throwaway PostgreSQL server (tests/pg_cluster.py), stopped and removed at the end.

    It runs with the settings of the tests: durability off (fsync, synchronous_commit),
    shared_buffers 64MB, max_connections 500.
    """
    from tests.pg_cluster import running_cluster, server_binaries

    with running_cluster(server_binaries()) as cluster:
        yield cluster


@dataclass
class Database:
    """The database of a benchmark's server."""

    kind: str
    url: str | None  # None: SQLite, a file in the server's data directory
    cluster: Any = None  # the PostgresCluster of a PostgreSQL database

    def server_pids(self) -> list[int]:
        """The PostgreSQL server's processes (postmaster and backends); none for SQLite."""
        if self.cluster is None:
            return []
        try:
            postmaster = int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [postmaster, *children(postmaster)]


@contextmanager
def database(kind: str, prefix: str = "bench") -> Iterator[Database]:
    """The database of a benchmark's server: SQLite (a file in its data directory), or a
    migrated database of a PostgreSQL server started for the block."""
    if kind == "sqlite":
        yield Database(kind, None)
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database {kind!r} (one of {', '.join(DATABASES)})")
    with postgres_cluster() as cluster:
        yield Database(kind, cluster.create_database(prefix), cluster)


@contextmanager
def workdir(prefix: str, extra_jdl: Mapping[str, str] | None = None) -> Iterator[Path]:
    """A temporary directory holding ``var/`` and ``jdl/`` (a copy of the shipped one)."""
    base = Path(tempfile.mkdtemp(prefix=f"opus-{prefix}-"))
    try:
        jdl = base / "jdl"
        shutil.copytree(ROOT / "jdl", jdl)
        for name, text in (extra_jdl or {}).items():
            (jdl / name).write_text(text)
        (base / "var").mkdir()
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- HTTP -----------------------------------------------------------------------------


def connection(base_url: str, timeout: float = 60.0) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request on a keep-alive connection: (status, headers, body)."""
    sent = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    sent.update(headers or {})
    conn.request(method, path, body=body, headers=sent)
    response = conn.getresponse()
    data = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def create_job(conn: http.client.HTTPConnection, jobname: str, body: str) -> str:
    """POST a job, return its path (/rest/jobname/id)."""
    status, headers, data = request(conn, "POST", f"/rest/{jobname}", body)
    if status != 303:
        raise RuntimeError(f"job creation answered {status}: {data[:200]!r}")
    return urlsplit(headers["location"]).path


# -- process figures ------------------------------------------------------------------


def proc_status_kb(pid: int, field: str) -> int:
    """A figure of /proc/PID/status in kB (VmHWM, VmRSS), 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc/*/stat)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def rss_kb(pids: Sequence[int]) -> int:
    """The summed VmRSS of these processes, in kB."""
    return sum(proc_status_kb(pid, "VmRSS") for pid in pids)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by a process (its threads included)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- TCP sockets (/proc/net/tcp) ---------------------------------------------------------

TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"


@dataclass(frozen=True)
class TcpSocket:
    local_port: int
    remote_port: int
    state: str
    inode: int  # 0 while the connection waits in the accept queue
    rx_queue: int  # bytes received and not yet read by the process


def tcp_sockets(port: int, state: str) -> list[TcpSocket]:
    """The sockets of this machine whose local port is ``port``, in ``state``."""
    found = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local = int(fields[1].rsplit(":", 1)[1], 16)
            if local == port and fields[3] == state:
                remote = int(fields[2].rsplit(":", 1)[1], 16)
                rx_queue = int(fields[4].split(":")[1], 16)
                found.append(TcpSocket(local, remote, state, int(fields[9]), rx_queue))
    return found


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process ``pid`` holds open (/proc/PID/fd)."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def connections_by_process(
    port: int, pids: Sequence[int], *, idle_only: bool = False
) -> dict[int, list[int]]:
    """For each pid, the remote ports of its ESTABLISHED connections on ``port`` (the
    accepted ones; with ``idle_only``, only those whose request the process has read)."""
    sockets = tcp_sockets(port, TCP_ESTABLISHED)
    if idle_only:
        sockets = [s for s in sockets if s.rx_queue == 0]
    split: dict[int, list[int]] = {}
    for pid in pids:
        inodes = socket_inodes(pid)
        split[pid] = [s.remote_port for s in sockets if s.inode in inodes]
    return split


# -- statistics and reporting ---------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(met: bool) -> str:
    return "target met" if met else "target missed"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def heading(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def line(label: str, value: str) -> None:
    print(f"  {label:<44} {value}", flush=True)


def result(name: str, figures: Mapping[str, object]) -> None:
    """The one summary line run_all.py collects: RESULT name key=value ..."""
    parts = " ".join(f"{key}={value}" for key, value in figures.items())
    print(f"RESULT {name} {parts}", flush=True)

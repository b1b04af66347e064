"""`opus serve --workers N`: N server processes sharing one port, and their supervisor.

The supervisor (the process `opus serve` started as) forks the workers and does nothing
else: it opens no database connection and runs no thread, so forking is safe. Each
worker builds its own application (engine, reconciler thread, change listener) and
serves the port with cheroot; the workers' listening sockets share the port through
SO_REUSEPORT, and the kernel spreads new connections over them.

A worker that dies is started again (a crash loop stops the server). SIGTERM or SIGINT
to the supervisor stops the workers gracefully; a worker whose supervisor disappears
(even by SIGKILL) is sent SIGTERM by the kernel (PR_SET_PDEATHSIG), so no orphan keeps
serving an old configuration.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

log = logging.getLogger("opus.workers")

# A worker that dies sooner than this after its start counts as a failed start.
FAST_DEATH_SECONDS = 10.0
# This many failed starts in a row stop the server (a port taken, a broken setting…).
MAX_FAILED_STARTS = 5
STOP_TIMEOUT = 20.0
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the supervisor goes; leave if it already went."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        log.warning("workers will not stop by themselves if the supervisor is killed")
    if os.getppid() != parent:
        os._exit(0)


class Supervisor:
    """Starts ``count`` workers running ``work(index)``, restarts the ones that die."""

    def __init__(self, count: int, work: Callable[[int], None]) -> None:
        self.count = count
        self.work = work
        self.children: dict[int, tuple[int, float]] = {}  # pid → (index, start time)
        self.stopping = False
        self.failed_starts = 0

    def _spawn(self, index: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            # In the worker: default signal handling until its server installs its own.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _die_with_parent(parent)
            status = 0
            try:
                self.work(index)
            except BaseException:
                log.exception("worker %d failed", index)
                status = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        self.children[pid] = (index, time.monotonic())
        log.info("worker %d started (pid %d)", index, pid)

    def _stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; the exit status of the server."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for index in range(self.count):
            self._spawn(index)
        status = 0
        while not self.stopping:
            pid, code = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.2)
                continue
            child = self.children.pop(pid, None)
            if child is None:
                continue
            index, started = child
            exit_code = os.waitstatus_to_exitcode(code)
            how = f"signal {-exit_code}" if exit_code < 0 else f"status {exit_code}"
            log.warning("worker %d (pid %d) ended by %s: restarting it", index, pid, how)
            if time.monotonic() - started < FAST_DEATH_SECONDS:
                self.failed_starts += 1
                if self.failed_starts >= MAX_FAILED_STARTS:
                    log.error("workers keep failing at start: stopping the server")
                    status = 1
                    break
                time.sleep(min(2.0**self.failed_starts / 4, 5.0))
            else:
                self.failed_starts = 0
            if not self.stopping:
                self._spawn(index)
        self._stop_children()
        return status

    def _stop_children(self) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.children and time.monotonic() < deadline:
            pid, _code = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.1)
            else:
                self.children.pop(pid, None)
        for pid in list(self.children):
            log.warning("worker pid %d did not stop: killing it", pid)
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        self.children.clear()

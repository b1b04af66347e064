"""The local manager: batch scripts run as detached processes on the server's host.

Each job runs in its own session and process group (``start_new_session``), so it
survives a server restart and abort can kill the whole group. The external id is
``PID:STARTTIME`` (start time in clock ticks from /proc), so a recycled PID is never
mistaken for the job. A job whose process ended is judged by the status file its
batch script wrote; no status file means the process died without reporting.

Jobs start with umask 077 (what they write is private to their account). With
LOCAL_JOB_UIDS each runs under a uid of its own (jobusers.py), given back when it ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from opus.core.layout import JobLayout
from opus.core.phases import Phase
from opus.server.datadirs import PRIVATE_FILE, PRIVATE_UMASK
from opus.server.managers.base import (
    JobState,
    ManagedJob,
    Manager,
    ManagerError,
    job_environment,
    read_status_file,
)
from opus.server.managers.jobusers import JobAccount, JobUids

log = logging.getLogger("opus.manager.local")

KILL_GRACE_SECONDS = 3.0


def _proc_start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def _parse_external_id(external_id: str | None) -> tuple[int, str] | None:
    if not external_id or ":" not in external_id:
        return None
    pid, start = external_id.split(":", 1)
    return (int(pid), start) if pid.isdigit() else None


class LocalManager(Manager):
    """Runs batch scripts with bash on this host."""

    name = "local"

    def __init__(self, job_uids: JobUids | None = None) -> None:
        # Children started by this process, kept to reap them (no zombies).
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        # LOCAL_JOB_UIDS: each job under a uid of its own (None: the server's account).
        self.job_uids = job_uids

    def submit(self, job: ManagedJob, batch_script: Path) -> str:
        account = JobAccount(None, job_environment())
        if self.job_uids is not None:
            account = self.job_uids.account(self.job_uids.start(job.job_dir), job.job_dir)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            log_fd = os.open(JobLayout(job.job_dir).batch_log, flags, PRIVATE_FILE)
            with os.fdopen(log_fd, "ab") as batch_log:
                process = subprocess.Popen(
                    ["bash", str(batch_script)],
                    cwd=job.job_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=batch_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    umask=PRIVATE_UMASK,
                    env=account.environment,
                    user=account.uid,
                    group=account.uid,
                    extra_groups=None if account.uid is None else [],
                )
        except OSError as exc:
            self.job_ended(job)
            raise ManagerError(f"could not start the job: {exc}") from exc
        start = _proc_start_time(process.pid) or "0"
        with self._lock:
            self._reap()
            self._children[process.pid] = process
        return f"{process.pid}:{start}"

    def _reap(self) -> None:
        for pid, process in list(self._children.items()):
            if process.poll() is not None:
                del self._children[pid]

    def _alive(self, external_id: str | None) -> bool:
        parsed = _parse_external_id(external_id)
        if parsed is None:
            return False
        pid, start = parsed
        with self._lock:
            process = self._children.get(pid)
            if process is not None and process.poll() is not None:
                del self._children[pid]
        return _proc_start_time(pid) == start

    def abort(self, job: ManagedJob) -> None:
        parsed = _parse_external_id(job.external_id)
        if parsed is None or not self._alive(job.external_id):
            self.job_ended(job)  # what it left behind, if it left anything
            return
        pid = parsed[0]
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            self.job_ended(job)
            return
        except PermissionError as exc:
            raise ManagerError(f"cannot signal job process {pid}: {exc}") from exc

        def kill_later() -> None:
            # Whatever ignored SIGTERM is killed; the group id cannot be reused while
            # any member lives, so this cannot hit an unrelated process group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with self._lock:
                self._reap()
            self.job_ended(job)

        timer = threading.Timer(KILL_GRACE_SECONDS, kill_later)
        timer.daemon = True
        timer.start()

    def job_ended(self, job: ManagedJob) -> None:
        if self.job_uids is not None:
            try:
                self.job_uids.release(job.job_dir)
            except OSError as exc:
                log.error("job %s: could not give its uid back: %s", job.job_id, exc)

    def cleanup(self, job: ManagedJob) -> None:
        self.job_ended(job)

    def states(self, jobs: Sequence[ManagedJob]) -> dict[str, JobState]:
        states: dict[str, JobState] = {}
        with self._lock:
            self._reap()
        for job in jobs:
            if job.external_id is None:
                continue
            # The status file is written once the job's script and result collection
            # are done: it is the truth even while the batch script, still alive, retries
            # a callback to a server that was down.
            final = read_status_file(job.job_dir)
            if final is not None:
                states[job.job_id] = final
            elif self._alive(job.external_id):
                states[job.job_id] = JobState(Phase.EXECUTING)
            else:
                states[job.job_id] = JobState(
                    Phase.ERROR, "the job's process ended without reporting how it finished"
                )
        return states

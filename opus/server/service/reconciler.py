"""The reconciler: what signals missed, caught by asking the manager.

A job's batch script reports its phases itself (signal endpoint); this pass catches the
rest, every RECONCILE_INTERVAL in a background thread of the server (``Reconciler``)
and on demand in `opus maintenance`: a job whose status file exists ends in that phase
even if its callbacks were lost; a process that died without one → ERROR; a job lost
during its submission → ERROR; executionDuration exceeded → stopped and ABORTED with an
errorSummary; destruction time passed → deleted, or ARCHIVED when so configured; the
change feed's old tombstones forgotten (storage/changes.py). Every
change goes through the JobService's phase writers, as compare-and-set, so a late
signal and the reconciler never both win. One process at a time reconciles (the
reconciler lock of storage.Coordination).

A job whose reconciliation fails (a fault of OPUS's, or a job directory it cannot
make sense of) is not retried every pass: the fault is logged once, with its
traceback, and the job is moved to ERROR with an errorSummary saying so.

Each pass is recorded (``last_pass``): when it started, how long it took, what it
changed, or the fault that stopped it; the admins' status page shows it. The record is
kept in memory, per service and per process: a pass another process of the server ran
(the holder of the reconciler lock, `opus maintenance`) is not in it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opus.core.phases import RUNNING, TERMINAL, Phase
from opus.core.records import Job
from opus.core.text import printable
from opus.core.times import utcnow
from opus.server.managers import JobState, ManagedJob
from opus.server.service.jobs import JobService

log = logging.getLogger("opus.reconciler")

# A job left QUEUED without an external id this long was lost during submission.
SUBMIT_GRACE = timedelta(seconds=60)


@dataclass
class ReconcileReport:
    """What one reconciliation pass did (printed by ``opus maintenance``)."""

    checked: int = 0
    changed: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PassRecord:
    """One pass of the reconciler as this process saw it: its start, its duration in
    seconds, and what it did (``report``) or the fault that stopped it (``error``)."""

    started: datetime
    seconds: float
    report: ReconcileReport | None
    error: str | None = None


# The last pass of each service in this process (weak: a service gone takes its own).
_last_passes: weakref.WeakKeyDictionary[JobService, PassRecord] = weakref.WeakKeyDictionary()
_last_passes_lock = threading.Lock()


def last_pass(service: JobService) -> PassRecord | None:
    """The last reconciliation pass this process ran for ``service`` (None: none yet)."""
    with _last_passes_lock:
        return _last_passes.get(service)


def reconcile(service: JobService) -> ReconcileReport:
    """One pass: ask the manager about running jobs, enforce limits, destroy; recorded
    (``last_pass``), a failed pass with its fault before it is raised again."""
    started = utcnow()
    clock = time.monotonic()
    try:
        report = _reconcile(service, started)
    except Exception as exc:
        _record(service, PassRecord(started, time.monotonic() - clock, None, _reason(exc)))
        raise
    _record(service, PassRecord(started, time.monotonic() - clock, report))
    return report


def _record(service: JobService, record: PassRecord) -> None:
    with _last_passes_lock:
        _last_passes[service] = record


def _reason(exc: Exception) -> str:
    """A fault in one printable line (the log has its traceback)."""
    return printable(" ".join(str(exc).split())[:200]) or type(exc).__name__


def _reconcile(service: JobService, now: datetime) -> ReconcileReport:
    report = ReconcileReport()
    # In batches, so that memory stays flat however many jobs run; each batch is one
    # call to the manager (one squeue for SLURM).
    for jobs in service.store.running_jobs(RUNNING):
        report.checked += len(jobs)
        managed = [
            ManagedJob(j.id, j.external_id, service.files.directory(j.id), j.execution_duration)
            for j in jobs
            if j.external_id
        ]
        states = service.manager.states(managed) if managed else {}
        for job in jobs:
            try:
                _reconcile_job(service, job, states.get(job.id), now, report)
            except Exception as exc:
                log.exception("reconciling job %s failed: the job is set to ERROR", job.id)
                _give_up(service, job, exc, now, report)
    _destroy_expired(service, now, report)
    # Tombstones of the change feed kept for TOMBSTONE_DAYS (at most every few minutes).
    service.store.changes.prune_now_and_then(now)
    return report


def _give_up(
    service: JobService, job: Job, exc: Exception, now: datetime, report: ReconcileReport
) -> None:
    """ERROR for a job its reconciliation failed on, so that the next pass does not
    fail on it again (a failure to do even that, the database gone, is retried)."""
    message = f"OPUS could not finish the job ({_reason(exc)}): see the server's log"
    try:
        if job.phase in RUNNING and job.external_id is not None:
            service.stop(job)
        if service.change_phase(
            job.id, Phase.ERROR, end_time=now, error_type="fatal", error_message=message
        ):
            report.changed.append(job.id)
    except Exception as again:
        log.warning("job %s: could not be set to ERROR either: %s", job.id, again)


def _reconcile_job(
    service: JobService, job: Job, state: JobState | None, now: datetime, report: ReconcileReport
) -> None:
    if job.external_id is None:
        if job.phase == Phase.QUEUED and now - job.phase_time > SUBMIT_GRACE:
            message = "the job was never submitted (server stopped during submission)"
            if service.change_phase(
                job.id,
                Phase.ERROR,
                end_time=now,
                error_type="transient",
                error_message=message,
            ):
                report.changed.append(job.id)
        return
    started = job.start_time or (job.phase_time if job.phase == Phase.EXECUTING else None)
    limit = job.execution_duration
    # A backend that enforces the limit itself (SLURM's --time) gets a grace time to do
    # so, and its own verdict (TIMEOUT) reaches the job.
    grace = service.manager.time_limit_grace
    if (
        limit > 0
        and started is not None
        and (state is None or state.phase not in TERMINAL)
        and now > started + timedelta(seconds=limit + grace)
    ):
        service.stop(job)
        message = f"the job exceeded its execution duration of {limit} s and was stopped"
        if service.change_phase(
            job.id, Phase.ABORTED, end_time=now, error_type="fatal", error_message=message
        ):
            report.timed_out.append(job.id)
        return
    if state is None or state.phase == job.phase:
        return
    if state.phase in (Phase.COMPLETED, Phase.ERROR):
        changed = service.finish(job, state.phase, state.message)
    elif state.phase == Phase.ABORTED:
        changed = service.change_phase(
            job.id,
            Phase.ABORTED,
            end_time=now,
            error_type="fatal" if state.message else None,
            error_message=state.message,
        )
    elif state.phase == Phase.EXECUTING and job.start_time is None:
        changed = service.change_phase(job.id, Phase.EXECUTING, start_time=now)
    else:
        changed = service.change_phase(job.id, state.phase)
    if changed:
        report.changed.append(job.id)


def _destroy_expired(service: JobService, now: datetime, report: ReconcileReport) -> None:
    for job_id in service.store.expired_job_ids(now):
        job = service.store.get_job(job_id)
        if job is None:
            continue
        if not service.settings.ARCHIVE_ON_DESTRUCTION:
            service.destroy(job)
            report.destroyed.append(job_id)
        elif service.archive(job, now):
            report.archived.append(job_id)


class Reconciler(threading.Thread):
    """Background thread running ``reconcile`` every RECONCILE_INTERVAL, while this
    process holds the reconciler lock."""

    def __init__(self, service: JobService) -> None:
        super().__init__(name="opus-reconciler", daemon=True)
        self.service = service
        self.stopping = threading.Event()
        self.leading = False

    def run(self) -> None:
        interval = self.service.settings.RECONCILE_INTERVAL
        # Of the processes of a server (and `opus maintenance`), only the holder of the
        # lock reconciles; the others keep trying, to take over if it goes.
        lock = self.service.coordination.reconciler_lock()
        try:
            while not self.stopping.wait(interval):
                try:
                    holder = lock.acquire()
                except Exception as exc:
                    log.warning("reconciler lock unavailable: %s", exc)
                    holder = False
                if holder != self.leading:
                    self.leading = holder
                    verb = "runs" if holder else "no longer runs"
                    log.info("this process %s the reconciler", verb)
                if not holder:
                    continue
                try:
                    reconcile(self.service)
                except Exception:
                    log.exception("reconciliation pass failed")
        finally:
            with contextlib.suppress(Exception):
                lock.release()

    def stop(self) -> None:
        """Ask the thread to end after its current pass."""
        self.stopping.set()

"""Synchronous runs (/sync/{jobname}): a job created, run and waited for in one request.

UWS 1.1 §5 describes a synchronous facade on top of UWS: the request creates an
ordinary job, runs it, and is answered once the job has ended. Here the job is made by
``JobService.create_job`` with PHASE=RUN, exactly as ``POST /rest/{jobname}`` makes it
(the caller's access to the type, every value checked, uploads saved, the owner's
limits; nothing kept of a refused request), so a synchronous job is an asynchronous job
like any other: listed, followed and deleted under /rest.

The request then waits as a WAIT does (waiting.py), from phase change to phase change
until the job is no longer active: subscribed to the job's changes before each read,
so that no change is missed, woken by the change itself, looking again every
RECHECK_SECONDS for changes nobody announced. It waits at most SYNC_TIMEOUT seconds,
and holds its thread meanwhile: a POST with a body cannot be parked. Waiting threads are
capped by the notifier, WAIT's and these together; past the cap, and when the HTTP
server says the client has gone, the job is returned as it is, still running, and the
route answers with the job's URL: the client follows it asynchronously.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from opus.core.access import Caller
from opus.core.records import JobDetails
from opus.server.service.inputs import Upload
from opus.server.service.jobs import JobService
from opus.server.waiting import Wait


def run_synchronously(
    service: JobService,
    caller: Caller,
    jobname: str,
    values: Mapping[str, str],
    uploads: Sequence[Upload] = (),
    control: Mapping[str, str] | None = None,
    connected: Callable[[], bool] | None = None,
) -> JobDetails:
    """Create a job of the caller and run it, then return it once it has ended, or as
    it is after SYNC_TIMEOUT seconds (or when ``connected`` says the client went).

    ``control`` are the UWS control parameters (upper-case names); PHASE=RUN is implied
    (any other PHASE is refused, as at creation). Raises like JobService.create_job,
    before anything is kept: BadRequest, PayloadTooLarge, NotFound, Forbidden (NJOBS_MAX
    included: the job is not kept either).
    """
    job = service.create_job(caller, jobname, values, uploads, {"PHASE": "RUN", **(control or {})})
    return wait_for_end(service, caller, jobname, job.id, service.settings.SYNC_TIMEOUT, connected)


def wait_for_end(
    service: JobService,
    caller: Caller,
    jobname: str,
    job_id: str,
    timeout: float,
    connected: Callable[[], bool] | None = None,
) -> JobDetails:
    """The job once it is no longer PENDING, QUEUED or EXECUTING, or as it is
    after ``timeout`` seconds, when ``connected`` says no, or at once past the
    notifier's cap on waiting threads. Raises like JobService.get_job (a job deleted
    meanwhile: NotFound)."""
    wait = Wait.starting_now(timeout)  # no PHASE: over once the job has ended

    def read() -> JobDetails:
        return service.get_job(caller, jobname, job_id)

    while True:
        with service.notifier.subscribe(job_id) as waiter:
            # Subscribed before the read: a change between the two still wakes us.
            details = read()
            if waiter is None or wait.is_over(details.job) or wait.remaining() <= 0:
                return details
            # Returns at the job's next change (QUEUED → EXECUTING is one), or later.
            details = wait.in_thread(waiter, details, read, connected)
        gone = connected is not None and not connected()
        if gone or wait.is_over(details.job) or wait.remaining() <= 0:
            return details

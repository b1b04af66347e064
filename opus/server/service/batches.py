"""Batches: many jobs of one type made by one request, one per file of an input.

The new-job form's "Run once per file" makes one job per file given for one input
(uploaded, or one of the user's results by reference), every other value the same. A
batch is all or nothing, like one job:

1. every job's values are checked first, as ``JobService.create_job`` checks them
   before it writes anything, so that a bad value refuses the batch before a file is
   saved; the owner's JOBS_PER_USER_MAX is checked for the whole batch (one read);
2. the jobs are then created PENDING by ``create_job`` itself, one after the other
   (which checks everything again, and each write its limits); a refusal on the way
   (an upload too large, STORAGE_PER_USER_MAX, a URL that cannot be fetched) deletes the
   jobs created before it, so nothing is kept of a refused batch;
3. with PHASE=RUN the jobs are run in their order while NJOBS_MAX allows: the first
   refusal leaves that job and the rest PENDING, for the owner to run later. Nothing
   is refused for that: the batch says how many were started.

A file shared by every job (another input's upload, a rerun's input) is read again from
its start for each: each job's directory has its own copy, as every job has. A refusal
about one job names it (``BatchJob.label``: "file 2 of 5 (b.txt)").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from opus.core.access import Caller
from opus.core.errors import BadRequest, Forbidden, OpusError, PayloadTooLarge
from opus.core.records import Job
from opus.core.times import utcnow
from opus.server.service.inputs import Upload
from opus.server.service.jobs import JobService


@dataclass(frozen=True)
class BatchJob:
    """The values and uploads of one job of a batch, and what names it in a refusal."""

    values: Mapping[str, str]
    uploads: Sequence[Upload]
    label: str


@dataclass(frozen=True)
class Batch:
    """The jobs a batch created, in order, and how many of them were started (the
    first ``started``; the others are PENDING)."""

    jobs: list[Job]
    started: int


def create_batch(
    service: JobService,
    caller: Caller,
    jobname: str,
    jobs: Sequence[BatchJob],
    control: Mapping[str, str],
) -> Batch:
    """Create the jobs of a batch for the caller, all or none, then run them (PHASE=RUN
    in ``control``, the UWS control parameters shared by every job) while NJOBS_MAX
    allows.

    Raises before anything is kept, like create_job: BadRequest (a value of any job, a
    batch empty or past BATCH_FILES_MAX), PayloadTooLarge, NotFound, Forbidden (the type,
    JOBS_PER_USER_MAX for the whole batch).
    """
    most = service.settings.BATCH_FILES_MAX
    if not jobs:
        raise BadRequest("a batch needs at least one file")
    if len(jobs) > most:
        raise BadRequest(f"{len(jobs)} files: at most {most} at once (BATCH_FILES_MAX)")
    jdl = service.usable_definition(caller, jobname)
    run = service.validator.control(control).run
    pending = {name: value for name, value in control.items() if name != "PHASE"}
    checked_control = service.validator.control(pending)
    service.validator.execution_duration(jdl, checked_control.execution_duration)
    service.validator.destruction(utcnow(), checked_control.destruction)
    for job in jobs:
        with naming(job.label):
            checked = service.validator.values(jdl, job.values, job.uploads)
            service.entities.split_references(caller, checked)
    service.limits.before_batch(caller.name, len(jobs))
    starts = Rewinder([upload for job in jobs for upload in job.uploads])
    created: list[Job] = []
    try:
        for job in jobs:
            starts.rewind(job.uploads)
            with naming(job.label):
                created.append(
                    service.create_job(caller, jobname, job.values, job.uploads, pending)
                )
    except BaseException:
        for made in created:
            service.destroy(made)
        raise
    started = 0
    if run:
        for made in created:
            try:
                service.run(caller, jobname, made.id)
            except Forbidden:  # NJOBS_MAX (or deleted meanwhile): the rest wait
                break
            started += 1
    return Batch(created, started)


class Rewinder:
    """Where each upload's stream started, to read a file shared by several jobs again
    from there for each."""

    def __init__(self, uploads: Sequence[Upload]) -> None:
        self.starts = {
            id(upload.stream): upload.stream.tell()
            for upload in uploads
            if upload.stream.seekable()
        }

    def rewind(self, uploads: Sequence[Upload]) -> None:
        for upload in uploads:
            start = self.starts.get(id(upload.stream))
            if start is not None:
                upload.stream.seek(start)


@contextlib.contextmanager
def naming(label: str) -> Iterator[None]:
    """Around the checks or the creation of one job: a refusal says which job it is
    about (the refusal's kind and field kept)."""
    try:
        yield
    except (BadRequest, PayloadTooLarge, Forbidden) as exc:
        raise labelled(exc, label) from None


def labelled(error: OpusError, label: str) -> OpusError:
    """``error`` again, its reason prefixed with ``label``."""
    if isinstance(error, BadRequest):
        return BadRequest(f"{label}: {error}", error.field)
    made = type(error)(f"{label}: {error}")
    made.field = error.field
    return made

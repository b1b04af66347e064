"""The limits of one owner: the jobs they keep, the bytes their jobs store, the jobs
they run (JOBS_PER_USER_MAX, STORAGE_PER_USER_MAX, NJOBS_MAX).

Each limit is checked twice. First by one small read, before any work, so that a
request past a limit is refused before anything is saved or fetched (a URL input is
not fetched at all when nothing is left, and its download stops at what is left).
Then by the write itself, atomically (storage/limits.py), so that concurrent requests
cannot go past it together: the read sets the inputs' allowance, the write has the
last word, and nothing is stored when it refuses. Creations without inputs skip the
read: the write's check is enough.

A job's stored bytes are its input files when it is created (or its inputs change),
and everything in its directory (inputs, results, logs) once it has ended; ARCHIVED
jobs count for nothing. Results are never refused: they count against the creations
that follow. The limits apply to every owner, admins and the shared ``anonymous``
included (an admin who needs more raises the setting).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from opus.core.errors import Forbidden, OpusError, PayloadTooLarge
from opus.core.phases import TERMINAL, Phase
from opus.core.records import Job, Parameter
from opus.server.service.validation import Values
from opus.server.storage import JobStore
from opus.server.storage.limits import Quota, Usage
from opus.settings import Settings

# The phases in which a job's directory is measured again: it has ended, its files are
# there (an ARCHIVED job has none).
ENDED = TERMINAL - {Phase.ARCHIVED}

__all__ = ["ENDED", "Allowance", "OwnerLimits", "Quota", "directory_bytes", "input_bytes"]


def directory_bytes(directory: Path, *, deep: bool = True) -> int:
    """The bytes of the files in ``directory`` (under it with ``deep``), links not
    followed (a link counts as itself); what cannot be read counts for nothing."""
    total = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        total += directory_bytes(Path(entry.path)) if deep else 0
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    except OSError:
        return total
    return total


def input_bytes(directory: Path) -> int:
    """The bytes of a PENDING job's inputs: the files at the top of its directory."""
    return directory_bytes(directory, deep=False)


class Allowance:
    """What the inputs of one request may take: ``per_file`` bytes each
    (MAX_UPLOAD_SIZE), and no more in all than ``remaining`` (None: no storage limit).
    """

    def __init__(self, per_file: int, remaining: int | None = None, owner: str = "") -> None:
        self.per_file = per_file
        self.remaining = remaining
        self.owner = owner

    def limit(self) -> int:
        """The most the next input may take."""
        return self.per_file if self.remaining is None else min(self.per_file, self.remaining)

    @contextlib.contextmanager
    def saving(self) -> Iterator[int]:
        """Around the saving of one input, given its limit: a refusal because of the
        storage left names STORAGE_PER_USER_MAX."""
        limit = self.limit()
        try:
            yield limit
        except PayloadTooLarge:
            if self.remaining is None or self.remaining >= self.per_file:
                raise
            raise PayloadTooLarge(
                f"the inputs are larger than the {self.remaining} bytes {self.owner}'s jobs "
                "may still store (STORAGE_PER_USER_MAX)"
            ) from None

    def spend(self, path: Path) -> None:
        """Count a saved input against what is left."""
        if self.remaining is not None:
            self.remaining -= path.lstat().st_size


class OwnerLimits:
    """The per-owner limits of one server."""

    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.settings = settings
        self.store = store
        self.max_jobs = settings.JOBS_PER_USER_MAX
        self.max_bytes = settings.STORAGE_PER_USER_MAX
        self.max_active = settings.NJOBS_MAX

    def before_creation(self, owner: str, values: Values, run: bool) -> Allowance:
        """Refuse a creation past a limit as it stands (one read, skipped when the job
        has no inputs and is not run at once); the allowance of its inputs."""
        if not values.urls and not values.uploads and not run:
            return Allowance(self.settings.MAX_UPLOAD_SIZE)
        usage = self.store.usage(owner)
        self.check(owner, usage, run=run)
        return self.allowance(owner, usage)

    def before_batch(self, owner: str, count: int) -> None:
        """Refuse ``count`` new jobs at once that would take ``owner`` past
        JOBS_PER_USER_MAX (one read; each creation's write checks again)."""
        if not self.max_jobs:
            return
        usage = self.store.usage(owner)
        if usage.jobs + count > self.max_jobs:
            room = max(0, self.max_jobs - usage.jobs)
            raise Forbidden(
                f"{count} jobs would take {owner} past JOBS_PER_USER_MAX ({self.max_jobs}): "
                f"{owner} keeps {usage.jobs}; delete some, or make at most {room} at once"
            )

    def before_update(self, job: Job, values: Values) -> Allowance | None:
        """The allowance of the new inputs of a PENDING job (None without any; 413 if
        nothing is left)."""
        if not values.urls and not values.uploads:
            return None
        usage = self.store.usage(job.owner)
        if self.max_bytes and usage.stored_bytes >= self.max_bytes:
            raise self._storage_full(job.owner, usage)
        return self.allowance(job.owner, usage)

    def insert_job(self, job: Job, parameters: Sequence[Parameter], directory: Path) -> Job:
        """Store a new job, with the bytes of its inputs (in ``directory``), if its
        owner's jobs stay within the limits; the job as stored. Raises the refusal
        (nothing stored)."""
        job = replace(job, stored_bytes=input_bytes(directory))
        if not self.store.insert_job(job, parameters, self.creation_quota(job)):
            raise self.refusal(job, "create")
        return job

    def set_parameters(self, job: Job, parameters: Sequence[Parameter], directory: Path) -> None:
        """Store new parameters of a PENDING job, and the bytes of its inputs now (in
        ``directory``), if the owner's jobs stay within the storage limit. Forbidden if
        the job is no longer PENDING, PayloadTooLarge past the limit."""
        new_bytes = input_bytes(directory)
        quota = self.update_quota(job, new_bytes)
        if not self.store.set_parameters(job.id, parameters, {Phase.PENDING}, new_bytes, quota):
            raise self.refusal(job, "update", new_bytes)

    def allowance(self, owner: str, usage: Usage) -> Allowance:
        remaining = self.max_bytes - usage.stored_bytes if self.max_bytes else None
        return Allowance(self.settings.MAX_UPLOAD_SIZE, remaining, owner)

    def check(self, owner: str, usage: Usage, *, run: bool = False, new_bytes: int = 0) -> None:
        """Raise the refusal of a creation (``run`` at once, its inputs ``new_bytes``)
        by ``owner`` with ``usage``; nothing if it is within the limits."""
        if self.max_jobs and usage.jobs >= self.max_jobs:
            raise Forbidden(
                f"{owner} already keeps {usage.jobs} jobs (JOBS_PER_USER_MAX is "
                f"{self.max_jobs}): delete some to create more"
            )
        if self.max_bytes and usage.stored_bytes + max(new_bytes, 1) > self.max_bytes:
            raise self._storage_full(owner, usage, new_bytes)
        if run:
            self.check_active(owner, usage)

    def check_active(self, owner: str, usage: Usage) -> None:
        if usage.active >= self.max_active:
            raise Forbidden(
                f"{owner} already has {usage.active} active jobs (NJOBS_MAX is "
                f"{self.max_active}): wait for one to end"
            )

    def _storage_full(self, owner: str, usage: Usage, new_bytes: int = 0) -> PayloadTooLarge:
        adding = f", and these inputs take {new_bytes}" if new_bytes else ""
        return PayloadTooLarge(
            f"{owner}'s jobs already store {usage.stored_bytes} bytes{adding} "
            f"(STORAGE_PER_USER_MAX is {self.max_bytes}): delete some jobs to store more"
        )

    # -- the conditions of the writes -------------------------------------------------------

    def creation_quota(self, job: Job) -> Quota | None:
        """The condition of a new job's insert (checked after it, the job counted): at
        most JOBS_PER_USER_MAX jobs kept; STORAGE_PER_USER_MAX not passed by its inputs,
        and not already reached."""
        if not self.max_jobs and not self.max_bytes:
            return None
        return Quota(
            job.owner,
            jobs_below=self.max_jobs + 1 if self.max_jobs else None,
            bytes_at_most=self._bytes_at_most(job.stored_bytes),
        )

    def _bytes_at_most(self, new_bytes: int) -> int | None:
        if not self.max_bytes:
            return None
        # A job without inputs still needs room: at the limit, nothing more is created.
        return self.max_bytes if new_bytes else self.max_bytes - 1

    def update_quota(self, job: Job, new_bytes: int) -> Quota | None:
        """The condition of a change of a PENDING job's inputs (checked before it, the
        job counted at its old size)."""
        if not self.max_bytes or new_bytes <= job.stored_bytes:
            return None
        return Quota(job.owner, bytes_at_most=self.max_bytes - new_bytes + job.stored_bytes)

    def run_quota(self, owner: str) -> Quota:
        """The condition of PENDING → QUEUED (checked before it): fewer than NJOBS_MAX
        active jobs."""
        return Quota(owner, active_below=self.max_active)

    def refusal(self, job: Job, write: str, new_bytes: int = 0) -> OpusError:
        """Why a ``write`` ("create", "run", "update") of ``job`` was refused: the job
        is no longer PENDING, or a limit was reached (by requests that raced past the
        read before them)."""
        if write != "create":
            current = self.store.get_job(job.id)
            if current is None or current.phase != Phase.PENDING:
                return Forbidden(f"job {job.id} is no longer PENDING")
        usage = self.store.usage(job.owner)
        if write == "update":
            return self._storage_full(job.owner, usage, new_bytes)
        try:
            if write == "run":
                self.check_active(job.owner, usage)
            else:
                self.check(job.owner, usage, new_bytes=job.stored_bytes)
        except OpusError as exc:
            return exc
        return Forbidden(f"{job.owner}'s jobs reached a limit meanwhile: try again")

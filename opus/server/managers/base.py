"""The interface every execution manager implements.

Small on purpose: submit a batch script, abort, report the state of many jobs in one
call (a SLURM manager asks ``squeue`` once per pass, never once per job), clean up.
Managers never touch the database: the JobService turns their answers into phases.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from opus.core.layout import INTERNAL_DIR, STATUS_FILE
from opus.core.phases import Phase
from opus.server import nofollow

STATUS_FILE_MAX = 64 * 1024


def job_environment() -> dict[str, str]:
    """The environment jobs start with: the server's, minus its OPUS_* settings.

    Settings may hold secrets (a DATABASE_URL with its password): job scripts, which
    run user-chosen code, must not see them.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith("OPUS_")}


class ManagerError(RuntimeError):
    """The manager could not do what was asked (submission refused, command failed)."""


@dataclass(frozen=True)
class ManagedJob:
    """What a manager knows of a job: its ids, its directory and its options.

    ``options`` are the manager options the job set (``slurm_partition`` → ``"debug"``),
    already checked by ``Manager.check_options``.
    """

    job_id: str
    external_id: str | None
    job_dir: Path
    execution_duration: int = 0
    jobname: str = ""
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobState:
    """A manager's view of one job.

    ``phase`` is the UWS phase the manager sees (EXECUTING while the process runs, a
    terminal phase once it ended); ``message`` explains an ERROR or ABORTED.
    """

    phase: Phase
    message: str | None = None


class Manager(ABC):
    """An execution backend."""

    name: str = "base"
    # Job parameters this manager accepts as options (lower-case, e.g. slurm_mem).
    option_names: frozenset[str] = frozenset()
    # Seconds the reconciler waits past a job's executionDuration before stopping the
    # job itself: 0 when OPUS enforces the limit, more when the backend enforces it.
    time_limit_grace: float = 0.0

    def check_options(self, options: Mapping[str, str]) -> dict[str, str]:
        """The options, checked and normalised; ValueError names the first bad one."""
        for name in options:
            raise ValueError(f"{name} is not an option of the {self.name} manager")
        return {}

    @abstractmethod
    def submit(self, job: ManagedJob, batch_script: Path) -> str:
        """Start the batch script; return the external id. Raise ManagerError."""

    @abstractmethod
    def abort(self, job: ManagedJob) -> None:
        """Stop the job and everything it started. Never raises for a finished job."""

    @abstractmethod
    def states(self, jobs: Sequence[ManagedJob]) -> dict[str, JobState]:
        """The state of many jobs at once, keyed by job id (missing: unknown)."""

    def job_ended(self, job: ManagedJob) -> None:  # noqa: B027 - optional hook
        """The job has ended (its script is done, or it was stopped): stop whatever it
        left running and release what the manager kept for it (before its results are
        read). Never raises."""

    def cleanup(self, job: ManagedJob) -> None:  # noqa: B027 - optional hook
        """Release anything the manager keeps for a job that is being deleted."""

    def check_reachable(self) -> None:  # noqa: B027 - optional hook
        """Raise ManagerError (saying what failed, in one line) unless jobs can be
        submitted now; within seconds (VOSI availability asks). A manager that needs
        nothing outside this process is always reachable."""


def read_status_file(job_dir: Path) -> JobState | None:
    """The final phase the job's batch script recorded, if it recorded one.

    The batch script writes it once the job's script and result collection are done,
    wherever it ran (this host, a SLURM node sharing the file system): it is the truth
    even while the batch script, still alive, retries a callback to a server that was
    down.
    """
    # Written where the job's script can replace it: read without following a link,
    # and as much as a status needs.
    data = nofollow.read_file(job_dir, f"{INTERNAL_DIR}/{STATUS_FILE}", STATUS_FILE_MAX)
    lines = (data or b"").decode("utf-8", "replace").splitlines()
    if not lines:
        return None
    if lines[0].strip() == "COMPLETED":
        return JobState(Phase.COMPLETED)
    return JobState(Phase.ERROR, lines[1][:1000] if len(lines) > 1 else "the job failed")

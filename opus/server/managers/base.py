"""The interface every execution manager implements.

Small on purpose: submit a batch script, abort, report the state of many jobs in one
call (a SLURM manager asks ``squeue`` once per pass, never once per job), clean up.
Managers never touch the database: the JobService turns their answers into phases.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from opus.server.phases import Phase


class ManagerError(RuntimeError):
    """The manager could not do what was asked (submission refused, command failed)."""


@dataclass(frozen=True)
class ManagedJob:
    """What a manager knows of a job: its ids and its directory."""

    job_id: str
    external_id: str | None
    job_dir: Path
    execution_duration: int = 0


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

    @abstractmethod
    def submit(self, job: ManagedJob, batch_script: Path) -> str:
        """Start the batch script; return the external id. Raise ManagerError."""

    @abstractmethod
    def abort(self, job: ManagedJob) -> None:
        """Stop the job and everything it started. Never raises for a finished job."""

    @abstractmethod
    def states(self, jobs: Sequence[ManagedJob]) -> dict[str, JobState]:
        """The state of many jobs at once, keyed by job id (missing: unknown)."""

    def cleanup(self, job: ManagedJob) -> None:  # noqa: B027 - optional hook
        """Release anything the manager keeps for a job that is being deleted."""

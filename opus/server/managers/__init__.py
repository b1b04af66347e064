"""Execution backends: where a job's batch script runs (local processes, SLURM)."""

from __future__ import annotations

from opus.server.managers.base import (
    JobState,
    ManagedJob,
    Manager,
    ManagerError,
    job_environment,
)
from opus.settings import Settings


def make_manager(settings: Settings) -> Manager:
    """The manager named by the MANAGER setting."""
    if settings.MANAGER == "local":
        from opus.server.managers.local import LocalManager

        return LocalManager()
    if settings.MANAGER == "slurm":
        from opus.server.managers.slurm import SlurmManager

        return SlurmManager(settings)
    raise ValueError(f"unknown MANAGER {settings.MANAGER!r} (expected: local or slurm)")


__all__ = [
    "JobState",
    "ManagedJob",
    "Manager",
    "ManagerError",
    "job_environment",
    "make_manager",
]

"""Execution backends: where a job's batch script runs (local processes, SLURM)."""

from __future__ import annotations

import functools

from opus.server.managers.base import (
    JobState,
    ManagedJob,
    Manager,
    ManagerError,
    job_environment,
)
from opus.server.managers.jobusers import JobUids
from opus.server.managers.local import LocalManager
from opus.server.managers.slurm import SlurmManager
from opus.settings import Settings

# Every manager OPUS has, by the name the MANAGER setting gives it.
MANAGERS: dict[str, type[Manager]] = {"local": LocalManager, "slurm": SlurmManager}


def make_manager(settings: Settings) -> Manager:
    """The manager named by the MANAGER setting."""
    if settings.MANAGER == "local":
        return LocalManager(JobUids.from_settings(settings))
    if settings.MANAGER == "slurm":
        return SlurmManager(settings)
    raise ValueError(f"unknown MANAGER {settings.MANAGER!r} (expected: local or slurm)")


@functools.cache
def all_option_names() -> frozenset[str]:
    """The job parameters that are options of some manager (``slurm_mem``…).

    A job gives them to its manager, not to its script; one meant for another manager
    than the server's is refused by name rather than taken for an unknown parameter.
    """
    return frozenset().union(*(manager.option_names for manager in MANAGERS.values()))


__all__ = [
    "MANAGERS",
    "JobState",
    "ManagedJob",
    "Manager",
    "ManagerError",
    "all_option_names",
    "job_environment",
    "make_manager",
]

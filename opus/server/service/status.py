"""What the admins' status page shows of the server, gathered for one request.

A part of the service layer, for admins only (``server_status`` raises Forbidden for
anybody else): the figures come from where they are kept, the settings (manager,
workers), the database (its dialect and schema revision, schema.py), the store (the
jobs in each active phase: JobService.job_counts), the reconciler's record of its last
pass in this process (reconciler.py), and the files under VAR_PATH.

The size of VAR_PATH is a walk of its tree, which a large server could make long: a
walk stops after WALK_MAX_ENTRIES entries or WALK_MAX_SECONDS seconds (the page then
says "at least"), never follows a symbolic link (the tree is what OPUS keeps, not what
links point to), and its answer is kept DISK_CACHE_SECONDS per directory, so that
reloading the page does not walk again. One walk runs at a time: a second request
waits for it and takes its answer.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

from opus import __version__
from opus.core.access import Caller
from opus.core.errors import Forbidden
from opus.core.phases import TERMINAL, Phase
from opus.server import schema
from opus.server.service.jobs import JobService
from opus.server.service.reconciler import PassRecord, last_pass

WALK_MAX_ENTRIES = 200_000
WALK_MAX_SECONDS = 2.0
DISK_CACHE_SECONDS = 60.0
# The phases of jobs not ended yet, in the order of a job's life.
ACTIVE_PHASES = tuple(phase for phase in Phase if phase not in TERMINAL)


@dataclass(frozen=True)
class DiskUsage:
    """The files under a directory: their total size and number, whether the walk saw
    them all (else they are at least this), and when it was measured (monotonic)."""

    path: Path
    size: int
    files: int
    complete: bool
    free: int | None
    measured: float


@dataclass(frozen=True)
class ServerStatus:
    """What the status page shows."""

    version: str
    manager: str
    manager_settings: tuple[tuple[str, str], ...]
    workers: int
    server_threads: int
    reconcile_interval: float
    database_dialect: str
    database: str
    revision: str | None
    head_revision: str
    job_counts: tuple[tuple[Phase, int], ...]
    reconciler: PassRecord | None
    disk: DiskUsage

    @property
    def active_jobs(self) -> int:
        return sum(count for _, count in self.job_counts)


def server_status(service: JobService, caller: Caller) -> ServerStatus:
    """The status of the server; Forbidden unless the caller is an admin."""
    if not caller.is_admin:
        raise Forbidden("the server's status is for admins only")
    settings = service.settings
    engine = service.store.engine
    counts = service.job_counts(caller, ACTIVE_PHASES)
    return ServerStatus(
        version=__version__,
        manager=settings.MANAGER,
        manager_settings=_manager_settings(service),
        workers=settings.WORKERS,
        server_threads=settings.SERVER_THREADS,
        reconcile_interval=settings.RECONCILE_INTERVAL,
        database_dialect=engine.dialect.name,
        database=schema.display_url(engine.url),
        revision=schema.current(engine),
        head_revision=schema.head_revision(),
        job_counts=tuple((phase, counts.get(phase, 0)) for phase in ACTIVE_PHASES),
        reconciler=last_pass(service),
        disk=DISK_USAGE.of(settings.VAR_PATH),
    )


def _manager_settings(service: JobService) -> tuple[tuple[str, str], ...]:
    """The settings of the manager that are set (the SLURM ones for SLURM)."""
    settings = service.settings
    names: tuple[str, ...] = ("LOCAL_JOB_UIDS",)
    if settings.MANAGER == "slurm":
        names = tuple(f.name for f in fields(settings) if f.name.startswith("SLURM_"))
    return tuple((name, str(getattr(settings, name))) for name in names if getattr(settings, name))


class DiskUsageCache:
    """The bounded walks of directories, each answer kept ``keep`` seconds."""

    def __init__(
        self,
        keep: float = DISK_CACHE_SECONDS,
        max_entries: int = WALK_MAX_ENTRIES,
        max_seconds: float = WALK_MAX_SECONDS,
    ) -> None:
        self.keep = keep
        self.max_entries = max_entries
        self.max_seconds = max_seconds
        self._lock = threading.Lock()
        self._known: dict[Path, DiskUsage] = {}

    def of(self, path: Path) -> DiskUsage:
        """The usage of ``path``, measured at most ``keep`` seconds ago."""
        # One lock for every directory: a server has one VAR_PATH.
        with self._lock:
            known = self._known.get(path)
            if known is not None and time.monotonic() - known.measured < self.keep:
                return known
            measured = self.walk(path)
            self._known[path] = measured
            return measured

    def walk(self, path: Path) -> DiskUsage:
        """The files under ``path`` (links not followed), within the walk's bounds."""
        started = time.monotonic()
        deadline = started + self.max_seconds
        size = files = entries = 0
        complete = True
        pending = [path]
        while pending and complete:
            directory = pending.pop()
            try:
                with os.scandir(directory) as listing:
                    for entry in listing:
                        entries += 1
                        if entries > self.max_entries or time.monotonic() > deadline:
                            complete = False
                            break
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                pending.append(Path(entry.path))
                            elif entry.is_file(follow_symlinks=False):
                                size += entry.stat(follow_symlinks=False).st_size
                                files += 1
                        except OSError:
                            continue  # gone meanwhile (a job deleted)
            except OSError:
                continue  # unreadable or gone: nothing of it is counted
        return DiskUsage(path, size, files, complete, _free_space(path), time.monotonic())


def _free_space(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


# The process's cache (a server has one VAR_PATH; tests have many, each its own entry).
DISK_USAGE = DiskUsageCache()

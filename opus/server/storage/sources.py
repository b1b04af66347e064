"""SourceStore: the writes of a job's git source, the repository and ref it clones and
the commit its batch script checked out.

The repository and ref are written with the job at its creation (its columns, in
``insert_job``); ``set_ref`` changes the ref when a PENDING job's ref parameter is
changed. The commit is written once (``record_commit``: only while none is recorded),
before the phase change that reports it, so a waiter woken by EXECUTING or by the end
sees it. Each write increments the job's version, like every write of a job, and is
announced to the other processes as a change that is not a phase change.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection

from opus.server.storage.coordination import Coordination
from opus.server.storage.models import JobRow


class SourceStore:
    """The git sources of jobs, written in JobStore's write transactions."""

    def __init__(
        self,
        writing: Callable[[], AbstractContextManager[Connection]],
        coordination: Coordination,
    ) -> None:
        self._writing = writing  # JobStore's: on SQLite its writers queue on one lock
        self._coordination = coordination

    def set_ref(self, job_id: str, url: str, ref: str) -> bool:
        """Record the repository and ref the job will clone; True if the job exists."""
        return self._write(job_id, {"source_url": url, "source_ref": ref})

    def record_commit(self, job_id: str, commit: str) -> bool:
        """Record the commit the job checked out, unless one is; True if written."""
        return self._write(job_id, {"source_commit": commit}, JobRow.source_commit.is_(None))

    def _write(self, job_id: str, values: dict[str, Any], *conditions: Any) -> bool:
        statement = (
            update(JobRow)
            .where(JobRow.id == job_id, *conditions)
            .values(**values, version=JobRow.version + 1)
            .returning(JobRow.owner)
        )
        with self._writing() as conn:
            owner = conn.execute(statement).scalar_one_or_none()
            if owner is not None:
                self._coordination.announce(conn, job_id, owner, phase=False)
        return owner is not None

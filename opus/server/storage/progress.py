"""ProgressStore: the one write of a job's progress, the latest report of its script.

A report replaces the one before (only the latest is kept, in three columns of
``jobs``) and increments the job's version like every write of a job: the job's
document shows it, so its ETag changes with it, and a job read at the same version is
still the same job. The write is a compare-and-set: only while the job is in the
phases given (a job that ended takes no more reports), and only if the last report was
received before a given time (a script reporting faster than the server takes is
refused, never queued).

A report is not announced to the other processes: it is not a phase change, which is
all WAIT waits for, and waking the owner's change-feed readers at every report would
make an open job list ask again at the pace of its jobs' scripts. The change feed
still numbers it (its trigger numbers every update of a job), so a reader sees the
job's new version at its next read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.engine import Connection

from opus.core.phases import Phase
from opus.server.storage.models import JobRow


class ProgressStore:
    """The progress reports of jobs, written in JobStore's write transactions."""

    def __init__(self, writing: Callable[[], AbstractContextManager[Connection]]) -> None:
        # JobStore's: on SQLite its writers queue on one lock of the process.
        self._writing = writing

    def record(
        self,
        job_id: str,
        percent: float,
        message: str | None,
        received: datetime,
        only_in: Collection[Phase],
        last_before: datetime,
    ) -> bool:
        """Make this the job's latest progress if the job is in ``only_in`` and its last
        report (if any) was received before ``last_before``; True if stored."""
        statement = (
            update(JobRow)
            .where(
                JobRow.id == job_id,
                JobRow.phase.in_([phase.value for phase in only_in]),
                or_(JobRow.progress_time.is_(None), JobRow.progress_time < last_before),
            )
            .values(
                progress=percent,
                progress_message=message,
                progress_time=received,
                version=JobRow.version + 1,
            )
        )
        with self._writing() as conn:
            return conn.execute(statement).rowcount == 1

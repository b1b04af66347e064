"""Rerunning a job: its input files, read for a new job without sending them again.

A rerun is a new job created from an earlier one's values; its inputs are copied on
the server from the earlier job's directory instead of being uploaded again. The
earlier job is read with the caller's access rules (JobService.get_job), and its
files are opened without following links (JobFiles.open_input), so a rerun can copy
nothing its caller could not download.
"""

from __future__ import annotations

from opus.core.access import Caller
from opus.server.nofollow import OpenFile
from opus.server.service.jobs import JobService


def open_input(
    service: JobService, caller: Caller, jobname: str, job_id: str, name: str
) -> OpenFile | None:
    """The saved file of input ``name`` of a job of the caller's, open (close it); None
    when the job has no such file. NotFound or Forbidden as JobService.get_job."""
    details = service.get_job(caller, jobname, job_id)
    return service.files.open_input(details.job.id, name)

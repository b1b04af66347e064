"""A job's code from a git repository: what the job records of it, and when.

A definition with a ``source`` (jdl/source.py) makes each of its jobs clone a
repository before its script runs (gitsource.py, scripts.py). The job records which
one, for its documents (JSON ``source``, the XML's ``opus:source``, its provenance):

- the repository and the ref at creation (``source_columns``, the ref parameter's
  value put in), and again when a PENDING job's ref parameter changes (``refresh_ref``);
- the commit its batch script checked out, written by the script to
  ``.opus/source_commit`` and read by the server at EXECUTING (the script reports
  EXECUTING again once the clone is done) and at the job's end (``record_commit``),
  whichever comes first: a lost signal does not lose it. The file is the job's, so
  only a full commit hash is taken from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

from opus.core.records import Job
from opus.server.jdl import JobDefinition, job_source
from opus.server.service.jobfiles import JobFiles
from opus.server.storage import JobStore


class SourceColumns(TypedDict):
    """The columns of a new job that name its source."""

    source_url: str | None
    source_ref: str | None


def source_columns(jdl: JobDefinition, values: Mapping[str, str]) -> SourceColumns:
    """The repository and ref a new job of ``jdl`` with ``values`` will clone (None, None
    without a source)."""
    source = job_source(jdl, values)
    if source is None:
        return SourceColumns(source_url=None, source_ref=None)
    return SourceColumns(source_url=source.url, source_ref=source.ref)


def refresh_ref(store: JobStore, job: Job, jdl: JobDefinition, changed: Mapping[str, str]) -> None:
    """Record the new ref of a PENDING job whose ref parameter is among ``changed``."""
    source = job_source(jdl, changed)
    if source is not None and jdl.source and jdl.source.ref_parameter in changed:
        store.sources.set_ref(job.id, source.url, source.ref)


def record_commit(store: JobStore, files: JobFiles, job: Job) -> None:
    """Record the commit the job's batch script checked out, if it did and none is yet."""
    if job.source_url is None or job.source_commit is not None:
        return
    commit = files.source_commit(job.id)
    if commit is not None:
        store.sources.record_commit(job.id, commit)

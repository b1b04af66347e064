"""The records the service hands out: jobs, their parameters and results, users.

Immutable values, detached from any database session, so that a route, a template,
the XML and JSON renderings and the Python client can all hold them safely. A stored
parameter *value* is a ``Parameter``; what a job definition says a parameter may be
is a ``jdl.ParameterDefinition``, another thing with another name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from opus.core.phases import Phase


@dataclass(frozen=True)
class Job:
    """A job as stored: identity, phase, times and limits (no parameters or results).

    ``version`` grows with every change of the job (its phase, times, parameters,
    results, progress or source): two reads with the same version show the same job,
    which is what the job document's ETag and its cached rendering rest on.
    """

    id: str
    jobname: str
    run_id: str | None
    owner: str
    phase: Phase
    creation_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    destruction_time: datetime | None
    quote: datetime | None
    # When the phase last changed: lets the reconciler give a new phase a grace time.
    phase_time: datetime
    execution_duration: int
    error_type: str | None
    error_message: str | None
    external_id: str | None
    token_hash: str
    version: int = 0
    # Bytes its files take (its inputs while PENDING, its directory once ended).
    stored_bytes: int = 0
    # The job definition it was created with: its revision (None for a trial job of a
    # draft) and the SHA-256 of its text. Approving a new version changes neither.
    definition_revision: int | None = None
    definition_hash: str | None = None
    # The latest progress its script reported (``opus_progress``): a percentage from 0
    # to 100, a message (or None), and when the server received it; None before any.
    progress: float | None = None
    progress_message: str | None = None
    progress_time: datetime | None = None
    # The git repository its definition's ``source`` names, the ref cloned (fixed, or
    # the value of its ref parameter) and, once the batch script checked it out, the
    # commit (a hash); all None for a job without a source.
    source_url: str | None = None
    source_ref: str | None = None
    source_commit: str | None = None


@dataclass(frozen=True)
class Parameter:
    """A job's parameter value, as the client sent it (or the definition's default).

    ``by_reference`` marks a file input given as a URL: ``value`` is that URL.
    """

    name: str
    value: str
    by_reference: bool = False


@dataclass(frozen=True)
class Result:
    """A file a job produced; ``path`` is relative to the job directory."""

    result_id: str
    path: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class JobDetails:
    """A job with its parameters and results: everything its UWS document shows."""

    job: Job
    parameters: tuple[Parameter, ...]
    results: tuple[Result, ...]

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called ``name`` (exactly), or None."""
        return next((p for p in self.parameters if p.name == name), None)

    def result(self, result_id: str) -> Result | None:
        """The result called ``result_id``, or None."""
        return next((r for r in self.results if r.result_id == result_id), None)


@dataclass(frozen=True)
class JobSummary:
    """One line of a job list (and of the change feed): what a list page shows.

    The first five are what a ``uws:jobref`` carries; ``jobname``, the start and end
    times (a duration column) and ``version`` (the job's, as in ``Job``) are given by
    every store read, and default only for records made by hand.
    """

    job_id: str
    phase: Phase
    run_id: str | None
    owner: str
    creation_time: datetime
    jobname: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    version: int = 0


@dataclass(frozen=True)
class JobPage:
    """One page of a job list, newest first (JobService.list_user_jobs).

    ``next_cursor`` is None on the last page, else what asks for the next one (opaque).
    A page may hold fewer jobs than asked for and still have a next cursor: a search
    looks at a bounded number of jobs per request. ``changes`` is a token of the change
    feed read before the page: changes made after it are reported from it.
    ``newer_cursor`` asks for the page of newer jobs before it (None on the first page).
    """

    jobs: tuple[JobSummary, ...]
    next_cursor: str | None
    changes: str
    newer_cursor: str | None = None


@dataclass(frozen=True)
class JobChanges:
    """What changed in the caller's jobs since a token (JobService.changes).

    ``jobs`` are the jobs changed (as they are now, in the order of their last
    change), ``deleted`` the ids of jobs deleted; ``token`` asks for the changes after
    these. ``reset`` says the changes could not be told (too many, or older than what
    the server keeps): reload the list, then follow ``token``.
    """

    jobs: tuple[JobSummary, ...]
    deleted: tuple[str, ...]
    token: str
    reset: bool = False

    @property
    def empty(self) -> bool:
        """Nothing changed (and nothing to reload)."""
        return not (self.jobs or self.deleted or self.reset)


@dataclass(frozen=True)
class User:
    """A stored user (the token itself is never stored, only its hash)."""

    name: str
    roles: tuple[str, ...]
    active: bool
    token_hash: str
    password_hash: str | None
    creation_time: datetime
    # The identifier an identity provider gave the user (SCIM externalId), kept as given.
    external_id: str | None = None


@dataclass(frozen=True)
class StoredVersion:
    """One kept text of a job definition (storage/definitions.py): its canonical YAML,
    SHA-256 and revision (None for a draft's text that only ran trial jobs)."""

    name: str
    revision: int | None
    hash: str
    text: str
    version_label: str
    author: str | None
    approved_by: str | None
    created: datetime
    approved_at: datetime | None


@dataclass(frozen=True)
class StoredDraft:
    """The draft of a job type, as its author gave it."""

    name: str
    author: str
    format: str
    text: str
    script: str | None
    updated: datetime
    submitted: datetime | None


@dataclass(frozen=True)
class Entity:
    """A file of provenance: an input a job received, or a result it made.

    ``job_id`` is the job whose directory holds the file (the one that made a result);
    ``present`` is false once that job and its files are gone.
    """

    id: str
    kind: str  # "input" or "result"
    job_id: str
    name: str  # the result id, or the input's name in its job's definition
    path: str  # inside the job's directory
    owner: str
    content_type: str
    size: int
    sha256: str
    creation_time: datetime
    source: str | None = None  # the URL an input was fetched from
    present: bool = True


@dataclass(frozen=True)
class EntityUse:
    """A job used an entity as its input ``role``."""

    job_id: str
    role: str
    entity_id: str

"""What the client reads from a server, as plain frozen records, and their JSON readers.

The records are the same whether the server answered JSON (OPUS, asked for it) or UWS
XML (any UWS 1.1 server; uwsdoc.py reads it into these): a job's document
(``JobInfo``), a line of a job list (``JobRef``), a result, an error summary, a job's
progress and the git source of its code; and OPUS's own job types and definitions
(``JobType``, ``Definition``), which only its JSON API gives. Times are timezone-aware
UTC datetimes, or None where the server gave none. A phase the client does not know
is ``Phase.UNKNOWN``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opus.client.errors import ServerError
from opus.core.phases import Phase
from opus.core.times import parse_time


def phase_of(value: object) -> Phase:
    """The phase a server wrote (any case, spaces around); UNKNOWN for anything else."""
    try:
        return Phase(str(value).strip().upper())
    except ValueError:
        return Phase.UNKNOWN


def time_of(value: object) -> datetime | None:
    """A server's ISO 8601 time as an aware UTC datetime (None for none, or unreadable)."""
    if value is None or not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Parameter:
    """A value a job was given (``by_reference``: the value is a URL the server read)."""

    id: str
    value: str
    by_reference: bool = False


@dataclass(frozen=True)
class Result:
    """A result of a job: its id, the URL of its file, its size and media type when the
    server knows them, and (OPUS) its provenance entity id."""

    id: str
    href: str
    size: int | None = None
    mime_type: str | None = None
    entity: str | None = None


@dataclass(frozen=True)
class ErrorSummary:
    """Why a job failed: ``message`` in one line; ``type`` fatal or transient."""

    message: str
    type: str = "fatal"
    has_detail: bool = False


@dataclass(frozen=True)
class Progress:
    """How far a running job says it has got (any part may be missing)."""

    percent: float | None = None
    message: str | None = None
    time: datetime | None = None


@dataclass(frozen=True)
class Source:
    """Where a job's code came from (OPUS's git source): the repository, the ref asked
    for, and the commit checked out (None until the job's script has cloned it)."""

    git: str
    ref: str = ""
    commit: str | None = None


@dataclass(frozen=True)
class JobInfo:
    """A job's document (``uws:job``) as read at one moment."""

    id: str
    phase: Phase
    type: str | None = None
    run_id: str | None = None
    owner: str | None = None
    quote: datetime | None = None
    creation_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    execution_duration: int | None = None
    destruction: datetime | None = None
    parameters: tuple[Parameter, ...] = ()
    results: tuple[Result, ...] = ()
    error: ErrorSummary | None = None
    progress: Progress | None = None
    source: Source | None = None


@dataclass(frozen=True)
class JobRef:
    """A line of a job list (``uws:jobref``, or a line of OPUS's ``GET /jobs``)."""

    id: str
    url: str
    phase: Phase
    type: str | None = None
    run_id: str | None = None
    owner: str | None = None
    creation_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass(frozen=True)
class JobType:
    """A job type the caller may run (a line of OPUS's ``GET /jdl``; only the name when
    the server lists no more)."""

    name: str
    annotation: str = ""
    version: str = ""
    contact_name: str = ""
    contact_email: str = ""


@dataclass(frozen=True)
class ParameterSpec:
    """A parameter a job type takes: its datatype, default and limits."""

    name: str
    datatype: str = "xs:string"
    default: str | None = None
    required: bool = False
    annotation: str = ""
    options: tuple[str, ...] = ()
    min: str | None = None
    max: str | None = None
    unit: str = ""


@dataclass(frozen=True)
class InputSpec:
    """An input file of a job type: uploaded (``upload``), or a URL the server reads."""

    name: str
    content_type: str = ""
    annotation: str = ""
    default: str | None = None
    multiplicity: str = "1"
    upload: bool = True


@dataclass(frozen=True)
class ResultSpec:
    """A result a job type makes: ``file`` is the name (or glob) its script writes."""

    name: str
    file: str = ""
    content_type: str = ""
    annotation: str = ""
    multiplicity: str = "1"


@dataclass(frozen=True)
class Definition:
    """A job type's definition (its JDL): what it takes, uses and makes."""

    name: str
    annotation: str = ""
    version: str = ""
    doculink: str = ""
    contact_name: str = ""
    contact_email: str = ""
    execution_duration: int | None = None
    quote: int | None = None
    parameters: tuple[ParameterSpec, ...] = ()
    inputs: tuple[InputSpec, ...] = ()
    results: tuple[ResultSpec, ...] = ()

    def parameter(self, name: str) -> ParameterSpec | None:
        """The parameter called ``name``, or None."""
        return next((p for p in self.parameters if p.name == name), None)

    def file_inputs(self) -> list[str]:
        """The names given as files (uploads or URLs): the inputs, and the parameters of
        datatype ``file``."""
        return [i.name for i in self.inputs] + [
            p.name for p in self.parameters if p.datatype == "file"
        ]


# -- JSON readers --------------------------------------------------------------------


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _object(data: object, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ServerError(f"the server's {what} is not a JSON object")
    return data


def result_from_json(data: object) -> Result:
    item = _object(data, "result")
    return Result(
        id=str(item.get("id", "")),
        href=str(item.get("href", "")),
        size=_int(item.get("size")),
        mime_type=_text(item.get("mimeType")),
        entity=_text(item.get("entity")),
    )


def results_from_json(data: object) -> tuple[Result, ...]:
    items = _object(data, "results").get("results") or []
    return tuple(result_from_json(item) for item in items)


def parameters_from_json(items: object) -> tuple[Parameter, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(
        Parameter(str(p.get("id", "")), str(p.get("value", "")), bool(p.get("byReference")))
        for p in items
        if isinstance(p, dict)
    )


def progress_from_json(data: object) -> Progress | None:
    """A job's ``progress`` (``{percent, message, time}``), None when it has none."""
    if not isinstance(data, dict):
        return None
    percent = data.get("percent")
    number = float(percent) if isinstance(percent, int | float) else None
    return Progress(number, _text(data.get("message")), time_of(data.get("time")))


def source_from_json(data: object) -> Source | None:
    """A job's ``source`` (``{git, ref, commit}``), None for a job without one."""
    if not isinstance(data, dict) or not data.get("git"):
        return None
    return Source(str(data["git"]), str(data.get("ref") or ""), _text(data.get("commit")))


def job_from_json(data: object) -> JobInfo:
    """A job's JSON document (OPUS's, the UWS job's fields in camelCase)."""
    job = _object(data, "job")
    if "jobId" not in job or "phase" not in job:
        raise ServerError("the server's job has no jobId or phase")
    summary = job.get("errorSummary")
    error = None
    if isinstance(summary, dict):
        error = ErrorSummary(
            message=str(summary.get("message") or ""),
            type=str(summary.get("type") or "fatal"),
            has_detail=bool(summary.get("hasDetail")),
        )
    return JobInfo(
        id=str(job["jobId"]),
        phase=phase_of(job["phase"]),
        type=_text(job.get("jobType")),
        run_id=_text(job.get("runId")),
        owner=_text(job.get("ownerId")),
        quote=time_of(job.get("quote")),
        creation_time=time_of(job.get("creationTime")),
        start_time=time_of(job.get("startTime")),
        end_time=time_of(job.get("endTime")),
        execution_duration=_int(job.get("executionDuration")),
        destruction=time_of(job.get("destruction")),
        parameters=parameters_from_json(job.get("parameters")),
        results=tuple(result_from_json(r) for r in job.get("results") or []),
        error=error,
        progress=progress_from_json(job.get("progress")),
        source=source_from_json(job.get("source")),
    )


def jobref_from_json(data: object) -> JobRef:
    """A line of OPUS's job list pages."""
    line = _object(data, "job list line")
    return JobRef(
        id=str(line.get("jobId", "")),
        url=str(line.get("href", "")),
        phase=phase_of(line.get("phase")),
        type=_text(line.get("jobType")),
        run_id=_text(line.get("runId")),
        owner=_text(line.get("ownerId")),
        creation_time=time_of(line.get("creationTime")),
        start_time=time_of(line.get("startTime")),
        end_time=time_of(line.get("endTime")),
    )


def jobtype_from_json(data: object) -> JobType:
    entry = _object(data, "definition entry")
    return JobType(
        name=str(entry.get("name", "")),
        annotation=str(entry.get("annotation") or ""),
        version=str(entry.get("version") or ""),
        contact_name=str(entry.get("contact_name") or ""),
        contact_email=str(entry.get("contact_email") or ""),
    )


def definition_from_json(data: object) -> Definition:
    """A definition in OPUS's JSON form (``GET /jdl/NAME?format=json``): fields left out
    take their defaults, as the server writes them."""
    jdl = _object(data, "definition")
    parameters = tuple(
        ParameterSpec(
            name=str(p.get("name", "")),
            datatype=str(p.get("datatype") or "xs:string"),
            default=_text(p.get("default")),
            required=bool(p.get("required")),
            annotation=str(p.get("annotation") or ""),
            options=tuple(str(o) for o in p.get("options") or []),
            min=_text(p.get("min")),
            max=_text(p.get("max")),
            unit=str(p.get("unit") or ""),
        )
        for p in jdl.get("parameters") or []
        if isinstance(p, dict)
    )
    inputs = tuple(
        InputSpec(
            name=str(u.get("name", "")),
            content_type=str(u.get("content_type") or ""),
            annotation=str(u.get("annotation") or ""),
            default=_text(u.get("default")),
            multiplicity=str(u.get("multiplicity") or "1"),
            upload=str(u.get("url") or "file://$ID").startswith("file://"),
        )
        for u in jdl.get("used") or []
        if isinstance(u, dict)
    )
    results = tuple(
        ResultSpec(
            name=str(g.get("name", "")),
            file=str(g.get("default") or ""),
            content_type=str(g.get("content_type") or ""),
            annotation=str(g.get("annotation") or ""),
            multiplicity=str(g.get("multiplicity") or "1"),
        )
        for g in jdl.get("generated") or []
        if isinstance(g, dict)
    )
    return Definition(
        name=str(jdl.get("name", "")),
        annotation=str(jdl.get("annotation") or ""),
        version=str(jdl.get("version") or ""),
        doculink=str(jdl.get("doculink") or ""),
        contact_name=str(jdl.get("contact_name") or ""),
        contact_email=str(jdl.get("contact_email") or ""),
        execution_duration=_int(jdl.get("execution_duration")),
        quote=_int(jdl.get("quote")),
        parameters=parameters,
        inputs=inputs,
        results=results,
    )

"""JSON renderings of the core's records: the UWS resources as JSON, lists, the feed.

The same values as the UWS XML (uwsxml.py), field for field, under the UWS names in
camelCase: a time is the same UTC string (``format_time``), a nil time is ``null``, an
absent runId or quote is ``null``, an errorSummary absent is ``null``, and ``progress``
is the XML's ``jobInfo`` (``null`` until the job's script reports one), as is ``source``
(``{"git", "ref", "commit"}``, ``null`` for a job without a git source). Links are built
from the server's BASE_URL, never from the request. A JSON answer has an ETag of its
own (the XML one's with ``-json``: another representation of the same version).

Errors are ``{"error": {"status": 404, "message": "...", "field": null}}``: ``message``
is the one-line reason of the text/plain answer (without its line break), ``field`` the
request parameter refused when the service can tell which.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from opus.core.errors import OpusError
from opus.core.records import Job, JobChanges, JobDetails, JobPage, JobSummary, Parameter
from opus.core.times import format_time
from opus.server.storage.entities import result_entity_id
from opus.server.uwsxml import result_url

JSON_CONTENT_TYPE = "application/json"


def _time(value: Any) -> str | None:
    return None if value is None else format_time(value)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (no NaN: what every JSON parser reads)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def json_etag(etag: str) -> str:
    """The ETag of a JSON answer, from the XML answer's of the same version."""
    return f"{etag[:-1]}-json{etag[-1]}" if etag.endswith('"') else f"{etag}-json"


def parameters_value(params: Iterable[Parameter]) -> list[dict[str, Any]]:
    return [{"id": p.name, "value": p.value, "byReference": p.by_reference} for p in params]


def results_value(details: JobDetails, base_url: str) -> list[dict[str, Any]]:
    return [
        {
            "id": r.result_id,
            "href": result_url(base_url, details.job.id, r.result_id),
            "size": r.size,
            "mimeType": r.content_type or None,
            # The result as a provenance entity: what /entities and later jobs name.
            "entity": result_entity_id(details.job.id, r.result_id),
        }
        for r in details.results
    ]


def job_value(details: JobDetails, base_url: str) -> dict[str, Any]:
    """A ``uws:job`` as a JSON object (plus its jobType)."""
    job = details.job
    error = None
    if job.error_message is not None:
        error = {
            "type": job.error_type or "fatal",
            "hasDetail": False,
            "message": job.error_message,
        }
    return {
        "jobId": job.id,
        "jobType": job.jobname,
        "runId": job.run_id or None,
        "ownerId": job.owner,
        "phase": job.phase.value,
        "quote": _time(job.quote),
        "creationTime": format_time(job.creation_time),
        "startTime": _time(job.start_time),
        "endTime": _time(job.end_time),
        "executionDuration": job.execution_duration,
        "destruction": _time(job.destruction_time),
        "parameters": parameters_value(details.parameters),
        "results": results_value(details, base_url),
        "errorSummary": error,
        # Not in UWS: the job definition the job was created with (docs/jdl.md).
        "definition": {"revision": job.definition_revision, "hash": job.definition_hash},
        # Not in UWS (the XML's jobInfo): the latest progress its script reported.
        "progress": progress_value(job),
        # Not in UWS (the XML's jobInfo): the git source of its code, when it has one.
        "source": source_value(job),
    }


def source_value(job: Job) -> dict[str, Any] | None:
    """``{"git", "ref", "commit"}`` of the job's git source (commit None until the batch
    script checked it out), or None for a job without one."""
    if job.source_url is None:
        return None
    return {"git": job.source_url, "ref": job.source_ref, "commit": job.source_commit}


def progress_value(job: Job) -> dict[str, Any] | None:
    """``{"percent", "message", "time"}`` of the job's latest progress, or None."""
    if job.progress is None:
        return None
    return {
        "percent": job.progress,
        "message": job.progress_message,
        "time": _time(job.progress_time),
    }


def job_body(details: JobDetails, base_url: str) -> bytes:
    return dumps(job_value(details, base_url))


def parameters_body(params: Iterable[Parameter]) -> bytes:
    return dumps({"parameters": parameters_value(params)})


def results_body(details: JobDetails, base_url: str) -> bytes:
    return dumps({"results": results_value(details, base_url)})


def phase_body(details: JobDetails) -> bytes:
    return dumps({"phase": details.job.phase.value})


def summary_value(ref: JobSummary, base_url: str) -> dict[str, Any]:
    """A line of a job list (a ``uws:jobref``, plus what a list page shows)."""
    return {
        "jobId": ref.job_id,
        "jobType": ref.jobname,
        "href": f"{base_url}/rest/{quote(ref.jobname)}/{ref.job_id}",
        "runId": ref.run_id or None,
        "ownerId": ref.owner,
        "phase": ref.phase.value,
        "creationTime": format_time(ref.creation_time),
        "startTime": _time(ref.start_time),
        "endTime": _time(ref.end_time),
        "version": ref.version,
    }


def page_body(page: JobPage, base_url: str) -> bytes:
    """A page of a job list: ``jobs``, ``next`` (the cursor of the next page, or null)
    and ``changes`` (the change feed's token from before the page was read)."""
    return dumps(
        {
            "jobs": [summary_value(ref, base_url) for ref in page.jobs],
            "next": page.next_cursor,
            "changes": page.changes,
        }
    )


def changes_body(changes: JobChanges, base_url: str) -> bytes:
    """An answer of the change feed: ``jobs`` changed, ``deleted`` ids, ``token``,
    ``reset``."""
    return dumps(
        {
            "jobs": [summary_value(ref, base_url) for ref in changes.jobs],
            "deleted": list(changes.deleted),
            "token": changes.token,
            "reset": changes.reset,
        }
    )


def error_body(status: int, message: str, field: str | None = None) -> bytes:
    return dumps({"error": {"status": status, "message": message, "field": field}})


def opus_error_body(exc: OpusError) -> bytes:
    """A domain error as a JSON error object."""
    return error_body(exc.status, str(exc), exc.field)

"""UWS 1.1 XML documents, built with lxml, and the one time formatter of OPUS.

Every document validates against the UWS 1.1 schema: elements in schema order,
``version="1.1"`` on ``uws:job`` and ``uws:jobs``, nillable times written as
``xsi:nil="true"``. The job list is written incrementally (``etree.xmlfile``) so that
its memory does not grow with the number of jobs.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {"uws": UWS_NS, "xlink": XLINK_NS, "xsi": XSI_NS}
UWS_VERSION = "1.1"
XML_CONTENT_TYPE = "text/xml; charset=UTF-8"

_UWS = f"{{{UWS_NS}}}"
_HREF = f"{{{XLINK_NS}}}href"
_XLINK_TYPE = f"{{{XLINK_NS}}}type"
_NIL = f"{{{XSI_NS}}}nil"


def utcnow() -> datetime:
    """The current time, UTC, truncated to milliseconds (the precision OPUS stores)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_time(value: datetime | None) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``; empty string for None."""
    if value is None:
        return ""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    # Not strftime: its %Y does not pad years before 1000, which xs:dateTime requires.
    return value.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time; a time without zone is UTC. ValueError if malformed."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first datetime
        raise ValueError(f"time out of range: {text!r}") from None


@dataclass(frozen=True)
class ParameterView:
    """A job parameter as UWS shows it."""

    name: str
    value: str
    by_reference: bool = False


@dataclass(frozen=True)
class ResultView:
    """A job result as UWS shows it."""

    id: str
    href: str
    size: int | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class JobView:
    """Everything the UWS job document shows (built by the route from the stored job)."""

    job_id: str
    run_id: str | None
    owner: str | None
    phase: str
    quote: datetime | None
    creation_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    execution_duration: int
    destruction: datetime | None
    parameters: Sequence[ParameterView]
    results: Sequence[ResultView]
    error_type: str | None = None
    error_message: str | None = None
    error_has_detail: bool = False


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, _UWS + name)
    if text is not None:
        element.text = text
    return element


def _time_element(parent: etree._Element, name: str, value: datetime | None) -> None:
    element = _sub(parent, name)
    if value is None:
        element.set(_NIL, "true")
    else:
        element.text = format_time(value)


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _parameters_element(parent: etree._Element | None, params: Iterable[ParameterView]):
    element = (
        etree.Element(_UWS + "parameters", nsmap=NSMAP)
        if parent is None
        else _sub(parent, "parameters")
    )
    for param in params:
        child = _sub(element, "parameter", param.value)
        child.set("id", param.name)
        if param.by_reference:
            child.set("byReference", "true")
    return element


def _results_element(parent: etree._Element | None, results: Iterable[ResultView]):
    element = (
        etree.Element(_UWS + "results", nsmap=NSMAP) if parent is None else _sub(parent, "results")
    )
    for result in results:
        child = _sub(element, "result")
        child.set("id", result.id)
        child.set(_XLINK_TYPE, "simple")
        child.set(_HREF, result.href)
        if result.size is not None:
            child.set("size", str(result.size))
        if result.content_type:
            child.set("mime-type", result.content_type)
    return element


def job_document(job: JobView) -> bytes:
    """The ``uws:job`` document, elements in schema order."""
    root = etree.Element(_UWS + "job", nsmap=NSMAP)
    root.set("version", UWS_VERSION)
    _sub(root, "jobId", job.job_id)
    if job.run_id:
        _sub(root, "runId", job.run_id)
    owner = _sub(root, "ownerId", job.owner)
    if job.owner is None:
        owner.set(_NIL, "true")
    _sub(root, "phase", job.phase)
    if job.quote is not None:
        _sub(root, "quote", format_time(job.quote))
    _sub(root, "creationTime", format_time(job.creation_time))
    _time_element(root, "startTime", job.start_time)
    _time_element(root, "endTime", job.end_time)
    _sub(root, "executionDuration", str(job.execution_duration))
    _time_element(root, "destruction", job.destruction)
    _parameters_element(root, job.parameters)
    _results_element(root, job.results)
    if job.error_message is not None:
        summary = _sub(root, "errorSummary")
        summary.set("type", job.error_type or "fatal")
        summary.set("hasDetail", "true" if job.error_has_detail else "false")
        _sub(summary, "message", job.error_message)
    return _serialize(root)


def parameters_document(params: Iterable[ParameterView]) -> bytes:
    """The ``uws:parameters`` document."""
    return _serialize(_parameters_element(None, params))


def results_document(results: Iterable[ResultView]) -> bytes:
    """The ``uws:results`` document."""
    return _serialize(_results_element(None, results))


@dataclass(frozen=True)
class JobRef:
    """One line of the job list."""

    job_id: str
    phase: str
    run_id: str | None
    owner: str | None
    creation_time: datetime


def _write_leaf(xf: etree.xmlfile, name: str, text: str) -> None:
    with xf.element(_UWS + name):
        xf.write(text)


def job_list_chunks(
    refs: Iterable[JobRef], job_url_prefix: str, chunk_rows: int = 500
) -> Iterator[bytes]:
    """The ``uws:jobs`` document as a stream of byte chunks (memory independent of size).

    ``job_url_prefix`` is the job list's URL; each jobref links to prefix/job_id.
    """
    buffer = io.BytesIO()

    def take() -> bytes:
        data = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return data

    with etree.xmlfile(buffer, encoding="UTF-8") as xf:
        xf.write_declaration()
        with xf.element(_UWS + "jobs", {"version": UWS_VERSION}, nsmap=NSMAP):
            pending = 0
            for ref in refs:
                attributes = {
                    "id": ref.job_id,
                    _XLINK_TYPE: "simple",
                    _HREF: f"{job_url_prefix}/{ref.job_id}",
                }
                with xf.element(_UWS + "jobref", attributes):
                    _write_leaf(xf, "phase", ref.phase)
                    if ref.run_id:
                        _write_leaf(xf, "runId", ref.run_id)
                    if ref.owner is not None:
                        _write_leaf(xf, "ownerId", ref.owner)
                    _write_leaf(xf, "creationTime", format_time(ref.creation_time))
                pending += 1
                if pending >= chunk_rows:
                    pending = 0
                    xf.flush()
                    yield take()
    yield take()

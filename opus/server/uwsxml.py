"""UWS 1.1 XML documents, built with lxml from the core's records.

Every document validates against the UWS 1.1 schema: elements in schema order,
``version="1.1"`` on ``uws:job`` and ``uws:jobs``, nillable times written as
``xsi:nil="true"``. The job list is written incrementally (``etree.xmlfile``) so that
its memory does not grow with the number of jobs. Links are built from the server's
BASE_URL, never from the request.

A job document depends on nothing but the job's version (and the server's BASE_URL):
``JobDocuments`` renders it once per version and gives it an ETag, so that polling
clients cost a look-up and a comparison while their job does not change.

What UWS has no element for goes in ``uws:jobInfo``, in the OPUS namespace (a name,
not an address to fetch): the latest progress the job's script reported,
``<opus:progress percent="40" time="…">fitting 4/10</opus:progress>``, and the git
source of its code, ``<opus:source git="URL" ref="v1.2" commit="…"/>`` (no ``commit``
until the batch script checked it out). The schema takes any element there
(``xs:any``, lax), so the document stays valid.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import datetime
from urllib.parse import quote

from lxml import etree

from opus import __version__
from opus.core.records import Job, JobDetails, JobSummary, Parameter
from opus.core.times import format_time

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
OPUS_NS = "http://opus.obspm.fr/xml/uws/v1"
NSMAP = {"uws": UWS_NS, "xlink": XLINK_NS, "xsi": XSI_NS}
UWS_VERSION = "1.1"
XML_CONTENT_TYPE = "text/xml; charset=UTF-8"

_UWS = f"{{{UWS_NS}}}"
_HREF = f"{{{XLINK_NS}}}href"
_XLINK_TYPE = f"{{{XLINK_NS}}}type"
_NIL = f"{{{XSI_NS}}}nil"
_OPUS = f"{{{OPUS_NS}}}"


def result_url(base_url: str, job_id: str, result_id: str) -> str:
    """Where a result's file is served (/store/{job_id}/{result_id})."""
    return f"{base_url}/store/{job_id}/{quote(result_id)}"


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


def _parameters_element(
    parent: etree._Element | None, params: Iterable[Parameter]
) -> etree._Element:
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


def _results_element(
    parent: etree._Element | None, details: JobDetails, base_url: str
) -> etree._Element:
    element = (
        etree.Element(_UWS + "results", nsmap=NSMAP) if parent is None else _sub(parent, "results")
    )
    for result in details.results:
        child = _sub(element, "result")
        child.set("id", result.result_id)
        child.set(_XLINK_TYPE, "simple")
        child.set(_HREF, result_url(base_url, details.job.id, result.result_id))
        child.set("size", str(result.size))
        if result.content_type:
            child.set("mime-type", result.content_type)
    return element


def job_document(details: JobDetails, base_url: str) -> bytes:
    """The ``uws:job`` document, elements in schema order."""
    job = details.job
    root = etree.Element(_UWS + "job", nsmap=NSMAP)
    root.set("version", UWS_VERSION)
    _sub(root, "jobId", job.id)
    if job.run_id:
        _sub(root, "runId", job.run_id)
    _sub(root, "ownerId", job.owner)
    _sub(root, "phase", job.phase.value)
    if job.quote is not None:
        _sub(root, "quote", format_time(job.quote))
    _sub(root, "creationTime", format_time(job.creation_time))
    _time_element(root, "startTime", job.start_time)
    _time_element(root, "endTime", job.end_time)
    _sub(root, "executionDuration", str(job.execution_duration))
    _time_element(root, "destruction", job.destruction_time)
    _parameters_element(root, details.parameters)
    _results_element(root, details, base_url)
    if job.error_message is not None:
        summary = _sub(root, "errorSummary")
        summary.set("type", job.error_type or "fatal")
        summary.set("hasDetail", "false")
        _sub(summary, "message", job.error_message)
    if job.progress is not None or job.source_url is not None:
        info = _sub(root, "jobInfo")
        if job.progress is not None:
            _progress_element(info, job)
        if job.source_url is not None:
            _source_element(info, job)
    return _serialize(root)


def _progress_element(parent: etree._Element, job: Job) -> None:
    """``opus:progress``: the percentage (as few digits as it needs), when it was
    received, and the message as the element's text (none without a message)."""
    element = etree.SubElement(parent, _OPUS + "progress", nsmap={"opus": OPUS_NS})
    element.set("percent", f"{job.progress:g}")
    if job.progress_time is not None:
        element.set("time", format_time(job.progress_time))
    if job.progress_message:
        element.text = job.progress_message


def _source_element(parent: etree._Element, job: Job) -> None:
    """``opus:source``: the repository, the ref cloned and the commit checked out."""
    element = etree.SubElement(parent, _OPUS + "source", nsmap={"opus": OPUS_NS})
    element.set("git", job.source_url or "")
    element.set("ref", job.source_ref or "")
    if job.source_commit is not None:
        element.set("commit", job.source_commit)


def parameters_document(params: Iterable[Parameter]) -> bytes:
    """The ``uws:parameters`` document."""
    return _serialize(_parameters_element(None, params))


def results_document(details: JobDetails, base_url: str) -> bytes:
    """The ``uws:results`` document of a job."""
    return _serialize(_results_element(None, details, base_url))


def _write_leaf(xf: etree.xmlfile, name: str, text: str) -> None:
    with xf.element(_UWS + name):
        xf.write(text)


def job_list_chunks(
    jobs: Iterable[JobSummary], job_url_prefix: str, chunk_rows: int = 500
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
            for ref in jobs:
                attributes = {
                    "id": ref.job_id,
                    _XLINK_TYPE: "simple",
                    _HREF: f"{job_url_prefix}/{ref.job_id}",
                }
                with xf.element(_UWS + "jobref", attributes):
                    _write_leaf(xf, "phase", ref.phase.value)
                    if ref.run_id:
                        _write_leaf(xf, "runId", ref.run_id)
                    _write_leaf(xf, "ownerId", ref.owner)
                    _write_leaf(xf, "creationTime", format_time(ref.creation_time))
                pending += 1
                if pending >= chunk_rows:
                    pending = 0
                    xf.flush()
                    yield take()
    yield take()


class JobDocuments:
    """The ``uws:job`` documents of one server, each rendered once per job version.

    Bounded: the documents of the ``size`` most recently rendered jobs are kept.
    """

    def __init__(self, base_url: str, size: int = 2048) -> None:
        self.base_url = base_url
        self.size = size
        # Tells apart documents of servers (or versions of OPUS) rendering differently.
        self._epoch = hashlib.sha256(f"{base_url} {__version__}".encode()).hexdigest()[:8]
        self._lock = threading.Lock()
        self._documents: OrderedDict[str, tuple[int, bytes]] = OrderedDict()

    def etag(self, job: Job) -> str:
        """The ETag of the job's documents (the job itself and its sub-resources)."""
        return f'"{job.version}-{self._epoch}"'

    def job(self, details: JobDetails) -> bytes:
        """The job document, rendered if its version was not rendered before."""
        job = details.job
        with self._lock:
            cached = self._documents.get(job.id)
            if cached is not None and cached[0] == job.version:
                self._documents.move_to_end(job.id)
                return cached[1]
        document = job_document(details, self.base_url)
        with self._lock:
            self._documents[job.id] = (job.version, document)
            self._documents.move_to_end(job.id)
            while len(self._documents) > self.size:
                self._documents.popitem(last=False)
        return document

    def results(self, details: JobDetails) -> bytes:
        """The ``uws:results`` document of the job."""
        return results_document(details, self.base_url)

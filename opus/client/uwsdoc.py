"""UWS 1.1 XML documents read into the client's records, with the standard library only.

A server that offers no JSON (any UWS server but OPUS, or OPUS when the client is told
to use XML) answers ``uws:job``, ``uws:jobs`` and ``uws:results`` documents: read
here with xml.etree (no lxml: the client needs only requests). What a server sends is
untrusted, so a document with a DOCTYPE is refused outright: no DTD, so no entity
declarations (the billion laughs, external entities) and nothing fetched. defusedxml
does the same when it is installed; otherwise expat is driven directly, with a handler
that refuses the DOCTYPE before anything of it is read.

The readers are lenient where UWS lets servers differ (elements left out, a nil time,
an unknown phase) and strict where nothing sensible can follow (not XML, no jobId).
"""

from __future__ import annotations

import importlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import NoReturn
from xml.parsers import expat

from opus.client.errors import ServerError
from opus.client.models import (
    ErrorSummary,
    JobInfo,
    JobRef,
    Parameter,
    Progress,
    Result,
    Source,
    phase_of,
    time_of,
)

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
XLINK = "{http://www.w3.org/1999/xlink}"
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


class UnsafeXML(ServerError):
    """A document with a DOCTYPE (a DTD, entity declarations): never parsed."""


def _load_defused() -> Callable[..., ET.Element] | None:
    try:
        module = importlib.import_module("defusedxml.ElementTree")
    except ImportError:
        return None
    fromstring: Callable[..., ET.Element] = module.fromstring
    return fromstring


_DEFUSED = _load_defused()


def _refuse(*_args: object) -> NoReturn:
    raise UnsafeXML("the server's XML has a DOCTYPE, which the client does not read")


def _name(raw: str) -> str:
    # expat gives "uri}local" with this separator; ElementTree's form is "{uri}local".
    return "{" + raw if "}" in raw else raw


def parse_xml(data: bytes) -> ET.Element:
    """The root element of an XML document; UnsafeXML for one with a DOCTYPE,
    ServerError for one that is not well-formed."""
    if _DEFUSED is not None:
        return _parse_defused(data, _DEFUSED)
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.StartElementHandler = lambda tag, attributes: builder.start(
        _name(tag), {_name(key): value for key, value in attributes.items()}
    )
    parser.EndElementHandler = lambda tag: builder.end(_name(tag))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise ServerError(f"the server's answer is not well-formed XML: {exc}") from None
    return builder.close()


def _parse_defused(data: bytes, fromstring: Callable[..., ET.Element]) -> ET.Element:
    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except ET.ParseError as exc:
        raise ServerError(f"the server's answer is not well-formed XML: {exc}") from None
    except ValueError as exc:  # defusedxml's refusals (DTDForbidden…) are ValueErrors
        raise UnsafeXML(f"the server's XML was refused: {exc}") from None


def _root(data: bytes, tag: str) -> ET.Element:
    root = parse_xml(data)
    if root.tag != UWS + tag:
        raise ServerError(f"the server's answer is not a uws:{tag} document (found {root.tag})")
    return root


def _leaf(parent: ET.Element, name: str) -> str | None:
    """The text of a child element, None when it is absent or nil."""
    element = parent.find(UWS + name)
    if element is None or element.get(XSI + "nil") in ("true", "1"):
        return None
    return (element.text or "").strip()


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _true(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1")


def _result(element: ET.Element) -> Result:
    return Result(
        id=element.get("id", ""),
        href=element.get(XLINK + "href", ""),
        size=_int(element.get("size")),
        mime_type=element.get("mime-type") or None,
    )


def results_from_xml(data: bytes) -> tuple[Result, ...]:
    """The results of a ``uws:results`` document."""
    root = _root(data, "results")
    return tuple(_result(r) for r in root.iter(UWS + "result"))


def _job_info(root: ET.Element, name: str) -> ET.Element | None:
    """The first element called ``name`` (in any namespace) in the job's jobInfo."""
    info = root.find(UWS + "jobInfo")
    if info is None:
        return None
    return next((e for e in info.iter() if e.tag.rsplit("}", 1)[-1] == name), None)


def _source(root: ET.Element) -> Source | None:
    """OPUS's ``<opus:source git="URL" ref="v1.2" commit="…"/>`` in the jobInfo."""
    element = _job_info(root, "source")
    if element is None or not element.get("git"):
        return None
    return Source(element.get("git", ""), element.get("ref", ""), element.get("commit"))


def _progress(root: ET.Element) -> Progress | None:
    """A progress a server put in the job's jobInfo: an element named ``progress`` in any
    namespace (OPUS's: ``<opus:progress percent="40" time="…">fitting 4/10</…>``), its
    parts as attributes or child elements, the message its text otherwise."""
    element = _job_info(root, "progress")
    if element is None:
        return None

    def part(name: str) -> str | None:
        if element.get(name) is not None:
            return element.get(name)
        child = next((c for c in element if c.tag.rsplit("}", 1)[-1] == name), None)
        return None if child is None else (child.text or "").strip()

    try:
        percent = float(part("percent") or "")
    except ValueError:
        percent = None
    message = part("message")
    if message is None and len(element) == 0:
        message = (element.text or "").strip() or None
    return Progress(percent, message, time_of(part("time")))


def job_from_xml(data: bytes) -> JobInfo:
    """A ``uws:job`` document."""
    root = _root(data, "job")
    job_id = _leaf(root, "jobId")
    phase = _leaf(root, "phase")
    if not job_id or phase is None:
        raise ServerError("the server's uws:job has no jobId or phase")
    parameters = tuple(
        Parameter(p.get("id", ""), p.text or "", _true(p.get("byReference")))
        for p in root.iterfind(f"{UWS}parameters/{UWS}parameter")
    )
    results = tuple(_result(r) for r in root.iterfind(f"{UWS}results/{UWS}result"))
    error = None
    summary = root.find(UWS + "errorSummary")
    if summary is not None:
        error = ErrorSummary(
            message=(summary.findtext(UWS + "message") or "").strip(),
            type=summary.get("type", "fatal"),
            has_detail=_true(summary.get("hasDetail")),
        )
    return JobInfo(
        id=job_id,
        phase=phase_of(phase),
        run_id=_leaf(root, "runId") or None,
        owner=_leaf(root, "ownerId") or None,
        quote=time_of(_leaf(root, "quote")),
        creation_time=time_of(_leaf(root, "creationTime")),
        start_time=time_of(_leaf(root, "startTime")),
        end_time=time_of(_leaf(root, "endTime")),
        execution_duration=_int(_leaf(root, "executionDuration")),
        destruction=time_of(_leaf(root, "destruction")),
        parameters=parameters,
        results=results,
        error=error,
        progress=_progress(root),
        source=_source(root),
    )


def jobrefs_from_xml(data: bytes, list_url: str, job_type: str | None) -> list[JobRef]:
    """The lines of a ``uws:jobs`` document; a jobref without an href is at
    ``list_url``/id, as UWS lays jobs out."""
    root = _root(data, "jobs")
    refs = []
    for ref in root.iterfind(UWS + "jobref"):
        job_id = ref.get("id", "")
        refs.append(
            JobRef(
                id=job_id,
                url=ref.get(XLINK + "href") or f"{list_url.rstrip('/')}/{job_id}",
                phase=phase_of(_leaf(ref, "phase")),
                type=job_type,
                run_id=_leaf(ref, "runId") or None,
                owner=_leaf(ref, "ownerId") or None,
                creation_time=time_of(_leaf(ref, "creationTime")),
            )
        )
    return refs

"""Content negotiation: XML (or text) by default, JSON for a client that prefers it.

The UWS tree answers its documents as UWS XML (text resources as text/plain), its
errors as one text line, unless the request's ``Accept`` prefers ``application/json``:
its quality (RFC 9110 §12.5.1, the most specific range that matches) must be higher
than the default type's. A client that sends no Accept, ``*/*``, or both types at the
same quality gets the default; so do clients of the UWS standard, which know only XML.
Negotiated answers say ``Vary: Accept``. The tree that speaks only JSON (/jobs,
/changes) answers their errors as JSON whatever the request accepts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import bottle

from opus.core.errors import OpusError
from opus.server.jsonapi import JSON_CONTENT_TYPE, error_body, opus_error_body
from opus.server.routes.common import plain_error, server_fault

log = logging.getLogger("opus.routes")

TEXT_TYPE = "text/plain"
XML_TYPE = "text/xml"
VARY = {"Vary": "Accept"}


def quality(accept: str | None, media_type: str) -> float:
    """The quality ``accept`` (an Accept header; None: anything) gives ``media_type``."""
    if accept is None or not accept.strip():
        return 1.0
    kind, _, subtype = media_type.lower().partition("/")
    best_specificity, best_quality = -1, 0.0
    for member in accept.split(","):
        media_range, *parameters = member.split(";")
        range_kind, _, range_subtype = media_range.strip().lower().partition("/")
        q = 1.0
        others = False
        for parameter in parameters:
            name, _, value = parameter.strip().partition("=")
            if name.strip().lower() != "q":
                others = True
                continue
            try:
                q = min(1.0, max(0.0, float(value.strip())))
            except ValueError:
                q = 0.0
        if range_kind == "*" and range_subtype in ("*", ""):
            specificity = 0
        elif range_kind == kind and range_subtype == "*":
            specificity = 1
        elif range_kind == kind and range_subtype == subtype:
            specificity = 3 if others else 2
        else:
            continue
        if specificity > best_specificity:
            best_specificity, best_quality = specificity, q
    return best_quality


def prefers_json(default_type: str = XML_TYPE) -> bool:
    """Whether the current request prefers JSON to ``default_type``."""
    accept = bottle.request.get_header("Accept")
    return quality(accept, JSON_CONTENT_TYPE) > quality(accept, default_type)


def json_response(
    body: bytes,
    status: int = 200,
    etag: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> bottle.HTTPResponse:
    """A JSON answer (with an ETag, and more headers, if given)."""
    all_headers = {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})}
    if etag is not None:
        all_headers["ETag"] = etag
    return bottle.HTTPResponse(body=body, status=status, headers=all_headers)


def json_error(exc: OpusError) -> bottle.HTTPResponse:
    """A domain error as a JSON error object (with its headers: a 401's challenge)."""
    return json_response(opus_error_body(exc), exc.status, headers={**exc.headers, **VARY})


def json_fault() -> bottle.HTTPResponse:
    """Log the exception being handled; a JSON 500 that tells the client nothing more."""
    log.exception("%s %s failed", bottle.request.method, bottle.request.path)
    return json_response(error_body(500, "internal server error"), 500, headers=VARY)


def negotiated_error(exc: OpusError) -> bottle.HTTPResponse:
    """A domain error as JSON for a client that prefers it to text, else as text."""
    if prefers_json(TEXT_TYPE):
        return json_error(exc)
    answer = plain_error(exc)
    answer.set_header("Vary", "Accept")
    return answer


def negotiated_fault() -> bottle.HTTPResponse:
    """A server fault answered as ``negotiated_error`` would answer an error."""
    return json_fault() if prefers_json(TEXT_TYPE) else server_fault()

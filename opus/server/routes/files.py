"""File answers: a job's file, opened by the service without following links, streamed.

bottle.static_file opens a path (following links) and serves an HTML result inline in
OPUS's own origin, where its scripts could act with the user's session. Here the file
is one the service already opened safely (opus.server.nofollow), and every answer
carries ``X-Content-Type-Options: nosniff`` (no guessing a type the server did not
give) and ``Content-Security-Policy: sandbox`` (a document shown anyway runs in a
unique origin: no scripts, no cookies, no forms). The types a browser would run or
render as a document with scripts (HTML, XHTML, SVG, XML, JavaScript, XSLT) are served
as attachments.

What static_file gave is kept: Content-Length, Last-Modified, an ETag, 304 for
If-None-Match or If-Modified-Since, a single byte range (206, or 416 outside the
file; several ranges get the whole file, as RFC 9110 allows), HEAD, a charset for
text. The body is read in chunks up to the size the file had when opened (a stream
still growing is cut there) and the file is closed when the answer is done.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator
from urllib.parse import quote

import bottle

from opus.server.nofollow import OpenFile
from opus.server.routes.common import TEXT_CONTENT_TYPE, etag_matches

CHUNK = 256 * 1024
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox",
}
# Media types a browser runs scripts in (or applies as a stylesheet that does).
ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/xsl",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "text/ecmascript",
        "text/jscript",
        "application/wasm",
        "multipart/x-mixed-replace",
    }
)
_RANGE = re.compile(r"bytes=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)


def is_active(content_type: str) -> bool:
    """Whether a browser would execute (or render with scripts) this media type."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ACTIVE_TYPES or media.endswith(("+xml", "/xml"))


def with_charset(content_type: str) -> str:
    """A text type with ``charset=UTF-8`` unless it names one."""
    media = content_type.split(";", 1)[0].strip().lower()
    if "charset=" not in content_type.lower() and media.startswith("text/"):
        return f"{content_type}; charset=UTF-8"
    return content_type


def disposition(filename: str, content_type: str) -> str:
    """Content-Disposition (RFC 6266/5987 form: any file name, quoted, cannot break the
    header): ``attachment`` for the active types, else ``inline``."""
    kind = "attachment" if is_active(content_type) else "inline"
    return f"{kind}; filename*=UTF-8''{quote(filename)}"


def file_response(
    opened: OpenFile, content_type: str, filename: str | None = None
) -> bottle.HTTPResponse:
    """The answer to a GET or HEAD of ``opened`` (which it closes, now or at the end of
    the body). ``filename`` adds a Content-Disposition."""
    try:
        return _answer(opened, content_type, filename)
    except BaseException:
        opened.close()
        raise


def empty_file(content_type: str = TEXT_CONTENT_TYPE) -> bottle.HTTPResponse:
    """The answer for a file that does not exist yet (a job's stdout before it ran)."""
    headers = {"Content-Type": content_type, "Content-Length": "0", **SECURITY_HEADERS}
    return bottle.HTTPResponse(body=b"", headers=headers)


def _answer(opened: OpenFile, content_type: str, filename: str | None) -> bottle.HTTPResponse:
    request = bottle.request
    size = opened.size
    etag = f'"{opened.version}"'
    modified = email.utils.formatdate(opened.mtime, usegmt=True)
    headers = {"ETag": etag, "Last-Modified": modified, **SECURITY_HEADERS}
    if _not_modified(request, etag, opened.mtime):
        opened.close()
        return bottle.HTTPResponse(status=304, headers=headers)
    headers["Content-Type"] = with_charset(content_type)
    headers["Accept-Ranges"] = "bytes"
    if filename is not None:
        headers["Content-Disposition"] = disposition(filename, content_type)
    start, end, status = 0, size, 200
    wanted = _range(request, etag, modified, size)
    if isinstance(wanted, str):
        opened.close()
        reason = f"the range {request.get_header('Range')} lies outside the file of {size} bytes\n"
        return bottle.HTTPResponse(
            status=416,
            body=reason,
            headers={
                "Content-Type": TEXT_CONTENT_TYPE,
                "Content-Range": f"bytes */{size}",
                **SECURITY_HEADERS,
            },
        )
    if wanted is not None:
        start, end = wanted
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD" or end == start:
        opened.close()
        return bottle.HTTPResponse(status=status, body=b"", headers=headers)
    return bottle.HTTPResponse(status=status, body=FileBody(opened, start, end), headers=headers)


def _not_modified(request: bottle.BaseRequest, etag: str, mtime: float) -> bool:
    if_none_match = request.get_header("If-None-Match")
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    since = _parse_date(request.get_header("If-Modified-Since"))
    return since is not None and int(mtime) <= since


def _range(
    request: bottle.BaseRequest, etag: str, modified: str, size: int
) -> tuple[int, int] | str | None:
    """(start, end) of the single range asked for, "unsatisfiable", or None for the
    whole file (no Range, one that does not parse, several ranges, a stale If-Range)."""
    header = request.get_header("Range")
    if not header or size == 0:
        return None
    if_range = request.get_header("If-Range")
    if if_range is not None and if_range.strip() not in (etag, modified):
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        return (max(0, size - suffix), size) if suffix > 0 else "unsatisfiable"
    start = int(first)
    if last and int(last) < start:
        return None  # last before first: not a valid range, ignored
    if start >= size:
        return "unsatisfiable"
    return start, size if not last else min(int(last) + 1, size)


def _parse_date(text: str | None) -> int | None:
    if not text:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(text.split(";", 1)[0].strip())
    except (TypeError, ValueError, IndexError):
        return None
    return int(parsed.timestamp())


class FileBody:
    """A WSGI body: ``end - start`` bytes of an open file, read in chunks; closing it
    (the server does, when the answer is done or the client left) closes the file."""

    def __init__(self, opened: OpenFile, start: int, end: int) -> None:
        self.opened = opened
        self.start = start
        self.end = end

    def __iter__(self) -> Iterator[bytes]:
        handle = self.opened.handle
        handle.seek(self.start)
        remaining = self.end - self.start
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.opened.close()

"""Input files of a job: uploads and URLs saved into the job directory.

File names are sanitised (no directories, no leading dot or dash, a safe alphabet) and
every path is resolved and checked to stay inside the job directory. URL inputs are
fetched by the server (http and https only) with a time limit and the upload size limit.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from opus.core.errors import BadRequest, PayloadTooLarge
from opus.core.layout import RESERVED_NAMES

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """A file sent with a request (multipart field ``field``)."""

    field: str
    filename: str
    stream: IO[bytes]


def sanitize_filename(name: str, fallback: str = "input") -> str:
    """A safe file name from a client-supplied one: basename, safe characters only."""
    base = PurePosixPath(name.replace("\\", "/")).name
    cleaned = _UNSAFE_CHARS.sub("_", base).lstrip(".-")[:128]
    if not cleaned or cleaned in RESERVED_NAMES:
        cleaned = f"{fallback}_{cleaned}" if cleaned else fallback
    return cleaned


def inside(directory: Path, name: str) -> Path:
    """``directory/name`` resolved; BadRequest if it would leave ``directory``."""
    root = directory.resolve()
    path = (root / name).resolve()
    if path.parent != root and root not in path.parents:
        raise BadRequest(f"file name {name!r} leaves the job directory")
    return path


def _copy_limited(
    source: IO[bytes], target: Path, limit: int, what: str, seconds: float | None = None
) -> int:
    """Copy at most ``limit`` bytes (and for at most ``seconds``); nothing kept on failure."""
    deadline = None if seconds is None else time.monotonic() + seconds
    # read1 returns what has arrived: a slow sender cannot hold a read past the deadline.
    read = getattr(source, "read1", source.read)
    written = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        # 0600 whatever the umask: an input is its owner's.
        with os.fdopen(os.open(target, flags, 0o600), "wb") as out:
            while chunk := read(COPY_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise PayloadTooLarge(f"{what} is larger than the limit of {limit} bytes")
                if deadline is not None and time.monotonic() > deadline:
                    raise BadRequest(f"{what} took longer than {seconds:g} s to download")
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return written


def save_upload(upload: Upload, job_dir: Path, limit: int) -> str:
    """Save an uploaded file in the job directory; returns its (sanitised) name."""
    name = sanitize_filename(upload.filename or upload.field, fallback=upload.field)
    _copy_limited(upload.stream, inside(job_dir, name), limit, f"upload {upload.field!r}")
    return name


class ForbiddenAddress(OSError):
    """A URL input resolved to an address the settings do not allow."""


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address (not loopback, private, link-local…)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _guarded_connection(allow_private: bool) -> Any:
    """socket.create_connection that refuses non-public peers (checked after connecting,
    on the address actually used, so DNS rebinding cannot slip a private address in)."""

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        sock = socket.create_connection(address, *args, **kwargs)
        peer = sock.getpeername()[0]
        if not allow_private and not is_public_address(peer):
            sock.close()
            raise ForbiddenAddress(
                f"{address[0]} is a non-public address ({peer}); the server's "
                "ALLOW_PRIVATE_URLS setting allows such inputs"
            )
        return sock

    return create_connection


def _opener(allow_private: bool) -> urllib.request.OpenerDirector:
    """An opener for http and https only (redirects included), without proxies."""
    connect = _guarded_connection(allow_private)

    class GuardedHTTP(http.client.HTTPConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class GuardedHTTPS(http.client.HTTPSConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(GuardedHTTP, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(GuardedHTTPS, req)

    opener = urllib.request.OpenerDirector()
    for handler in (
        HTTPHandler(),
        HTTPSHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def fetch_url(
    field: str,
    url: str,
    job_dir: Path,
    limit: int,
    timeout: float,
    allow_private: bool = False,
) -> str:
    """Download an http(s) input into the job directory; returns the local file name.

    Only http and https are followed (redirects too); the peer address must be public
    unless ``allow_private``; the body may not exceed ``limit`` bytes; every socket
    operation times out after ``timeout`` seconds.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise BadRequest(f"input {field!r}: only http and https URLs are accepted")
    name = sanitize_filename(PurePosixPath(parsed.path).name or field, fallback=field)
    target = inside(job_dir, name)
    # The scheme was checked above, and the opener has http and https handlers only.
    request = urllib.request.Request(url, headers={"User-Agent": "OPUS"})  # noqa: S310
    try:
        with _opener(allow_private).open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise PayloadTooLarge(f"input {field!r} is larger than {limit} bytes")
            _copy_limited(response, target, limit, f"input {field!r}", timeout)
    except urllib.error.HTTPError as exc:
        raise BadRequest(f"input {field!r}: {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BadRequest(f"input {field!r}: could not fetch {url}: {reason}") from None
    return name


def remove_tree(path: Path) -> None:
    """Delete a job directory (nothing if it is already gone)."""
    shutil.rmtree(path, ignore_errors=True)

"""Input files of a job: uploads and URLs saved into the job directory.

File names are sanitised (no directories, no leading dot or dash, a safe alphabet) and
every path is resolved and checked to stay inside the job directory. URL inputs are
fetched by the server (http and https only) with a time limit and the upload size limit.
"""

from __future__ import annotations

import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from opus.server.errors import BadRequest, PayloadTooLarge
from opus.server.scripts import INTERNAL_DIR, RESULTS_DIR

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_RESERVED_NAMES = {INTERNAL_DIR, RESULTS_DIR}
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """A file sent with a request (multipart field ``field``)."""

    field: str
    filename: str
    stream: BinaryIO


def sanitize_filename(name: str, fallback: str = "input") -> str:
    """A safe file name from a client-supplied one: basename, safe characters only."""
    base = PurePosixPath(name.replace("\\", "/")).name
    cleaned = _UNSAFE_CHARS.sub("_", base).lstrip(".-")[:128]
    if not cleaned or cleaned in _RESERVED_NAMES:
        cleaned = f"{fallback}_{cleaned}" if cleaned else fallback
    return cleaned


def inside(directory: Path, name: str) -> Path:
    """``directory/name`` resolved; BadRequest if it would leave ``directory``."""
    root = directory.resolve()
    path = (root / name).resolve()
    if path.parent != root and root not in path.parents:
        raise BadRequest(f"file name {name!r} leaves the job directory")
    return path


def _copy_limited(source: BinaryIO, target: Path, limit: int, what: str) -> int:
    written = 0
    with open(target, "wb") as out:
        while chunk := source.read(COPY_CHUNK):
            written += len(chunk)
            if written > limit:
                out.close()
                target.unlink(missing_ok=True)
                raise PayloadTooLarge(f"{what} is larger than the limit of {limit} bytes")
            out.write(chunk)
    return written


def save_upload(upload: Upload, job_dir: Path, limit: int) -> str:
    """Save an uploaded file in the job directory; returns its (sanitised) name."""
    name = sanitize_filename(upload.filename or upload.field, fallback=upload.field)
    _copy_limited(upload.stream, inside(job_dir, name), limit, f"upload {upload.field!r}")
    return name


def fetch_url(field: str, url: str, job_dir: Path, limit: int, timeout: float) -> str:
    """Download an http(s) input into the job directory; returns the local file name."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise BadRequest(f"input {field!r}: only http and https URLs are accepted")
    name = sanitize_filename(PurePosixPath(parsed.path).name or field, fallback=field)
    target = inside(job_dir, name)
    # The scheme was checked above: only http and https reach urlopen.
    request = urllib.request.Request(url, headers={"User-Agent": "OPUS"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise PayloadTooLarge(f"input {field!r} is larger than {limit} bytes")
            _copy_limited(response, target, limit, f"input {field!r}")
    except urllib.error.HTTPError as exc:
        raise BadRequest(f"input {field!r}: {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BadRequest(f"input {field!r}: could not fetch {url}: {reason}") from None
    return name


def remove_tree(path: Path) -> None:
    """Delete a job directory (nothing if it is already gone)."""
    shutil.rmtree(path, ignore_errors=True)

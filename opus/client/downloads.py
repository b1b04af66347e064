"""Results written to a directory: names that stay inside it, files that appear whole.

A result's file name comes from the server (its Content-Disposition, else the last
segment of its URL, else the result's id), so it is untrusted: ``safe_name`` keeps its
last path segment only, without control characters or leading dots, and never ``..``,
and ``target_in`` checks that the path it makes lies directly in the directory. A file
is streamed into a temporary file beside its target (``.name.XXXX.part``) and renamed
over the target only once every byte has come: an interrupted download leaves nothing
behind, and never a truncated file under the result's name.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests

from opus.client.errors import ServerError, Unreachable

CHUNK = 64 * 1024
MAX_NAME_BYTES = 200
# progress(done, total): bytes written so far, and the size announced (None: unknown).
ProgressCallback = Callable[[int, int | None], None]
_EXTENDED = re.compile(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", re.IGNORECASE)
_PLAIN = re.compile(r'filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))', re.IGNORECASE)


def safe_name(name: str, fallback: str = "result") -> str:
    """A file name made from ``name`` that names a file in a directory, not a path:
    its last segment (``/`` and ``\\`` both separate), without control characters,
    leading dots or spaces, at most 200 bytes of UTF-8; ``fallback`` (made safe the
    same way, else ``result``) when nothing is left."""
    for candidate in (name, fallback, "result"):
        segment = re.split(r"[/\\]", candidate or "")[-1]
        cleaned = "".join(
            c for c in segment if unicodedata.category(c)[0] != "C" and c not in '<>:"|?*'
        )
        cleaned = cleaned.strip().lstrip(". ").rstrip(" ")
        encoded = cleaned.encode()
        if len(encoded) > MAX_NAME_BYTES:
            _, dot, suffix = cleaned.rpartition(".")
            keep = (suffix if dot and len(suffix) <= 16 else "").encode()
            head = encoded[: MAX_NAME_BYTES - len(keep) - 1].decode(errors="ignore")
            cleaned = f"{head}.{keep.decode()}" if keep else head
        if cleaned and cleaned not in (".", ".."):
            return cleaned
    return "result"


def disposition_name(header: str | None) -> str | None:
    """The file name a Content-Disposition header gives (``filename*`` first)."""
    if not header:
        return None
    extended = _EXTENDED.search(header)
    if extended:
        charset = extended.group(1).strip() or "utf-8"
        try:
            return unquote(extended.group(2).strip(), encoding=charset, errors="replace")
        except LookupError:
            return unquote(extended.group(2).strip())
    plain = _PLAIN.search(header)
    if plain:
        quoted, bare = plain.groups()
        return re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare.strip()
    return None


def served_name(response: requests.Response, result_id: str) -> str:
    """The name a result's file is saved under: what its answer names it, else the last
    segment of its URL, else its id; made safe."""
    named = disposition_name(response.headers.get("Content-Disposition"))
    if not named:
        named = unquote(urlsplit(response.url).path.rsplit("/", 1)[-1])
        # OPUS's /store/JOB/RESULT ends with the result's id: no better than the id.
    return safe_name(named or result_id, result_id)


def target_in(directory: Path, name: str, taken: set[str]) -> Path:
    """The path of ``name`` directly in ``directory``, another name when ``taken``
    already has it (``name (2).ext``); ServerError for a name that is a path."""
    stem, dot, suffix = name.rpartition(".")
    if not stem:
        stem, dot, suffix = name, "", ""
    chosen, count = name, 1
    while chosen in taken:
        count += 1
        chosen = f"{stem} ({count}){dot}{suffix}"
    if chosen in ("", ".", "..") or Path(chosen).name != chosen or "\\" in chosen:
        raise ServerError(f"the result name {name!r} would be written outside {directory}")
    taken.add(chosen)
    # A link already there under the name is replaced (os.replace), never followed.
    return directory / chosen


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def write_atomically(
    response: requests.Response, target: Path, progress: ProgressCallback | None = None
) -> int:
    """Stream ``response``'s body into ``target`` (replaced only when complete, with the
    mode a new file gets); returns the bytes written."""
    length = response.headers.get("Content-Length", "")
    total = int(length) if length.isdigit() else None
    if "Content-Encoding" in response.headers:
        total = None  # the announced size is of the encoded body
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    done = 0
    try:
        with os.fdopen(handle, "wb") as out:
            if progress is not None:
                progress(0, total)
            try:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            except requests.RequestException as exc:
                raise Unreachable(
                    f"the download of {target.name} broke off after {done} bytes: {exc}",
                    url=response.url,
                ) from None
            if total is not None and done != total:
                raise ServerError(
                    f"the download of {target.name} stopped at {done} of {total} bytes",
                    url=response.url,
                )
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        response.close()
    return done

"""The static tree at /static/: the pages' CSS and JavaScript and the vendored files.

Pages name each file with its content hash (``/static/css/opus.css?v=1a2b3c4d5e6f``,
``StaticFiles.url``): such a URL always means the same bytes, so it is answered with a
year of ``immutable`` caching and a new release is a new URL. An ES module's relative
imports (``from './common.js'``, ``import('../vendor/x.js')``) are rewritten as it is
served to name their files' hashes too, so that a page loaded again is one request: the
module's own hash covers the rewritten text, hence its imports' versions. Any other
request for a file (a stale hash, a file named without one) is answered ``no-cache``
with the file's ETag, so the browser revalidates and gets 304 while it is unchanged.
A file is read once, with its gzip form, and read again when its size or modification
time changes, or an import's does (an edit during ``make run`` shows at the next
load); a client that accepts gzip gets the gzip form.

The directory is ``opus/static``: in a clone, a symbolic link to the repository's
``static/`` (so both ``make run`` and an editable install serve the files being
edited); in an installed package, the files themselves (a wheel built from the tree
copies what the link points to). A path is served only if it resolves inside that
directory, names no hidden file and is a regular file.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
import posixpath
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import bottle

from opus.core.errors import NotFound
from opus.server.routes.common import etag_matches

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# The repository's static/, should the link in the package be missing (a copy of the
# tree that dropped links).
CANDIDATES = (PACKAGE_DIR / "static", PACKAGE_DIR.parent / "static")
LONG_CACHE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
TYPES = {
    ".js": "text/javascript; charset=UTF-8",
    ".mjs": "text/javascript; charset=UTF-8",
    ".css": "text/css; charset=UTF-8",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=UTF-8",
    ".md": "text/plain; charset=UTF-8",
    "": "text/plain; charset=UTF-8",  # LICENSE, VERSION
}
# A relative module specifier in a static import/export or a dynamic import() with a
# string literal: what the browser resolves against the module's own URL.
IMPORT_SPECIFIER = re.compile(
    rb"""(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}/[^'"?#\s]+\.m?js)\2"""
)
# How deep imports are followed (a cycle of imports stops there, unrewritten).
IMPORT_DEPTH = 8


def static_root() -> Path:
    """The directory the static files are served from (FileNotFoundError if none)."""
    for candidate in CANDIDATES:
        if candidate.is_dir():
            return candidate.resolve()
    raise FileNotFoundError(f"no static directory: looked for {', '.join(map(str, CANDIDATES))}")


def content_type(name: str) -> str:
    """The Content-Type a static file is served with."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in TYPES:
        return TYPES[suffix]
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{guessed}; charset=UTF-8" if guessed.startswith("text/") else guessed


@dataclass(frozen=True)
class StaticFile:
    """A static file as read: its bytes, gzip form (None when it would not be smaller),
    hash and the stat it was read at."""

    body: bytes
    gzipped: bytes | None
    digest: str
    content_type: str
    stamp: tuple[int, int]
    # The modules this one imports, with the hashes its rewritten text names.
    imports: tuple[tuple[str, str], ...] = ()

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


class StaticFiles:
    """The static files under ``root``, read on demand and kept while unchanged."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or static_root()).resolve()
        self._files: dict[str, StaticFile] = {}
        self._lock = threading.Lock()

    def path_of(self, relative: str) -> Path:
        """The file ``relative`` names; NotFound unless it is a visible regular file
        inside the root."""
        parts = relative.split("/")
        if not relative or any(not part or part.startswith(".") for part in parts):
            raise NotFound(f"no static file {relative!r}")
        path = (self.root / relative).resolve()
        if self.root not in path.parents or not path.is_file():
            raise NotFound(f"no static file {relative!r}")
        return path

    def get(self, relative: str, depth: int = 0) -> StaticFile:
        """The file, read again if it or a module it imports changed since."""
        path = self.path_of(relative)
        stat = path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
        known = self._files.get(relative)
        # Past IMPORT_DEPTH a file's imports are not looked at again: a cycle of imports
        # would otherwise check itself round and round.
        current = depth >= IMPORT_DEPTH or (known is not None and self._current(known, depth))
        if known is not None and known.stamp == stamp and current:
            return known
        body = path.read_bytes()
        kind = content_type(path.name)
        imports: tuple[tuple[str, str], ...] = ()
        if kind.startswith("text/javascript") and depth < IMPORT_DEPTH:
            body, imports = self._rewrite_imports(relative, body, depth)
        gzipped = None
        if kind.startswith(COMPRESSIBLE):
            packed = gzip.compress(body, compresslevel=9, mtime=0)
            gzipped = packed if len(packed) < len(body) else None
        digest = hashlib.sha256(body).hexdigest()[:16]
        read = StaticFile(body, gzipped, digest, kind, stamp, imports)
        with self._lock:
            self._files[relative] = read
        return read

    def _current(self, known: StaticFile, depth: int) -> bool:
        """Whether the modules a file imports still have the hashes it names."""
        try:
            return all(self.get(name, depth + 1).digest == v for name, v in known.imports)
        except (NotFound, OSError):
            return False

    def _rewrite_imports(
        self, relative: str, body: bytes, depth: int
    ) -> tuple[bytes, tuple[tuple[str, str], ...]]:
        """The module's text with each relative import naming its file's hash."""
        imports: dict[str, str] = {}
        base = posixpath.dirname(relative)

        def versioned(match: re.Match[bytes]) -> bytes:
            specifier = match.group(3).decode()
            target = posixpath.normpath(posixpath.join(base, specifier))
            try:
                digest = self.get(target, depth + 1).digest
            except (NotFound, OSError):
                return match.group(0)  # the browser's request will say what is wrong
            imports[target] = digest
            quote = match.group(2)
            return match.group(1) + quote + f"{specifier}?v={digest}".encode() + quote

        rewritten = IMPORT_SPECIFIER.sub(versioned, body)
        return rewritten, tuple(imports.items())

    def url(self, relative: str) -> str:
        """The URL of a file with its content hash (cached for a year by browsers)."""
        return f"/static/{relative}?v={self.get(relative).digest}"

    def answer(self, relative: str, request: bottle.BaseRequest) -> bottle.HTTPResponse:
        """The answer to a GET or HEAD of /static/``relative``."""
        found = self.get(relative)
        versioned = request.query.get("v") == found.digest
        headers = {
            "ETag": found.etag,
            "Cache-Control": LONG_CACHE if versioned else REVALIDATE,
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
        }
        if etag_matches(request.get_header("If-None-Match"), found.etag):
            return bottle.HTTPResponse(status=304, headers=headers)
        body = found.body
        headers["Content-Type"] = found.content_type
        if found.gzipped is not None and accepts_gzip(request.get_header("Accept-Encoding")):
            body = found.gzipped
            headers["Content-Encoding"] = "gzip"
        headers["Content-Length"] = str(len(body))
        return bottle.HTTPResponse(body=b"" if request.method == "HEAD" else body, headers=headers)


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header accepts gzip (not with q=0)."""
    for item in (header or "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            quality = params.strip().lower().removeprefix("q=").strip()
            return quality not in ("0", "0.0", "0.00", "0.000")
    return False

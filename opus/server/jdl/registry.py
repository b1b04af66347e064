"""The job types a server offers: every definition in one directory, kept up to date.

The server asks the registry for a definition on every job creation, so get() is cheap:
at most twice a second (CHECK_INTERVAL) it lists the directory (names, sizes,
modification times) and reloads everything only when that listing changed: a definition
approved by one process of the server is served by the others within a second. A
broken file is logged and reported in ``errors`` while the other definitions are still
served.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .errors import JDLError
from .files import EXTENSIONS, load_definition
from .model import JobDefinition

logger = logging.getLogger("opus.jdl")

# When two files define the same job type (sleep.yml and sleep.json), the first here wins.
_PRECEDENCE = list(EXTENSIONS)
_WATCHED = (*EXTENSIONS, ".sh")

Signature = tuple[tuple[str, int, int, int], ...] | None
# Seconds between two listings of the directory: a listing costs a few stat calls.
CHECK_INTERVAL = 0.5


class JDLRegistry:
    """The definitions in a directory, reloaded when its files change. Thread-safe."""

    def __init__(
        self,
        path: Path,
        *,
        check_interval: float = CHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        # Replaced whole on reload, never changed in place: readers need no lock.
        self._definitions: dict[str, JobDefinition] = {}
        self._errors: dict[str, str] = {}
        self._signature: Signature = None
        self._checked_at = 0.0
        self.reload()

    def get(self, name: str) -> JobDefinition | None:
        """The definition of job type ``name``, or None."""
        self._refresh()
        return self._definitions.get(name)

    def names(self) -> list[str]:
        """The names of the job types served, sorted."""
        self._refresh()
        return sorted(self._definitions)

    @property
    def errors(self) -> dict[str, str]:
        """Broken files: file name -> the problem (JDLError message)."""
        self._refresh()
        return dict(self._errors)

    def reload(self) -> None:
        """Read the directory again now, whatever changed."""
        with self._lock:
            self._checked_at = self._clock()
            self._load(self._scan())

    def _refresh(self) -> None:
        if self._clock() - self._checked_at < self.check_interval:
            return
        with self._lock:
            now = self._clock()
            if now - self._checked_at < self.check_interval:
                return  # another thread checked while this one waited
            self._checked_at = now
            signature = self._scan()
            if signature != self._signature:
                self._load(signature)

    def _files(self) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(self.path) as entries:
                return [
                    entry
                    for entry in entries
                    if not entry.name.startswith(".")
                    and os.path.splitext(entry.name)[1].lower() in _WATCHED
                    and entry.is_file()
                ]
        except OSError:
            return []

    def _scan(self) -> Signature:
        # Scripts count too: editing sleep.sh changes the sleep definition.
        signature = []
        for entry in self._files():
            try:
                stat = entry.stat()
            except OSError:  # removed meanwhile: the next check sees it gone
                continue
            signature.append((entry.name, stat.st_mtime_ns, stat.st_size, stat.st_ino))
        return tuple(sorted(signature))

    def _load(self, signature: Signature) -> None:
        definitions: dict[str, JobDefinition] = {}
        files: dict[str, str] = {}  # job name -> file it was read from
        errors: dict[str, str] = {}
        if not self.path.is_dir():
            logger.warning("JDL directory %s does not exist: no job types", self.path)
        candidates = [
            Path(entry.path)
            for entry in self._files()
            if os.path.splitext(entry.name)[1].lower() in EXTENSIONS
        ]
        candidates.sort(key=lambda p: (_PRECEDENCE.index(p.suffix.lower()), p.name))
        for path in candidates:
            try:
                jd = load_definition(path)
            except JDLError as error:
                errors[path.name] = str(error)
                logger.warning("%s", error)
                continue
            if jd.name in definitions:
                message = (
                    f"{path}: job type {jd.name!r} is already defined by {files[jd.name]}, "
                    "which is used; remove one of them"
                )
                errors[path.name] = message
                logger.warning("%s", message)
                continue
            definitions[jd.name] = jd
            files[jd.name] = path.name
        self._definitions = definitions
        self._errors = errors
        self._signature = signature
        logger.info("JDL: %d job types loaded from %s", len(definitions), self.path)

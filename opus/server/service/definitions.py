"""The definition each job was created with, kept so that nothing later changes it.

A job records the revision and SHA-256 of its definition when it is created (``pin``);
its run, its results and its page read that very text again (``of_job``), however the
type was edited, approved or retired since. The active definitions are the registry's
(the files of JDL_PATH); a text an admin put there by hand is kept, with the next
revision, by the first job that uses it. Both directions are cached in the process:
a pin costs one look-up per definition text, not per job.
"""

from __future__ import annotations

import threading
from datetime import datetime

from opus.core.records import Job, StoredVersion
from opus.core.times import utcnow
from opus.server.jdl import JobDefinition, canonical_text, definition_hash, parse_definition
from opus.server.jdl.registry import JDLRegistry
from opus.server.storage.definitions import DefinitionStore

# Texts cached per process; far more than the job types of a server and their versions.
_CACHE_SIZE = 512


class KeptDefinitions:
    """Pins jobs to the definitions they were created with, and reads those back."""

    def __init__(self, store: DefinitionStore, registry: JDLRegistry) -> None:
        self.store = store
        self.registry = registry
        self._lock = threading.Lock()
        # id(definition) -> (definition, revision, hash): the registry's objects are
        # replaced whole on reload, and the definition kept in the value keeps its id unique.
        self._pins: dict[int, tuple[JobDefinition, int | None, str]] = {}
        self._texts: dict[tuple[str, str], JobDefinition] = {}

    def pin(
        self, jd: JobDefinition, *, author: str | None = None, trial: bool = False
    ) -> tuple[int | None, str]:
        """The revision and hash to record in a job of ``jd`` (a checked definition),
        keeping its text first if it is new. A ``trial`` text (a draft's) gets no
        revision until it is approved."""
        with self._lock:
            cached = self._pins.get(id(jd))
        if cached is not None and cached[0] is jd:
            return cached[1], cached[2]
        kept = self.keep(jd, author=author, numbered=not trial)
        with self._lock:
            if len(self._pins) >= _CACHE_SIZE:
                self._pins.clear()
            self._pins[id(jd)] = (jd, kept.revision, kept.hash)
        return kept.revision, kept.hash

    def keep(
        self,
        jd: JobDefinition,
        *,
        author: str | None = None,
        approved_by: str | None = None,
        approved_at: datetime | None = None,
        numbered: bool = True,
    ) -> StoredVersion:
        """Keep the text of ``jd`` (once per hash) and return what is kept."""
        text = canonical_text(jd)
        version = StoredVersion(
            name=jd.name,
            revision=None,
            hash=definition_hash(jd),
            text=text,
            version_label=jd.version,
            author=author,
            approved_by=approved_by,
            created=utcnow(),
            approved_at=approved_at,
        )
        return self.store.keep(version, numbered=numbered)

    def of_job(self, job: Job) -> JobDefinition | None:
        """The definition ``job`` was created with; the active one of its type for a job
        made before definitions were kept; None if neither exists (a retired type)."""
        if job.definition_hash is None:
            return self.registry.get(job.jobname)
        return self.by_hash(job.jobname, job.definition_hash)

    def by_hash(self, name: str, digest: str) -> JobDefinition | None:
        """The kept definition of ``name`` whose hash is ``digest``, or None."""
        key = (name, digest)
        with self._lock:
            found = self._texts.get(key)
        if found is not None:
            return found
        active = self.registry.get(name)
        if active is not None and definition_hash(active) == digest:
            found = active
        else:
            kept = self.store.version_by_hash(name, digest)
            if kept is None:
                return None
            found = parse_definition(kept.text, "yaml", f"{name} (kept {digest[:12]})")
        with self._lock:
            if len(self._texts) >= _CACHE_SIZE:
                self._texts.clear()
            self._texts[key] = found
        return found

    def all_names(self) -> list[str]:
        """Every job type there is or was (whose jobs a list shows), sorted."""
        return sorted(set(self.registry.names()) | set(self.store.kept_names()))

    def known(self, name: str) -> bool:
        """Whether ``name`` is a job type now or was one (its jobs stay readable)."""
        return self.registry.get(name) is not None or self.store.is_kept(name)

"""The provenance of jobs and entities: the walk that a document or a graph shows.

From the asked-for jobs and entities the walk follows relations, one hop per DEPTH
step: BACK goes to the past (a job to the entities it used, an entity to the job that
generated it), FORWARD to the future (a job to its results, an entity to the jobs that
used it), BOTH does the two walks and joins them. A node the caller may not read (a job
or entity of another user) is cut off: it is neither shown nor walked through, so a
chain never reveals what lies past it. DEPTH=ALL and cycles are bounded: a node is
visited once, and a walk stops at MAX_NODES nodes (the answer says it was cut short).

Documents are made on demand and kept in a small cache whose key holds every job's
version and every entity's presence in the walk: a phase change or a deletion makes a
new key, so nothing stale is served. A job's own document waits for the job's end
(``job_document``: 409 before); ProvSAP shows running jobs as they are, when asked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from opus.core import access
from opus.core.access import Caller
from opus.core.errors import Conflict, NotFound
from opus.core.phases import TERMINAL
from opus.core.records import Entity, JobDetails
from opus.server import nofollow
from opus.server.provmodel import (
    DocumentOptions,
    EntityNode,
    Format,
    Generation,
    InternalProvenance,
    JobNode,
    ProvenanceGraph,
    Usage,
)
from opus.server.service.jobs import JobService
from opus.server.storage.entities import is_entity_id

MAX_NODES = 5000
INTERNAL_MAX = 5 * 1024 * 1024
# What a job may leave in its directory: PROV-JSON, or a logprov log.
INTERNAL_FILES = (("provenance.json", "json"), ("prov.log", "logprov"))
CACHE_ENTRIES = 64
CACHE_BYTES = 64 * 1024 * 1024


class Direction(Enum):
    BACK = "BACK"
    FORWARD = "FORWARD"
    BOTH = "BOTH"


@dataclass(frozen=True)
class Walk:
    """Where a walk starts, how far it goes (None: ALL) and which way."""

    ids: tuple[str, ...]
    depth: int | None = 1
    direction: Direction = Direction.BACK


Writer = Callable[[ProvenanceGraph, DocumentOptions, Format], bytes]


@dataclass(frozen=True)
class Document:
    """A written document, and the node limit its walk stopped at (None: it did not)."""

    body: bytes
    node_limit: int | None = None


class ProvenanceService:
    """Walks provenance for callers and writes it in the asked-for format."""

    def __init__(self, service: JobService, writer: Writer) -> None:
        self.service = service
        self.entities = service.entities
        self.base_url = service.settings.BASE_URL.rstrip("/")
        self._write = writer
        self._cache: OrderedDict[tuple[object, ...], Document] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()

    # -- documents ----------------------------------------------------------------------

    def job_document(
        self, caller: Caller, jobname: str, job_id: str, options: DocumentOptions, fmt: Format
    ) -> Document:
        """The document of one ended job: the job, what it used and what it made.
        NotFound/Forbidden as for the job; Conflict while it has not ended."""
        details = self.service.get_job(caller, jobname, job_id)
        if details.job.phase not in TERMINAL:
            raise Conflict(
                f"job {job_id} is {details.job.phase}: its provenance is made when it ends"
            )
        return self.document(caller, Walk((job_id,), 1, Direction.BOTH), options, fmt)

    def document(
        self, caller: Caller, walk: Walk, options: DocumentOptions, fmt: Format
    ) -> Document:
        """The walk's graph written in ``fmt`` (cached while nothing in it changed).
        NotFound when no asked-for id is a job or entity the caller may read."""
        graph = self.graph(caller, walk)
        key = (caller.name, caller.is_admin, walk, options, fmt, _fingerprint(graph))
        with self._lock:
            if (cached := self._cache.get(key)) is not None:
                self._cache.move_to_end(key)
                return cached
        limit = MAX_NODES if graph.truncated else None
        written = Document(self._write(graph, options, fmt), limit)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = written
                self._cached_bytes += len(written.body)
            while self._cache and (
                len(self._cache) > CACHE_ENTRIES or self._cached_bytes > CACHE_BYTES
            ):
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= len(dropped.body)
        return written

    def forget(self) -> None:
        """Empty the document cache (what a benchmark of the writing itself needs)."""
        with self._lock:
            self._cache.clear()
            self._cached_bytes = 0

    # -- the walk -----------------------------------------------------------------------

    def graph(self, caller: Caller, walk: Walk) -> ProvenanceGraph:
        """The readable nodes ``walk`` reaches and the relations between them."""
        reader = _Reader(self, caller)
        jobs, entities = reader.roots(walk.ids)
        if not jobs and not entities:
            raise NotFound("no job or entity of these ids that you may read")
        roots = frozenset(jobs) | frozenset(entities)
        directions = (
            (Direction.BACK, Direction.FORWARD)
            if walk.direction is Direction.BOTH
            else (walk.direction,)
        )
        for direction in directions:
            reader.walk(set(jobs), set(entities), walk.depth, direction)
        return reader.graph(roots)

    # -- what the walk reads --------------------------------------------------------------

    def internal(self, details: JobDetails) -> InternalProvenance | None:
        """The provenance an ended job left in its directory, if any."""
        if details.job.phase not in TERMINAL:
            return None
        job_dir = self.service.files.directory(details.job.id)
        for name, kind in INTERNAL_FILES:
            data = nofollow.read_file(job_dir, name, INTERNAL_MAX + 1)
            if data is not None:
                return InternalProvenance(kind, data)
        return None

    def job_node(self, details: JobDetails) -> JobNode:
        job = details.job
        return JobNode(
            job=job,
            parameters=details.parameters,
            definition=self.service.kept.of_job(job),
            url=f"{self.base_url}/rest/{job.jobname}/{job.id}",
            page_url=f"{self.base_url}/jobs/{job.jobname}/{job.id}",
            internal=self.internal(details),
        )

    def entity_node(self, entity: Entity) -> EntityNode:
        return EntityNode(
            id=entity.id,
            name=entity.name,
            kind=entity.kind,
            owner=entity.owner,
            content_type=entity.content_type,
            size=entity.size,
            sha256=entity.sha256,
            creation_time=entity.creation_time,
            url=self.entities.url(entity.id),
            location=self.entities.location(entity.id) if entity.present else None,
            generated_by=entity.job_id if entity.kind == "result" else None,
            source=entity.source,
        )


class _Reader:
    """One walk's reads, each job and entity read once and checked for the caller."""

    def __init__(self, provenance: ProvenanceService, caller: Caller) -> None:
        self.provenance = provenance
        self.caller = caller
        self.store = provenance.entities.store
        self.jobs: dict[str, JobDetails] = {}
        self.entities: dict[str, Entity] = {}
        self.refused: set[str] = set()
        self.truncated = False

    def _readable(self, owner: str) -> bool:
        return access.can_access(self.caller, owner)

    def job(self, job_id: str) -> JobDetails | None:
        if job_id in self.jobs:
            return self.jobs[job_id]
        if job_id in self.refused:
            return None
        details = self.provenance.service.store.get_details(job_id)
        if details is None or not self._readable(details.job.owner):
            self.refused.add(job_id)
            return None
        self.jobs[job_id] = details
        return details

    def add_entities(self, entities: Iterable[Entity]) -> list[str]:
        added = []
        for entity in entities:
            if entity.id in self.entities:
                continue
            if not self._readable(entity.owner):
                continue
            self.entities[entity.id] = entity
            added.append(entity.id)
        return added

    def roots(self, ids: Iterable[str]) -> tuple[list[str], list[str]]:
        jobs: list[str] = []
        entity_ids = []
        for one in ids:
            if self.job(one) is not None:
                jobs.append(one)
            elif is_entity_id(one):
                entity_ids.append(one)
        found = self.store.many(entity_ids)
        self.add_entities(found[i] for i in entity_ids if i in found)
        return jobs, [i for i in entity_ids if i in self.entities]

    def results(self, details: JobDetails) -> list[Entity]:
        return self.provenance.entities.record_results(details.job, details.results)

    def full(self) -> bool:
        if len(self.jobs) + len(self.entities) >= MAX_NODES:
            self.truncated = True
        return self.truncated

    def walk(
        self, jobs: set[str], entities: set[str], depth: int | None, direction: Direction
    ) -> None:
        """Breadth first from the given nodes, ``depth`` hops (None: until done)."""
        seen_jobs, seen_entities = set(jobs), set(entities)
        step = 0
        while (jobs or entities) and (depth is None or step < depth) and not self.full():
            step += 1
            next_jobs: set[str] = set()
            next_entities: set[str] = set()
            if direction is Direction.BACK:
                used = self.store.uses_by_jobs(sorted(jobs))
                found = self.store.many({u.entity_id for u in used})
                self.add_entities(found[i] for i in sorted(found))
                next_entities.update(u.entity_id for u in used)
                for entity_id in sorted(entities):
                    entity = self.entities[entity_id]
                    if entity.kind == "result" and self.job(entity.job_id) is not None:
                        next_jobs.add(entity.job_id)
            else:
                for job_id in sorted(jobs):
                    next_entities.update(e.id for e in self.add_entities_of(job_id))
                for use in self.store.uses_of_entities(sorted(entities)):
                    if self.job(use.job_id) is not None:
                        next_jobs.add(use.job_id)
            jobs = next_jobs - seen_jobs
            entities = {e for e in next_entities if e in self.entities} - seen_entities
            seen_jobs |= jobs
            seen_entities |= entities

    def add_entities_of(self, job_id: str) -> list[Entity]:
        details = self.jobs[job_id]
        results = self.results(details)
        self.add_entities(results)
        return [e for e in results if e.id in self.entities]

    def graph(self, roots: frozenset[str]) -> ProvenanceGraph:
        """The nodes read, and every relation between two of them."""
        uses = self.store.uses_by_jobs(sorted(self.jobs))
        usages = tuple(
            Usage(u.job_id, u.entity_id, u.role, self.jobs[u.job_id].job.start_time)
            for u in uses
            if u.entity_id in self.entities
        )
        generations = tuple(
            Generation(e.id, e.job_id, e.name, self.jobs[e.job_id].job.end_time)
            for e in sorted(self.entities.values(), key=lambda e: e.id)
            if e.kind == "result" and e.job_id in self.jobs
        )
        provenance = self.provenance
        return ProvenanceGraph(
            jobs=tuple(provenance.job_node(self.jobs[j]) for j in sorted(self.jobs)),
            entities=tuple(provenance.entity_node(self.entities[e]) for e in sorted(self.entities)),
            usages=usages,
            generations=generations,
            base_url=provenance.base_url,
            roots=roots,
            truncated=self.truncated,
        )


def _fingerprint(graph: ProvenanceGraph) -> tuple[object, ...]:
    """What makes two walks' documents the same: every job's version, every entity's
    presence, the relations."""
    return (
        tuple((node.job.id, node.job.version) for node in graph.jobs),
        tuple((node.id, node.location is not None) for node in graph.entities),
        graph.usages,
        graph.generations,
        graph.truncated,
    )

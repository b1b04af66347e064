"""What a provenance document is made of: the jobs and entities a query reached.

The service walks the database from the asked-for jobs and entities (service/provenance.py)
and hands a ``ProvenanceGraph`` to the writers: the provenance package (PROV-JSON, PROV-XML,
PROV-N through voprov) and provdot.py (SVG, PNG and the image map through graphviz).
Everything here is already cut to what the caller may read: a writer never asks the
database for more, so it cannot reveal another user's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from opus.core.records import Job, Parameter
from opus.server.jdl import JobDefinition


class Model(Enum):
    """IVOA: voprov's classes (ProvDM); W3C: plain PROV that any PROV tool reads."""

    IVOA = "IVOA"
    W3C = "W3C"


class Format(Enum):
    """The serialisations of a document, by their ProvSAP RESPONSEFORMAT names."""

    JSON = "PROV-JSON"
    XML = "PROV-XML"
    PROVN = "PROV-N"
    SVG = "PROV-SVG"
    PNG = "PROV-PNG"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self]


MEDIA_TYPES = {
    Format.JSON: "application/json",
    Format.XML: "application/xml",
    Format.PROVN: "text/provenance-notation; charset=utf-8",
    Format.SVG: "image/svg+xml",
    Format.PNG: "image/png",
}


@dataclass(frozen=True)
class DocumentOptions:
    """How much a document says (the ProvSAP parameters other than the walk)."""

    model: Model = Model.IVOA
    # 0: none; 1: the ActivityDescription of each job; 2: also the usage, generation,
    # parameter and entity descriptions of its job definition.
    descriptions: int = 0
    agents: bool = True  # the owner and the definition's contact, with their roles
    configuration: bool = True  # the job's parameters and their values


@dataclass(frozen=True)
class InternalProvenance:
    """Provenance a job left in its own directory, to merge under the job's activity."""

    kind: str  # "json": PROV-JSON (provenance.json); "logprov": a logprov log (prov.log)
    data: bytes


@dataclass(frozen=True)
class JobNode:
    """A job (a ProvDM Activity) the caller may read."""

    job: Job
    parameters: tuple[Parameter, ...]
    definition: JobDefinition | None  # the text it ran with (None: no longer known)
    url: str  # the UWS job: BASE_URL/rest/{jobname}/{id}
    page_url: str  # the web client's job page: BASE_URL/jobs/{jobname}/{id}
    internal: InternalProvenance | None = None


@dataclass(frozen=True)
class EntityNode:
    """A file (a ProvDM Entity): an input of a job, or a result."""

    id: str
    name: str  # the result's id, or the input file's name
    kind: str  # "input" or "result"
    owner: str
    content_type: str
    size: int
    sha256: str
    creation_time: datetime
    url: str  # its metadata: BASE_URL/entities/{id}
    location: str | None  # its bytes (BASE_URL/store/{id}); None once its job is gone
    generated_by: str | None = None  # the job id of a result
    source: str | None = None  # the URL an input was fetched from


@dataclass(frozen=True)
class Usage:
    """A job used an entity, in the role of one of its inputs (the input's name)."""

    job_id: str
    entity_id: str
    role: str
    time: datetime | None


@dataclass(frozen=True)
class Generation:
    """A job generated an entity, in the role of one of its generated entities."""

    entity_id: str
    job_id: str
    role: str
    time: datetime | None


@dataclass(frozen=True)
class ProvenanceGraph:
    """The reachable part of the provenance, every node readable by the caller.

    A relation's both ends are in the graph; an entity whose generating job is not
    (deleted, past DEPTH, or another user's) is shown without its generation.
    """

    jobs: tuple[JobNode, ...] = ()
    entities: tuple[EntityNode, ...] = ()
    usages: tuple[Usage, ...] = ()
    generations: tuple[Generation, ...] = ()
    base_url: str = ""
    # The ids asked for, drawn apart in graphs.
    roots: frozenset[str] = field(default_factory=frozenset)
    # The walk stopped at its node limit (service/provenance.py MAX_NODES).
    truncated: bool = False

"""The IVOA document of a provenance graph, built with voprov's classes.

Identifiers, namespaces and the records of jobs, agents, entities, relations and
descriptions; the package's docstring (opus/server/provenance/__init__.py) says why
voprov is used only here.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Any

import prov.constants
import prov.model
from prov.identifier import Namespace, QualifiedName
from prov.model import ProvBundle
from voprov.models import constants as vc
from voprov.models.model import VOProvDocument

from opus.server import provinternal
from opus.server.jdl import JobDefinition
from opus.server.provmodel import (
    DocumentOptions,
    EntityNode,
    JobNode,
    ProvenanceGraph,
)

VOPROV: Namespace = vc.VOPROV
# The OPUS vocabulary: attributes ProvDM has no name for (size, hash…) and, in W3C
# documents, voprov's terms. Under the base URL like the instance namespaces: OPUS has
# no address of its own to mint terms under.
VOCABULARY_PATH = "/provenance/ns#"
PREFIXES = {
    "opus_job": "/jobs/",
    "opus_entity": "/entities/",
    "opus_user": "/users/",
    "opus_desc": "/jdl/",
}
DESCRIPTION_LEVELS = (0, 1, 2)

_LOCK = threading.RLock()
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


# --- identifiers ---------------------------------------------------------------------


def _local(kind: str, *parts: str) -> str:
    """A local name valid in PROV-N and as an XML NCName, one-to-one with its parts."""

    def escape(match: re.Match[str]) -> str:
        return "".join(f"-{byte:02x}" for byte in match.group().encode())

    return "_".join([kind, *(_UNSAFE.sub(escape, part) for part in parts)])


def activity_id(job_id: str) -> str:
    """The qualified name of a job's activity (as PROV-N and PROV-JSON write it)."""
    return f"opus_job:{_local('job', job_id)}"


def entity_id(entity_id: str) -> str:
    """The qualified name of an entity (an input file or a result)."""
    return f"opus_entity:{_local('entity', entity_id)}"


def _revision(node: JobNode) -> str:
    """What tells two versions of a job type apart in description ids."""
    if node.job.definition_hash:
        return node.job.definition_hash[:12]
    if node.job.definition_revision is not None:
        return f"r{node.job.definition_revision}"
    return "unknown"


class _Names:
    """The namespaces of one document and the qualified names built in them."""

    def __init__(self, doc: ProvBundle, base_url: str) -> None:
        base = base_url.rstrip("/")
        self.ns = {
            prefix: doc.add_namespace(prefix, base + path) for prefix, path in PREFIXES.items()
        }
        self.vocabulary: Namespace = doc.add_namespace("opus", base + VOCABULARY_PATH)
        self.agents: set[QualifiedName] = set()  # those already in the document
        self.sources: set[QualifiedName] = set()  # the same

    def job(self, job_id: str) -> QualifiedName:
        return self.ns["opus_job"][_local("job", job_id)]

    def parameter(self, job_id: str, name: str) -> QualifiedName:
        return self.ns["opus_job"][_local("job", job_id, "param", name)]

    def entity(self, entity_id: str) -> QualifiedName:
        return self.ns["opus_entity"][_local("entity", entity_id)]

    def source(self, url: str, commit: str) -> QualifiedName:
        """A commit of a git repository: the same node for every job that used it."""
        repository = hashlib.sha256(url.encode()).hexdigest()[:16]
        return self.ns["opus_entity"][_local("source", repository, commit)]

    def user(self, name: str) -> QualifiedName:
        return self.ns["opus_user"][_local("user", name)]

    def contact(self, name: str) -> QualifiedName:
        return self.ns["opus_user"][_local("contact", name)]

    def description(self, node: JobNode, *parts: str) -> QualifiedName:
        return self.ns["opus_desc"][_local("desc", node.job.jobname, _revision(node), *parts)]

    def term(self, name: str) -> QualifiedName:
        return self.vocabulary[name]


# --- the IVOA document ---------------------------------------------------------------


def _ivoa_document(graph: ProvenanceGraph, options: DocumentOptions) -> VOProvDocument:
    doc = VOProvDocument()
    names = _Names(doc, graph.base_url)
    described: dict[tuple[str, str], dict[str, QualifiedName]] = {}
    for node in sorted(graph.jobs, key=lambda n: n.job.id):
        _add_activity(doc, names, node, options)
        if options.descriptions and node.definition is not None:
            key = (node.job.jobname, _revision(node))
            if key not in described:
                described[key] = _add_descriptions(doc, names, node, node.definition, options)
            doc.description(names.job(node.job.id), names.description(node))
    for entity in sorted(graph.entities, key=lambda e: e.id):
        _add_entity(doc, names, entity)
    _add_relations(doc, names, graph, described)
    for node in sorted(graph.jobs, key=lambda n: n.job.id):
        if node.internal is not None:
            provinternal.merge(
                doc,
                node,
                names.job(node.job.id),
                names.term("internalProvenance"),
                _voprov_type,
                {"voprov:": VOPROV},  # what logprov writes for the voprov namespace
            )
    return doc


def _voprov_type(record_type: QualifiedName) -> QualifiedName:
    """voprov's type for a PROV record type (the type itself when voprov has none)."""
    candidate = VOPROV[record_type.localpart]
    if (
        record_type.namespace.uri == prov.constants.PROV.uri
        and candidate in prov.model.PROV_REC_CLS
    ):
        return candidate
    return record_type


def _add_activity(
    doc: VOProvDocument, names: _Names, node: JobNode, options: DocumentOptions
) -> None:
    job = node.job
    label = f"{job.jobname} {job.run_id}" if job.run_id else job.jobname
    attributes: dict[Any, Any] = {
        prov.constants.PROV_LABEL: label,
        names.term("phase"): str(job.phase),
        names.term("url"): node.url,
        names.term("page"): node.page_url,
    }
    if job.run_id:
        attributes[names.term("runId")] = job.run_id
    if job.error_message:
        attributes[VOPROV["comment"]] = job.error_message
    if job.source_url is not None:
        attributes[names.term("sourceGit")] = job.source_url
        attributes[names.term("sourceRef")] = job.source_ref or ""
        if job.source_commit:
            attributes[names.term("sourceCommit")] = job.source_commit
    activity = names.job(job.id)
    doc.activity(activity, job.jobname, job.start_time, job.end_time, other_attributes=attributes)
    _add_source(doc, names, node, activity)
    if options.agents:
        _add_agents(doc, names, node, activity)
    if options.configuration:
        for parameter in sorted(node.parameters, key=lambda p: p.name):
            description = None
            if (
                options.descriptions == 2
                and node.definition
                and node.definition.parameter(parameter.name)
            ):
                description = names.description(node, "param", parameter.name)
            extra = {names.term("byReference"): True} if parameter.by_reference else None
            param = doc.parameter(
                names.parameter(job.id, parameter.name),
                parameter.name,
                parameter.value,
                description,
                other_attributes=extra,
            )
            doc.configuration(activity, param)


def _add_source(doc: VOProvDocument, names: _Names, node: JobNode, activity: QualifiedName) -> None:
    """The code the job ran, once its batch script checked it out: the commit of its
    git repository as an entity (located at the repository's URL) used in role
    ``source``."""
    url, commit = node.job.source_url, node.job.source_commit
    if url is None or commit is None:
        return
    entity = names.source(url, commit)
    if entity not in names.sources:
        names.sources.add(entity)
        attributes: dict[Any, Any] = {
            prov.constants.PROV_LABEL: f"source {commit[:12]}",
            names.term("kind"): "source",
            names.term("commit"): commit,
            names.term("url"): url,
        }
        doc.entity(entity, "source", url, None, other_attributes=attributes)
    doc.usage(activity, entity, None, "source", node.job.start_time)


def _add_agents(doc: VOProvDocument, names: _Names, node: JobNode, activity: QualifiedName) -> None:
    """The owner and the definition's contact, each agent written once per document."""
    agents: list[tuple[QualifiedName, str, str, str]] = [
        (names.user(node.job.owner), node.job.owner, "", "owner")
    ]
    definition = node.definition
    if definition is not None and (definition.contact_name or definition.contact_email):
        contact = definition.contact_email or definition.contact_name
        agents.append(
            (
                names.contact(contact),
                definition.contact_name or contact,
                definition.contact_email,
                "contact",
            )
        )
    for agent, name, email, role in agents:
        if agent not in names.agents:
            names.agents.add(agent)
            label = {prov.constants.PROV_LABEL: name}
            doc.agent(agent, name=name, email=email or None, other_attributes=label)
        doc.association(activity, agent, role=role)


def _add_entity(doc: VOProvDocument, names: _Names, entity: EntityNode) -> None:
    attributes: dict[Any, Any] = {
        prov.constants.PROV_LABEL: entity.name,
        vc.VOPROV_ATTR_CONTENT_TYPE: entity.content_type,
        names.term("size"): entity.size,
        names.term("sha256"): entity.sha256,
        names.term("kind"): entity.kind,
        names.term("url"): entity.url,
    }
    if entity.source:
        attributes[names.term("source")] = entity.source
    comment = None
    if entity.location is None:
        attributes[names.term("stored")] = False
        comment = "no longer stored: the job it belongs to was deleted"
    doc.entity(
        names.entity(entity.id),
        entity.name,
        entity.location,
        entity.creation_time,
        comment=comment,
        other_attributes=attributes,
    )


def _add_relations(
    doc: VOProvDocument,
    names: _Names,
    graph: ProvenanceGraph,
    described: dict[tuple[str, str], dict[str, QualifiedName]],
) -> None:
    """The usages and generations, linked to their descriptions at level 2."""
    nodes = {node.job.id: node for node in graph.jobs}

    def descriptions(job_id: str) -> dict[str, QualifiedName]:
        node = nodes.get(job_id)
        if node is None or node.definition is None:
            return {}
        return described.get((node.job.jobname, _revision(node)), {})

    entity_described: set[tuple[QualifiedName, QualifiedName]] = set()

    def describe(entity: QualifiedName, key: str, found: dict[str, QualifiedName]) -> None:
        if f"entity:{key}" in found and (entity, found[f"entity:{key}"]) not in entity_described:
            entity_described.add((entity, found[f"entity:{key}"]))
            doc.description(entity, found[f"entity:{key}"])

    for usage in sorted(graph.usages, key=lambda u: (u.job_id, u.role, u.entity_id)):
        found, entity = descriptions(usage.job_id), names.entity(usage.entity_id)
        doc.usage(
            names.job(usage.job_id),
            entity,
            found.get(f"used:{usage.role}"),
            usage.role,
            usage.time,
        )
        describe(entity, f"used:{usage.role}", found)
    for generation in sorted(graph.generations, key=lambda g: (g.job_id, g.role, g.entity_id)):
        found, entity = descriptions(generation.job_id), names.entity(generation.entity_id)
        doc.generation(
            entity,
            names.job(generation.job_id),
            found.get(f"generated:{generation.role}"),
            generation.role,
            generation.time,
        )
        describe(entity, f"generated:{generation.role}", found)


def _text(value: str) -> str | None:
    """None for an empty field, which voprov then leaves out."""
    return value or None


def _add_descriptions(
    doc: VOProvDocument,
    names: _Names,
    node: JobNode,
    definition: JobDefinition,
    options: DocumentOptions,
) -> dict[str, QualifiedName]:
    """The ActivityDescription (and at level 2 the rest) of a definition, by role."""
    activity = names.description(node)
    doc.activityDescription(
        activity,
        definition.name,
        version=_text(definition.version),
        description=_text(definition.annotation),
        docurl=_text(definition.doculink),
        type=_text(definition.type),
        subtype=_text(definition.subtype),
    )
    found: dict[str, QualifiedName] = {}
    if options.descriptions < 2:
        return found
    for used in definition.used:
        dataset = names.description(node, "entity", "used", used.name)
        doc.datasetDescription(dataset, used.name, used.content_type, _text(used.annotation))
        found[f"entity:used:{used.name}"] = dataset
        found[f"used:{used.name}"] = names.description(node, "used", used.name)
        doc.usageDescription(
            found[f"used:{used.name}"],
            activity,
            used.name,
            description=_text(used.annotation),
            multiplicity=_text(used.multiplicity),
            entityDescription=dataset,
            other_attributes={vc.VOPROV_ATTR_CONTENT_TYPE: used.content_type}
            if used.content_type
            else None,
        )
    for generated in definition.generated:
        dataset = names.description(node, "entity", "generated", generated.name)
        doc.datasetDescription(
            dataset, generated.name, generated.content_type, _text(generated.annotation)
        )
        found[f"entity:generated:{generated.name}"] = dataset
        found[f"generated:{generated.name}"] = names.description(node, "generated", generated.name)
        doc.generationDescription(
            found[f"generated:{generated.name}"],
            activity,
            generated.name,
            description=_text(generated.annotation),
            multiplicity=_text(generated.multiplicity),
            entityDescription=dataset,
            other_attributes=(
                {vc.VOPROV_ATTR_CONTENT_TYPE: generated.content_type}
                if generated.content_type
                else None
            ),
        )
    for parameter in definition.parameters:
        doc.parameterDescription(
            names.description(node, "param", parameter.name),
            activity,
            parameter.name,
            parameter.datatype,
            description=_text(parameter.annotation),
            unit=_text(parameter.unit),
            ucd=_text(parameter.ucd),
            utype=_text(parameter.utype),
            min=parameter.min,
            max=parameter.max,
            # An attribute holds one value: the choices as a JSON array, in their order.
            options=json.dumps(parameter.options) if parameter.options else None,
            default=parameter.default,
        )
    return found

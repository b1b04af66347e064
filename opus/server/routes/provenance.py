"""Provenance over HTTP: a job's document, ProvSAP, entities and their files.

- ``/rest/{jobname}/{job_id}/provenance?format=json|xml|provn|svg|png`` (and the
  original OPUS's ``provjson``, ``provxml``, ``provsvg``): an ended job's document.
- ``/provsap``: the IVOA Provenance Simple Access Protocol. ID (repeatable, job or
  entity ids), DEPTH (a number or ALL), DIRECTION (BACK, FORWARD, BOTH), MODEL (IVOA,
  W3C), AGENTS, CONFIGURATION (true/false), DESCRIPTIONS (0, 1, 2), RESPONSEFORMAT
  (PROV-JSON, PROV-XML, PROV-N, PROV-SVG, PROV-PNG; and IMAGE-MAP, the clickable areas
  of the graph for a web page). Names are case-insensitive, as in every DAL service;
  each value is checked (400 naming it).
- ``/entities`` (the caller's entities), ``/entities/{id}`` (JSON: what made it, what
  used it) and ``/store/{entity_id}`` (its bytes, served as results are).

Errors are plain text, as on the UWS tree, except on /entities (JSON).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import bottle

from opus.core.access import Caller
from opus.core.errors import BadRequest
from opus.core.records import Entity
from opus.core.times import format_time
from opus.server.auth import Authenticator
from opus.server.jsonapi import dumps
from opus.server.provmodel import MEDIA_TYPES, DocumentOptions, Format, Model
from opus.server.routes.common import JOB_ID_PATTERN, JOBNAME_PATTERN, caller, plain_tree
from opus.server.routes.files import file_response
from opus.server.routes.negotiation import json_error, json_fault, json_response
from opus.server.service import JobService
from opus.server.service.provenance import Direction, Document, ProvenanceService, Walk

JOB = f"/rest/<jobname:re:{JOBNAME_PATTERN}>/<job_id:re:{JOB_ID_PATTERN}>"
ENTITY_ID = "<entity_id:re:[0-9a-f]{32}>"
# ?format= of a job's document, and the original paths.
JOB_FORMATS = {
    "json": Format.JSON,
    "xml": Format.XML,
    "provn": Format.PROVN,
    "svg": Format.SVG,
    "png": Format.PNG,
}
ORIGINAL_PATHS = {"provjson": Format.JSON, "provxml": Format.XML, "provsvg": Format.SVG}
IMAGE_MAP = "IMAGE-MAP"
# Set when a walk stopped at its node limit: the value is that limit.
TRUNCATED_HEADER = "OPUS-Provenance-Truncated"
MAX_IDS = 100
MAX_DEPTH = 1000
TRUE = ("TRUE", "YES", "1")
FALSE = ("FALSE", "NO", "0")
SUFFIXES = {
    Format.JSON: "json",
    Format.XML: "xml",
    Format.PROVN: "provn",
    Format.SVG: "svg",
    Format.PNG: "png",
}
# Job ids ([a-z2-7]) and entity ids (hex digits).
NODE_ID = re.compile(r"[a-z0-9]{1,64}")


def write_document(graph: Any, options: DocumentOptions, fmt: Format) -> bytes:
    """A graph in ``fmt``: voprov's serialisations, or graphviz's drawings."""
    # Imported when first used: voprov is slow to import and changes prov's state.
    if fmt in (Format.SVG, Format.PNG):
        from opus.server import provdot

        return provdot.graph_bytes(graph, options, fmt)
    from opus.server import provenance

    return provenance.document_bytes(graph, options, fmt)


def tree(service: JobService, authn: Authenticator) -> bottle.Bottle:
    """The provenance routes (errors as plain text; JSON on /entities)."""
    provenance = ProvenanceService(service, write_document)
    app = plain_tree(service.settings.BASE_URL)
    request = bottle.request

    def answer(document: Document, fmt: Format, name: str) -> bottle.HTTPResponse:
        headers = {"Content-Type": MEDIA_TYPES[fmt], "Cache-Control": "private, no-cache"}
        if document.node_limit is not None:
            # A PROV document has no place for it: the walk's limit is said here.
            headers[TRUNCATED_HEADER] = str(document.node_limit)
        if fmt is not Format.SVG and fmt is not Format.PNG:
            headers["Content-Disposition"] = f'inline; filename="{name}.{SUFFIXES[fmt]}"'
        if fmt is Format.SVG:
            # The graph is OPUS's own drawing, shown as an image: no script runs in it.
            headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        headers["X-Content-Type-Options"] = "nosniff"
        return bottle.HTTPResponse(body=document.body, headers=headers)

    def job_document(jobname: str, job_id: str, fmt: Format) -> bottle.HTTPResponse:
        params = _upper(request.query.allitems())
        options = _options(params)
        document = provenance.job_document(caller(authn), jobname, job_id, options, fmt)
        return answer(document, fmt, f"{job_id}-provenance")

    @app.get(f"{JOB}/provenance")
    def get_job_provenance(jobname: str, job_id: str) -> bottle.HTTPResponse:
        text = (request.query.get("format") or "json").strip().lower()
        if text not in JOB_FORMATS:
            choices = ", ".join(JOB_FORMATS)
            raise BadRequest(f"format {text!r} is not one of {choices}", "format")
        return job_document(jobname, job_id, JOB_FORMATS[text])

    for path, fmt in ORIGINAL_PATHS.items():
        app.route(f"{JOB}/{path}", "GET")(_original(job_document, fmt))

    @app.route("/provsap", ["GET", "POST"])
    def provsap() -> bottle.HTTPResponse:
        items = request.query.allitems()
        if request.method == "POST":
            items = [*items, *request.forms.allitems()]
        params = _upper(items)
        walk = _walk(params)
        options = _options(params)
        response_format = _one(params, "RESPONSEFORMAT", "PROV-JSON").upper()
        who = caller(authn)
        if response_format == IMAGE_MAP:
            from opus.server import provdot

            graph = provenance.graph(who, walk)
            value = {"areas": provdot.image_map(graph, options), "truncated": graph.truncated}
            return json_response(dumps(value), headers={"Cache-Control": "no-cache"})
        formats = {f.value: f for f in Format}
        if response_format not in formats:
            choices = ", ".join([*formats, IMAGE_MAP])
            raise BadRequest(
                f"RESPONSEFORMAT {response_format!r} is not one of {choices}", "RESPONSEFORMAT"
            )
        fmt = formats[response_format]
        return answer(provenance.document(who, walk, options, fmt), fmt, "provenance")

    @app.get(f"/store/{ENTITY_ID}")
    def get_entity_file(entity_id: str) -> bottle.HTTPResponse:
        entity, opened = service.entities.open(caller(authn), entity_id)
        return file_response(opened, entity.content_type, filename=opened.name)

    entities = plain_tree(service.settings.BASE_URL, json_error, json_fault)

    @entities.get("/entities")
    def list_entities() -> bottle.HTTPResponse:
        kind = request.query.get("kind") or None
        if kind not in (None, "input", "result"):
            raise BadRequest("kind must be input or result", "kind")
        last = _count(request.query.get("last") or "100", "last", 1, 1000)
        who = caller(authn)
        found = service.entities.owned(who, kind, last)
        return json_response(
            dumps({"entities": [_entity_value(service, e) for e in found]}),
            headers={"Cache-Control": "no-cache"},
        )

    @entities.get(f"/entities/{ENTITY_ID}")
    def get_entity(entity_id: str) -> bottle.HTTPResponse:
        who = caller(authn)
        entity = service.entities.get(who, entity_id)
        value = _entity_value(service, entity)
        value["usedBy"] = _used_by(service, who, entity)
        return json_response(dumps(value), headers={"Cache-Control": "no-cache"})

    app.merge(entities)
    return app


def _original(
    job_document: Callable[[str, str, Format], bottle.HTTPResponse], fmt: Format
) -> Callable[[str, str], bottle.HTTPResponse]:
    """The route of one of the original OPUS paths (provjson, provxml, provsvg)."""

    def get_original(jobname: str, job_id: str) -> bottle.HTTPResponse:
        return job_document(jobname, job_id, fmt)

    return get_original


def _upper(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Query parameters by upper-case name (DAL names are case-insensitive)."""
    params: dict[str, list[str]] = {}
    for name, value in items:
        params.setdefault(name.upper(), []).append(value)
    return params


def _one(params: dict[str, list[str]], name: str, default: str) -> str:
    values = params.get(name, [])
    if len(values) > 1:
        raise BadRequest(f"{name} is given {len(values)} times", name)
    return values[0].strip() if values else default


def _flag(params: dict[str, list[str]], name: str, default: bool) -> bool:
    text = _one(params, name, "").upper()
    if not text:
        return default
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise BadRequest(f"{name} {text!r} is not true or false", name)


def _count(text: str, name: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} {text!r} is not an integer", name) from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}", name)
    return value


def _options(params: dict[str, list[str]]) -> DocumentOptions:
    """MODEL, DESCRIPTIONS, AGENTS and CONFIGURATION, checked."""
    model_text = _one(params, "MODEL", "IVOA").upper()
    if model_text not in ("IVOA", "W3C"):
        raise BadRequest(f"MODEL {model_text!r} is not IVOA or W3C", "MODEL")
    descriptions = _count(_one(params, "DESCRIPTIONS", "0"), "DESCRIPTIONS", 0, 2)
    return DocumentOptions(
        model=Model(model_text),
        descriptions=descriptions,
        agents=_flag(params, "AGENTS", True),
        configuration=_flag(params, "CONFIGURATION", True),
    )


def _walk(params: dict[str, list[str]]) -> Walk:
    """ID, DEPTH and DIRECTION, checked."""
    ids: list[str] = []
    for value in params.get("ID", []):
        ids += [part.strip() for part in value.split(",") if part.strip()]
    if not ids:
        raise BadRequest("ID is required (a job or entity id; repeatable)", "ID")
    if len(ids) > MAX_IDS:
        raise BadRequest(f"at most {MAX_IDS} IDs", "ID")
    for one in ids:
        if not NODE_ID.fullmatch(one):
            raise BadRequest(f"ID {one[:70]!r} is not a job or entity id", "ID")
    depth_text = _one(params, "DEPTH", "1").upper()
    depth = None if depth_text == "ALL" else _count(depth_text, "DEPTH", 0, MAX_DEPTH)
    direction_text = _one(params, "DIRECTION", "BACK").upper()
    if direction_text not in Direction.__members__:
        raise BadRequest(f"DIRECTION {direction_text!r} is not BACK, FORWARD or BOTH", "DIRECTION")
    unique = tuple(dict.fromkeys(ids))
    return Walk(unique, depth, Direction[direction_text])


def _entity_value(service: JobService, entity: Entity) -> dict[str, Any]:
    entities = service.entities
    value: dict[str, Any] = {
        "id": entity.id,
        "kind": entity.kind,
        "name": entity.name,
        "owner": entity.owner,
        "contentType": entity.content_type,
        "size": entity.size,
        "sha256": entity.sha256,
        "creationTime": format_time(entity.creation_time),
        "href": entities.url(entity.id),
        "location": entities.location(entity.id) if entity.present else None,
        "present": entity.present,
        "source": entity.source,
        "job": entity.job_id,
    }
    if entity.kind == "result":
        job = service.entities.maker(entity)
        value["generatedBy"] = (
            {
                "job": job.id,
                "jobType": job.jobname,
                "href": f"{service.entities.base_url}/rest/{job.jobname}/{job.id}",
                "role": entity.name,
            }
            if job is not None
            else {"job": entity.job_id, "deleted": True}
        )
    return value


def _used_by(service: JobService, who: Caller, entity: Entity) -> list[dict[str, Any]]:
    """The jobs that used the entity, among those the caller may read."""
    users = []
    for role, job in service.entities.users(who, entity):
        users.append(
            {
                "job": job.id,
                "jobType": job.jobname,
                "role": role,
                "phase": job.phase.value,
                "href": f"{service.entities.base_url}/rest/{job.jobname}/{job.id}",
            }
        )
    return users

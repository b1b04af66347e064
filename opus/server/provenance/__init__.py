"""IVOA Provenance (ProvDM) documents of jobs, through voprov: PROV-JSON, PROV-XML, PROV-N.

This package is the one place of OPUS importing voprov, because importing it rewrites prov's
global tables in place: it adds a ``voprov`` default namespace (``prov.model.
DEFAULT_NAMESPACES``, which every prov document's XML then declares) and voprov's types
and attributes to ``PROV_N_MAP``, ``ADDITIONAL_N_MAP``, ``PROV_BASE_CLS``,
``PROV_REC_CLS``, ``PROV_ATTRIBUTE_QNAMES`` and ``PROV_ATTRIBUTE_LITERALS`` (no name is
rebound). Plain W3C output is therefore built and written inside ``plain_prov()``, which
puts prov's own contents back for that time and voprov's after it; one lock serialises
every use of these tables, since another thread would see them half-changed.

The IVOA document is the one built from the graph; MODEL=W3C copies it record by record
into a plain prov document, mapping voprov's classes onto PROV ones (descriptions and
parameters become entities, voprov's relations prov:Influence, both typed in the OPUS
vocabulary) and voprov's attributes into the OPUS vocabulary, so that the current prov
release, or any PROV tool, reads it.

Identifiers are derived from the database ids alone, so that a job or a file has the same
identifier in every document: ``opus_job:job_{id}``, ``opus_entity:entity_{id}``,
``opus_user:user_{name}``, ``opus_desc:desc_{jobname}_{definition hash[:12]}[_…]``, each
namespace under the server's base URL. Local names start with a letter and hold only
``[A-Za-z0-9_-]`` (other characters are written ``-xx`` per byte): valid in PROV-N and as
the XML QNames PROV-XML wants. The internal provenance a job left (provinternal.py) is
merged under the job's activity.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from prov.model import ProvDocument
from prov.serializers.provjson import ProvJSONSerializer
from prov.serializers.provn import ProvNSerializer
from prov.serializers.provxml import ProvXMLSerializer
from voprov.serializers.provjson import VOProvJSONSerializer
from voprov.serializers.provn import VOProvNSerializer
from voprov.serializers.xml import VOProvXMLSerializer

from opus.server.provenance.ivoa import (
    _LOCK,
    DESCRIPTION_LEVELS,
    _ivoa_document,
    activity_id,
    entity_id,
)
from opus.server.provenance.w3c import _w3c_copy, plain_prov
from opus.server.provmodel import DocumentOptions, Format, Model, ProvenanceGraph

__all__ = ["activity_id", "build_document", "document_bytes", "entity_id", "plain_prov"]


def build_document(graph: ProvenanceGraph, options: DocumentOptions) -> ProvDocument:
    """The document of ``graph``: a VOProvDocument for IVOA, a plain ProvDocument for W3C.

    A W3C document is only written correctly inside ``plain_prov()`` (document_bytes
    does that). Raises ValueError for a description level other than 0, 1, 2.
    """
    if options.descriptions not in DESCRIPTION_LEVELS:
        raise ValueError(f"descriptions must be one of {DESCRIPTION_LEVELS}")
    with _LOCK:
        doc = _ivoa_document(graph, options)
        if options.model is Model.IVOA:
            return doc
        with plain_prov():
            return _w3c_copy(doc, graph.base_url)


# --- serialisations ------------------------------------------------------------------

_IVOA_WRITERS: dict[Format, Callable[[ProvDocument], Any]] = {
    Format.JSON: VOProvJSONSerializer,
    Format.XML: VOProvXMLSerializer,
    Format.PROVN: VOProvNSerializer,
}
_W3C_WRITERS: dict[Format, Callable[[ProvDocument], Any]] = {
    Format.JSON: ProvJSONSerializer,
    Format.XML: ProvXMLSerializer,
    Format.PROVN: ProvNSerializer,
}


def document_bytes(graph: ProvenanceGraph, options: DocumentOptions, fmt: Format) -> bytes:
    """The document of ``graph`` in ``fmt`` (UTF-8).

    Raises ValueError for SVG and PNG (provdot.graph_bytes draws those) and for a
    description level other than 0, 1, 2.
    """
    writers = _IVOA_WRITERS if options.model is Model.IVOA else _W3C_WRITERS
    if fmt not in writers:
        raise ValueError(f"{fmt.value} is a graph: provdot.graph_bytes draws it")
    with _LOCK:
        doc = build_document(graph, options)
        stream = io.BytesIO()
        if options.model is Model.IVOA:
            writers[fmt](doc).serialize(stream)
        else:
            with plain_prov():
                writers[fmt](doc).serialize(stream)
        return stream.getvalue()

"""Plain W3C PROV from the IVOA document, and prov's own tables while it is written.

Importing voprov rewrites prov's global tables; ``plain_prov`` puts prov's own contents
back for the time of a block (see the package's docstring), and ``w3c_copy`` maps
voprov's classes and attributes onto PROV and the OPUS vocabulary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import prov.constants
import prov.model
from prov.identifier import Namespace, QualifiedName
from prov.model import ProvBundle, ProvDocument, ProvRecord
from voprov.models import constants as vc
from voprov.models.model import VOProvDocument

from opus.server.provenance.ivoa import _LOCK, VOCABULARY_PATH, VOPROV

# --- plain W3C PROV ------------------------------------------------------------------


def _voprov_free(table: Any) -> Any:
    """What ``table`` held before voprov added to it (a copy)."""
    if isinstance(table, set):
        # voprov adds voprov names and Literal wrappers: prov's own members are prov names.
        return {
            item
            for item in table
            if isinstance(item, QualifiedName) and item.namespace.uri != VOPROV.uri
        }
    return {
        key: value
        for key, value in table.items()
        if not (isinstance(key, QualifiedName) and key.namespace.uri == VOPROV.uri)
        and not (isinstance(value, Namespace) and value.uri == VOPROV.uri)
    }


def _prov_tables() -> list[Any]:
    """prov's global tables voprov changes, each once (prov.model re-exports constants')."""
    names = (
        "PROV_N_MAP",
        "ADDITIONAL_N_MAP",
        "PROV_BASE_CLS",
        "PROV_ATTRIBUTE_QNAMES",
        "PROV_ATTRIBUTE_LITERALS",
    )
    tables = [getattr(prov.constants, name) for name in names]
    tables += [prov.model.DEFAULT_NAMESPACES, prov.model.PROV_REC_CLS]
    return list({id(table): table for table in tables}.values())


@contextlib.contextmanager
def plain_prov() -> Iterator[None]:
    """prov as if voprov had never been imported, for the time of the block.

    The tables are changed in place, since every prov module holds them by reference;
    the lock keeps other threads (which build voprov documents) out meanwhile.
    """
    with _LOCK:
        tables = _prov_tables()
        saved = [table.copy() for table in tables]
        try:
            for table in tables:
                plain = _voprov_free(table)
                table.clear()
                table.update(plain)
            yield
        finally:
            for table, contents in zip(tables, saved, strict=True):
                table.clear()
                table.update(contents)


def _w3c_types(
    vocabulary: Namespace,
) -> dict[QualifiedName, tuple[QualifiedName, QualifiedName | None]]:
    """voprov's record types → (the PROV type, the prov:type it is asserted to have)."""
    types: dict[QualifiedName, tuple[QualifiedName, QualifiedName | None]] = {}
    for record_type in prov.constants.PROV_N_MAP:
        if record_type.namespace.uri == prov.constants.PROV.uri:
            types[VOPROV[record_type.localpart]] = (record_type, None)
    for name in (
        "ActivityDescription",
        "UsageDescription",
        "GenerationDescription",
        "EntityDescription",
        "ValueDescription",
        "DatasetDescription",
        "ConfigFileDescription",
        "ParameterDescription",
        "ConfigFile",
        "Parameter",
        "ValueEntity",
        "DatasetEntity",
    ):
        types[VOPROV[name]] = (prov.constants.PROV_ENTITY, vocabulary[name])
    for record_type, relation in (
        (vc.VOPROV_DESCRIPTION_RELATION, "isDescribedBy"),
        (vc.VOPROV_RELATED_TO_RELATION, "isRelatedTo"),
        (vc.VOPROV_CONFIGURATION_RELATION, "wasConfiguredBy"),
        (vc.VOPROV_REFERENCE_RELATION, "hadReference"),
    ):
        types[record_type] = (prov.constants.PROV_INFLUENCE, vocabulary[relation])
    return types


def _w3c_copy(source: VOProvDocument, base_url: str) -> ProvDocument:
    """``source`` as plain PROV (called inside plain_prov())."""
    target = ProvDocument()
    vocabulary = Namespace("opus", base_url.rstrip("/") + VOCABULARY_PATH)
    for namespace in source.get_registered_namespaces():
        if namespace.uri != VOPROV.uri:
            target.add_namespace(namespace.prefix, namespace.uri)
    types = _w3c_types(vocabulary)
    renamed = {
        prov.constants.PROV["name"]: vocabulary["name"],
        VOPROV["location"]: prov.constants.PROV_LOCATION,
    }

    def name(value: Any) -> Any:
        if isinstance(value, QualifiedName):
            if value in renamed:
                return renamed[value]
            if value.namespace.uri == VOPROV.uri:
                return vocabulary[value.localpart]
        return value

    for record in _all_records(source):
        record_type, asserted = types.get(record.get_type(), (record.get_type(), None))
        formal = getattr(record, "FORMAL_ATTRIBUTES", None) or ()
        attributes: list[tuple[Any, Any]] = []
        for attribute, value in record.attributes:
            if (
                asserted
                and record_type == prov.constants.PROV_INFLUENCE
                and attribute in formal[:2]
            ):
                # voprov's relations have two ends of their own; PROV's influence these two.
                ends = (prov.constants.PROV_ATTR_INFLUENCEE, prov.constants.PROV_ATTR_INFLUENCER)
                attribute = ends[formal.index(attribute)]
            attributes.append((name(attribute), name(value)))
        if asserted is not None:
            attributes.append((prov.constants.PROV_TYPE, asserted))
        target.new_record(record_type, record.identifier, attributes)
    return target


def _all_records(bundle: ProvBundle) -> Iterable[ProvRecord]:
    yield from bundle.get_records()
    if isinstance(bundle, ProvDocument):
        for inner in bundle.bundles:
            yield from inner.get_records()

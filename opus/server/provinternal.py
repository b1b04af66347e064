"""The provenance a job recorded itself, merged under the job's activity.

A job may leave ``provenance.json`` (PROV-JSON) or ``prov.log`` (a logprov log) in its
directory. Its records keep their own ids, but a namespace that is not a URL (logprov
writes ``session:``, ``param:``) is given one under the job's activity, so that the
records of two jobs never merge by accident; logprov's ``voprov:`` stands for the real
voprov namespace. Each internal activity is tied to the job's activity by
``wasStartedBy(internal, -, job)``: the job started it (there is no trigger entity).

What a job wrote is untrusted and may be anything: a file that cannot be read, or is
larger than MAX_BYTES, never breaks the document. It is logged and the job's activity
says so in its ``opus:internalProvenance`` attribute, and nothing of it is merged (the
records are copied into a scratch document first).

This module reads with prov and logprov only: voprov's classes come from the document it
is handed (the provenance package is the one place importing voprov).
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from logprov.io import provlist2provdoc, read_prov
from prov.constants import PROV_ACTIVITY, PROV_ATTR_STARTTIME
from prov.identifier import Namespace, QualifiedName
from prov.model import ProvBundle, ProvDocument, ProvRecord
from prov.serializers.provjson import ProvJSONSerializer

from opus.server.provmodel import InternalProvenance, JobNode

MAX_BYTES = 5 * 1024 * 1024
NOTE_LENGTH = 200

logger = logging.getLogger(__name__)


class InternalProvenanceError(Exception):
    """A job's own provenance could not be read (the message says why, in one line)."""


def read(internal: InternalProvenance) -> ProvDocument:
    """The document a job left. Raises InternalProvenanceError on anything wrong with it."""
    if len(internal.data) > MAX_BYTES:
        raise InternalProvenanceError(f"larger than {MAX_BYTES} bytes")
    try:
        if internal.kind == "json":
            text = io.StringIO(internal.data.decode("utf-8"))
            document: ProvDocument = ProvJSONSerializer().deserialize(text)
            return document
        if internal.kind == "logprov":
            # logprov's reader takes a file name only.
            with tempfile.TemporaryDirectory(prefix="opus-prov-") as folder:
                log = Path(folder) / "prov.log"
                log.write_bytes(internal.data)
                document = provlist2provdoc(read_prov(logname=str(log)))
                return document
    except Exception as exc:  # a job's file may make prov, yaml or logprov fail anywhere
        raise InternalProvenanceError(f"{type(exc).__name__}: {exc}") from exc
    raise InternalProvenanceError(f"unknown kind {internal.kind!r}")


def merge(
    doc: ProvDocument,
    node: JobNode,
    activity: QualifiedName,
    note: QualifiedName,
    retype: Callable[[QualifiedName], QualifiedName],
    renames: Mapping[str, Namespace],
) -> None:
    """Copy ``node.internal`` into ``doc`` under ``activity``, or note why it could not.

    ``retype`` gives the record type to use in ``doc`` for a PROV one; ``renames`` maps
    namespace URIs the job used to the namespaces they stand for.
    """
    if node.internal is None:
        return
    try:
        scratch = type(doc)()
        count = _copy(read(node.internal), scratch, activity, retype, renames)
    except Exception as exc:  # never let a job's own file break its provenance document
        reason = exc if isinstance(exc, InternalProvenanceError) else f"{type(exc).__name__}: {exc}"
        logger.warning("job %s: internal provenance not merged: %s", node.job.id, reason)
        _note(
            doc,
            activity,
            note,
            " ".join(f"could not be read ({reason}"[:NOTE_LENGTH].split()) + ")",
        )
        return
    doc.update(scratch)
    _note(doc, activity, note, f"{count} records merged from {node.internal.kind}")


def _note(doc: ProvBundle, activity: QualifiedName, note: QualifiedName, text: str) -> None:
    for record in doc.get_record(activity):
        record.add_attributes({note: text})


def _copy(
    source: ProvDocument,
    target: ProvBundle,
    activity: QualifiedName,
    retype: Callable[[QualifiedName], QualifiedName],
    renames: Mapping[str, Namespace],
) -> int:
    """Copy the records; each internal activity wasStartedBy ``activity``."""
    namespaces = _job_namespaces(source, activity, renames)

    def name(value: Any) -> Any:
        if isinstance(value, QualifiedName) and value.namespace.uri in namespaces:
            return namespaces[value.namespace.uri][value.localpart]
        return value

    count = 0
    for record in _records(source):
        attributes = [(name(key), name(value)) for key, value in record.attributes]
        identifier = name(record.identifier) if record.identifier is not None else None
        target.new_record(retype(record.get_type()), identifier, attributes)
        count += 1
        if record.get_type() == PROV_ACTIVITY and identifier is not None:
            start = next((v for k, v in record.attributes if k == PROV_ATTR_STARTTIME), None)
            target.start(identifier, starter=activity, time=start)
    return count


def _job_namespaces(
    source: ProvDocument, activity: QualifiedName, renames: Mapping[str, Namespace]
) -> dict[str, Namespace]:
    """The namespaces to change, by URI: non-URL ones get a URL under the job's activity."""
    found = list(source.get_registered_namespaces())
    default = source.get_default_namespace()
    if default is not None:
        found.append(default)
    changed: dict[str, Namespace] = {}
    for namespace in found:
        if namespace.uri in renames:
            changed[namespace.uri] = renames[namespace.uri]
        elif "://" not in namespace.uri:
            # "default" is PROV-JSON's name for the default namespace: not a prefix.
            prefix = namespace.prefix or "internal"
            changed[namespace.uri] = Namespace(prefix, f"{activity.uri}/{prefix}/")
    return changed


def _records(document: ProvDocument) -> Iterable[ProvRecord]:
    yield from document.get_records()
    for bundle in document.bundles:
        yield from bundle.get_records()

"""EntityStore: every SQL statement about provenance entities and their uses.

An entity is a file of provenance: an input a job received (an upload or a fetched
URL) or a result a job made. A result's entity id is derived from its job and result
ids (``result_entity_id``), so whoever records it first — the job's end, a walk of the
provenance, a later job using it — records the same row, and results registered before
entities existed get theirs the first time they are asked for. An input's id is new
each time a file is received. Rows outlive their job: ``forget_files`` marks them gone
when the job's files are deleted, so that a later job still names what it used.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from opus.core.records import Entity, EntityUse, Job, Result
from opus.server.storage.engine import storable
from opus.server.storage.models import EntityRow, EntityUseRow

ENTITY_ID_LENGTH = 32
# Ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits.
ID_BATCH = 500


def result_entity_id(job_id: str, result_id: str) -> str:
    """The entity id of a job's result: the same wherever and whenever it is computed."""
    digest = hashlib.sha256(f"result:{job_id}/{result_id}".encode())
    return digest.hexdigest()[:ENTITY_ID_LENGTH]


def new_entity_id() -> str:
    """A new random entity id (of an input), in the alphabet of result ids."""
    return secrets.token_hex(ENTITY_ID_LENGTH // 2)


def is_entity_id(text: str) -> bool:
    """Whether ``text`` has the form of an entity id (32 lower-case hex digits)."""
    return len(text) == ENTITY_ID_LENGTH and all(c in "0123456789abcdef" for c in text)


def _entity(row: Any) -> Entity:
    return Entity(
        id=row.id,
        kind=row.kind,
        job_id=row.job_id,
        name=row.name,
        path=row.path,
        owner=row.owner,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        creation_time=row.creation_time,
        source=row.source,
        present=row.present,
    )


def _row(entity: Entity) -> dict[str, Any]:
    return {
        "id": entity.id,
        "kind": entity.kind,
        "job_id": entity.job_id,
        "name": entity.name,
        "path": entity.path,
        "owner": entity.owner,
        "content_type": entity.content_type,
        "size": entity.size,
        "sha256": entity.sha256,
        "creation_time": entity.creation_time,
        "source": entity.source,
        "present": entity.present,
    }


def _batches(ids: Iterable[str]) -> Iterable[list[str]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), ID_BATCH):
        yield unique[start : start + ID_BATCH]


def result_entities(job: Job, results: Sequence[Result]) -> list[Entity]:
    """The entities of a job's results (made when the job ended)."""
    made = job.end_time or job.phase_time
    return [
        Entity(
            id=result_entity_id(job.id, result.result_id),
            kind="result",
            job_id=job.id,
            name=result.result_id,
            path=result.path,
            owner=job.owner,
            content_type=result.content_type,
            size=result.size,
            sha256=result.sha256,
            creation_time=made,
        )
        for result in results
    ]


class EntityStore:
    """All reads and writes of entities and of the jobs' uses of them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reads --------------------------------------------------------------------------

    def get(self, entity_id: str) -> Entity | None:
        """The entity ``entity_id``, or None."""
        if not is_entity_id(entity_id):
            return None
        return self.many([entity_id]).get(entity_id)

    def many(self, entity_ids: Collection[str]) -> dict[str, Entity]:
        """The known entities among ``entity_ids``, by id."""
        found: dict[str, Entity] = {}
        with self.engine.connect() as conn:
            for batch in _batches(i for i in entity_ids if storable(i)):
                for row in conn.execute(select(EntityRow).where(EntityRow.id.in_(batch))):
                    found[row.id] = _entity(row)
        return found

    def uses_by_jobs(self, job_ids: Collection[str]) -> list[EntityUse]:
        """What the jobs ``job_ids`` used."""
        return self._uses(EntityUseRow.job_id, job_ids)

    def uses_of_entities(self, entity_ids: Collection[str]) -> list[EntityUse]:
        """Which jobs used the entities ``entity_ids``."""
        return self._uses(EntityUseRow.entity_id, entity_ids)

    def _uses(self, column: Any, ids: Collection[str]) -> list[EntityUse]:
        uses: list[EntityUse] = []
        with self.engine.connect() as conn:
            for batch in _batches(ids):
                statement = select(EntityUseRow).where(column.in_(batch))
                uses += [EntityUse(r.job_id, r.role, r.entity_id) for r in conn.execute(statement)]
        return sorted(uses, key=lambda use: (use.job_id, use.role))

    def owned(self, owner: str, kind: str | None = None, limit: int = 100) -> list[Entity]:
        """The owner's entities still on disk, the newest first (at most ``limit``)."""
        statement = (
            select(EntityRow)
            .where(EntityRow.owner == owner, EntityRow.present.is_(True))
            .order_by(EntityRow.creation_time.desc(), EntityRow.id)
            .limit(limit)
        )
        if kind is not None:
            statement = statement.where(EntityRow.kind == kind)
        with self.engine.connect() as conn:
            return [_entity(row) for row in conn.execute(statement)]

    # -- writes -------------------------------------------------------------------------

    def record(self, entities: Sequence[Entity]) -> None:
        """Store entities not stored yet (a result's row may be there already: a result
        is recorded by whoever needs it first, with the same id and facts)."""
        if not entities:
            return
        known = set(self.many([e.id for e in entities]))
        missing = [_row(e) for e in entities if e.id not in known]
        if not missing:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(EntityRow), missing)
        except IntegrityError:
            # Another request recorded some of them meanwhile: one at a time, then.
            for row in missing:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(insert(EntityRow), [row])
                except IntegrityError:
                    pass

    def use(self, job_id: str, used: Sequence[tuple[str, str]]) -> None:
        """The job now uses these (role, entity id) pairs, each in place of what it used
        in that role before."""
        if not used:
            return
        with self.engine.begin() as conn:
            for role, entity_id in used:
                conn.execute(
                    delete(EntityUseRow).where(
                        EntityUseRow.job_id == job_id, EntityUseRow.role == role
                    )
                )
                conn.execute(
                    insert(EntityUseRow).values(job_id=job_id, role=role, entity_id=entity_id)
                )

    def forget_files(self, job_id: str, kind: str | None = None) -> None:
        """The files of the job's entities are gone (a deleted or archived job)."""
        statement = update(EntityRow).where(EntityRow.job_id == job_id).values(present=False)
        if kind is not None:
            statement = statement.where(EntityRow.kind == kind)
        with self.engine.begin() as conn:
            conn.execute(statement)

    def forget_uses(self, job_id: str) -> None:
        """Drop what a deleted job used (they go with its row too, ON DELETE CASCADE: this
        is for a connection without foreign keys)."""
        with self.engine.begin() as conn:
            conn.execute(delete(EntityUseRow).where(EntityUseRow.job_id == job_id))

"""DefinitionStore: every SQL statement about job definitions kept over time.

``jdl_versions`` keeps each text of a job type that was approved or used by a job, once
per (name, hash): a job records the hash of its definition, so its page, its run and
its provenance read the very text it was created with, whatever is active later.
Revisions number a type's versions 1, 2, 3…; the next one is the highest plus one,
taken in the inserting transaction, and the unique (name, revision) constraint makes a
second process numbering at the same time fail and try again. ``jdl_drafts`` holds the
one draft of each type.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from opus.core.records import StoredDraft, StoredVersion
from opus.server.storage.engine import storable
from opus.server.storage.models import DefinitionDraftRow, DefinitionVersionRow

# Numbering races between processes are rare and short: a few tries settle them.
_NUMBERING_TRIES = 5


_VERSION_COLUMNS = (
    DefinitionVersionRow.name,
    DefinitionVersionRow.revision,
    DefinitionVersionRow.hash,
    DefinitionVersionRow.text,
    DefinitionVersionRow.version_label,
    DefinitionVersionRow.author,
    DefinitionVersionRow.approved_by,
    DefinitionVersionRow.created,
    DefinitionVersionRow.approved_at,
)
_DRAFT_COLUMNS = (
    DefinitionDraftRow.name,
    DefinitionDraftRow.author,
    DefinitionDraftRow.format,
    DefinitionDraftRow.text,
    DefinitionDraftRow.script,
    DefinitionDraftRow.updated,
    DefinitionDraftRow.submitted,
)


class DefinitionStore:
    """All reads and writes of kept definitions and drafts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- versions -----------------------------------------------------------------------

    def version_by_hash(self, name: str, digest: str) -> StoredVersion | None:
        """The kept text of ``name`` whose SHA-256 is ``digest``, or None."""
        if not (storable(name) and storable(digest)):
            return None
        statement = select(*_VERSION_COLUMNS).where(
            DefinitionVersionRow.name == name, DefinitionVersionRow.hash == digest
        )
        with self.engine.connect() as conn:
            row = conn.execute(statement).first()
        return None if row is None else StoredVersion(*row)

    def version(self, name: str, revision: int) -> StoredVersion | None:
        """Revision ``revision`` of ``name``, or None."""
        if not storable(name):
            return None
        statement = select(*_VERSION_COLUMNS).where(
            DefinitionVersionRow.name == name, DefinitionVersionRow.revision == revision
        )
        with self.engine.connect() as conn:
            row = conn.execute(statement).first()
        return None if row is None else StoredVersion(*row)

    def versions(self, name: str) -> list[StoredVersion]:
        """The numbered versions of ``name``, newest first."""
        if not storable(name):
            return []
        statement = (
            select(*_VERSION_COLUMNS)
            .where(DefinitionVersionRow.name == name, DefinitionVersionRow.revision.is_not(None))
            .order_by(DefinitionVersionRow.revision.desc())
        )
        with self.engine.connect() as conn:
            return [StoredVersion(*row) for row in conn.execute(statement)]

    def is_kept(self, name: str) -> bool:
        """Whether any text of ``name`` is kept (numbered or a draft's trial)."""
        if not storable(name):
            return False
        statement = select(DefinitionVersionRow.id).where(DefinitionVersionRow.name == name)
        with self.engine.connect() as conn:
            return conn.execute(statement.limit(1)).first() is not None

    def kept_names(self) -> list[str]:
        """Every job type with a kept text (a trial's too), sorted."""
        statement = select(DefinitionVersionRow.name).distinct().order_by(DefinitionVersionRow.name)
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(statement)]

    def names(self) -> list[str]:
        """Every job type with a numbered version, sorted (retired ones included)."""
        statement = (
            select(DefinitionVersionRow.name)
            .where(DefinitionVersionRow.revision.is_not(None))
            .distinct()
            .order_by(DefinitionVersionRow.name)
        )
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(statement)]

    def author_of(self, name: str) -> str | None:
        """Who wrote the first numbered version of ``name`` that has an author, or None."""
        if not storable(name):
            return None
        statement = (
            select(DefinitionVersionRow.author)
            .where(
                DefinitionVersionRow.name == name,
                DefinitionVersionRow.revision.is_not(None),
                DefinitionVersionRow.author.is_not(None),
            )
            .order_by(DefinitionVersionRow.revision)
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(statement).scalar()

    def keep(self, version: StoredVersion, *, numbered: bool) -> StoredVersion:
        """Keep a text of a type, once: the version already kept with its hash when there
        is one (given a revision if ``numbered`` and it had none, with ``version``'s
        author and approval), else ``version`` inserted (with the next revision if
        ``numbered``). Returns what is kept."""
        for _ in range(_NUMBERING_TRIES):
            try:
                with self.engine.begin() as conn:
                    return self._keep(conn, version, numbered)
            except IntegrityError:
                continue  # another process kept or numbered the same type meanwhile
        raise RuntimeError(f"could not number a version of {version.name}")

    def _keep(self, conn: Connection, version: StoredVersion, numbered: bool) -> StoredVersion:
        found = conn.execute(
            select(*_VERSION_COLUMNS).where(
                DefinitionVersionRow.name == version.name,
                DefinitionVersionRow.hash == version.hash,
            )
        ).first()
        if found is not None:
            kept = StoredVersion(*found)
            if not numbered or kept.revision is not None:
                return kept
            revision = self._next_revision(conn, version.name)
            conn.execute(
                update(DefinitionVersionRow)
                .where(
                    DefinitionVersionRow.name == version.name,
                    DefinitionVersionRow.hash == version.hash,
                )
                .values(
                    revision=revision,
                    author=kept.author or version.author,
                    approved_by=version.approved_by,
                    approved_at=version.approved_at,
                )
            )
            return StoredVersion(
                kept.name,
                revision,
                kept.hash,
                kept.text,
                kept.version_label,
                kept.author or version.author,
                version.approved_by,
                kept.created,
                version.approved_at,
            )
        values = {column.key: getattr(version, column.key) for column in _VERSION_COLUMNS}
        values["revision"] = self._next_revision(conn, version.name) if numbered else None
        conn.execute(insert(DefinitionVersionRow).values(**values))
        return StoredVersion(**values)

    @staticmethod
    def _next_revision(conn: Connection, name: str) -> int:
        highest = conn.execute(
            select(func.max(DefinitionVersionRow.revision)).where(DefinitionVersionRow.name == name)
        ).scalar()
        return int(highest or 0) + 1

    # -- drafts -------------------------------------------------------------------------

    def draft(self, name: str) -> StoredDraft | None:
        """The draft of ``name``, or None."""
        if not storable(name):
            return None
        statement = select(*_DRAFT_COLUMNS).where(DefinitionDraftRow.name == name)
        with self.engine.connect() as conn:
            row = conn.execute(statement).first()
        return None if row is None else StoredDraft(*row)

    def drafts(self, *, submitted_only: bool = False) -> list[StoredDraft]:
        """Every draft (or only those submitted for approval), by name."""
        statement = select(*_DRAFT_COLUMNS).order_by(DefinitionDraftRow.name)
        if submitted_only:
            statement = statement.where(DefinitionDraftRow.submitted.is_not(None))
        with self.engine.connect() as conn:
            return [StoredDraft(*row) for row in conn.execute(statement)]

    def save_draft(self, draft: StoredDraft) -> None:
        """Store ``draft``, replacing the type's earlier one (its submission with it)."""
        values = {column.key: getattr(draft, column.key) for column in _DRAFT_COLUMNS}
        with self.engine.begin() as conn:
            conn.execute(delete(DefinitionDraftRow).where(DefinitionDraftRow.name == draft.name))
            conn.execute(insert(DefinitionDraftRow).values(**values))

    def mark_submitted(self, name: str, when: datetime) -> bool:
        """Mark the draft of ``name`` submitted at ``when``; False if there is none."""
        statement = (
            update(DefinitionDraftRow).where(DefinitionDraftRow.name == name).values(submitted=when)
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def delete_draft(self, name: str, *, updated: datetime | None = None) -> bool:
        """Remove the draft of ``name`` (only if it was last saved at ``updated``, when
        given: an approval never removes a draft saved after the one it approved).
        True if one was removed."""
        statement = delete(DefinitionDraftRow).where(DefinitionDraftRow.name == name)
        if updated is not None:
            statement = statement.where(DefinitionDraftRow.updated == updated)
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

"""SharedLinkStore: every SQL statement about shared links of results.

A shared link row holds the SHA-256 of the link's token (never the token), the job and
result it reads, who made it, and when it was made and ends (``expires``, what both a
look-up and the sweep of ended links compare with). The row goes with its job (a
foreign key, ON DELETE CASCADE), and a link is stored only if its job still exists,
in the same statement, so a link made while its job is being deleted leaves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.engine import Engine

from opus.server.storage.engine import storable
from opus.server.storage.models import JobRow, SharedLinkRow, UTCDateTime


@dataclass(frozen=True)
class StoredLink:
    """A shared link as stored (its token is not: only its hash)."""

    job_id: str
    result_id: str
    created_by: str
    created: datetime
    expires: datetime


class SharedLinkStore:
    """All reads and writes of shared links."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, token_hash: str, link: StoredLink) -> bool:
        """Store ``link`` under ``token_hash`` if its job still exists; False (nothing
        stored) otherwise."""
        stamp = UTCDateTime()
        source = select(
            literal(token_hash),
            JobRow.id,
            literal(link.result_id),
            literal(link.created_by),
            literal(link.created, stamp),
            literal(link.expires, stamp),
        ).where(JobRow.id == link.job_id)
        columns = ["token_hash", "job_id", "result_id", "created_by", "created", "expires"]
        with self.engine.begin() as conn:
            inserted = conn.execute(insert(SharedLinkRow).from_select(columns, source))
            return inserted.rowcount == 1

    def find(self, token_hash: str, now: datetime) -> StoredLink | None:
        """The link whose token has the SHA-256 ``token_hash``, unless it ended before
        ``now``; None otherwise."""
        if not storable(token_hash):
            return None
        statement = select(
            SharedLinkRow.job_id,
            SharedLinkRow.result_id,
            SharedLinkRow.created_by,
            SharedLinkRow.created,
            SharedLinkRow.expires,
        ).where(SharedLinkRow.token_hash == token_hash, SharedLinkRow.expires > now)
        with self.engine.connect() as conn:
            row = conn.execute(statement).first()
        return None if row is None else StoredLink(*row)

    def sweep(self, now: datetime) -> int:
        """Delete the links that ended before ``now``; how many."""
        statement = delete(SharedLinkRow).where(SharedLinkRow.expires <= now)
        with self.engine.begin() as conn:
            return int(conn.execute(statement).rowcount)

    def count(self, job_id: str) -> int:
        """How many links of the job ``job_id`` are stored (ended ones included)."""
        statement = (
            select(func.count()).select_from(SharedLinkRow).where(SharedLinkRow.job_id == job_id)
        )
        with self.engine.connect() as conn:
            return int(conn.execute(statement).scalar_one())

"""SessionStore: every SQL statement about browser sessions.

A session row holds the SHA-256 of the session's cookie value (never the value), its
user, its CSRF token, and three times: when it began, when it was last seen and when it
ends unless it is used again (``expires``, what the sweep of ended sessions looks at).
The row goes with its user (a foreign key, ON DELETE CASCADE).

A request with the cookie reads its session and its user's roles and flag in one
statement on the driver (``HotQuery``), keyed by the primary key: what an API token's
authentication costs. ``last_seen`` is written by the rule of opus/server/sessions.py
(at most about once a minute), not by every request. A session is created only if its
user is still as the sign-in read them (active, the same token and password hashes),
so a sign-in that races a token rotation, a disabling or a deletion leaves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, literal, select, true, update
from sqlalchemy.engine import Engine

from opus.core.records import User
from opus.server.storage.engine import HotQuery, driver_time, storable
from opus.server.storage.models import SessionRow, UserRow, UTCDateTime

_FIND = (
    "SELECT s.user_name, u.roles, u.active, s.csrf_token, s.created, s.last_seen "
    "FROM sessions AS s JOIN users AS u ON u.name = s.user_name WHERE s.id_hash = ?"
)


def _time(value: object) -> datetime:
    """A time of a session row (never NULL), timezone-aware UTC."""
    when = driver_time(value)
    if when is None:  # pragma: no cover - the columns are NOT NULL
        raise ValueError("a session row without its times")
    return when


@dataclass(frozen=True)
class StoredSession:
    """A session as stored, with its user's roles and flag as they are now."""

    user_name: str
    roles: tuple[str, ...]
    active: bool
    csrf_token: str
    created: datetime
    last_seen: datetime


class SessionStore:
    """All reads and writes of sessions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._find = HotQuery(engine, _FIND)

    def create(
        self,
        id_hash: str,
        user: User,
        csrf_token: str,
        now: datetime,
        expires: datetime,
    ) -> bool:
        """Store a session of ``user`` begun ``now``, if the user is still active with
        the token and password hashes of ``user``; False (nothing stored) otherwise."""
        stamp = UTCDateTime()
        source = select(
            literal(id_hash),
            UserRow.name,
            literal(csrf_token),
            literal(now, stamp),
            literal(now, stamp),
            literal(expires, stamp),
        ).where(
            UserRow.name == user.name,
            UserRow.active == true(),
            UserRow.token_hash == user.token_hash,
            UserRow.password_hash.is_not_distinct_from(user.password_hash),
        )
        columns = ["id_hash", "user_name", "csrf_token", "created", "last_seen", "expires"]
        with self.engine.begin() as conn:
            inserted = conn.execute(insert(SessionRow).from_select(columns, source))
            return inserted.rowcount == 1

    def find(self, id_hash: str) -> StoredSession | None:
        """The session whose cookie value has the SHA-256 ``id_hash``, with its user's
        roles and flag, or None. One read on the driver."""
        row = self._find.one((id_hash,)) if storable(id_hash) else None
        if row is None:
            return None
        name, roles, active, csrf_token, created, last_seen = row
        return StoredSession(
            user_name=name,
            roles=tuple(role for role in roles.split(",") if role),
            active=bool(active),
            csrf_token=csrf_token,
            created=_time(created),
            last_seen=_time(last_seen),
        )

    def touch(self, id_hash: str, now: datetime, expires: datetime) -> None:
        """Record that the session was seen ``now``, ending at ``expires`` unless seen
        again (never moving ``last_seen`` back)."""
        statement = (
            update(SessionRow)
            .where(SessionRow.id_hash == id_hash, SessionRow.last_seen < now)
            .values(last_seen=now, expires=expires)
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def end(self, id_hash: str) -> None:
        """Delete one session (nothing if there is none)."""
        with self.engine.begin() as conn:
            conn.execute(delete(SessionRow).where(SessionRow.id_hash == id_hash))

    def end_user(self, name: str) -> int:
        """Delete every session of the user ``name``; how many there were."""
        if not storable(name):
            return 0
        statement = delete(SessionRow).where(SessionRow.user_name == name)
        with self.engine.begin() as conn:
            return int(conn.execute(statement).rowcount)

    def sweep(self, now: datetime) -> int:
        """Delete the sessions that ended before ``now`` unused; how many."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(SessionRow).where(SessionRow.expires < now)).rowcount)

    def count(self, name: str) -> int:
        """How many sessions the user ``name`` has (for tests and `opus user`)."""
        statement = select(func.count()).select_from(SessionRow).where(SessionRow.user_name == name)
        with self.engine.connect() as conn:
            return int(conn.execute(statement).scalar_one())

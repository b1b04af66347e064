"""UserStore: every SQL statement about users, and the reads that authenticate them.

A user's jobs belong to the user's name. A name can be given again, to somebody else,
once its user is deleted: the jobs of the name are then moved to another owner in the
deletion's transaction (and again in the creation's, for the jobs of a request that
was still under way at the deletion), so that a new user never sees an earlier one's.

An authentication reads its user and the failed-authentication counters of its
client (storage/throttle.py) in one statement, which returns one row whether the user
exists or not: the two cases cost the same work.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from opus.core.records import User
from opus.server.storage.engine import HotQuery, driver_time, storable
from opus.server.storage.models import JobRow, UserRow

_USER_COLUMNS = list(UserRow.__table__.columns)
_SELECT_USER = (
    "SELECT name, roles, active, token_hash, password_hash, creation_time, external_id "
    "FROM users WHERE "
)
# One row, for a user or none, with the end of the longest refusal of two counters.
_AUTHENTICATE = (
    "SELECT u.name, u.roles, u.active, u.token_hash, u.password_hash, u.creation_time, "
    "u.external_id, (SELECT max(blocked_until) FROM auth_failures WHERE key IN (?, ?)) "
    "FROM (SELECT 1 AS probe) AS p LEFT JOIN users AS u ON u."
)


# The columns of _SELECT_USER and of a user in _AUTHENTICATE, in their order.
_DRIVER_COLUMNS = (
    "name",
    "roles",
    "active",
    "token_hash",
    "password_hash",
    "creation_time",
    "external_id",
)


def _user_from_row(row: Any) -> User:
    values = dict(row._mapping)
    values["roles"] = tuple(r for r in values["roles"].split(",") if r)
    return User(**values)


def _user_from_driver(row: tuple[Any, ...]) -> User:
    """A user from a row of the driver (SQLite gives text times and integer flags)."""
    values = dict(zip(_DRIVER_COLUMNS, row, strict=True))
    return User(
        name=values["name"],
        roles=tuple(r for r in values["roles"].split(",") if r),
        active=bool(values["active"]),
        token_hash=values["token_hash"],
        password_hash=values["password_hash"],
        creation_time=driver_time(values["creation_time"]) or datetime.now(UTC),
        external_id=values["external_id"],
    )


class UserStore:
    """All reads and writes of users."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Every authentication reads its user (and its counters): on the driver directly.
        self._by_name = HotQuery(engine, _SELECT_USER + "name = ?")
        self._authenticate_name = HotQuery(engine, _AUTHENTICATE + "name = ?")
        self._authenticate_token = HotQuery(engine, _AUTHENTICATE + "token_hash = ?")
        # What an absent user is read as: a row of the driver's types, converted the
        # same way as a present user's.
        created: Any = datetime(2000, 1, 1)
        if engine.dialect.name == "sqlite":
            created = created.isoformat(" ", "microseconds")
        self._absent: tuple[Any, ...] = ("", "", 0, "", None, created, None)

    def add(self, user: User, earlier_jobs_to: str | None = None) -> bool:
        """Store a new user; False if the name (or the token) is taken. Jobs owned by
        the name already (an earlier user's) pass to ``earlier_jobs_to``."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(UserRow).values(
                        name=user.name,
                        roles=",".join(user.roles),
                        active=user.active,
                        token_hash=user.token_hash,
                        password_hash=user.password_hash,
                        creation_time=user.creation_time,
                        external_id=user.external_id,
                    )
                )
                if earlier_jobs_to is not None:
                    self._move_jobs(conn, user.name, earlier_jobs_to)
        except IntegrityError:
            return False
        return True

    @staticmethod
    def _move_jobs(conn: Any, owner: str, new_owner: str) -> None:
        """Give every job of ``owner`` to ``new_owner`` (each job's version moves on)."""
        conn.execute(
            update(JobRow)
            .where(JobRow.owner == owner)
            .values(owner=new_owner, version=JobRow.version + 1)
        )

    def get(self, name: str) -> User | None:
        """The user called ``name``, or None."""
        if not storable(name):
            return None
        row = self._by_name.one((name,))
        return None if row is None else _user_from_driver(row)

    def authenticate(
        self, keys: tuple[str, str], *, name: str | None = None, token_hash: str = ""
    ) -> tuple[User | None, datetime | None]:
        """The user called ``name`` (or, without a name, whose token has ``token_hash``),
        or None; and until when the failed-authentication counters ``keys`` refuse
        requests (None: they do not). One read, the same work whether the user exists."""
        if name is None:
            row = self._authenticate_token.one((*keys, token_hash))
        else:
            # A name no row can hold is looked up as one nobody has: the same work.
            row = self._authenticate_name.one((*keys, name if storable(name) else ""))
        if row is None:  # pragma: no cover - the statement always gives one row
            return None, None
        found = row[0] is not None
        width = len(_DRIVER_COLUMNS)
        user = _user_from_driver(row[:width] if found else self._absent)
        return (user if found else None), driver_time(row[width])

    def all(self) -> list[User]:
        """Every user, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_USER_COLUMNS).order_by(UserRow.name))
            return [_user_from_row(row) for row in rows]

    def with_external_id(self, external_id: str) -> list[User]:
        """The users an identity provider gave ``external_id`` (exact match), by name."""
        if not storable(external_id):
            return []
        statement = (
            select(*_USER_COLUMNS).where(UserRow.external_id == external_id).order_by(UserRow.name)
        )
        with self.engine.connect() as conn:
            return [_user_from_row(row) for row in conn.execute(statement)]

    def count(self) -> int:
        """How many users there are."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(UserRow)).scalar_one())

    def set_token_hash(self, name: str, token_hash: str) -> bool:
        """Replace the user's token (by its hash); True if the user exists."""
        return self._update(name, token_hash=token_hash)

    def set_active(self, name: str, active: bool) -> bool:
        """Enable or disable the user; True if the user exists."""
        return self._update(name, active=active)

    def set_roles(self, name: str, roles: Sequence[str]) -> bool:
        """Replace the user's roles; True if the user exists."""
        return self._update(name, roles=",".join(roles))

    def set_password_hash(self, name: str, password_hash: str | None) -> bool:
        """Replace (or with None, remove) the user's web password; True if the user exists."""
        return self._update(name, password_hash=password_hash)

    def set_external_id(self, name: str, external_id: str | None) -> bool:
        """Replace (or with None, remove) the user's external id; True if the user exists."""
        return self._update(name, external_id=external_id)

    def _update(self, name: str, **columns: Any) -> bool:
        if not storable(name):
            return False
        statement = update(UserRow).where(UserRow.name == name).values(**columns)
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def delete(self, name: str, jobs_to: str | None = None) -> bool:
        """Delete the user, their jobs passing to ``jobs_to`` in the same transaction;
        True if there was one (nothing changes otherwise)."""
        if not storable(name):
            return False
        with self.engine.begin() as conn:
            if conn.execute(delete(UserRow).where(UserRow.name == name)).rowcount != 1:
                return False
            if jobs_to is not None:
                self._move_jobs(conn, name, jobs_to)
        return True

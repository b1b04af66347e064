"""UserStore: every SQL statement about users."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from opus.core.records import User
from opus.server.storage.engine import HotQuery, storable
from opus.server.storage.models import UserRow

_USER_COLUMNS = list(UserRow.__table__.columns)
_SELECT_USER = (
    "SELECT name, roles, active, token_hash, password_hash, creation_time FROM users WHERE "
)


def _user_from_row(row: Any) -> User:
    values = dict(row._mapping)
    values["roles"] = tuple(r for r in values["roles"].split(",") if r)
    return User(**values)


def _user_from_driver(row: tuple[Any, ...]) -> User:
    """A user from a row of the driver (SQLite gives text times and integer flags)."""
    names = ("name", "roles", "active", "token_hash", "password_hash", "creation_time")
    values = dict(zip(names, row, strict=True))
    created = values["creation_time"]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    return User(
        name=values["name"],
        roles=tuple(r for r in values["roles"].split(",") if r),
        active=bool(values["active"]),
        token_hash=values["token_hash"],
        password_hash=values["password_hash"],
        creation_time=created.replace(tzinfo=UTC),
    )


class UserStore:
    """All reads and writes of users."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Every authenticated request reads its user: on the driver directly.
        self._by_name = HotQuery(engine, _SELECT_USER + "name = ?")
        self._by_token = HotQuery(engine, _SELECT_USER + "token_hash = ?")

    def add(self, user: User) -> bool:
        """Store a new user; False if the name (or the token) is taken."""
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
                    )
                )
        except IntegrityError:
            return False
        return True

    def get(self, name: str) -> User | None:
        """The user called ``name``, or None."""
        if not storable(name):
            return None
        row = self._by_name.one((name,))
        return None if row is None else _user_from_driver(row)

    def by_token_hash(self, token_hash: str) -> User | None:
        """The user whose API token has this hash, or None."""
        row = self._by_token.one((token_hash,))
        return None if row is None else _user_from_driver(row)

    def all(self) -> list[User]:
        """Every user, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_USER_COLUMNS).order_by(UserRow.name))
            return [_user_from_row(row) for row in rows]

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

    def _update(self, name: str, **columns: Any) -> bool:
        if not storable(name):
            return False
        statement = update(UserRow).where(UserRow.name == name).values(**columns)
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def delete(self, name: str) -> bool:
        """Delete the user; True if there was one."""
        if not storable(name):
            return False
        with self.engine.begin() as conn:
            return conn.execute(delete(UserRow).where(UserRow.name == name)).rowcount == 1

"""IdentityStore: every SQL statement about the OpenID Connect identities of users.

An identity is a provider's account, (provider, subject): the provider's name in
OIDC_PROVIDERS and the ID token's ``sub``, which the provider never gives to another
of its accounts, unlike the names it sends. Its row names the OPUS user that account
signs in as (oidc.py). The database keeps the rule whatever the requests do at once:
an account signs in one user (the primary key), a user has at most one account of each
provider (a unique index), and the links go with their user (a foreign key, ON DELETE
CASCADE), so a user made later with the same name is nobody's account until linked.
A link is made only while its user exists, in the same statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, literal, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from opus.server.storage.engine import storable
from opus.server.storage.models import OIDCIdentityRow, UserRow, UTCDateTime


@dataclass(frozen=True)
class Identity:
    """A provider's account, the OPUS user it signs in as, and when it was linked."""

    provider: str
    subject: str
    user_name: str
    created: datetime


class IdentityStore:
    """All reads and writes of OpenID Connect identities."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def user_of(self, provider: str, subject: str) -> str | None:
        """The name of the user the account ``subject`` of ``provider`` signs in as,
        or None (not linked)."""
        if not storable(provider) or not storable(subject):
            return None
        statement = select(OIDCIdentityRow.user_name).where(
            OIDCIdentityRow.provider == provider, OIDCIdentityRow.subject == subject
        )
        with self.engine.connect() as conn:
            name = conn.execute(statement).scalar_one_or_none()
        return None if name is None else str(name)

    def subject_of(self, provider: str, user_name: str) -> str | None:
        """The subject of the account of ``provider`` that signs in as ``user_name``,
        or None (the user has none)."""
        if not storable(provider) or not storable(user_name):
            return None
        statement = select(OIDCIdentityRow.subject).where(
            OIDCIdentityRow.user_name == user_name, OIDCIdentityRow.provider == provider
        )
        with self.engine.connect() as conn:
            subject = conn.execute(statement).scalar_one_or_none()
        return None if subject is None else str(subject)

    def link(self, identity: Identity) -> bool:
        """Store ``identity`` if its user exists, the account is not linked yet and the
        user has no other account of the provider; False (nothing stored) otherwise."""
        keys = (identity.provider, identity.subject, identity.user_name)
        if not all(storable(key) for key in keys):
            return False
        source = select(
            literal(identity.provider),
            literal(identity.subject),
            UserRow.name,
            literal(identity.created, UTCDateTime()),
        ).where(UserRow.name == identity.user_name)
        columns = ["provider", "subject", "user_name", "created"]
        try:
            with self.engine.begin() as conn:
                inserted = conn.execute(insert(OIDCIdentityRow).from_select(columns, source))
                return inserted.rowcount == 1
        except IntegrityError:
            return False

    def of_user(self, user_name: str) -> list[Identity]:
        """The accounts that sign in as ``user_name``, by provider."""
        if not storable(user_name):
            return []
        statement = (
            select(
                OIDCIdentityRow.provider,
                OIDCIdentityRow.subject,
                OIDCIdentityRow.user_name,
                OIDCIdentityRow.created,
            )
            .where(OIDCIdentityRow.user_name == user_name)
            .order_by(OIDCIdentityRow.provider)
        )
        with self.engine.connect() as conn:
            return [Identity(*row) for row in conn.execute(statement)]

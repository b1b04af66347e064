"""OpenID Connect sign-ins are tied to the provider's subject: ``oidc_identities``.

A row links the account ``subject`` (the ID token's ``sub``, which a provider never
gives to another account) of the provider ``provider`` (its name in OIDC_PROVIDERS)
to the OPUS user ``user_name``; the row goes with the user (ON DELETE CASCADE), so a
later user of the same name is not signed in by the earlier one's account. The unique
index on (user_name, provider) keeps one account of each provider per user, and finds
a user's links. Users signed in with a provider before this revision have no link yet:
see docs/oidc.md (``link_existing``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-30 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Tables made by create_all before OPUS had migrations may have it already.
    if "oidc_identities" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "oidc_identities",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        # Naive UTC (storage.UTCDateTime), the same on every database.
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_name"], ["users.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("provider", "subject"),
    )
    op.create_index(
        "ix_oidc_identities_user", "oidc_identities", ["user_name", "provider"], unique=True
    )


def downgrade() -> None:
    op.drop_table("oidc_identities")

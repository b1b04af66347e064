"""Users get an ``external_id``: the identifier an identity provider knows them by.

SCIM clients (RFC 7643 §3.1) send ``externalId`` with every user they provision and
read it back to match their records with OPUS's; OPUS keeps it as given and never
interprets it. It is nullable: users made by `opus user` or before this revision have
none, and a client may remove it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-20 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("users")}
    if "external_id" in columns:
        # Tables made by create_all before OPUS had migrations may have it already.
        return
    # A nullable column without default: an ALTER TABLE on SQLite too, no table copy
    # (which would have to carry the sessions' foreign key along).
    op.add_column("users", sa.Column("external_id", sa.Text(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+ and PostgreSQL): a batch copy of ``users`` would
    # drop and make it again, and its sessions and identities with it.
    op.execute("ALTER TABLE users DROP COLUMN external_id")

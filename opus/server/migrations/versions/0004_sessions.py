"""Browser sessions: the ``sessions`` table.

A signed-in browser holds a random session id in a cookie; the table keeps only its
SHA-256 (``id_hash``), the user (deleted with the user), the session's CSRF token, and
when it began, was last seen and ends unless it is used again (``expires``, indexed for
the sweep of ended sessions). Every process of the server reads the same sessions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-15 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Tables made by create_all before OPUS had migrations may have it already.
    if "sessions" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        # Naive UTC (storage.UTCDateTime), the same on every database.
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_name"], ["users.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index("ix_sessions_expires", "sessions", ["expires"])
    op.create_index("ix_sessions_user", "sessions", ["user_name"])


def downgrade() -> None:
    op.drop_table("sessions")

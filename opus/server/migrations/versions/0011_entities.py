"""Provenance entities: ``entities`` (inputs and results) and ``entity_uses``.

Every input a job receives and every result it makes becomes an entity row, with its
SHA-256, size and content type; ``entity_uses`` records which job used which entity in
which role, so that results can feed later jobs by reference and provenance can be
followed across jobs. Entity rows have no foreign key to ``jobs``: they outlive the job
that holds their file (``present`` false then). Results registered before this revision
get their rows the first time they are asked for (storage/entities.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-31 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "entities" not in tables:
        op.create_table(
            "entities",
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("kind", sa.String(length=8), nullable=False),
            sa.Column("job_id", sa.String(length=64), nullable=False),
            sa.Column("name", sa.String(length=255), nullable=False),
            sa.Column("path", sa.Text(), nullable=False),
            sa.Column("owner", sa.String(length=255), nullable=False),
            sa.Column("content_type", sa.String(length=255), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("sha256", sa.String(length=64), nullable=False),
            # Naive UTC (storage.UTCDateTime), the same on every database.
            sa.Column("creation_time", sa.DateTime(), nullable=False),
            sa.Column("source", sa.Text(), nullable=True),
            sa.Column("present", sa.Boolean(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_entities_job", "entities", ["job_id"])
        op.create_index("ix_entities_owner", "entities", ["owner", "creation_time"])
    if "entity_uses" not in tables:
        op.create_table(
            "entity_uses",
            sa.Column("job_id", sa.String(length=64), nullable=False),
            sa.Column("role", sa.String(length=255), nullable=False),
            sa.Column("entity_id", sa.String(length=64), nullable=False),
            sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("job_id", "role"),
        )
        op.create_index("ix_entity_uses_entity", "entity_uses", ["entity_id"])


def downgrade() -> None:
    op.drop_table("entity_uses")
    op.drop_table("entities")

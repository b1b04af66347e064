"""Job definitions kept over time: ``jdl_versions``, ``jdl_drafts``, and the definition
each job was created with.

``jdl_versions`` holds every text of a job type that was approved or used by a job (its
canonical YAML, script inline, and its SHA-256), numbered by revision (a draft's text
that only ran trial jobs has none). ``jdl_drafts`` holds one draft per type. A job
records the revision and hash of the definition it was created with
(``definition_revision``, ``definition_hash``): jobs made before this migration have
neither and use the active definition of their type, as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "jdl_versions" not in tables:
        op.create_table(
            "jdl_versions",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("revision", sa.Integer(), nullable=True),
            sa.Column("hash", sa.String(length=64), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.Column("version_label", sa.Text(), nullable=False),
            sa.Column("author", sa.String(length=255), nullable=True),
            sa.Column("approved_by", sa.String(length=255), nullable=True),
            # Naive UTC (storage.UTCDateTime), the same on every database.
            sa.Column("created", sa.DateTime(), nullable=False),
            sa.Column("approved_at", sa.DateTime(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("name", "hash", name="uq_jdl_versions_hash"),
            sa.UniqueConstraint("name", "revision", name="uq_jdl_versions_revision"),
        )
    if "jdl_drafts" not in tables:
        op.create_table(
            "jdl_drafts",
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("author", sa.String(length=255), nullable=False),
            sa.Column("format", sa.String(length=16), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.Column("script", sa.Text(), nullable=True),
            sa.Column("updated", sa.DateTime(), nullable=False),
            sa.Column("submitted", sa.DateTime(), nullable=True),
            sa.PrimaryKeyConstraint("name"),
        )
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("jobs")}
    if "definition_revision" not in columns:
        op.add_column("jobs", sa.Column("definition_revision", sa.Integer(), nullable=True))
    if "definition_hash" not in columns:
        op.add_column("jobs", sa.Column("definition_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+ and PostgreSQL): a batch copy of ``jobs`` would
    # lose its triggers.
    op.execute("ALTER TABLE jobs DROP COLUMN definition_hash")
    op.execute("ALTER TABLE jobs DROP COLUMN definition_revision")
    op.drop_table("jdl_drafts")
    op.drop_table("jdl_versions")

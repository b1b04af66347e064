"""The initial schema: jobs, their parameters and results, users, leases.

It is the schema OPUS made with create_all before it had migrations. Each table is
created only when missing, so that such a database is taken over at this revision:
databases of older versions lack the tables added later (users, leases), and have the
others already.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("jobname", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        # Naive UTC (storage.UTCDateTime), the same on every database.
        sa.Column("creation_time", sa.DateTime(), nullable=False),
        sa.Column("start_time", sa.DateTime(), nullable=True),
        sa.Column("end_time", sa.DateTime(), nullable=True),
        sa.Column("destruction_time", sa.DateTime(), nullable=True),
        sa.Column("quote", sa.DateTime(), nullable=True),
        sa.Column("phase_time", sa.DateTime(), nullable=False),
        sa.Column("execution_duration", sa.Integer(), nullable=False),
        sa.Column("error_type", sa.String(length=16), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_jobs_list", "jobs", ["jobname", "creation_time", "id"])
    op.create_index("ix_jobs_list_phase", "jobs", ["jobname", "phase", "creation_time", "id"])
    op.create_index("ix_jobs_phase", "jobs", ["phase"])
    op.create_index("ix_jobs_destruction", "jobs", ["destruction_time"])
    op.create_index("ix_jobs_owner_phase", "jobs", ["owner", "phase"])


def _job_parameters() -> None:
    op.create_table(
        "job_parameters",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("by_reference", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "name"),
    )


def _job_results() -> None:
    op.create_table(
        "job_results",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("result_id", sa.String(length=255), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "result_id"),
    )


def _users() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("creation_time", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )


def _leases() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


# In creation order: the tables with foreign keys come after the one they point to.
TABLES: dict[str, Callable[[], None]] = {
    "jobs": _jobs,
    "job_parameters": _job_parameters,
    "job_results": _job_results,
    "users": _users,
    "leases": _leases,
}


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, create in TABLES.items():
        if name not in existing:
            create()


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)

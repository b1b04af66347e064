"""Per-owner limits and failed authentications: jobs.stored_bytes, auth_failures.

``jobs.stored_bytes`` is what a job's files take; the per-owner storage limit adds it up
over the owner's jobs, from the index ``(owner, phase, stored_bytes)`` alone, which
replaces ``(owner, phase)``. An existing job starts at the size of its registered
results (its inputs were never measured). ``auth_failures`` holds the counters of
failed authentications per client address and per user name, shared by every process
of the server.

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Each step only when needed: tables made by create_all before OPUS had migrations
    # may have some of these already.
    inspector = sa.inspect(op.get_bind())
    if "stored_bytes" not in {c["name"] for c in inspector.get_columns("jobs")}:
        with op.batch_alter_table("jobs") as batch:
            batch.add_column(
                sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default="0")
            )
        op.execute(
            "UPDATE jobs SET stored_bytes = (SELECT COALESCE(SUM(size), 0) FROM job_results "
            "WHERE job_results.job_id = jobs.id)"
        )
    indexes = {index["name"] for index in inspector.get_indexes("jobs")}
    if "ix_jobs_owner_phase" in indexes:
        op.drop_index("ix_jobs_owner_phase", table_name="jobs")
    if "ix_jobs_owner_usage" not in indexes:
        op.create_index("ix_jobs_owner_usage", "jobs", ["owner", "phase", "stored_bytes"])
    if "auth_failures" not in inspector.get_table_names():
        op.create_table(
            "auth_failures",
            sa.Column("key", sa.String(length=128), nullable=False),
            sa.Column("failures", sa.Integer(), nullable=False),
            # Naive UTC (storage.UTCDateTime), the same on every database.
            sa.Column("last_failure", sa.DateTime(), nullable=False),
            sa.Column("blocked_until", sa.DateTime(), nullable=True),
            sa.PrimaryKeyConstraint("key"),
        )
        op.create_index("ix_auth_failures_last", "auth_failures", ["last_failure"])


def downgrade() -> None:
    op.drop_table("auth_failures")
    op.drop_index("ix_jobs_owner_usage", table_name="jobs")
    op.create_index("ix_jobs_owner_phase", "jobs", ["owner", "phase"])
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("stored_bytes")

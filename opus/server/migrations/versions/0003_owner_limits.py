"""Per-owner limits and failed authentications: jobs.stored_bytes, owner_usage (kept by
triggers), auth_failures.

``jobs.stored_bytes`` is what a job's files take. ``owner_usage`` adds up, per owner,
the jobs kept (every phase but ARCHIVED), the bytes they store and the active ones
(QUEUED, EXECUTING, HELD, SUSPENDED, UNKNOWN); triggers on ``jobs`` keep it, in the
transaction of every insert, delete and change of a job's owner, phase or stored bytes,
so that a limit costs the read of one row however many jobs the owner has (summing the
owner's jobs grew with them: 10,000 jobs made a creation three times as slow). An
existing job starts at the size of its registered results (its inputs were never
measured). ``auth_failures`` holds the counters of failed authentications per client
address and per user name, shared by every process of the server.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# The phases of an active job (opus.core.phases.RUNNING when this revision was made).
_ACTIVE = "('QUEUED', 'EXECUTING', 'HELD', 'SUSPENDED', 'UNKNOWN')"


def _delta(row: str, sign: str) -> str:
    """The SET list adding (``+``) or taking away (``-``) a job's share of its owner's
    usage; ``row`` is NEW or OLD."""
    return (
        f"kept = kept {sign} (CASE WHEN {row}.phase <> 'ARCHIVED' THEN 1 ELSE 0 END), "
        f"stored = stored {sign} "
        f"(CASE WHEN {row}.phase <> 'ARCHIVED' THEN {row}.stored_bytes ELSE 0 END), "
        f"active = active {sign} (CASE WHEN {row}.phase IN {_ACTIVE} THEN 1 ELSE 0 END)"
    )


def _add(row: str) -> str:
    return (
        f"INSERT INTO owner_usage (owner, kept, stored, active) VALUES ({row}.owner, 0, 0, 0) "
        "ON CONFLICT (owner) DO NOTHING; "
        f"UPDATE owner_usage SET {_delta(row, '+')} WHERE owner = {row}.owner;"
    )


def _take(row: str) -> str:
    return f"UPDATE owner_usage SET {_delta(row, '-')} WHERE owner = {row}.owner;"


SQLITE_TRIGGERS = {
    "jobs_usage_insert": f"AFTER INSERT ON jobs BEGIN {_add('NEW')} END",
    "jobs_usage_delete": f"AFTER DELETE ON jobs BEGIN {_take('OLD')} END",
    "jobs_usage_update": (
        f"AFTER UPDATE OF owner, phase, stored_bytes ON jobs BEGIN {_take('OLD')} {_add('NEW')} END"
    ),
}

POSTGRESQL_FUNCTION = f"""
CREATE OR REPLACE FUNCTION opus_jobs_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    {_take("OLD")}
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    {_add("NEW")}
  END IF;
  RETURN NULL;
END
$$
"""
POSTGRESQL_TRIGGER = (
    "CREATE TRIGGER jobs_usage AFTER INSERT OR DELETE OR UPDATE OF owner, phase, stored_bytes "
    "ON jobs FOR EACH ROW EXECUTE FUNCTION opus_jobs_usage()"
)


def _create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL_FUNCTION)
        op.execute("DROP TRIGGER IF EXISTS jobs_usage ON jobs")
        op.execute(POSTGRESQL_TRIGGER)
        return
    for name, body in SQLITE_TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(f"CREATE TRIGGER {name} {body}")


def _drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS jobs_usage ON jobs")
        op.execute("DROP FUNCTION IF EXISTS opus_jobs_usage()")
        return
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    # Each step only when needed: tables made by create_all before OPUS had migrations
    # may have some of these already.
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "stored_bytes" not in {c["name"] for c in inspector.get_columns("jobs")}:
        with op.batch_alter_table("jobs") as batch:
            batch.add_column(
                sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default="0")
            )
        op.execute(
            "UPDATE jobs SET stored_bytes = (SELECT COALESCE(SUM(size), 0) FROM job_results "
            "WHERE job_results.job_id = jobs.id)"
        )
    if "owner_usage" not in tables:
        op.create_table(
            "owner_usage",
            sa.Column("owner", sa.String(length=255), nullable=False),
            sa.Column("kept", sa.Integer(), nullable=False, server_default="0"),
            sa.Column("stored", sa.BigInteger(), nullable=False, server_default="0"),
            sa.Column("active", sa.Integer(), nullable=False, server_default="0"),
            sa.PrimaryKeyConstraint("owner"),
        )
    # Counted afresh from the jobs, then kept by the triggers.
    op.execute("DELETE FROM owner_usage")
    op.execute(
        "INSERT INTO owner_usage (owner, kept, stored, active) SELECT owner, "
        "SUM(CASE WHEN phase <> 'ARCHIVED' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN phase <> 'ARCHIVED' THEN stored_bytes ELSE 0 END), "
        f"SUM(CASE WHEN phase IN {_ACTIVE} THEN 1 ELSE 0 END) FROM jobs GROUP BY owner"
    )
    _create_triggers()
    if "auth_failures" not in tables:
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
    _drop_triggers()
    op.drop_table("owner_usage")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("stored_bytes")

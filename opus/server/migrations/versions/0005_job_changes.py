"""The change feed and the owners' job lists: jobs.change_seq (kept by triggers),
job_tombstones, change_marks, and the indexes of an owner's list.

``jobs.change_seq`` numbers the last change of each job in the order the database
committed the changes, so that "what changed since N" is one indexed range read
(storage/changes.py). On SQLite, writers are serialised: the number comes from a
counter (``change_marks`` row ``last``) incremented in the change's own transaction.
On PostgreSQL, transactions commit in any order, so a counter read at the start of a
transaction could commit after a larger one was seen: the number is instead the id of
the writing transaction (``pg_current_xact_id()``, PostgreSQL 13 or later), and a reader
keeps the snapshot it read with, so that a transaction still running then is reported
once it has committed. Triggers set it on every insert and update of a job, whoever
writes (the server, `opus maintenance`, an administrator's SQL), and turn every delete
into a row of ``job_tombstones`` (the job's id and owner, the change's number, the
database's time), forgotten after a while; ``change_marks`` row ``pruned`` is the
highest number forgotten (a reader from before it is told to reload).

The owner's list (all their jobs, newest first, optionally by phase) gets
``ix_jobs_owner_list (owner, creation_time, id)``, and ``ix_jobs_owner_phase`` grows from
``(owner, phase)`` to ``(owner, phase, creation_time, id)``, which serves what the
narrower one did. Existing jobs start at change 0: older than any token.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-20 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_NEXT = "UPDATE change_marks SET value = value + 1 WHERE name = 'last';"
_LAST = "(SELECT value FROM change_marks WHERE name = 'last')"
# Six digits of fraction, as SQLAlchemy writes the times of SQLite.
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"
_TOMBSTONE_CONFLICT = (
    "ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, "
    "change_seq = excluded.change_seq, deleted_time = excluded.deleted_time;"
)

SQLITE_TRIGGERS = {
    "jobs_change_insert": (
        f"AFTER INSERT ON jobs BEGIN {_NEXT} "
        f"UPDATE jobs SET change_seq = {_LAST} WHERE id = NEW.id; END"
    ),
    # Not for its own update of change_seq (nor one that sets it explicitly).
    "jobs_change_update": (
        f"AFTER UPDATE ON jobs WHEN NEW.change_seq IS OLD.change_seq BEGIN {_NEXT} "
        f"UPDATE jobs SET change_seq = {_LAST} WHERE id = NEW.id; END"
    ),
    "jobs_change_delete": (
        f"AFTER DELETE ON jobs BEGIN {_NEXT} "
        "INSERT INTO job_tombstones (id, owner, change_seq, deleted_time) "
        f"VALUES (OLD.id, OLD.owner, {_LAST}, {_SQLITE_NOW}) {_TOMBSTONE_CONFLICT} END"
    ),
}

_XACT = "pg_current_xact_id()::text::bigint"
POSTGRESQL_FUNCTION = f"""
CREATE OR REPLACE FUNCTION opus_jobs_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO job_tombstones (id, owner, change_seq, deleted_time)
    VALUES (OLD.id, OLD.owner, {_XACT}, timezone('UTC', now())) {_TOMBSTONE_CONFLICT}
    RETURN NULL;
  END IF;
  NEW.change_seq := {_XACT};
  RETURN NEW;
END
$$
"""
POSTGRESQL_TRIGGERS = {
    "jobs_change": "BEFORE INSERT OR UPDATE ON jobs FOR EACH ROW",
    "jobs_tombstone": "AFTER DELETE ON jobs FOR EACH ROW",
}

OWNER_PHASE_COLUMNS = ["owner", "phase", "creation_time", "id"]


def _create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL_FUNCTION)
        for name, when in POSTGRESQL_TRIGGERS.items():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON jobs")
            op.execute(f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION opus_jobs_change()")
        return
    for name, body in SQLITE_TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(f"CREATE TRIGGER {name} {body}")


def _drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in POSTGRESQL_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON jobs")
        op.execute("DROP FUNCTION IF EXISTS opus_jobs_change()")
        return
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    # Each step only when needed: tables made by create_all before OPUS had migrations
    # may have some of these already.
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "change_seq" not in {c["name"] for c in inspector.get_columns("jobs")}:
        with op.batch_alter_table("jobs") as batch:
            batch.add_column(
                sa.Column("change_seq", sa.BigInteger(), nullable=True, server_default="0")
            )
    indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("jobs")}
    if indexes.get("ix_jobs_owner_phase") != OWNER_PHASE_COLUMNS:
        if "ix_jobs_owner_phase" in indexes:
            op.drop_index("ix_jobs_owner_phase", table_name="jobs")
        op.create_index("ix_jobs_owner_phase", "jobs", OWNER_PHASE_COLUMNS)
    for name, columns in (
        ("ix_jobs_owner_list", ["owner", "creation_time", "id"]),
        ("ix_jobs_owner_changes", ["owner", "change_seq"]),
        ("ix_jobs_changes", ["change_seq"]),
    ):
        if name not in indexes:
            op.create_index(name, "jobs", columns)
    if "job_tombstones" not in tables:
        op.create_table(
            "job_tombstones",
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("owner", sa.String(length=255), nullable=False),
            sa.Column("change_seq", sa.BigInteger(), nullable=False),
            # Naive UTC (storage.UTCDateTime), the same on every database.
            sa.Column("deleted_time", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_job_tombstones_owner", "job_tombstones", ["owner", "change_seq"])
        op.create_index("ix_job_tombstones_changes", "job_tombstones", ["change_seq"])
        op.create_index("ix_job_tombstones_time", "job_tombstones", ["deleted_time"])
    if "change_marks" not in tables:
        op.create_table(
            "change_marks",
            sa.Column("name", sa.String(length=16), nullable=False),
            sa.Column("value", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    op.execute("DELETE FROM change_marks")
    op.execute("INSERT INTO change_marks (name, value) VALUES ('last', 0), ('pruned', 0)")
    _create_triggers()


def downgrade() -> None:
    _drop_triggers()
    op.drop_table("change_marks")
    op.drop_table("job_tombstones")
    op.drop_index("ix_jobs_changes", table_name="jobs")
    op.drop_index("ix_jobs_owner_changes", table_name="jobs")
    op.drop_index("ix_jobs_owner_list", table_name="jobs")
    op.drop_index("ix_jobs_owner_phase", table_name="jobs")
    op.create_index("ix_jobs_owner_phase", "jobs", ["owner", "phase"])
    # Not a batch operation: recreating the table on SQLite would lose the triggers of
    # revision 0003 (SQLite 3.35 and later drop a column in place).
    op.execute("ALTER TABLE jobs DROP COLUMN change_seq")

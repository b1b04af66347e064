"""Jobs get the git source of their code: ``source_url``, ``source_ref``, ``source_commit``.

A job definition may name a git repository (``source: {git, ref}``) that the batch
script clones before the job's script runs. The job keeps which repository and ref it
was given (at creation, and when a PENDING job's ref parameter changes) and the commit
its batch script checked out (read from ``.opus/source_commit`` at EXECUTING and at
the end), as three nullable columns of ``jobs`` read with the job in its one statement.
Jobs made before this revision, like jobs of definitions without a source, have none.

Revision ID: 0013
Revises: 0012
Create Date: 2027-01-24 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

COLUMNS = (
    ("source_url", sa.Text()),
    ("source_ref", sa.Text()),
    ("source_commit", sa.String(64)),
)


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("jobs")}
    for name, kind in COLUMNS:
        # Nullable without default: a plain ALTER TABLE, no copy of the table (which
        # would have to carry its triggers and foreign keys along), as 0012 does.
        if name not in present:
            op.add_column("jobs", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+ and PostgreSQL), as 0008 and 0012 do.
    for name, _kind in reversed(COLUMNS):
        op.execute(f"ALTER TABLE jobs DROP COLUMN {name}")

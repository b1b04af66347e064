"""Jobs get their latest progress: ``progress``, ``progress_message``, ``progress_time``.

A job's script reports how far it got (``opus_progress 40 "fitting 4/10"`` posting to
/handler/job_progress); the server keeps the latest report only, as three nullable
columns of ``jobs`` (a percentage, a message, when the server received it), read with
the job in its one statement. Jobs made before this revision have reported nothing.

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-10 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

COLUMNS = (
    ("progress", sa.Float()),
    ("progress_message", sa.Text()),
    # Naive UTC (storage.UTCDateTime), the same on every database.
    ("progress_time", sa.DateTime()),
)


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("jobs")}
    for name, kind in COLUMNS:
        # Nullable without default: a plain ALTER TABLE, no copy of the table (which
        # would have to carry its triggers and foreign keys along) on SQLite too.
        if name not in present:
            op.add_column("jobs", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+ and PostgreSQL), as 0008 does.
    for name, _kind in reversed(COLUMNS):
        op.execute(f"ALTER TABLE jobs DROP COLUMN {name}")

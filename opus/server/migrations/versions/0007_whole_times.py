"""SQLite: every stored job time with its fraction of a second.

Job creation wrote its row through the driver (storage/engine.py, HotInsert) with the
generic type's bind processor, so SQLite's sqlite3 adapter wrote the times as text,
leaving out the fraction when it was zero (``2026-12-02 03:16:58`` where SQLAlchemy
writes ``2026-12-02 03:16:58.000000``). Times compare as text on SQLite: such a row
compared as earlier than its own time bound as a parameter, so a list page that ended
on it listed it again at the top of the next page. This writes the fraction into those
times (PostgreSQL stores timestamps, not text: nothing to do there).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

# The time columns of jobs (storage/models.py, JobRow), which creation wrote.
JOB_TIMES = ("creation_time", "start_time", "end_time", "destruction_time", "quote", "phase_time")
# "YYYY-MM-DD HH:MM:SS": a time written without its fraction.
WHOLE_SECOND_LENGTH = 19


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for column in JOB_TIMES:
        op.execute(
            f"UPDATE jobs SET {column} = {column} || '.000000' "
            f"WHERE length({column}) = {WHOLE_SECOND_LENGTH}"
        )


def downgrade() -> None:
    # Both forms read back as the same time: nothing to undo.
    pass

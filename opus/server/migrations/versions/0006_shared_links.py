"""Shared links of results: the ``shared_links`` table.

A shared link lets a program without the user's credentials (a SAMP tool: TOPCAT,
Aladin) read one result of one job until it expires. The table keeps only the SHA-256
of the link's random token (``token_hash``), the job (the row goes with the job: ON
DELETE CASCADE) and result it reads, who made it, and when it was made and ends
(``expires``, indexed for the sweep of ended links).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-28 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Tables made by create_all before OPUS had migrations may have it already.
    if "shared_links" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "shared_links",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("result_id", sa.String(length=255), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        # Naive UTC (storage.UTCDateTime), the same on every database.
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_shared_links_expires", "shared_links", ["expires"])
    op.create_index("ix_shared_links_job", "shared_links", ["job_id"])


def downgrade() -> None:
    op.drop_table("shared_links")

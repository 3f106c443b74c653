"""Each symbol shard's alerts on the print: the events its last commit stored, and whether they were pushed

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05

The ``evaluate`` process stores a batch's fires, and this row, in one
transaction, then pushes them and marks the row pushed.  A process that dies
between the commit and the push leaves ``pushed`` false, and whoever takes
the shard next pushes those events: none is lost, and the events of a batch
whose push is recorded are never pushed again.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluate_progress",
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("shards", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Text(), nullable=False),  # the last stream entry the commit covered
        sa.Column("event_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("pushed", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("shard", "shards"),
    )


def downgrade() -> None:
    op.drop_table("evaluate_progress")

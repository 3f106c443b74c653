"""Each shard's last slot whose emits went out, kept where a Redis restart cannot take it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

A slot's "done" marker lives in Redis.  When it is missing, the next tick
sends the previous slot's stored alerts, in case that slot died after its
Postgres commit and before its emits.  But Redis losing its data removes
the marker too, and then alerts already pushed went out twice.  One row
per shard says how far the emits have gone, so the repair sends only what
never went out.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "emitted_slots",
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("shards", sa.Integer(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("shard", "shards"),
    )


def downgrade() -> None:
    op.drop_table("emitted_slots")

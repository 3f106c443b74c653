"""Slots the tracker could not serve, recorded instead of silently skipped

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

A stall (Redis or the worker down, the scheduler stopped) leaves slots that
never ran.  A provider that answers for the past runs them late; the rest
(a live feed's, or ones too far back) are kept here as ranges, so health and
the history API can say which minutes have no data and why.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "missed_slots",
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("start"),
    )
    op.create_index("missed_slots_end_idx", "missed_slots", ["end"])


def downgrade() -> None:
    op.drop_table("missed_slots")

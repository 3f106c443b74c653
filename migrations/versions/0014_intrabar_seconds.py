"""What the evaluate process judged on the print, a row per ticker and second, for replays

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

Each row is a ticker's provisional bar as it stood at the end of one second
(its open, high and low so far, its last trade, and when its high and low
printed), and whether the ticker was halted then.  A replay of a rule with
an intra-bar frequency judges these in order, as the evaluate process judged
the hand-offs, so it finds the fires that live found.  Kept
``INTRABAR_RETENTION_DAYS`` days.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intrabar_seconds",
        sa.Column("ticker", sa.Text(), nullable=False),
        sa.Column("second", sa.BigInteger(), nullable=False),  # epoch second of the last trade
        sa.Column("bar_time", sa.BigInteger(), nullable=False),  # the bar's end (its slot), epoch s
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.Column("high_ms", sa.BigInteger(), nullable=False),
        sa.Column("low_ms", sa.BigInteger(), nullable=False),
        sa.Column("halted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("ticker", "second"),
    )
    op.create_index("intrabar_seconds_second", "intrabar_seconds", ["second"])


def downgrade() -> None:
    op.drop_table("intrabar_seconds")

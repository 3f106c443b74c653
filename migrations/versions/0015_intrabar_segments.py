"""Each stored second keeps the highest and lowest trade since the previous one, for replays

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

Live, each hand-off is judged at the extremes of the trades since the one
before (a price back above a level below the bar's earlier high is one of
them); a replay of the stored seconds judges each second at the same, so it
finds the fires live found.  Rows stored before this have none (NULL): they
are judged at their bar's new high and low, as they were.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COLUMNS = (("seg_high", sa.Float()), ("seg_high_ms", sa.BigInteger()), ("seg_low", sa.Float()),
           ("seg_low_ms", sa.BigInteger()))


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("intrabar_seconds", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for name, _ in COLUMNS:
        op.drop_column("intrabar_seconds", name)

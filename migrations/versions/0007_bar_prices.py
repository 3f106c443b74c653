"""A reading's own minute bar: open, high and low beside its price (the close)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

A snapshot reading is one price, so its minute candle is that price four
times.  A backfilled minute (and later a streamed one) knows the bar's own
open, high and low: kept here, nullable, so candles drawn from history have
bodies and wicks.  The existing ``open``/``high``/``low`` columns are the
*day's* so far, as the scanner reads them.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PRICE = sa.Numeric(18, 4)


def upgrade() -> None:
    for name in ("bar_open", "bar_high", "bar_low"):
        op.add_column("quotes", sa.Column(name, PRICE, nullable=True))


def downgrade() -> None:
    for name in ("bar_low", "bar_high", "bar_open"):
        op.drop_column("quotes", name)

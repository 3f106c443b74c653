"""symbols, quotes and alerts

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Quotes are keyed by (ticker, provider time) and alerts are unique per
(ticker, time): the constraints that make a retried tick add nothing.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PRICE = sa.Numeric(precision=18, scale=4)


def upgrade() -> None:
    op.create_table(
        "symbols",
        sa.Column("ticker", sa.String(length=10), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("ticker"),
    )
    op.create_table(
        "quotes",
        sa.Column("ticker", sa.String(length=10), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("volume", sa.BigInteger(), nullable=True),
        sa.Column("prev_close", PRICE, nullable=True),
        sa.Column("open", PRICE, nullable=True),
        sa.Column("high", PRICE, nullable=True),
        sa.Column("low", PRICE, nullable=True),
        sa.Column("sma", PRICE, nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.CheckConstraint("price > 0", name="quotes_price_positive"),
        sa.PrimaryKeyConstraint("ticker", "time"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("ticker", sa.String(length=10), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("sma", PRICE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('bullish', 'bearish')", name="alerts_kind_valid"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticker", "time", name="alerts_ticker_time_key"),
    )
    op.create_index("alerts_time_idx", "alerts", [sa.literal_column("time DESC")], unique=False)


def downgrade() -> None:
    op.drop_index("alerts_time_idx", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("quotes")
    op.drop_table("symbols")

"""Alert rules people choose, their state per ticker, and the events they fired

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A rule's state changes and the events it fires are written in one
transaction, so a fire is never lost nor repeated: ``alert_events`` has a
unique dedupe key (rule, ticker, bar time, frequency bucket).  Events keep
the rule's version and the inputs they fired on, so they stay explainable
after the rule changes or is deleted.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("condition", JSONB(), nullable=False),
        sa.Column("scope", JSONB(), nullable=False),
        sa.Column("frequency", sa.String(length=20), nullable=False),
        sa.Column("cooldown_seconds", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channels", JSONB(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False, server_default="active"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.create_table(
        "alert_rule_states",
        sa.Column("rule_id", sa.BigInteger(), sa.ForeignKey("alert_rules.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("ticker", sa.String(length=10), nullable=False),
        sa.Column("armed", sa.Boolean(), nullable=False),
        sa.Column("last_fire", sa.BigInteger(), nullable=True),
        sa.Column("recent", JSONB(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("last_bar", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("rule_id", "ticker"),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("dedupe_key", sa.String(length=120), nullable=False, unique=True),
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("ticker", sa.String(length=10), nullable=False),
        sa.Column("bar_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bucket", sa.String(length=40), nullable=False),
        sa.Column("inputs", JSONB(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("data_age_seconds", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.create_index("alert_events_rule_idx", "alert_events", ["rule_id", "id"])
    op.create_index("alert_events_ticker_idx", "alert_events", ["ticker", "id"])


def downgrade() -> None:
    op.drop_table("alert_events")
    op.drop_table("alert_rule_states")
    op.drop_table("alert_rules")

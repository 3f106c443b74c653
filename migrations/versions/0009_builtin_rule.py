"""The built-in SMA crossover as a rule people can see and mute; alert events by age; rules' progress

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

``builtin`` names a rule the product defines (``sma_cross``: every
ticker's price crossing its SMA, the ``alert`` event of the Socket.IO
contract).  Its row is created on first read with the configured SMA
period; it can be paused and resumed but not changed or deleted.  The tick
computes it as it always has; the row only says whether its ``alert``
events are sent.

``alert_events_created_idx`` serves the daily retention job, which deletes
events older than ``ALERT_EVENT_RETENTION_DAYS``.

``alert_rule_progress`` holds, per tick shard, the last slot whose bar the
rules were evaluated on, written in the transaction of that evaluation: a
tick that finds a gap (Postgres was down for some ticks) evaluates the
missed bars too, once their rows are stored, whichever worker runs it.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alert_rules", sa.Column("builtin", sa.String(length=30), nullable=True))
    op.create_unique_constraint("alert_rules_builtin_key", "alert_rules", ["builtin"])
    op.create_index("alert_events_created_idx", "alert_events", ["created_at"])
    op.create_table(
        "alert_rule_progress",
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("shards", sa.Integer(), nullable=False),
        sa.Column("last_slot", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("shard", "shards"),
    )


def downgrade() -> None:
    op.drop_table("alert_rule_progress")
    op.drop_index("alert_events_created_idx", "alert_events")
    op.drop_constraint("alert_rules_builtin_key", "alert_rules")
    op.drop_column("alert_rules", "builtin")

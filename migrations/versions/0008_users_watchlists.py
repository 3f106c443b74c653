"""Users who sign in to change things, their watchlists, and their page settings

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

Users are created with ``flask --app wsgi users create`` (passwords are
hashed with werkzeug's scrypt).  A watchlist belongs to one user and keeps
its tickers in the order the user gave them; ``settings`` holds a user's
page choices (the dashboard's columns).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("settings", sa.dialects.postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "watchlists",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint("user_id", "name", name="watchlists_user_name_key"),
    )
    op.create_table(
        "watchlist_items",
        sa.Column("watchlist_id", sa.BigInteger(), sa.ForeignKey("watchlists.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("ticker", sa.String(10), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("watchlist_items")
    op.drop_table("watchlists")
    op.drop_table("users")

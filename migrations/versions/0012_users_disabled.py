"""A user an operator has disabled: cannot sign in, their tokens and sessions stop, their rules rest

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05

``flask users disable NAME`` keeps everything the user owns (``enable``
gives it back); ``flask users delete NAME`` removes the user and, through
the owner foreign keys' ON DELETE CASCADE, everything they own.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "disabled_at")

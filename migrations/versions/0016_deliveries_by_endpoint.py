"""Due deliveries by endpoint, so a claim finds other endpoints' past one endpoint's backlog

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

A claim takes the oldest due deliveries, at most 2 in flight per endpoint.
When the oldest are all one endpoint's, whose slots are taken (a slow
receiver with a backlog), the claim looks for the other endpoints' due rows
endpoint by endpoint (:func:`webapp.store.deliveries.claim`): this index
makes that a few probes per endpoint with work, not a scan of the backlog.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("deliveries_endpoint_due_idx", "deliveries", ["endpoint_id", "next_attempt_at", "id"],
                    postgresql_where=sa.text("status IN ('pending', 'in_flight')"))


def downgrade() -> None:
    op.drop_index("deliveries_endpoint_due_idx", table_name="deliveries")

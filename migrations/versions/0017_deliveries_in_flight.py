"""Deliveries in flight by endpoint, so counting an endpoint's in-flight requests reads only those

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

Every claim and every follow-on lease counts the endpoint's in-flight
deliveries to hold its cap of 2 (:mod:`webapp.store.deliveries`).  Through
``deliveries_endpoint_due_idx`` that count read the endpoint's whole
backlog, pending rows included, and filtered them out: 2,000 rows (0.3 ms
of Postgres) a lease when 2,000 waited, so a burst of N to one receiver cost
N² row visits.  This index holds only the rows in flight, at most a few
per endpoint.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("deliveries_in_flight_idx", "deliveries", ["endpoint_id", "locked_until"],
                    postgresql_where=sa.text("status = 'in_flight'"))


def downgrade() -> None:
    op.drop_index("deliveries_in_flight_idx", table_name="deliveries")

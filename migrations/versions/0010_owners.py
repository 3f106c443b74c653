"""Every user's own: owners for rules, webhook endpoints, alert events and tokens; roles; session versions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

A rule, a webhook endpoint (with its deliveries and attempt logs, through
the endpoint) and an alert event belong to one user (``owner_id``); the
built-in SMA rule and its events have none and are shown to every
signed-in user.  ``alert_events.owner_id`` copies the rule's owner when the
event is written, so the feed and a reconnect's gap filter on an indexed
column instead of a join.

``users.role`` is ``admin`` or ``member``; ``users.session_version`` is
part of every session and remember-cookie id, so bumping it (sign-out, a
new password) ends them all.  Tokens get an owner, scopes, an optional
expiry and a last-used time, as GitHub's fine-grained tokens have.

Rows made before owners existed go to the first admin: the oldest user,
made admin here; with no user yet, to the first one ``flask users create
--admin`` makes (it adopts them).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OWNED = ("alert_rules", "webhook_endpoints", "alert_events")


def upgrade() -> None:
    op.add_column("users", sa.Column("role", sa.String(10), nullable=False, server_default="member"))
    op.create_check_constraint("users_role_check", "users", "role IN ('admin', 'member')")
    op.add_column("users", sa.Column("session_version", sa.Integer(), nullable=False, server_default="1"))
    for table in OWNED:
        op.add_column(table, sa.Column("owner_id", sa.BigInteger(),
                                       sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True))
    op.create_index("alert_rules_owner_idx", "alert_rules", ["owner_id"])
    op.create_index("webhook_endpoints_owner_idx", "webhook_endpoints", ["owner_id"])
    op.create_index("alert_events_owner_idx", "alert_events", ["owner_id", "id"])
    op.add_column("api_tokens", sa.Column("user_id", sa.BigInteger(),
                                          sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True))
    op.add_column("api_tokens", sa.Column("scopes", sa.dialects.postgresql.ARRAY(sa.String(20)),
                                          nullable=False, server_default="{read}"))
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_tokens", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("symbols", sa.Column("added_by", sa.BigInteger(),
                                       sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True))
    # today's rows: the oldest user becomes the first admin and owns them (none yet: see the docstring)
    op.execute("UPDATE users SET role = 'admin' WHERE id = (SELECT min(id) FROM users)")
    for table in OWNED:
        extra = " AND builtin IS NULL" if table == "alert_rules" else ""
        if table == "alert_events":
            op.execute("UPDATE alert_events e SET owner_id = r.owner_id FROM alert_rules r "
                       "WHERE r.id = e.rule_id AND r.builtin IS NULL AND e.owner_id IS NULL")
            op.execute("UPDATE alert_events SET owner_id = (SELECT min(id) FROM users) "
                       "WHERE owner_id IS NULL "
                       "AND rule_id NOT IN (SELECT id FROM alert_rules WHERE builtin IS NOT NULL)")
            continue
        op.execute(f"UPDATE {table} SET owner_id = (SELECT min(id) FROM users) WHERE owner_id IS NULL{extra}")
    # a token from before scopes could do everything its holder asked: it keeps that, under the first admin
    op.execute("UPDATE api_tokens SET user_id = (SELECT min(id) FROM users), "
               "scopes = '{read,rules:write,webhooks:write,watchlists:write,symbols:write,admin}'")


def downgrade() -> None:
    op.drop_column("symbols", "added_by")
    for col in ("last_used_at", "expires_at", "scopes", "user_id"):
        op.drop_column("api_tokens", col)
    op.drop_index("alert_events_owner_idx", "alert_events")
    op.drop_index("webhook_endpoints_owner_idx", "webhook_endpoints")
    op.drop_index("alert_rules_owner_idx", "alert_rules")
    for table in OWNED:
        op.drop_column(table, "owner_id")
    op.drop_column("users", "session_version")
    op.drop_constraint("users_role_check", "users")
    op.drop_column("users", "role")

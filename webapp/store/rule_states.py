"""The live rules a tick evaluates and their per-ticker states (tables ``alert_rules``,
``alert_rule_states``, ``alert_rule_progress``): what is read before evaluating, and the storm
breaker's stops.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core.rules.state import TickerState

# a disabled user's rules rest (webapp.store.users.set_disabled), as paused ones do
_OWNER_ACTIVE = "NOT EXISTS (SELECT 1 FROM users u WHERE u.id = owner_id AND u.disabled_at IS NOT NULL)"


_LIVE = sa.text("""
SELECT r.id, r.version, r.updated_at, k.id IS NOT NULL AS known,
       CASE WHEN k.id IS NULL THEN r.name END AS name,
       CASE WHEN k.id IS NULL THEN r.condition END AS condition,
       CASE WHEN k.id IS NULL THEN r.scope END AS scope, r.frequency, r.cooldown_seconds, r.expires_at,
       CASE WHEN k.id IS NULL THEN r.channels END AS channels
FROM alert_rules r LEFT JOIN unnest(CAST(:ids AS bigint[]), CAST(:versions AS int[])) AS k(id, version)
  ON k.id = r.id AND k.version = r.version
WHERE r.status = 'active' AND r.builtin IS NULL AND """ + _OWNER_ACTIVE + """ ORDER BY r.id""")


_STATES = sa.text("SELECT rule_id, ticker, armed, last_fire, recent, status, last_bar "
                  "FROM alert_rule_states WHERE rule_id = ANY(:ids)")


@dataclass(frozen=True)
class RulesNow:
    """What a tick reads of its rules first, in one statement."""

    fingerprint: tuple[Any, ...]  # changes when an active rule is added, changed, paused, resumed, deleted
    builtin_muted: bool  # the built-in SMA crossover's row exists and is paused (no row yet: it is on)
    evaluated_through: int | None  # the last slot this shard's rules were evaluated on (None: never)


def rules_now(session: Session, shard: tuple[int, int]) -> RulesNow:
    r = session.execute(sa.text(
        "SELECT count(*), max(updated_at), coalesce(sum(id), 0), coalesce(sum(version), 0), "
        "EXISTS (SELECT 1 FROM alert_rules WHERE builtin IS NOT NULL AND status = 'paused'), "
        "(SELECT last_slot FROM alert_rule_progress WHERE shard = :i AND shards = :n) "
        f"FROM alert_rules WHERE status = 'active' AND builtin IS NULL AND {_OWNER_ACTIVE}"),
        {"i": shard[0], "n": shard[1]}).one()
    return RulesNow(tuple(r[:4]), bool(r[4]), None if r[5] is None else int(r[5]))


def live_rules(session: Session, known: Sequence[tuple[int, int]] = ()) -> list[Any]:
    """The active rules; those ``known`` (id, version) already come without their JSON (``known`` true)."""
    return list(session.execute(_LIVE, {"ids": [k[0] for k in known], "versions": [k[1] for k in known]}))


def states_of(session: Session, rule_ids: Sequence[int]) -> dict[int, dict[str, TickerState]]:
    """Every stored (non-default) state of these rules, by rule and ticker (one statement)."""
    out: dict[int, dict[str, TickerState]] = {}
    if not rule_ids:
        return out
    for r in session.execute(_STATES, {"ids": list(rule_ids)}):
        out.setdefault(r.rule_id, {})[r.ticker] = TickerState(
            r.armed, r.last_fire, tuple(r.recent), r.status, r.last_bar)
    return out


def rearm_stopped(session: Session, rule_id: int) -> int:
    """Re-enable a rule's tickers the storm breaker stopped (they start armed); no commit."""
    return session.execute(sa.text("DELETE FROM alert_rule_states WHERE rule_id = :id "
                                   "AND status = 'stopped_too_often'"), {"id": rule_id}).rowcount or 0


def stopped_tickers(session: Session, rule_ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for r in session.execute(sa.text("SELECT rule_id, ticker FROM alert_rule_states "
                                     "WHERE rule_id = ANY(:ids) AND status = 'stopped_too_often' "
                                     "ORDER BY ticker"),
                             {"ids": list(rule_ids)}):
        out.setdefault(r.rule_id, []).append(r.ticker)
    return out

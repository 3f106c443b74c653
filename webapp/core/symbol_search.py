"""The header's symbol search, ranked as a trader expects (pure).

An exact ticker first, then tickers that start with the query, then company
names that start with it, then names that contain it; ties in ticker order.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from webapp.core.validation import normalise_ticker


def search(query: str, tracked: Iterable[str], names: Mapping[str, str], limit: int) -> dict[str, Any]:
    """The hits among ``tracked``, and ``track``: the query as a valid ticker nobody tracks, or None."""
    q = query.strip()
    up, low = q.upper(), q.lower()
    known = set(tracked)
    scored = []
    for t in known:
        name = names.get(t, "")
        if t == up:
            rank = 0
        elif t.startswith(up):
            rank = 1
        elif low and low in name.lower():
            rank = 2 if name.lower().startswith(low) else 3
        else:
            continue
        scored.append((rank, t, name))
    hits = [{"ticker": t, "name": name or None, "tracked": True, "match": "ticker" if rank < 2 else "name"}
            for rank, t, name in sorted(scored)[:limit]]
    candidate = normalise_ticker(q) if q else None
    return {"query": q, "results": hits, "track": candidate if candidate and candidate not in known else None}

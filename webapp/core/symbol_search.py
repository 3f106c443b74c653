"""The header's symbol search, ranked as a trader expects (pure).

An exact ticker first, then tickers that start with the query, then company
names that start with it, then names that contain it; at each rank tracked
symbols before ones the provider lists that nobody tracks yet; ties in
ticker order.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from webapp.core.validation import normalise_ticker


def search(query: str, tracked: Iterable[str], names: Mapping[str, str], limit: int,
           listed: Collection[str] | None = None) -> dict[str, Any]:
    """The hits among ``tracked`` and the provider's ``listed`` symbols (each hit says whether it is
    tracked), and ``track``: the query as a valid ticker nobody tracks that the provider lists (any,
    when ``listed`` is None), or None."""
    q = query.strip()
    up, low = q.upper(), q.lower()
    known = set(tracked)
    scored = []
    for t in known | set(listed or ()):
        name = names.get(t, "")
        if t == up:
            rank = 0
        elif t.startswith(up):
            rank = 1
        elif low and low in name.lower():
            rank = 2 if name.lower().startswith(low) else 3
        else:
            continue
        scored.append((rank, t not in known, t, name))  # tracked before untracked at the same rank
    hits = [{"ticker": t, "name": name or None, "tracked": not untracked,
             "match": "ticker" if rank < 2 else "name"}
            for rank, untracked, t, name in sorted(scored)[:limit]]
    candidate = normalise_ticker(q) if q else None
    trackable = candidate is not None and candidate not in known and (listed is None or candidate in listed)
    return {"query": q, "results": hits, "track": candidate if trackable else None}

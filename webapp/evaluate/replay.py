"""Replays of rules judged on the print: the stored seconds judged as the evaluate process judged them.

Live, a ticker's bar is judged on its prints when the stream served it (the
evaluate process), else at its close by the minute tick.  The evaluate
process stores what it judged, a row per ticker and second
(:mod:`webapp.store.intrabar_tape`); a replay walks the bars in order and,
for each one, judges the tickers with stored seconds at those seconds (the
same :class:`~webapp.evaluate.engine.ShardEngine`, one second at a time,
the bars before it from the stored minute readings), and the others at the
bar's stored reading, as the tick did (:func:`evaluate_many`).  One state
per ticker runs through both, so ``once``, ``every_time``'s minute and
``once_per_bar`` carry across the switch as they do live.

What is judged is the state at the end of each second, where live judged
every 100 ms hand-off.  Both judge the bar's new high and low since the last
judgment, so a condition on the price being above or below a level fires in
the same bar either way; its trade (time and price) is the second's extreme,
where live may name an earlier trade of that second.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby

import numpy as np

from webapp.core.rules.evaluate import evaluate_many
from webapp.core.rules.state import Fire, TickerState
from webapp.evaluate.engine import ShardEngine
from webapp.store.intrabar_tape import Second
from webapp.tick.rules import Bars, LiveRule


def replay(lr: LiveRule, tickers: Sequence[str], cols: Mapping[str, np.ndarray],
           series: Mapping[str, np.ndarray], times: np.ndarray, first: int, seconds: Sequence[Second],
           width: int) -> tuple[list[Fire], list[str], int]:
    """``lr`` over bars ``first..`` of the stored readings (``cols`` and their ``series``, tickers ×
    ``times``), judged on the stored ``seconds`` where there are some (oldest first); the fires, the
    tickers the rule stopped for, and how many (ticker, bar) pairs were judged on the print."""
    rid = lr.rule.id
    depth = max(lr.depth, 2)
    index = {t: i for i, t in enumerate(tickers)}
    taped: dict[int, list[Second]] = {}
    for s in seconds:
        if s.bar.ticker in index:
            taped.setdefault(s.bar.bar_time, []).append(s)
    engine = ShardEngine((0, 1), width)
    engine.rules, engine.watched = [lr], None
    engine.use(tuple(tickers))
    states: dict[str, TickerState] = {}
    stale = np.isnan(cols["close"])
    fires: list[Fire] = []
    stopped: list[str] = []
    on_print = 0
    todo = sorted({int(t) for t in times[first:]} | set(taped))  # the seconds read are in the span
    run: list[int] = []  # consecutive bars with nothing taped: judged at once

    def minute(lo_j: int, hi_j: int, rows: np.ndarray | None) -> None:
        lo = max(0, lo_j - depth)
        got = evaluate_many([lr.rule], [rows], tickers, {k: v[:, lo:hi_j + 1] for k, v in series.items()},
                            times[lo:hi_j + 1], [states], stale[:, lo:hi_j + 1], lo_j - lo)
        fires.extend(got.fires)
        states.update({t: st for _, t, st in got.states})
        stopped.extend(t for _, t in got.stopped)

    at = {int(t): j for j, t in enumerate(times.tolist())}
    for bar_time in todo:
        j = at.get(bar_time)
        if bar_time not in taped:
            if j is not None:
                run.append(j)
            continue
        if run:
            minute(run[0], run[-1], None)
            run = []
        end = int(np.searchsorted(times, bar_time))  # the closed bars end before this one
        lo = max(0, end - depth)
        engine.bars = Bars(tuple(tickers), [int(t) for t in times[lo:end]],
                           {k: np.asarray(cols[k])[:, lo:end] for k in cols}, depth)
        engine.bar_time = bar_time
        engine.states = {rid: states}
        group = taped[bar_time]
        for _, same in groupby(group, key=lambda s: s.bar.last_ms // 1000):
            held = list(same)
            judged = engine.judge([s.bar for s in held], {s.bar.ticker for s in held if s.halted},
                                  max(s.bar.last_ms for s in held))
            engine.committed(judged, [s.bar for s in held])
            fires.extend(f.fire for f in judged.fires)
            stopped.extend(t for _, _, t, st in judged.states if st.status == "stopped_too_often")
        states = engine.states.get(rid, states)
        done = {s.bar.ticker for s in group}
        on_print += len(done)
        if j is not None and len(done) < len(tickers):
            minute(j, j, np.array(sorted(i for t, i in index.items() if t not in done), np.int64))
    if run:
        minute(run[0], run[-1], None)
    return fires, sorted(set(stopped)), on_print

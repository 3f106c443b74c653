"""The stream's hand-offs, written and read: JSON rows against columns, the same rows, in one run.

A real :class:`~webapp.core.tape.Tape` takes ``--rate`` trades/s over
``--symbols`` tickers for ``--seconds`` and hands off every 100 ms, as the
stream leader does; each flush is then written (what the leader pays) and
read, checked and coalesced ``--batch`` flushes at a time (what the evaluate
process pays before judging anything), both ways:

* ``json``: rows as ``orjson`` writes them, read row by row (the format of
  the previous version, still read);
* ``columns``: :func:`webapp.core.handoff.encode` / ``decode``.

It prints one JSON line per way: ``rows`` handed off, ``write_us_per_row``
and ``read_us_per_row`` (medians of ``--repeat`` passes, CPU time of this
process), and ``named_us_per_row``: reading plus making
:class:`~webapp.core.rules.intrabar.Provisional` objects for half the
tickers, as for the tickers rules name.  The two ways are run alternately,
so a busy machine slows both alike.

    python -m bench.handoffs
    python -m bench.handoffs --symbols 10000 --rate 50000 --seconds 5 --batch 5
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from webapp.core import handoff
from webapp.core.tape import Tape
from webapp.core.trades import Trade

WIDTH = 60


def flushes(n_symbols: int, rate: int, seconds: float, seed: int = 5) -> list[list[list[Any]]]:
    """Each 100 ms flush of a tape fed ``rate`` trades/s at random over the symbols."""
    rng = np.random.default_rng(seed)
    symbols = [f"S{i:05d}" for i in range(n_symbols)]
    start_ms = 1_796_599_800_000
    tape = Tape("polygon", WIDTH, grace_ms=1000, started_ms=start_ms)
    out = []
    per = max(1, rate // 10)
    for k in range(int(seconds * 10)):
        at = start_ms + k * 100
        picks = rng.integers(0, n_symbols, per)
        prices = 10 + rng.random(per) * 10
        times = np.sort(rng.integers(at, at + 100, per))
        tape.add([Trade(symbols[i], round(float(p), 2), 100, int(t))
                  for i, p, t in zip(picks.tolist(), prices.tolist(), times.tolist(), strict=True)])
        tape.close(at + 100)
        out.append(tape.hand_off())
    return out


def _cpu(fn: Callable[[], Any]) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def run(n_symbols: int, rate: int, seconds: float, batch: int, repeat: int) -> list[dict[str, Any]]:
    rows = flushes(n_symbols, rate, seconds)
    total = sum(map(len, rows))
    named = {f"S{i:05d}" for i in range(0, n_symbols, 2)}
    ways: dict[str, tuple[Callable[[list[Any]], Any], Callable[[Any], Any]]] = {
        "json": (lambda r: {b"bars": orjson.dumps(r)}, lambda f: f),
        "columns": (handoff.encode, lambda f: f),
    }
    written = {name: [write(r) for r in rows] for name, (write, _) in ways.items()}

    def read(entries: list[Any], name_them: bool) -> None:
        for k in range(0, len(entries), batch):
            parts = [handoff.decode(f, WIDTH)[0] for f in entries[k:k + batch]]
            got = handoff.coalesced(handoff.concat(parts))
            if name_them:
                got.take(np.fromiter(map(named.__contains__, got.tickers.tolist()), bool, len(got))).bars()

    times: dict[str, dict[str, list[float]]] = {name: {"write": [], "read": [], "named": []} for name in ways}
    for _ in range(repeat):
        for name, (write, _) in ways.items():  # alternately
            times[name]["write"].append(_cpu(lambda w=write: [w(r) for r in rows]))
            times[name]["read"].append(_cpu(lambda n=name: read(written[n], False)))
            times[name]["named"].append(_cpu(lambda n=name: read(written[n], True)))
    per_row = max(1, total)
    return [{"bench": "handoffs", "way": name, "symbols": n_symbols, "rate": rate, "seconds": seconds,
             "batch": batch, "rows": total,
             "bytes_per_row": round(sum(len(b) for f in written[name] for b in f.values()) / per_row, 1),
             **{f"{k}_us_per_row": round(statistics.median(v) / per_row * 1e6, 3) for k, v in t.items()},
             "counted": "CPU time of this process per provisional row handed off, median of the passes: "
                        "write = the leader's encoding; read = decode, check and coalesce; named = read and "
                        "make Provisional objects for half the tickers"}
            for name, t in times.items()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.handoffs", description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=1, help="flushes read at once (1: keeping up)")
    parser.add_argument("--repeat", type=int, default=5)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    for line in run(args.symbols, args.rate, args.seconds, args.batch, args.repeat):
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The ``evaluate`` process (``python -m jobs.evaluate``): alert rules judged on the print.

Run as many as you like, on any machines that reach the same Redis and
Postgres: they divide the symbol shards between them by lease, and one
takes over a dead one's shards within ``EVALUATE_LEASE_SECONDS``
(:mod:`webapp.evaluate.process`).  SIGTERM/SIGINT finish the batch in
hand, give the leases back, then exit.

The process makes tens of thousands of short-lived hand-off rows a second;
with the collector's default thresholds that means a full collection every
few seconds, each walking every object the app holds (60-100 ms at 10,000
symbols, measured): a stall of the judgment and the scanner's second.  So the
objects made at start-up are frozen out of the collector, and the youngest
generation is collected at 50,000 allocations rather than 700.

It also lowers its own priority (``EVALUATE_NICE``): where it shares cores with
the stream, a starved stream falls behind on every trade and every judgment
waits for it, while a starved evaluator only coalesces more hand-offs per batch
(measured at 50,000 trades/s on two cores: the stream applied 31,000/s and
print → browser was 6.4 s at the median; with the evaluators at nice 10 the
stream kept 50,000/s and the median was 1.0-2.5 s).
"""
from __future__ import annotations

import gc
import logging
import os
import signal
import threading

from jobs import get_app

log = logging.getLogger(__name__)


def main() -> None:
    from webapp.services import evaluation

    app = get_app()
    try:
        os.nice(app.config["TRACKER"].EVALUATE_NICE)
    except OSError as exc:  # not allowed here: run at the priority we have
        log.warning("evaluate: could not lower its priority: %s", exc)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with app.app_context():
        process = evaluation.evaluator()
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 10)
        process.run(stop)


if __name__ == "__main__":
    main()

"""The ``evaluate`` process (``python -m jobs.evaluate``): alert rules judged on the print.

Run as many as you like, on any machines that reach the same Redis and
Postgres: they divide the symbol shards between them by lease, and one
takes over a dead one's shards within ``EVALUATE_LEASE_SECONDS``
(:mod:`webapp.evaluate.process`).  SIGTERM/SIGINT finish the batch in
hand, give the leases back, then exit.
"""
from __future__ import annotations

import logging
import signal
import threading

from jobs import get_app

log = logging.getLogger(__name__)


def main() -> None:
    from webapp.services import evaluation

    app = get_app()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with app.app_context():
        process = evaluation.evaluator()
        process.run(stop)


if __name__ == "__main__":
    main()

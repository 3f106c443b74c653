"""The ``deliver`` process (``python -m jobs.deliver``): webhook deliveries from the Postgres outbox.

Run as many as you like: they share the work through ``FOR UPDATE SKIP
LOCKED`` claims, and a killed one's leases run out and its rows are sent
again (:mod:`webapp.delivery.worker`).  SIGTERM/SIGINT finish the
requests in hand, then exit.
"""
from __future__ import annotations

import logging
import signal
import threading

from jobs import get_app

log = logging.getLogger(__name__)


def main() -> None:
    from webapp.services import webhooks

    app = get_app()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with app.app_context():
        worker = webhooks.delivery_worker()
    log.info("deliver: sending webhooks from the outbox")
    worker.run(stop)
    log.info("deliver: stopped")


if __name__ == "__main__":
    main()

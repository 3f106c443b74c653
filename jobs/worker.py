"""The ``worker`` process: an RQ worker for the tick queue.

It builds the app once (exchange calendar, Redis and Postgres pools) and runs
jobs in-process with ``SimpleWorker``: a minute tick should not pay a fork
and a fresh app each time.  A crashed worker is restarted by the process
manager (honcho, Heroku), and a retried tick is harmless.
"""
from __future__ import annotations

import logging

from rq import Queue, SimpleWorker

from jobs import get_app

log = logging.getLogger(__name__)


def main() -> None:
    app = get_app()
    cfg = app.config["TRACKER"]
    from webapp.extensions import get_redis

    with app.app_context():
        conn = get_redis()
        worker = SimpleWorker([Queue(cfg.QUEUE_NAME, connection=conn)], connection=conn)
        log.info("worker listening on queue %r", cfg.QUEUE_NAME)
        worker.work(with_scheduler=False)


if __name__ == "__main__":
    main()

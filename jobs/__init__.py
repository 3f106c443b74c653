"""RQ jobs and the worker and scheduler processes that run them.

Jobs take simple arguments, are safe to run twice, and emit only through
:mod:`webapp.tick.publisher`.  Nothing here imports gevent or the web entry point.
"""
from __future__ import annotations

from functools import lru_cache

from flask import Flask, current_app, has_app_context


@lru_cache(maxsize=1)
def get_app() -> Flask:
    """One app per worker process, built before the first job and reused."""
    from webapp import create_app
    from webapp.config import exit_on_config_error

    with exit_on_config_error():
        return create_app()


def job_app() -> Flask:
    """The app a job runs in: the caller's (a test, the CLI) when there is one, else the process's."""
    return current_app._get_current_object() if has_app_context() else get_app()  # type: ignore[attr-defined]

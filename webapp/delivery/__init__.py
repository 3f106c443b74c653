"""Webhook delivery (``jobs/deliver.py``): the outbox's rows sent as signed Standard Webhooks.

``sender`` makes one attempt (signing, the SSRF-checked connection);
``worker`` claims due rows, sends them and records each attempt.  The
policy (schedule, verdicts, address rules) is the pure
:mod:`webapp.core.delivery`; the rows are :mod:`webapp.store.alerts`.
"""

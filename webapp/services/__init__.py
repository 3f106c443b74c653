"""Shared actions the edges call, one module per domain (Zulip's ``actions/``).

Routes, Socket.IO handlers, CLI commands and jobs import the module of their
domain (``from webapp.services import rules``) and stay thin; the work, and
the events it sends, happen here once.  A module here may use another's
public names, never its ``_private`` ones (``tests/test_layers.py``).
"""

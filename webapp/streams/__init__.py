"""Streaming sources (provider WebSocket feeds), one module per source.

The room the streaming work moves into: like :mod:`webapp.providers`, each
source sits behind one small interface and is chosen by name in config.  It
sits beside ``providers`` in the layers: it may import ``core``, ``config``
and ``names``, never the stores above it.
"""

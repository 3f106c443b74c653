"""The minute tick: what one slot does, in order, for the worker.

:mod:`pipeline` runs fetch → validate → window/SMA/crossover → Postgres →
Redis → emit; :mod:`scanner` is the scanner's part of it (metrics, ranked
lists, volume profiles); :mod:`publisher` sends the tick's Socket.IO
messages through the Redis message queue.  It orchestrates the pure core,
the providers and the stores, and knows nothing of HTTP or Flask routes.
"""

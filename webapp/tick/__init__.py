"""The minute tick: what one slot does, in order, for the worker.

:mod:`pipeline` runs fetch → validate → window/SMA/crossover → Postgres →
Redis → emit, with what it runs with and reports in :mod:`context`;
:mod:`repairs` puts right what a crash, a lost Redis or a Postgres outage
left; :mod:`rules` evaluates the alert rules people chose; :mod:`scanner`
is the scanner's part (metrics, ranked lists, volume profiles);
:mod:`emits` gathers the tick's Socket.IO messages and :mod:`publisher`
sends them through the Redis message queue.  It orchestrates the pure core,
the providers and the stores, and knows nothing of HTTP or Flask routes.
"""

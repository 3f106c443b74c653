"""The stores: everything that reads or writes Redis and Postgres, one module per key family or table family.

Hot state in Redis: :mod:`hot` (latest tables and windows), :mod:`scanstore`
(scan tables and lists), :mod:`streamstate` (the stream's bars and status),
:mod:`subscriptions` (listened rooms), :mod:`spool` (ticks waiting out a
Postgres outage).  Cold history in Postgres: :mod:`models` (the tables),
:mod:`pg` (outage errors, COPY), :mod:`quotes`, :mod:`sma_alerts`,
:mod:`bars`, :mod:`intraday` (the scanner's reads), :mod:`tick_write` (a
tick's one transaction), :mod:`rules`, :mod:`rule_states`,
:mod:`alert_events`, :mod:`webhooks`, :mod:`deliveries`, :mod:`symbols`
(tracked symbols and API tokens), :mod:`users`, :mod:`watchlists`,
:mod:`retention` (partitions and daily bars).  A store knows keys and
tables, never the tick's order of work: it imports only ``core``, ``names``,
``config`` and ``extensions``.
"""

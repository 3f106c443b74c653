"""The stores: everything that reads or writes Redis and Postgres.

Hot state in Redis (:mod:`hot` latest tables and windows, :mod:`scanstore`
scan tables and lists, :mod:`subscriptions` listened rooms) and cold history
in Postgres (:mod:`models` tables, :mod:`history` quotes and alerts,
:mod:`symbols` tracked symbols and API tokens, :mod:`retention` partitions
and daily bars).  A store knows keys and tables, never the tick's order of
work: it imports only ``core``, ``names``, ``config`` and ``extensions``.
"""

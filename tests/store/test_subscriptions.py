"""Listener counts shared by web processes, read by the worker."""
from __future__ import annotations

import time

from webapp import names
from webapp.store.subscriptions import TTL_SECONDS, ListenerRegistry, Listening


def test_union_over_live_processes_only(rdb, clean) -> None:
    a, b = ListenerRegistry(rdb), ListenerRegistry(rdb)
    a.joined(["AAPL", "MSFT"])
    a.joined(["AAPL"])
    b.joined(["KO"])
    a.left(["AAPL"])  # one of two AAPL listeners left
    a.left(["MSFT"])
    assert Listening(rdb)() == {"AAPL", "KO"}
    assert rdb.ttl(names.listeners_key(a.host_id)) > 0
    # a process that stopped refreshing drops out once its registration expires
    assert Listening(rdb)(now=time.time() + TTL_SECONDS + 1) == set()
    assert rdb.zcard(names.LISTENER_HOSTS_KEY) == 0

"""Listened ticker rooms shared by web processes, read by the worker."""
from __future__ import annotations

import time

from webapp import names
from webapp.store.subscriptions import TTL_SECONDS, ListenerRegistry, Listening


def test_union_over_live_processes_only(rdb, clean) -> None:
    a, b = ListenerRegistry(rdb), ListenerRegistry(rdb)
    a.publish(["AAPL", "MSFT"])
    b.publish(["KO"])
    a.publish(["AAPL"])  # MSFT's last client here left: the set is rewritten, not counted down
    assert Listening(rdb)() == {"AAPL", "KO"}
    assert rdb.ttl(names.listeners_key(a.host_id)) > 0
    # a process that stopped refreshing drops out once its registration expires
    assert Listening(rdb)(now=time.time() + TTL_SECONDS + 1) == set()
    assert rdb.zcard(names.LISTENER_HOSTS_KEY) == 0


def test_the_set_comes_back_after_redis_loses_its_data(rdb, clean) -> None:
    a = ListenerRegistry(rdb)
    a.publish(["AAPL"])
    rdb.flushall()
    assert Listening(rdb)() == set()
    a.publish(["AAPL"])  # what each web process does every REFRESH_SECONDS, from its rooms
    assert Listening(rdb)() == {"AAPL"}
    a.publish([])
    assert Listening(rdb)() == set() and rdb.hlen(names.listeners_key(a.host_id)) == 0

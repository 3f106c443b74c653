"""One home for the names processes share: Socket.IO events and rooms, Redis keys.

The worker writes and emits, the web process reads and relays; both must
spell these identically, so nobody else formats one.
"""
from __future__ import annotations

# Socket.IO events (default namespace)
EVENT_SUBSCRIBE = "subscribe"
EVENT_UNSUBSCRIBE = "unsubscribe"
EVENT_STOCK_UPDATE = "stock_update"
EVENT_QUOTE = "quote"
EVENT_ALERT = "alert"
EVENT_FOLLOW_ALERTS = "follow_alerts"  # {"on": true|false}: join/leave the alerts room
EVENT_SCAN_UPDATE = "scan_update"  # to scan:<list>: what changed in a ranked list
EVENT_IN_PLAY = "in_play"  # to ticker:XYZ: the ticker entered a scanner list
EVENT_TRADE = "trade"  # to ticker:XYZ, from the stream process: the last trade, at most every 250 ms
EVENT_ALERT_EVENT = "alert_event"  # to alerts and rule:<id>: a rule fired (with its event id and inputs)
EVENT_FOLLOW_RULES = "follow_rules"  # {"rules": [ids], "after": last_event_id}: join rule rooms, get missed

# Socket.IO rooms
ROOM_ALL = "all"
ROOM_ALERTS = "alerts"
ALL_TICKERS = "*"


def ticker_room(ticker: str) -> str:
    return f"ticker:{ticker}"


def scan_room(name: str) -> str:
    return f"scan:{name}"


RULE_ROOM_PREFIX = "rule:"


def rule_room(rule_id: int) -> str:
    return f"{RULE_ROOM_PREFIX}{rule_id}"


USER_ROOM_PREFIX = "user:"  # a user's own alert feed: their rules' alert_events (follow_alerts)


def user_room(user_id: int) -> str:
    return f"{USER_ROOM_PREFIX}{user_id}"


# Redis keys.  Every key the tick writes carries a TTL.
_PREFIX = "stk"


def window_key(ticker: str) -> str:
    """List: the last SMA_PERIOD prices (RPUSH + LTRIM)."""
    return f"{_PREFIX}:win:{ticker}"


def _shard_suffix(shard: int, shards: int) -> str:
    return "" if shards == 1 else f":{shard}of{shards}"


def tick_done_key(slot: int, shard: int = 0, shards: int = 1) -> str:
    """Marker: this slot (or this shard of it) is finished."""
    return f"{_PREFIX}:tick:done:{slot}{_shard_suffix(shard, shards)}"


def stored_slot_key(shard: int = 0, shards: int = 1) -> str:
    """The last slot whose rows reached Postgres (not the spool), per shard."""
    return f"{_PREFIX}:tick:stored{_shard_suffix(shard, shards)}"


def tick_lock_key(shard: int = 0, shards: int = 1) -> str:
    """One tick (of each shard) at a time (token, PX)."""
    return f"{_PREFIX}:tick:lock{_shard_suffix(shard, shards)}"


def shards_finished_key(slot: int) -> str:
    """Counter: how many shards of this slot are done; the last one announces the slot."""
    return f"{_PREFIX}:tick:shards:{slot}"


def latest_key(shard: int = 0, shards: int = 1) -> str:
    """String: the latest readings of a shard's tickers, a table of columns (webapp.core.latest)."""
    return f"{_PREFIX}:latest{_shard_suffix(shard, shards)}"


def scan_table_key(shard: int = 0, shards: int = 1) -> str:
    """String: the scan table (every symbol's scanner state and metrics) of a shard."""
    return f"{_PREFIX}:scan:table{_shard_suffix(shard, shards)}"


def scan_list_key(name: str) -> str:
    """Sorted set: a ranked list, member ticker, score = -value (best first by ZRANGE)."""
    return f"{_PREFIX}:scan:list:{name}"


SCAN_ANNOUNCED_KEY = f"{_PREFIX}:scan:announced"  # JSON: the lists as last sent to scan rooms
# the scanner every second: a flag (with a TTL of a few seconds) while an evaluate process announces the
# lists, so the minute tick leaves the rooms to it; and each shard's ranked rows, a hash field per
# "<list>:<shard>:<shards>", for the holder of shard 0 to merge
SCAN_LIVE_KEY = f"{_PREFIX}:scan:live"
SCAN_LIVE_ROWS_KEY = f"{_PREFIX}:scan:live:rows"


def rvol_tickers_key(day: str) -> str:
    """JSON: the symbols (and session counts) of the volume profile built for ``day``."""
    return f"{_PREFIX}:rvol:{day}:tickers"


def rvol_minute_key(day: str, minute: int) -> str:
    """Bytes (float32 per symbol): average cumulative volume at this minute of the day."""
    return f"{_PREFIX}:rvol:{day}:{minute}"


SPOOL_KEY = f"{_PREFIX}:spool"  # list: ticks' rows waiting for Postgres (no TTL, bounded)
SPOOL_COUNT_KEY = f"{_PREFIX}:spool:count"  # string: how many entries SPOOL_KEY holds
SPOOL_LOST_KEY = f"{_PREFIX}:spool:lost"  # list: slots whose spooled rows were dropped (spool full)
LAST_TICK_KEY = f"{_PREFIX}:tick:last"  # JSON summary of the last tick that ran
FAULT_PAUSE_KEY = f"{_PREFIX}:fault:pause"  # FAULT_INJECTION only: seconds the next tick sleeps after commit
FAULT_PAUSED_KEY = f"{_PREFIX}:fault:paused"  # ... and the slot it is sleeping in, while it does
SCHEDULER_HEARTBEAT_KEY = f"{_PREFIX}:scheduler:heartbeat"
FINNHUB_BUDGET_KEY = f"{_PREFIX}:finnhub"  # namespace for the shared call budget


def provider_cooldown_key(provider: str) -> str:
    """String with a TTL: the provider asked us (429) to wait this long."""
    return f"{_PREFIX}:{provider}:cooldown"


# The stream process (jobs/stream.py, webapp/live/)
STREAM_LEADER_KEY = f"{_PREFIX}:stream:leader"  # the one process holding the provider connection (token, EX)
STREAM_STATUS_KEY = f"{_PREFIX}:stream:status"  # JSON with a TTL: the leader's connection state and counters
STREAM_CLOSED_KEY = f"{_PREFIX}:stream:closed"  # epoch second: bars ending at or before it are closed
STREAM_HALTS_KEY = f"{_PREFIX}:stream:halts"  # hash: ticker -> JSON halt status (alpaca statuses)


def stream_bars_key(end: int) -> str:
    """Hash: ticker -> the bar the stream closed for [end - TICK_SECONDS, end) (JSON)."""
    return f"{_PREFIX}:stream:bars:{end}"


def provisional_stream_key(shard: int, shards: int) -> str:
    """Redis Stream (MAXLEN-capped) per symbol shard (the tick's CRC-32 shards): each entry one flush
    of the stream leader, the provisional bar of every ticker of the shard that traded since the
    last (``tickers`` and ``cols``: :mod:`webapp.core.handoff`), for the alerts evaluated on the print
    and the scanner every second."""
    return f"{_PREFIX}:stream:provisional:{shards}:{shard}"


# The evaluate process (jobs/evaluate.py, webapp/evaluate/): alerts on the print, per symbol shard
EVALUATE_GROUP = "evaluate"  # the consumer group of every provisional stream
EVALUATORS_KEY = f"{_PREFIX}:evaluate:processes"  # hash: host id -> expiry (epoch ms): the live processes
EVALUATE_STATUS_PREFIX = f"{_PREFIX}:evaluate:status:"  # + host id: JSON with a TTL, its shards and lag


def evaluate_pushed_key(shard: int, shards: int) -> str:
    """String (1 day): the last stream entry whose batch's ``alert_event``s went out, set by the same
    script that pushes them, so a holder that died after pushing is never pushed for twice."""
    return f"{_PREFIX}:evaluate:pushed:{shards}:{shard}"


def evaluate_lease_key(shard: int, shards: int) -> str:
    """String (token, PX): the one evaluate process judging this shard's rules on the print now."""
    return f"{_PREFIX}:evaluate:lease:{shards}:{shard}"


def listeners_key(host_id: str) -> str:
    """Hash: ticker -> how many clients of one web process are in its room."""
    return f"{_PREFIX}:listeners:{host_id}"


def web_load_key(host_id: str) -> str:
    """JSON with a TTL: one web process's clients, capacity and refusals."""
    return f"{_PREFIX}:web:load:{host_id}"


LISTENER_HOSTS_KEY = f"{_PREFIX}:listeners:hosts"  # zset: web process id -> expiry (epoch)
LISTENERS_PREFIX = listeners_key("")

# Socket.IO message-queue channel (python-socketio's default is "socketio";
# naming it here keeps web and worker on the same one).
SOCKETIO_CHANNEL = "socketio"

# RQ
TICK_JOB_ID = "tracker-tick"
RETENTION_JOB_ID = "tracker-retention"
PROFILE_JOB_ID = "tracker-volume-profile"


DELIVERY_WAKE_CHANNEL = f"{_PREFIX}:deliveries:wake"  # pub/sub: new deliveries are due (Postgres holds them)


def delivery_outcome_key(delivery_id: int) -> str:
    """String (JSON, 7-day TTL): an attempt that was sent but could not be recorded in Postgres."""
    return f"{_PREFIX}:deliveries:outcome:{delivery_id}"


def backfill_key(ticker: str) -> str:
    """Hash with a TTL: a ticker's backfill progress (state, done, total, message, updated)."""
    return f"{_PREFIX}:backfill:{ticker}"


def backfill_queue(queue_name: str) -> str:
    """The RQ queue of backfill jobs: the worker takes it after the tick queue, so a tick never waits
    behind a queue of them."""
    return f"{queue_name}-backfill"


def backfill_job_id(ticker: str) -> str:
    """RQ ids allow letters, digits, _ and -; a ticker has no _, so BRK.B -> BRK_B stays unique."""
    return f"tracker-backfill-{ticker.replace('.', '_')}"

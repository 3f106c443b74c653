"""The token-checked Redis scripts every lock and lease here uses (the tick lock, the stream leader,
the evaluate processes' shard leases): only the holder whose token is stored renews or releases, so
a holder whose lock lapsed and passed to another can never extend or delete the other's."""
from __future__ import annotations

RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

"""A tracker store on Redis (redis-py), for servers that share their conversations.

Layout, under a key prefix (``coreactors`` unless configured):

* ``{prefix}:events:{sender_id}``: a list with one element per write still reachable: a turn's
  events as one JSON array (as the SQLite store keeps a row per write).
* ``{prefix}:meta:{sender_id}``: a hash with ``version``, the number of writes ever made to the
  conversation, and ``fence``, the newest fencing token seen (decimal text, compared exactly
  however large). The list holds the writes after ``base = version - LLEN``: a replace empties
  the list and pushes its one element, so the writes before it are gone and a reader whose
  version is at or before ``base`` gets everything again (``Since.whole``), as does a reader
  ahead of ``version`` (Redis lost data: flushed, or restarted without persistence).
* ``{prefix}:conversations``: the sender ids in first-seen order, a sorted set scored by the
  counter ``{prefix}:conversation_counter``.

A conversation written before the hash existed (its list alone) still loads: its version is
its list's length, its token 0; its first write (or a read with a token) makes the hash. The
list is what makes a conversation known: a hash alone does not (its list lost by itself, or
a hash with ``fence`` only, below).

A read with a token of a conversation nobody has written yet records the token too, in a hash
with ``fence`` only, so that the first write of an older lease holder is refused as any later
one is: otherwise a holder that found nothing and then lost its lease could still make the
conversation's first turn under the newer holder, which would write on top of a turn it never
read. The conversation stays unknown (``load_since`` None, not in ``conversation_ids``) until
its first write, which gives it its first-seen place. Nobody may ever write it, so that hash
expires a day after the last such read (``record_exp`` if longer); its first write makes it
the conversation's hash, which expires with the list (``record_exp``) or never.

``load_since``, ``append`` and ``replace`` are each one Lua script, so each is atomic and one
round trip: a read with a token raises the conversation's token together with the read, and a
write checks the token, pushes, counts the version, raises the token, gives a new
conversation its first-seen place and starts the expiry again, or does none of it. A write
whose token is older than the conversation's is refused with ``StaleLease`` (the writer lost
its lease to a newer holder, which has read the conversation since): the script reports it
rather than failing, so it is not mistaken for Redis failing.

``record_exp`` (seconds, Rasa's key) makes a conversation (its list and its hash) expire that
long after its last write. ``conversation_ids`` leaves out the conversations that have expired.

Every other failure of Redis becomes ``StoreError``: unreachable, timed out, refused, out of
memory, or a corrupt element. The server answers 503 for the turns that needed the store.
redis-py connects again on the next call, so the server recovers by itself when Redis is back.

Writes go through the store's writer thread (``coreactors.stores.writer``): the writes queued
while one round trip was under way go to Redis together, in one pipeline, so an actor never
waits for Redis and many turns share a round trip. Reads are made on the calling thread.
"""

import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from coreactors.stores.base import (
    Done, Since, StaleLease, StoreError, VersionedTrackerStore, WriteChain, check_fence,
    check_sender_id, check_version, events_of_rows, store_failure, write_row)
from coreactors.stores.lock import Lease
from coreactors.stores.redis_link import RedisLink, Script
from coreactors.stores.writer import APPEND, REPLACE, THEN, BatchWriter, Write

DEFAULT_PREFIX = "coreactors"

# Tokens are kept and compared as decimal text (without sign or leading zeros, the only form
# they are written in): Lua's numbers are doubles, exact only up to 2**53. Text of equal length
# is compared 15 digits at a time, which doubles hold exactly (Lua's own comparison of strings
# follows the locale Redis runs in).
_OLDER = """
local function older(a, b)
  if #a ~= #b then return #a < #b end
  for i = 1, #a, 15 do
    local x, y = tonumber(string.sub(a, i, i + 14)), tonumber(string.sub(b, i, i + 14))
    if x ~= y then return x < y end
  end
  return false
end
"""

# How long the hash that a read with a token makes for a conversation nobody has written lasts
# (seconds; record_exp instead when longer): its token must outlive the lease holders that
# found nothing, without keeping a hash forever for every sender that never got written.
UNWRITTEN_FENCE_EXPIRY = 86400

# KEYS: events list, meta hash; ARGV: the reader's version, its token or '', the expiry of a
# hash with only a token (seconds). Returns nil for an unknown conversation, else {version,
# whole (0/1), rows}.
_LOAD = _OLDER + """
local length = redis.call('LLEN', KEYS[1])
if length == 0 then
  -- Unknown. Its token is still recorded (the first write of an older holder is refused), in
  -- the hash alone, which does not make it known; a hash without a version (nothing written
  -- since it was made) lasts ARGV[3] seconds from this read.
  if ARGV[2] ~= '' then
    local meta = redis.call('HMGET', KEYS[2], 'version', 'fence')
    if older(meta[2] or '0', ARGV[2]) then
      redis.call('HSET', KEYS[2], 'fence', ARGV[2])
    end
    if not meta[1] then
      redis.call('EXPIRE', KEYS[2], ARGV[3])
    end
  end
  return false
end
local meta = redis.call('HMGET', KEYS[2], 'version', 'fence')
if ARGV[2] ~= '' and older(meta[2] or '0', ARGV[2]) then
  redis.call('HSET', KEYS[2], 'fence', ARGV[2])
  if not meta[1] and not meta[2] then
    -- The hash is new (a conversation of the earlier layout): it goes when the list goes.
    local ttl = redis.call('PTTL', KEYS[1])
    if ttl > 0 then
      redis.call('PEXPIRE', KEYS[2], ttl)
    end
  end
end
local version = tonumber(meta[1]) or length
local base = version - length
local since = tonumber(ARGV[1])
if since <= base or since > version then
  return {version, 1, redis.call('LRANGE', KEYS[1], 0, -1)}
end
return {version, 0, redis.call('LRANGE', KEYS[1], since - base, -1)}
"""

# A wave of writes (the writer thread's: one per conversation) in one script, one command.
# KEYS: the conversations zset, its counter, then each write's events list, meta hash, and the
# lock store's hash and queue of the conversation. ARGV: the expiry in seconds or 0, then each
# write's kind (a: append, r: replace), sender id, token or '', row, and the ticket to give
# back once written or '' (see give_back_leases). Answers, for each write, {version} once
# written, or {-1, the conversation's token} when the writer's token is older (nothing
# written, nothing given back).
_WAVE = _OLDER + """
local expiry = tonumber(ARGV[1])

local function write(kind, events, meta, sender, token, row)
  local fence = redis.call('HGET', meta, 'fence') or '0'
  if token ~= '' and older(token, fence) then
    return {-1, fence}
  end
  if redis.call('HEXISTS', meta, 'version') == 0 then
    -- New, or of the earlier layout (one element per write, no hash): its writes so far.
    redis.call('HSET', meta, 'version', redis.call('LLEN', events))
    if expiry == 0 then
      -- A hash a read made (a read with a token of an unwritten conversation, or of one of
      -- the earlier layout) may have an expiry; a conversation without record_exp keeps it.
      redis.call('PERSIST', meta)
    end
  end
  if kind == 'r' then
    redis.call('DEL', events)
  end
  redis.call('RPUSH', events, row)
  local version = redis.call('HINCRBY', meta, 'version', 1)
  if token ~= '' and older(fence, token) then
    redis.call('HSET', meta, 'fence', token)
  end
  if redis.call('ZSCORE', KEYS[1], sender) == false then
    redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[2]), sender)
  end
  if expiry > 0 then
    redis.call('EXPIRE', events, expiry)
    redis.call('EXPIRE', meta, expiry)
  end
  return {version}
end

local results = {}
for i = 1, (#ARGV - 1) / 5 do
  local at, keys = 5 * i - 3, 4 * i - 1
  results[i] = write(ARGV[at], KEYS[keys], KEYS[keys + 1], ARGV[at + 1], ARGV[at + 2],
                     ARGV[at + 3])
  local ticket = ARGV[at + 4]
  if ticket ~= '' and results[i][1] ~= -1 then
    redis.call('ZREM', KEYS[keys + 3], ticket)
    redis.call('HDEL', KEYS[keys + 2], 'e:' .. ticket)
  end
end
return results
"""

# What a call to Redis may raise: its own errors, and a sender id it cannot encode.
_FAILURES = (redis.RedisError, UnicodeError)


class RedisTrackerStore(VersionedTrackerStore):
    """Conversations in Redis; see the module docstring for the layout and the failures."""

    def __init__(self, client: "redis.Redis", prefix: str = DEFAULT_PREFIX,
                 record_exp: Optional[float] = None, where: str = "Redis",
                 writer_setup: Optional[Callable[[], None]] = None) -> None:
        """``writer_setup`` runs first on the store's writer thread."""
        self._client = client
        self._prefix = prefix
        self._expiry = int(record_exp) if record_exp else 0
        self._where = where
        self._load_script = client.register_script(_LOAD)
        self._wave_script = Script(_WAVE)
        self._link = RedisLink(client)  # the writer thread's own connection
        self._closed = False
        self._lock = threading.Lock()
        self._writer = BatchWriter(self._write_wave, where, writer_setup)
        self._lease_keys: Optional[Callable[[str], Tuple[str, str]]] = None

    @classmethod
    def from_config(cls, host: str = "localhost", port: int = 6379, db: int = 0,
                    password: Optional[str] = None, record_exp: Optional[float] = None,
                    prefix: str = DEFAULT_PREFIX, timeout: float = 5.0,
                    writer_setup: Optional[Callable[[], None]] = None) -> "RedisTrackerStore":
        """Rasa's keys: ``url`` (a host name, or a ``redis://`` URL), ``port``, ``db``,
        ``password``, ``record_exp``. Nothing is connected until the first call."""
        # One retry at once: it reconnects a pooled connection Redis dropped (a restart, say),
        # and a Redis that is down fails the call at once rather than after backing off for
        # seconds while the turn waits.
        settings = dict(socket_timeout=timeout, socket_connect_timeout=timeout,
                        retry=Retry(NoBackoff(), 1))
        if "://" in host:
            client = redis.Redis.from_url(host, **settings)
            where = "Redis at {}".format(host.split("@")[-1])  # no password in messages
        else:
            client = redis.Redis(host=host, port=port, db=db, password=password, **settings)
            where = "Redis at {}:{}/{}".format(host, port, db)
        return cls(client, prefix, record_exp, where, writer_setup)

    # ----------------------------------------------------------------- keys and failures

    def _events_key(self, sender_id: str) -> str:
        return "{}:events:{}".format(self._prefix, sender_id)

    def _meta_key(self, sender_id: str) -> str:
        return "{}:meta:{}".format(self._prefix, sender_id)

    def _conversations_key(self) -> str:
        return "{}:conversations".format(self._prefix)

    def _counter_key(self) -> str:
        return "{}:conversation_counter".format(self._prefix)

    def _failure(self, what: str, sender_id: Optional[str], error: Any) -> StoreError:
        return store_failure(self._where, what, sender_id, error)

    def _check_open(self, what: str, sender_id: Optional[str]) -> None:
        if self._closed:
            raise self._failure(what, sender_id, "the store is closed")

    # ----------------------------------------------------------------- the contract

    def load_since(self, sender_id: str, version: int, fence: Optional[int] = None
                   ) -> Optional[Since]:
        check_sender_id(sender_id)
        check_version(sender_id, version)
        check_fence(sender_id, fence)
        self._check_open("load", sender_id)
        try:
            found = self._load_script(
                keys=[self._events_key(sender_id), self._meta_key(sender_id)],
                args=[version, "" if fence is None else str(fence),
                      max(self._expiry, UNWRITTEN_FENCE_EXPIRY)])
        except _FAILURES as error:
            raise self._failure("load", sender_id, error) from error
        if found is None:
            return None
        now, whole, rows = found
        try:
            return Since(events_of_rows(rows), int(now), bool(whole))
        except ValueError as error:
            raise self._failure("load", sender_id,
                                "an element is not JSON ({})".format(error)) from error

    def append(self, sender_id: str, events: List[Dict[str, Any]],
               fence: Optional[int] = None) -> None:
        """Appends and returns once written (sharing the round trip with what is queued)."""
        self._writer.submit(self._write(APPEND, sender_id, events, fence)).wait()

    def append_then(self, sender_id: str, events: List[Dict[str, Any]], done: Done,
                    chain: Optional[WriteChain] = None, fence: Optional[int] = None,
                    lease: Optional[Lease] = None) -> None:
        """Queues the append for the writer thread and returns; ``done`` is called from that
        thread once it is written (or has failed). ``lease`` (the request's) is given back in
        the same script when ``give_back_leases`` was called, and marked so."""
        write = self._write(APPEND, sender_id, events, fence, done, chain)
        if self._lease_keys is not None:
            write.lease = lease
        self._writer.submit(write)

    @property
    def client(self) -> "redis.Redis":
        """The redis-py client (to tell whether another store talks to the same Redis)."""
        return self._client

    def give_back_leases(self, lease_keys: Callable[[str], Tuple[str, str]]) -> None:
        """From now on an append made under a lease gives the lease back with its write, in
        one script: the lock store (``lease_keys`` names a conversation's lock hash and queue)
        is on this very Redis, so the lock desk need not send it back itself."""
        self._lease_keys = lease_keys

    def then(self, sender_id: str, done: Done, chain: WriteChain) -> None:
        self._writer.submit(Write(sender_id, THEN, done=done, chain=chain))

    def replace(self, sender_id: str, events: List[Dict[str, Any]],
                fence: Optional[int] = None) -> None:
        """Replaces the conversation once the writes queued before are done; waits for it."""
        self._writer.submit(self._write(REPLACE, sender_id, events, fence)).wait()

    def _write(self, kind: str, sender_id: str, events: List[Dict[str, Any]],
               fence: Optional[int], done: Optional[Done] = None,
               chain: Optional[WriteChain] = None) -> Write:
        """The write, its events encoded here (a bad one is refused without a write)."""
        try:
            check_sender_id(sender_id)
            check_fence(sender_id, fence)
            row = write_row(sender_id, events)
        except StoreError as error:
            return Write(str(sender_id), kind, done=done, chain=chain, error=error)
        return Write(sender_id, kind, row, fence, done, chain)

    def _write_wave(self, wave: List[Write]) -> None:
        """The writer thread: the wave's writes in one script."""
        keys = [self._conversations_key(), self._counter_key()]
        args: List[Any] = [self._expiry]
        for write in wave:
            events_key = self._events_key(write.sender_id)
            keys.append(events_key)
            keys.append(self._meta_key(write.sender_id))
            lease = write.lease
            if lease is not None and self._lease_keys is not None:
                keys.extend(self._lease_keys(write.sender_id))
            else:
                keys.extend((events_key, events_key))  # named, not touched
            args.append("a" if write.kind == APPEND else "r")
            args.append(write.sender_id)
            args.append("" if write.fence is None else str(write.fence))
            args.append(write.row)
            args.append("" if lease is None else str(lease.ticket))
        try:
            results = self._link.run_script(self._wave_script, keys, args)
        except _FAILURES as error:
            raise self._failure("write to", None, error) from error
        for write, result in zip(wave, results):
            if result[0] != -1 and write.lease is not None:
                write.lease.given_back = True
            if result[0] == -1:
                write.error = StaleLease(write.sender_id, write.fence,  # type: ignore[arg-type]
                                         int(result[1]))

    def conversation_ids(self) -> List[str]:
        self._check_open("list conversations", None)
        try:
            ids = [raw.decode("utf-8", "surrogatepass")
                   for raw in self._client.zrange(self._conversations_key(), 0, -1)]
            if not self._expiry or not ids:
                return ids
            with self._client.pipeline(transaction=False) as pipe:
                for sender_id in ids:
                    pipe.exists(self._events_key(sender_id))
                alive = pipe.execute()
        except _FAILURES as error:
            raise self._failure("list conversations", None, error) from error
        return [sender_id for sender_id, exists in zip(ids, alive) if exists]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._writer.close()  # what is queued is written first
        self._link.close()
        try:
            self._client.close()
        except redis.RedisError:
            pass  # nothing of ours is left in it

    def __repr__(self) -> str:
        return "RedisTrackerStore({!r}, prefix={!r})".format(self._where, self._prefix)


__all__ = ["DEFAULT_PREFIX", "RedisTrackerStore"]

"""A tracker store on Redis (redis-py), for servers that share their conversations.

Each conversation is an append-only Redis list under ``{prefix}:events:{sender_id}``. Each
element is one write: a turn's events as one JSON array (as the SQLite store keeps a row per
write). The list's length is the conversation's version: ``load_since`` returns the events
written after a version a reader already has. The sender ids, in first-seen order, are a sorted
set ``{prefix}:conversations`` scored by a counter. An append is one Lua script, so its list
push and its first-seen entry happen together or not at all, in one round trip; so is a
replace (delete and write).

``record_exp`` (seconds, Rasa's key) makes a conversation expire that long after its last
write. ``conversation_ids`` leaves out the conversations that have expired.

Every failure of Redis becomes ``StoreError``: unreachable, timed out, refused, out of memory,
or a corrupt element. The server answers 503 for the turns that needed the store. redis-py
connects again on the next call, so the server recovers by itself when Redis is back. Writes
are made on the calling thread (a round trip on the same machine costs about what a SQLite
commit does); ``append_then`` is the contract's synchronous default.
"""

import threading
from typing import Any, Dict, List, Optional, Tuple

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from coreactors.stores.base import (
    StoreError, VersionedTrackerStore, check_sender_id, events_of_rows, store_failure,
    write_row)

DEFAULT_PREFIX = "coreactors"

# After a write (KEYS: events list, conversations zset, counter; ARGV: sender id, expiry in
# seconds or 0): a new conversation gets its first-seen place, and the expiry starts again.
_AFTER_WRITE = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
if tonumber(ARGV[2]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
"""
# ARGV[3...]: the rows to append.
_APPEND = "local length = redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))\n" + _AFTER_WRITE + \
    "return length\n"
# ARGV[3]: the one row that replaces all.
_REPLACE = "redis.call('DEL', KEYS[1])\nredis.call('RPUSH', KEYS[1], ARGV[3])\n" + \
    _AFTER_WRITE + "return 1\n"

# What a call to Redis may raise: its own errors, and a sender id it cannot encode.
_FAILURES = (redis.RedisError, UnicodeError)


class RedisTrackerStore(VersionedTrackerStore):
    """Conversations in Redis; see the module docstring for the layout and the failures."""

    def __init__(self, client: "redis.Redis", prefix: str = DEFAULT_PREFIX,
                 record_exp: Optional[float] = None, where: str = "Redis") -> None:
        self._client = client
        self._prefix = prefix
        self._expiry = int(record_exp) if record_exp else 0
        self._where = where
        self._append_script = client.register_script(_APPEND)
        self._replace_script = client.register_script(_REPLACE)
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, host: str = "localhost", port: int = 6379, db: int = 0,
                    password: Optional[str] = None, record_exp: Optional[float] = None,
                    prefix: str = DEFAULT_PREFIX, timeout: float = 5.0) -> "RedisTrackerStore":
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
        return cls(client, prefix, record_exp, where)

    # ----------------------------------------------------------------- keys and failures

    def _events_key(self, sender_id: str) -> str:
        return "{}:events:{}".format(self._prefix, sender_id)

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

    def load_since(self, sender_id: str, version: int
                   ) -> Optional[Tuple[List[Dict[str, Any]], int]]:
        check_sender_id(sender_id)
        self._check_open("load", sender_id)
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.llen(self._events_key(sender_id))
                pipe.lrange(self._events_key(sender_id), version, -1)
                length, rows = pipe.execute()
        except _FAILURES as error:
            raise self._failure("load", sender_id, error) from error
        if not length:
            return None
        try:
            return events_of_rows(rows), int(length)
        except ValueError as error:
            raise self._failure("load", sender_id,
                                "an element is not JSON ({})".format(error)) from error

    def append(self, sender_id: str, events: List[Dict[str, Any]]) -> None:
        self._write(self._append_script, "append to", sender_id, events)

    def replace(self, sender_id: str, events: List[Dict[str, Any]]) -> None:
        self._write(self._replace_script, "replace", sender_id, events)

    def _write(self, script: Any, what: str, sender_id: str,
               events: List[Dict[str, Any]]) -> None:
        check_sender_id(sender_id)
        row = write_row(sender_id, events)
        self._check_open(what, sender_id)
        try:
            script(keys=[self._events_key(sender_id), self._conversations_key(),
                         self._counter_key()],
                   args=[sender_id, self._expiry, row])
        except _FAILURES as error:
            raise self._failure(what, sender_id, error) from error

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
        try:
            self._client.close()
        except redis.RedisError:
            pass  # nothing of ours is left in it

    def __repr__(self) -> str:
        return "RedisTrackerStore({!r}, prefix={!r})".format(self._where, self._prefix)


__all__ = ["DEFAULT_PREFIX", "RedisTrackerStore"]

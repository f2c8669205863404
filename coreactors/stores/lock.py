"""The lock store on Redis (redis-py): per-conversation tickets, leases and fencing tokens, so
several server processes can serve one conversation without interleaving its turns.

Every request about a conversation takes a ticket when it reaches a process; tickets are numbers
that grow with every request of the conversation, so they keep the order in which requests
arrived at the cluster. The lowest live ticket of a conversation holds its lease: its request may
read and change the conversation, and the others wait. The ticket's number is also the lease's
fencing token: the tracker stores refuse a write whose token is older than the newest one they
have seen (``coreactors.stores.base.StaleLease``), so a process that stalled past its lease
cannot write once another has taken the conversation over.

A ticket lives ``lifetime`` seconds unless its process renews it: a process that dies, or stops
(SIGSTOP, a swapped-out machine), loses its tickets and leases that long after its last renewal,
and the next tickets go on. Time is Redis's (``TIME``), so the processes' clocks need not agree.

Per conversation, two keys: the hash ``{prefix}:lock:{sender}`` (``ticket``: the last ticket
given; ``holder``: who took the lease last; ``e:<ticket>``: when each live ticket expires, in
ms) and the sorted set ``{prefix}:queue:{sender}`` (the live tickets). Both expire after an hour
without requests; a conversation's first ticket is the time in ms times 1,000, so tickets given
after the keys expired (or Redis lost them) are still newer than any the stores have seen.

A batch of operations (``run``) is one Lua script, one command and one round trip. Every
failure of Redis becomes ``StoreError``.
"""

import threading
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple, Union

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from coreactors.stores.base import StoreError, store_failure
from coreactors.stores.redis_link import RedisLink, Script

DEFAULT_PREFIX = "coreactors"
DEFAULT_LIFETIME = 10.0
# How long a request waits for its lease before it is answered 503 (seconds).
DEFAULT_WAIT_TIMEOUT = 30.0
# The lock keys of a conversation nobody asked about for this long go (seconds).
IDLE_EXPIRY = 3600

# One script runs a whole batch of operations (one command, however many: the client's cost
# per command is what a busy server feels). KEYS: each operation's hash and queue, in turn.
# ARGV: the lifetime (ms), the idle expiry (s), then each operation's kind (c: claim, r: renew,
# x: release), holder and ticket (0: a claim takes a new one). A claim answers {ticket, state,
# previous holder}: state 1 the lease is the ticket's, 0 it waits, -1 the ticket has expired
# (its process stopped renewing it) and is no more. A renew answers 1 while the ticket lives,
# 0 once it has expired; a release answers 1.
_BATCH = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lifetime, idle = tonumber(ARGV[1]), ARGV[2]

-- The expired tickets at the front of the queue go (a dead process's tickets stop blocking
-- the ones behind them); expired ones further back go once they reach the front.
local function head(hash, queue)
  while true do
    local first = redis.call('ZRANGE', queue, 0, 0)[1]
    if first == nil then return nil end
    local expiry = tonumber(redis.call('HGET', hash, 'e:' .. first))
    if expiry ~= nil and expiry > now then return first end
    redis.call('ZREM', queue, first)
    redis.call('HDEL', hash, 'e:' .. first)
  end
end

local function keep(hash, queue, ticket)
  redis.call('HSET', hash, 'e:' .. ticket, now + lifetime)
  redis.call('EXPIRE', hash, idle)
  redis.call('EXPIRE', queue, idle)
end

local function claim(hash, queue, holder, ticket)
  if ticket == '0' then
    if redis.call('HEXISTS', hash, 'ticket') == 0 then
      redis.call('HSET', hash, 'ticket', string.format('%.0f', now * 1000))
    end
    -- '%.0f': tostring would write a ticket this large in exponent notation
    ticket = string.format('%.0f', redis.call('HINCRBY', hash, 'ticket', 1))
    redis.call('ZADD', queue, ticket, ticket)
  elseif redis.call('ZSCORE', queue, ticket) == false then
    return {ticket, -1, ''}
  end
  keep(hash, queue, ticket)
  if head(hash, queue) ~= ticket then
    return {ticket, 0, ''}
  end
  local previous = redis.call('HGET', hash, 'holder') or ''
  redis.call('HSET', hash, 'holder', holder)
  return {ticket, 1, previous}
end

local results = {}
for i = 1, (#ARGV - 2) / 3 do
  local kind, holder, ticket = ARGV[3 * i], ARGV[3 * i + 1], ARGV[3 * i + 2]
  local hash, queue = KEYS[2 * i - 1], KEYS[2 * i]
  if kind == 'c' then
    results[i] = claim(hash, queue, holder, ticket)
  elseif kind == 'r' then
    if redis.call('ZSCORE', queue, ticket) == false then
      results[i] = 0
    else
      keep(hash, queue, ticket)
      results[i] = 1
    end
  else
    redis.call('ZREM', queue, ticket)
    redis.call('HDEL', hash, 'e:' .. ticket)
    results[i] = 1
  end
end
return results
"""

GRANTED, WAITING, EXPIRED = 1, 0, -1


@dataclass
class Lease:
    """A conversation's lease, held by one request: ``ticket`` is its fencing token;
    ``previous`` is the holder that had the lease before (``holder`` itself when nobody else
    has read or written the conversation since this holder's last lease). ``given_back`` is
    set by a tracker store that gave the lease back in the same script as the request's write
    (``RedisTrackerStore.give_back_leases``): the lock desk then has nothing left to send."""

    sender_id: str
    ticket: int
    holder: str
    previous: str
    given_back: bool = field(default=False, compare=False)

    @property
    def others_held_it(self) -> bool:
        """Whether another holder may have written since this holder last held the lease."""
        return self.previous != self.holder


@dataclass(frozen=True)
class Claim:
    """Take the lease for ``sender_id`` as ``holder``: with a new ticket (``ticket`` 0), or
    again with a ticket that waits."""

    sender_id: str
    holder: str
    ticket: int = 0


@dataclass(frozen=True)
class Renew:
    """Keep a ticket (waiting, or holding the lease) alive for another lifetime."""

    sender_id: str
    ticket: int


@dataclass(frozen=True)
class Release:
    """The ticket is done with: its lease (if it held it) goes to the next ticket."""

    sender_id: str
    ticket: int


Operation = Union[Claim, Renew, Release]
_KINDS = {Claim: "c", Renew: "r", Release: "x"}


@dataclass(frozen=True)
class Claimed:
    """What a Claim got: its ticket, GRANTED / WAITING / EXPIRED, and (when granted) the
    holder that took the lease before, '' if none did since the lock keys were made."""

    ticket: int
    state: int
    previous: str


class RedisLockStore:
    """Tickets, leases and fencing tokens in Redis; see the module docstring."""

    def __init__(self, client: "redis.Redis", prefix: str = DEFAULT_PREFIX,
                 lifetime: float = DEFAULT_LIFETIME, where: str = "Redis") -> None:
        if lifetime <= 0:
            raise ValueError("lock_store lifetime must be positive, got {!r}".format(lifetime))
        self._client = client
        self._prefix = prefix
        self.lifetime = float(lifetime)
        self._where = where
        self._batch = Script(_BATCH)
        # The desk's thread calls ``run`` on every turn: a connection of its own (the lock
        # keeps any other caller, a test say, from sharing it at the same moment).
        self._link = RedisLink(client)
        self._link_lock = threading.Lock()

    @classmethod
    def from_config(cls, host: str = "localhost", port: int = 6379, db: int = 0,
                    password: Optional[str] = None, prefix: str = DEFAULT_PREFIX,
                    lifetime: float = DEFAULT_LIFETIME, timeout: float = 5.0
                    ) -> "RedisLockStore":
        """Rasa 1.x's keys: ``url`` (a host name or a ``redis://`` URL), ``port``, ``db``,
        ``password``, ``key_prefix``; and ``lifetime`` (seconds)."""
        settings = dict(socket_timeout=timeout, socket_connect_timeout=timeout,
                        retry=Retry(NoBackoff(), 1))
        if "://" in host:
            client = redis.Redis.from_url(host, **settings)
            where = "Redis lock store at {}".format(host.split("@")[-1])
        else:
            client = redis.Redis(host=host, port=port, db=db, password=password, **settings)
            where = "Redis lock store at {}:{}/{}".format(host, port, db)
        return cls(client, prefix, lifetime, where)

    def run(self, operations: Sequence[Operation]) -> List[Any]:
        """Runs the operations in order, in one round trip: a ``Claimed`` for each Claim, a
        bool (still alive) for each Renew, None for each Release. Raises StoreError when Redis
        fails (then none, some or all of them were done)."""
        if not operations:
            return []
        keys: List[str] = []
        args: List[Any] = [int(self.lifetime * 1000), IDLE_EXPIRY]
        for operation in operations:
            keys.append(self._hash_key(operation.sender_id))
            keys.append(self._queue_key(operation.sender_id))
            args.append(_KINDS[type(operation)])
            args.append(operation.holder if isinstance(operation, Claim) else "")
            args.append(operation.ticket)
        try:
            with self._link_lock:
                results = self._link.run_script(self._batch, keys, args)
        except (redis.RedisError, UnicodeError) as error:
            raise store_failure(self._where, "take or give back leases", None, error) from error
        return [self._result(operation, result)
                for operation, result in zip(operations, results)]

    @staticmethod
    def _result(operation: Operation, result: Any) -> Any:
        if isinstance(operation, Claim):
            ticket, state, previous = result
            return Claimed(int(ticket), int(state), previous.decode("utf-8", "surrogatepass"))
        if isinstance(operation, Renew):
            return bool(result)
        return None

    def lease_keys(self, sender_id: str) -> Tuple[str, str]:
        """The conversation's lock keys (its hash and its queue), for a tracker store on the
        same Redis that gives leases back with its writes."""
        return self._hash_key(sender_id), self._queue_key(sender_id)

    def shares_server_with(self, client: "redis.Redis") -> bool:
        """Whether ``client`` talks to the very Redis (host, port, database) this store does."""
        def where(of: "redis.Redis") -> Tuple[Any, ...]:
            settings = of.connection_pool.connection_kwargs
            return (settings.get("host"), settings.get("port"), settings.get("db", 0),
                    settings.get("path"))
        return where(client) == where(self._client)

    def _hash_key(self, sender_id: str) -> str:
        return "{}:lock:{}".format(self._prefix, sender_id)

    def _queue_key(self, sender_id: str) -> str:
        return "{}:queue:{}".format(self._prefix, sender_id)

    def close(self) -> None:
        with self._link_lock:
            self._link.close()
        try:
            self._client.close()
        except redis.RedisError:
            pass

    def __repr__(self) -> str:
        return "RedisLockStore({!r}, prefix={!r})".format(self._where, self._prefix)


__all__ = ["Claim", "Claimed", "Lease", "DEFAULT_LIFETIME", "DEFAULT_WAIT_TIMEOUT", "DEFAULT_PREFIX", "EXPIRED", "GRANTED",
           "Operation", "RedisLockStore", "Release", "Renew", "StoreError", "WAITING"]

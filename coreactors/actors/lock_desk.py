"""The lock desk: takes each request's ticket and lease from the lock store, off the reactor.

With a lock store (several processes on one conversation store), a request about a
conversation may reach its actor only once it holds the conversation's lease. The Supervisor
hands each request to the desk as it arrives (``claim``, from the reactor thread, in arrival
order); the desk's thread takes the tickets in that order and, once a ticket holds the lease,
calls ``granted(lease)``, which sends the request to the actor with its ``Lease``. When the
actor has answered (and its events are stored), the Supervisor gives the lease back
(``release``) and the next ticket may go.

The desk batches: everything that arrived since its last round (new tickets, leases given
back, tickets that wait, renewals) goes to the lock store in one round trip, so under load a
turn's two lock operations cost a fraction of a round trip each. A ticket that waits for a
lease held in another process is asked again after 2 ms, then less often (up to every 20 ms);
one that waits for a lease of this process is asked again as soon as that lease is given back.
The desk renews its tickets (waiting or holding) every third of their lifetime, so they expire
only when the process dies or stops. A ticket that waits longer than ``wait_timeout`` gives up:
its request is answered 503.

The desk's thread only talks to the lock store and calls the callbacks it was given; it touches
no actor's state and no Twisted API.
"""

import collections
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from twisted.logger import Logger

from coreactors.actors.interface import ConversationError, StoreUnavailable
from coreactors.log_observers import levelled
from coreactors.stores.base import StoreError
from coreactors.stores.lock import (
    DEFAULT_WAIT_TIMEOUT, EXPIRED, GRANTED, Claim, Lease, Operation, RedisLockStore, Release,
    Renew)

log = Logger(observer=levelled)

FIRST_POLL = 0.002
LAST_POLL = 0.02


Granted = Callable[[Lease], None]
Refused = Callable[[BaseException], None]


class _Pending:
    """A request waiting for its lease (thread-owned by the desk once handed over)."""

    __slots__ = ("sender_id", "holder", "granted", "refused", "ticket", "since")

    def __init__(self, sender_id: str, holder: str, granted: Granted, refused: Refused,
                 since: float) -> None:
        self.sender_id = sender_id
        self.holder = holder
        self.granted = granted
        self.refused = refused
        self.ticket = 0
        self.since = since


class LockDesk:
    """Takes tickets and leases for this process's requests; see the module docstring."""

    def __init__(self, locks: RedisLockStore, wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.locks = locks
        self.wait_timeout = wait_timeout
        self._clock = clock
        self._condition = threading.Condition()
        self._incoming: List[Any] = []  # _Pending (a new claim) or Lease (given back)
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        # Owned by the desk's thread:
        self._waiting: Dict[str, Deque[_Pending]] = {}
        self._retry_at: Dict[str, float] = {}
        self._backoff: Dict[str, float] = {}
        self._held: Dict[Tuple[str, int], Lease] = {}
        self._unreleased: List[Release] = []
        self._renew_at = 0.0
        self.rounds = 0  # round trips to the lock store so far (for metrics)
        self.operations = 0  # operations they carried

    # ----------------------------------------------------------------- any thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="coreactors-lock-desk",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Refuses what still waits, gives back what is held, and ends the thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def claim(self, sender_id: str, holder: str, granted: Granted, refused: Refused) -> None:
        """Takes a ticket for a request about ``sender_id``; ``granted(lease)`` once it holds
        the lease, or ``refused(error)`` (the desk's thread calls either, exactly once)."""
        pending = _Pending(sender_id, holder, granted, refused, self._clock())
        with self._condition:
            if self._stopping:
                stopped = True
            else:
                stopped = False
                self._incoming.append(pending)
                self._condition.notify()
        if stopped:
            refused(ConversationError("The server is shutting down.", 503, "ShuttingDown"))

    def release(self, lease: Lease) -> None:
        """Gives a lease back: its request is answered."""
        with self._condition:
            self._incoming.append(lease)
            self._condition.notify()

    def waiting(self) -> int:
        """How many requests wait for a lease (for tests and metrics; approximate)."""
        return sum(len(queue) for queue in list(self._waiting.values()))

    # ----------------------------------------------------------------- the desk's thread

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._incoming and not self._stopping:
                    delay = self._next_due() - self._clock()
                    if delay <= 0:
                        break
                    self._condition.wait(min(delay, 1.0))
                batch, self._incoming = self._incoming, []
                stopping = self._stopping
            if stopping:
                self._close(batch)
                return
            try:
                self._round(batch)
            except Exception:  # the desk must go on; the requests of this round are answered
                log.failure("The lock desk failed a round.")

    def _next_due(self) -> float:
        due = float("inf")
        if self._retry_at:
            due = min(self._retry_at.values())
        if self._waiting or self._held or self._unreleased:
            due = min(due, self._renew_at)
        return due

    def _round(self, batch: List[Any]) -> None:
        now = self._clock()
        operations: List[Operation] = []
        handlers: List[Any] = []

        def add(operation: Operation, handler: Any = None) -> None:
            operations.append(operation)
            handlers.append(handler)

        for release in self._unreleased:
            add(release)
        self._unreleased = []
        given_back = set()
        for item in batch:
            if isinstance(item, Lease):
                self._held.pop((item.sender_id, item.ticket), None)
                if not item.given_back:  # else the turn's write gave it back already
                    add(Release(item.sender_id, item.ticket))
                given_back.add(item.sender_id)
            else:
                add(Claim(item.sender_id, item.holder), item)
        for sender_id, queue in list(self._waiting.items()):
            for pending in [p for p in queue if now - p.since > self.wait_timeout]:
                queue.remove(pending)
                add(Release(sender_id, pending.ticket))
                self._call(pending.refused, ConversationError(
                    "Conversation {!r} is busy: its lease did not come free within {:g} s; "
                    "try again.".format(sender_id, self.wait_timeout), 503,
                    "ConversationBusy"))
            if not queue:
                self._forget(sender_id)
                continue
            if sender_id in given_back or self._retry_at[sender_id] <= now:
                head = queue[0]
                add(Claim(sender_id, head.holder, head.ticket), head)
        if now >= self._renew_at:
            self._renew_at = now + self.locks.lifetime / 3.0
            for sender_id, ticket in self._held:
                add(Renew(sender_id, ticket))
            for queue in self._waiting.values():
                for pending in list(queue)[1:]:  # the heads are claimed again above or soon
                    add(Renew(pending.sender_id, pending.ticket), pending)
        self.rounds += 1
        self.operations += len(operations)
        try:
            results = self.locks.run(operations)
        except StoreError as error:
            self._failed(operations, handlers, error)
            return
        for operation, handler, result in zip(operations, handlers, results):
            if handler is None:
                continue
            if isinstance(operation, Renew):
                if not result:
                    self._expired(handler)
            elif result.state == GRANTED:
                self._granted(handler, Lease(handler.sender_id, result.ticket, handler.holder,
                                             result.previous))
            elif result.state == EXPIRED:
                self._expired(handler)
            else:
                self._waits(handler, result.ticket, now)

    def _granted(self, pending: _Pending, lease: Lease) -> None:
        queue = self._waiting.get(pending.sender_id)
        if queue is not None and pending in queue:
            queue.remove(pending)
            if not queue:
                self._forget(pending.sender_id)
            else:
                self._retry_at[pending.sender_id] = float("inf")  # until this one gives back
        self._held[(lease.sender_id, lease.ticket)] = lease
        self._call(pending.granted, lease)

    def _waits(self, pending: _Pending, ticket: int, now: float) -> None:
        sender_id = pending.sender_id
        queue = self._waiting.get(sender_id)
        if pending.ticket == 0:
            pending.ticket = ticket
            if queue is None:
                queue = self._waiting[sender_id] = collections.deque()
                self._backoff[sender_id] = FIRST_POLL
            queue.append(pending)
        if any(key[0] == sender_id for key in self._held):
            # This process holds the lease: asked again when it is given back.
            self._retry_at[sender_id] = float("inf")
            return
        backoff = self._backoff.get(sender_id, FIRST_POLL)
        self._retry_at[sender_id] = now + backoff
        self._backoff[sender_id] = min(backoff * 2, LAST_POLL)

    def _expired(self, pending: _Pending) -> None:
        queue = self._waiting.get(pending.sender_id)
        if queue is not None and pending in queue:
            queue.remove(pending)
            if not queue:
                self._forget(pending.sender_id)
        self._call(pending.refused, ConversationError(
            "The request's ticket for conversation {!r} expired before it got the lease; "
            "try again.".format(pending.sender_id), 503, "LeaseExpired"))

    def _forget(self, sender_id: str) -> None:
        self._waiting.pop(sender_id, None)
        self._retry_at.pop(sender_id, None)
        self._backoff.pop(sender_id, None)

    def _failed(self, operations: List[Operation], handlers: List[Any],
                error: StoreError) -> None:
        """The lock store failed: every request of the round is answered 503 (its ticket, if
        it had one, expires by itself); the leases given back are given back again later."""
        unavailable = StoreUnavailable("The lock store failed: {}".format(error))
        refused = set()
        for operation, handler in zip(operations, handlers):
            if isinstance(operation, Release):
                self._unreleased.append(operation)
            elif handler is not None and id(handler) not in refused:
                refused.add(id(handler))
                queue = self._waiting.get(handler.sender_id)
                if queue is not None and handler in queue:
                    queue.remove(handler)
                    if not queue:
                        self._forget(handler.sender_id)
                self._call(handler.refused, unavailable)
        log.warn("{error}", error=unavailable.message)

    def _close(self, batch: List[Any]) -> None:
        stopped = ConversationError("The server is shutting down.", 503, "ShuttingDown")
        releases = list(self._unreleased)
        for item in batch:
            if isinstance(item, Lease):
                self._held.pop((item.sender_id, item.ticket), None)
                if not item.given_back:
                    releases.append(Release(item.sender_id, item.ticket))
            else:
                self._call(item.refused, stopped)
        for queue in self._waiting.values():
            for pending in queue:
                releases.append(Release(pending.sender_id, pending.ticket))
                self._call(pending.refused, stopped)
        releases.extend(Release(sender_id, ticket) for sender_id, ticket in self._held)
        self._waiting.clear()
        self._held.clear()
        try:
            self.locks.run(releases)
        except StoreError:
            pass  # the tickets expire by themselves

    @staticmethod
    def _call(callback: Callable[[Any], None], argument: Any) -> None:
        try:
            callback(argument)
        except Exception:
            log.failure("A lock desk callback failed.")


__all__ = ["DEFAULT_WAIT_TIMEOUT", "Lease", "LockDesk"]  # Lease: coreactors.stores.lock's

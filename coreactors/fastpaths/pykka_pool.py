"""Fast path ``worker_pool``: pykka actors run on a ``WorkerPool`` instead of a thread each.

What it touches in pykka (4.x), none of it public API:
- ``Actor._create_actor_inbox``, ``_create_future`` and ``_start_actor_loop``, the hooks pykka
  names "internal methods for implementors of new actor types" (``ThreadingActor`` overrides
  them): the inbox becomes a ``_Mailbox`` that puts its actor in the pool's run queue, and
  starting the actor queues its ``on_start`` instead of starting a thread;
- ``Actor._actor_loop_setup``, ``_actor_loop_teardown``, ``_handle_receive``,
  ``_handle_failure`` and ``_stop``, the pieces of pykka's own loop (``_actor_loop``), run here
  a message at a time by whichever worker holds the actor.

What it buys (bench/fast_paths.py --patch worker_pool, wrk, 16 connections, not pinned, three
runs of 30 alternating 1 s windows, 7 December 2026): webhook turns/s +21.9% to +25.9%, the
server's CPU per turn -19.6% to -23.2%; and thousands of conversations need no thread each. Turned off
(``COREACTORS_FAST_PATHS=-worker_pool``), conversation actors are plain
``pykka.ThreadingActor``s (``coreactors.actors.worker_pool.ThreadedActor``).
``tests/test_fastpaths_pykka.py`` fails the day these names change shape.
"""

import collections
import queue
import sys
import threading
from typing import Any, Optional

import pykka
from twisted.logger import Logger
from coreactors.log_observers import levelled

log = Logger(observer=levelled)

_START = object()  # the first entry of every mailbox: run on_start on a worker


class _Mailbox:
    """An actor's inbox that puts its actor in the run queue when a message arrives for an
    idle actor. Offers what pykka and ``on_stop`` use of an inbox: put, get, get_nowait,
    empty."""

    __slots__ = ("_messages", "_lock", "_scheduled", "_actor", "_pool")

    def __init__(self, pool: Any) -> None:
        self._messages: "collections.deque" = collections.deque()
        self._lock = threading.Lock()
        # Queued or running: its worker re-queues it or clears this when its messages run out.
        self._scheduled = True  # until the actor is started (_START is the first entry)
        # What keeps an idle actor alive (pykka's ActorRef refers to it weakly), until it stops:
        # then this goes, so the stopped actor (with its conversation) is freed at once rather
        # than by a later pass of the cyclic collector.
        self._actor: Optional["PooledActor"] = None
        self._pool = pool

    def put(self, envelope: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        with self._lock:
            self._messages.append(envelope)
            if self._scheduled:
                return
            self._scheduled = True
        actor = self._actor
        if actor is not None:
            self._pool.schedule(actor)

    def take(self) -> Any:
        """The next entry, or None (and the actor no longer scheduled) when there is none."""
        with self._lock:
            if self._messages:
                return self._messages.popleft()
            self._scheduled = False
            return None

    def idle_if_empty(self) -> bool:
        """True, and the actor no longer scheduled, when nothing is queued."""
        with self._lock:
            if self._messages:
                return False
            self._scheduled = False
            return True

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        # Only used once the actor has stopped (pykka's teardown, on_stop): no waiting then.
        return self.get_nowait()

    def get_nowait(self) -> Any:
        with self._lock:
            if not self._messages:
                raise queue.Empty
            return self._messages.popleft()

    def empty(self) -> bool:
        with self._lock:
            return not self._messages


class PooledActor(pykka.Actor):
    """A pykka actor whose messages are handled on a ``WorkerPool``'s workers.

    Subclasses pass the pool to ``__init__`` (``MyActor.start(pool, ...)``) and call
    ``self.blocking()`` around waits on other processes."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        super().__init__()

    def _create_actor_inbox(self) -> Any:
        mailbox = _Mailbox(self._pool)
        mailbox._actor = self
        mailbox._messages.append(_START)
        return mailbox

    @staticmethod
    def _create_future() -> pykka.Future:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        self._pool.schedule(self)

    def blocking(self) -> Any:
        """A context for waiting on another process: the pool serves others meanwhile."""
        return self._pool.blocking()

    def run_some(self, limit: int) -> None:
        """Handles up to ``limit`` messages on the calling worker, then re-queues the actor if
        more are waiting."""
        mailbox: _Mailbox = self.actor_inbox  # type: ignore[assignment]
        for _ in range(limit):
            if self.actor_stopped.is_set():
                break
            entry = mailbox.take()
            if entry is None:
                return
            if entry is _START:
                self._actor_loop_setup()
            else:
                self._receive(entry)
        if self.actor_stopped.is_set():
            # What is queued, or arrives until the mailbox is seen empty, is refused (asks
            # fail with ActorDeadError) rather than left waiting forever.
            while not mailbox.idle_if_empty():
                self._actor_loop_teardown()
            mailbox._actor = None
            return
        self._pool.schedule(self)

    def fail_and_refuse(self, *exc_info: Any) -> None:
        """The machinery failed while running this actor: it stops, refusing what is queued."""
        self._handle_failure(*exc_info)
        try:
            self.run_some(0)
        except Exception:
            log.failure("Refusing the messages of {actor} failed.", actor=self)

    def _receive(self, envelope: Any) -> None:
        # pykka's ThreadingActor loop body, for one message.
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            # A thread of its own would end here; a shared worker must not. This actor stops.
            log.failure("{actor} stopped on a fatal error.", actor=self)
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            if not self.actor_stopped.is_set():
                self._stop()


__all__ = ["PooledActor"]

"""The dispatcher: many pykka actors served by a few threads.

pykka's ``ThreadingActor`` gives every actor a thread of its own, asleep on its inbox. A
conversation's work runs under the GIL, so on two cores only one thread at a time can do it
however many threads wait: every extra thread buys only wake-ups and GIL hand-offs, and those
cost more than the turn itself (bench/load.py: ~9 thread switches and ~250 us of actor-thread
CPU per 85 us turn with a thread per conversation). ``PooledActor`` keeps pykka's actor model
(``ActorRef.tell``/``ask``/``stop``, the registry, ``on_receive``, ``on_stop``, futures) and
runs it the way Akka and Erlang run actors: an actor with messages waits in the dispatcher's
run queue, a worker thread takes it and handles a few of its messages, then takes the next.

An actor is in the run queue at most once and is handled by one worker at a time, so its
messages are still handled one at a time, in the order they arrived. Workers never sleep while
actors wait, so under load a turn costs no thread switch at all.

A worker that is about to wait for something slow (an action server, an NLU server) says so
with ``blocking()``; while it waits another worker serves the run queue, started if need be,
so one slow conversation never holds up the others. Workers beyond the configured number stop
after a while without work.
"""

import collections
import logging
import queue
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Set

import pykka

logger = logging.getLogger(__name__)

# Messages an actor handles before the worker moves on to the next waiting actor: enough to
# keep a busy conversation's burst on one worker, few enough that no actor starves the rest.
THROUGHPUT = 8

# Extra workers (started while others wait in ``blocking``) stop after this long without work.
EXTRA_WORKER_IDLE = 5.0

_START = object()  # the first entry of every mailbox: run on_start on a worker


class Dispatcher:
    """Worker threads serving the run queue of ``PooledActor``s.

    Two workers by default: as fast as one under load (bench/load.py), and a long message (a
    story export of a long conversation, say) then holds up only half of the server."""

    def __init__(self, workers: int = 2, max_workers: int = 256,
                 name: str = "actor-worker") -> None:
        if workers < 1 or max_workers < workers:
            raise ValueError("need 1 <= workers <= max_workers")
        self.workers = workers
        self.max_workers = max_workers
        self.name = name
        self._runnable: "queue.SimpleQueue[Optional[PooledActor]]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: List[threading.Thread] = []
        self._idents: Set[int] = set()
        self._blocked = 0  # workers inside blocking()
        self._stopping = False
        self._counter = 0

    def start(self) -> "Dispatcher":
        with self._lock:
            for _ in range(self.workers):
                self._add_worker()
        return self

    @property
    def live_workers(self) -> int:
        with self._lock:
            return len(self._threads)

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the workers once they have finished what they are doing (actors are stopped
        by their owners first: messages still queued are not handled)."""
        with self._lock:
            self._stopping = True
            threads = list(self._threads)
        for _ in threads:
            self._runnable.put(None)
        current = threading.current_thread()
        for thread in threads:
            if thread is not current:
                thread.join(timeout)

    def schedule(self, actor: "PooledActor") -> None:
        """Queues an actor that has messages (its mailbox calls this once per idle spell)."""
        self._runnable.put(actor)

    @contextmanager
    def blocking(self) -> Iterator[None]:
        """Marks a wait on something outside the process; the run queue is served meanwhile."""
        if threading.get_ident() not in self._idents:
            yield  # not one of our workers: nobody else is held up
            return
        with self._lock:
            self._blocked += 1
            if (not self._stopping and len(self._threads) - self._blocked < self.workers
                    and len(self._threads) < self.max_workers):
                self._add_worker()
        try:
            yield
        finally:
            with self._lock:
                self._blocked -= 1

    def _add_worker(self) -> None:
        # Called with the lock held.
        self._counter += 1
        thread = threading.Thread(target=self._work, daemon=True,
                                  name="{}-{}".format(self.name, self._counter))
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        with self._lock:
            self._idents.add(me.ident)  # type: ignore[arg-type]
        try:
            while True:
                try:
                    actor = self._runnable.get(timeout=EXTRA_WORKER_IDLE)
                except queue.Empty:
                    with self._lock:
                        if len(self._threads) - self._blocked > self.workers:
                            return  # an extra worker with nothing to do
                    continue
                if actor is None:
                    return
                try:
                    actor._run_some(THROUGHPUT)
                except Exception:
                    # A fault of the dispatcher itself: the actor cannot be trusted to run on,
                    # but the worker must, or every other actor would wait for it.
                    logger.exception("%s failed on a worker; it is stopped.", actor)
                    actor._handle_failure(*sys.exc_info())
                    try:
                        actor._run_some(0)  # refuses what is queued
                    except Exception:
                        logger.exception("Refusing the messages of %s failed.", actor)
                actor = None  # a stopped actor must not live on in this frame until the next
        finally:
            with self._lock:
                self._threads.remove(me)
                self._idents.discard(me.ident)  # type: ignore[arg-type]


class _Mailbox:
    """An actor's inbox that puts its actor in the run queue when a message arrives for an
    idle actor. Offers what pykka and ``on_stop`` use of an inbox: put, get, get_nowait,
    empty."""

    __slots__ = ("_messages", "_lock", "_scheduled", "_actor", "_dispatcher")

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._messages: "collections.deque" = collections.deque()
        self._lock = threading.Lock()
        # Queued or running: its worker re-queues it or clears this when its messages run out.
        self._scheduled = True  # until the actor is started (_START is the first entry)
        # What keeps an idle actor alive (pykka's ActorRef refers to it weakly), until it stops:
        # then this goes, so the stopped actor (with its conversation) is freed at once rather
        # than by a later pass of the cyclic collector.
        self._actor: Optional["PooledActor"] = None
        self._dispatcher = dispatcher

    def put(self, envelope: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        with self._lock:
            self._messages.append(envelope)
            if self._scheduled:
                return
            self._scheduled = True
        actor = self._actor
        if actor is not None:
            self._dispatcher.schedule(actor)

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
    """A pykka actor whose messages are handled on a ``Dispatcher``'s workers.

    Subclasses pass the dispatcher to ``__init__`` (``MyActor.start(dispatcher, ...)``) and
    call ``self.blocking()`` around waits on other processes."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        super().__init__()

    def _create_actor_inbox(self) -> Any:
        mailbox = _Mailbox(self._dispatcher)
        mailbox._actor = self
        mailbox._messages.append(_START)
        return mailbox

    @staticmethod
    def _create_future() -> pykka.Future:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        self._dispatcher.schedule(self)

    def blocking(self) -> Any:
        return self._dispatcher.blocking()

    def _run_some(self, limit: int) -> None:
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
        self._dispatcher.schedule(self)

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
            logger.exception("%s stopped on a fatal error.", self)
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            if not self.actor_stopped.is_set():
                self._stop()


__all__ = ["Dispatcher", "PooledActor"]

"""The worker pool: many conversation actors served by a few threads.

pykka's ``ThreadingActor`` gives every actor a thread of its own, asleep on its inbox. A
conversation's work runs under the GIL, so on two cores only one thread at a time can do it
however many threads wait: every extra thread buys only wake-ups and GIL hand-offs, and those
cost more than the turn itself. So conversation actors run the way Akka and Erlang run actors
(Akka calls this a dispatcher; here that word is Rasa's, for what collects an action's bot
messages): an actor with messages waits in the pool's run queue, a worker thread takes it and
handles a few of its messages, then takes the next. The actor side of this, which plugs into
pykka's loop internals, is ``coreactors.fastpaths.pykka_pool.PooledActor``.

An actor is in the run queue at most once and is handled by one worker at a time, so its
messages are still handled one at a time, in the order they arrived. Workers never sleep while
actors wait, so under load a turn costs no thread switch at all.

A worker that is about to wait for something slow (an action server, an NLU server) says so
with ``blocking()``; while it waits another worker serves the run queue, started if need be,
so one slow conversation never holds up the others. Workers beyond the configured number stop
after a while without work.

``InlineWorkerPool`` runs every message at once on the thread that sends it: tests drive the
actor layer with it on a fake clock, without threads.
"""

import collections
import contextlib
import queue
import sys
import threading
from typing import TYPE_CHECKING, Any, ContextManager, Iterator, List, Optional, Set

import pykka
from twisted.logger import Logger

from coreactors.log_observers import levelled

if TYPE_CHECKING:
    from coreactors.fastpaths.pykka_pool import PooledActor

log = Logger(observer=levelled)

# Messages an actor handles before the worker moves on to the next waiting actor: enough to
# keep a busy conversation's burst on one worker, few enough that no actor starves the rest.
THROUGHPUT = 8

# Extra workers (started while others wait in ``blocking``) stop after this long without work.
EXTRA_WORKER_IDLE = 5.0


def run_actor(actor: "PooledActor") -> None:
    """Handles up to THROUGHPUT of ``actor``'s messages on the calling thread. A fault of the
    machinery itself stops that actor (it cannot be trusted to run on), never the caller."""
    try:
        actor.run_some(THROUGHPUT)
    except Exception:
        log.failure("{actor} failed on a worker; it is stopped.", actor=actor)
        actor.fail_and_refuse(*sys.exc_info())


class WorkerPool:
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

    def start(self) -> "WorkerPool":
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

    @contextlib.contextmanager
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
                run_actor(actor)
                actor = None  # a stopped actor must not live on in this frame until the next
        finally:
            with self._lock:
                self._threads.remove(me)
                self._idents.discard(me.ident)  # type: ignore[arg-type]


class InlineWorkerPool:
    """Runs messages on the thread that sends them, in the order sent (a message sent while one
    runs waits until that one is done, as in a real pool). For tests and tools: with a fake
    clock and reactor, the actor layer then runs without threads.

    With ``hold``, messages wait until ``run()`` is called, so a test can queue several
    messages (and a model hand-over between them) before any of them runs."""

    workers = 0
    live_workers = 0

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self._runnable: "collections.deque[PooledActor]" = collections.deque()
        self._running = False

    def start(self) -> "InlineWorkerPool":
        return self

    def stop(self, timeout: float = 5.0) -> None:
        pass

    def schedule(self, actor: "PooledActor") -> None:
        self._runnable.append(actor)
        if not self.hold:
            self.run()

    def run(self) -> int:
        """Runs what is queued, and what that queues, until nothing is; returns how many times
        an actor ran."""
        if self._running:
            return 0
        self._running = True
        runs = 0
        try:
            while self._runnable:
                run_actor(self._runnable.popleft())
                runs += 1
        finally:
            self._running = False
        return runs

    def blocking(self) -> ContextManager[None]:
        return contextlib.nullcontext()


class ThreadedActor(pykka.ThreadingActor):
    """An actor on a thread of its own, as pykka runs actors: what the actors of a pool are
    when the ``worker_pool`` fast path is off. Takes the pool (unused) like ``PooledActor``."""

    use_daemon_thread = True  # a stuck conversation must not keep the process alive

    def __init__(self, pool: Any) -> None:
        super().__init__()

    def blocking(self) -> ContextManager[None]:
        return contextlib.nullcontext()  # nobody else waits on this thread


__all__ = ["InlineWorkerPool", "THROUGHPUT", "ThreadedActor", "WorkerPool", "run_actor"]

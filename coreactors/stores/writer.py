"""The write-behind thread of a network store: many turns' writes in one round trip.

A conversation actor hands its turn's events to the store and goes on (``append_then``); the
answer waits for the write. A store on the network (Redis) would otherwise make the actor's
worker wait a round trip per turn, and the pool has few workers. Instead the store queues the
write here; the writer thread takes everything queued so far and gives it to the store in
waves (``write_wave``), one round trip each, then calls each write's ``done``.

A wave holds at most one write per conversation, in the order they were queued, so the writes
of one conversation (and of one ``WriteChain``) are done one after the other: once one fails,
the later writes of its chain fail without being made, as the contract says. A ``then`` (no
write: only told when its chain's earlier writes are done) waits its turn the same way.
"""

import queue
import threading
from typing import Any, Callable, List, Optional

from twisted.logger import Logger

from coreactors.log_observers import levelled
from coreactors.stores.base import Done, StoreError, WriteChain, call_done, chain_failure

log = Logger(observer=levelled)

APPEND, REPLACE, THEN = "append", "replace", "then"


class Write:
    """One write for the writer thread. ``row`` is the write's events, encoded on the caller's
    thread (so a bad event is refused in its turn); ``fence`` its lease's token, if any."""

    __slots__ = ("sender_id", "kind", "row", "fence", "done", "chain", "error", "lease",
                 "_signal")

    def __init__(self, sender_id: str, kind: str, row: Optional[str] = None,
                 fence: Optional[int] = None, done: Optional[Done] = None,
                 chain: Optional[WriteChain] = None,
                 error: Optional[StoreError] = None) -> None:
        self.sender_id = sender_id
        self.kind = kind
        self.row = row
        self.fence = fence
        self.done = done
        self.chain = chain
        self.error = error
        self.lease: Optional[Any] = None  # a lease the store gives back with the write
        self._signal: Optional[threading.Lock] = None
        if done is None:
            self._signal = threading.Lock()  # a caller that waits for the write
            self._signal.acquire()

    def fail(self, error: StoreError) -> None:
        self.error = error
        if self.chain is not None:
            self.chain.failed = True

    def stopped_by_chain(self) -> bool:
        """True, and this write failed, when an earlier write of its chain failed."""
        if self.chain is None or not self.chain.failed:
            return False
        if self.error is None:
            self.error = chain_failure(self.sender_id)
        return True

    def resolve(self) -> None:
        """The write is done (``error`` tells how): counts it and tells the caller."""
        if self.chain is not None:
            self.chain.confirmed += 1
        if self.done is not None:
            call_done(self.done, self.error)
        elif self._signal is not None:
            self._signal.release()

    def wait(self) -> None:
        """Blocks until the write is done; raises its StoreError if it failed."""
        if self._signal is not None:
            self._signal.acquire()
        if self.error is not None:
            raise self.error


# Does a wave's appends and replaces (at most one per conversation), setting ``error`` on each
# that failed; raises StoreError when all of them failed at once (the store is unreachable).
WriteWave = Callable[[List[Write]], None]


class BatchWriter:
    """The writer thread; see the module docstring. ``submit`` from any thread."""

    def __init__(self, write_wave: WriteWave, where: str,
                 setup: Optional[Callable[[], None]] = None) -> None:
        self._write_wave = write_wave
        self._where = where
        self._setup = setup
        self._requests: "queue.SimpleQueue[Optional[Write]]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="tracker-store-writer")
        self._thread.start()

    def submit(self, write: Write) -> Write:
        """Queues ``write``; a write that already failed (``error`` set) is only told so, in its
        turn."""
        if write.chain is not None:
            write.chain.issued += 1
        with self._lock:
            if not self._closed:
                self._requests.put(write)
                return write
        write.fail(StoreError("{} tracker store: cannot write to conversation {!r}: the store "
                              "is closed".format(self._where, write.sender_id)))
        write.resolve()
        return write

    def close(self, timeout: float = 10.0) -> None:
        """Does what is queued, then ends the thread; later writes fail."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._requests.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        if self._setup is not None:
            self._setup()
        while True:
            first = self._requests.get()
            batch = [first]
            while first is not None:
                try:
                    write = self._requests.get_nowait()
                except queue.Empty:
                    break
                batch.append(write)
                if write is None:
                    break
            stop = batch[-1] is None
            if stop:
                batch.pop()
            try:
                self._process(batch)
            except BaseException as error:  # nothing may strand a caller waiting for its write
                log.failure("{where} tracker store: the writer failed", where=self._where)
                for write in batch:
                    if write.error is None:
                        write.fail(StoreError("{} tracker store: cannot write: {}".format(
                            self._where, error)))
            finally:
                for write in batch:
                    write.resolve()
            if stop:
                return

    def _process(self, batch: List[Write]) -> None:
        """Splits the batch into waves of one write per conversation, in order, and does them."""
        waiting = batch
        while waiting:
            wave: List[Write] = []
            later: List[Write] = []
            senders = set()
            for write in waiting:
                if write.sender_id in senders:
                    later.append(write)
                    senders.add(write.sender_id)  # its later writes wait behind it
                    continue
                senders.add(write.sender_id)
                wave.append(write)
            self._do_wave(wave)
            waiting = later

    def _do_wave(self, wave: List[Write]) -> None:
        live: List[Write] = []
        for write in wave:
            if write.error is not None:
                write.fail(write.error)  # refused before writing: its chain stops here
            elif not write.stopped_by_chain() and write.kind != THEN:
                live.append(write)
        if not live:
            return
        try:
            self._write_wave(live)
        except StoreError as error:
            for write in live:
                write.error = None
                write.fail(error)
            return
        for write in live:
            if write.error is not None:
                write.fail(write.error)


__all__ = ["APPEND", "BatchWriter", "REPLACE", "THEN", "Write", "WriteWave"]

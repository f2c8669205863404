"""Tests for coreactors.actors.worker_pool and coreactors.fastpaths.pykka_pool: pykka actors
served by a few worker threads."""

import threading
import time

import pykka
import pytest

from coreactors.actors import worker_pool as worker_pool_module
from coreactors.actors.worker_pool import WorkerPool
from coreactors.fastpaths.pykka_pool import PooledActor


@pytest.fixture
def pool():
    made = WorkerPool(workers=2).start()
    yield made
    pykka.ActorRegistry.stop_all(timeout=5)
    made.stop()


class Recorder(PooledActor):
    """Records what it handles, and notices if two workers ever handle it at once."""

    def __init__(self, pool, name="r", index=None):
        super().__init__(pool)
        self.name = name
        if index is not None:
            index[name] = self
        self.seen = []
        self.busy = False
        self.overlaps = 0
        self.started_on = None
        self.stopped = threading.Event()

    def on_start(self):
        self.started_on = threading.current_thread().name

    def on_stop(self):
        self.stopped.set()

    def on_receive(self, message):
        if self.busy:
            self.overlaps += 1
        self.busy = True
        try:
            kind = message[0]
            if kind == "record":
                self.seen.append(message[1])
                time.sleep(0)  # let other threads run in the middle of a message
            elif kind == "seen":
                return list(self.seen)
            elif kind == "overlaps":
                return self.overlaps
            elif kind == "fail":
                raise ValueError("asked to fail")
            elif kind == "block":
                with self.blocking():
                    message[1].wait(10)
                return "unblocked"
            elif kind == "hold":  # keeps its worker without saying so
                message[1].wait(10)
            elif kind == "peek":  # how far another actor has got
                return len(message[1].seen)
            elif kind == "started_on":
                return self.started_on
            return None
        finally:
            self.busy = False


def test_each_actors_messages_run_one_at_a_time_in_order(pool):
    refs = [Recorder.start(pool, "r{}".format(i)) for i in range(20)]

    def send(offset):
        for n in range(200):
            for ref in refs:
                ref.tell(("record", (offset, n)))
    senders = [threading.Thread(target=send, args=(k,)) for k in range(3)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    for ref in refs:
        seen = ref.ask(("seen",), timeout=10)
        assert len(seen) == 600
        for k in range(3):
            assert [n for offset, n in seen if offset == k] == list(range(200))
        assert ref.ask(("overlaps",), timeout=10) == 0


def test_on_start_runs_on_a_worker_before_the_first_message(pool):
    ref = Recorder.start(pool)
    assert ref.ask(("started_on",), timeout=10).startswith("actor-worker-")


def test_ask_gets_answers_and_exceptions(pool):
    ref = Recorder.start(pool)
    ref.tell(("record", 1))
    assert ref.ask(("seen",), timeout=10) == [1]
    with pytest.raises(ValueError, match="asked to fail"):
        ref.ask(("fail",), timeout=10)
    assert ref.is_alive()  # a failing message does not stop the actor
    assert ref.ask(("seen",), timeout=10) == [1]


def test_a_stopped_actor_refuses_messages(pool):
    actors = {}
    ref = Recorder.start(pool, "r", actors)
    actor = actors["r"]
    assert ref.stop(timeout=10) is True
    assert actor.stopped.is_set() and not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(("record", 1))
    with pytest.raises(pykka.ActorDeadError):
        ref.ask(("seen",), timeout=1)


def test_messages_queued_behind_a_stop_are_refused_not_left_waiting(pool):
    release = threading.Event()
    ref = Recorder.start(pool)
    blocked = ref.ask(("block", release), block=False)
    stopped = ref.ask(pykka.messages._ActorStop(), block=False)
    late = ref.ask(("seen",), block=False)
    release.set()
    assert blocked.get(timeout=10) == "unblocked"
    assert stopped.get(timeout=10) is None
    with pytest.raises(pykka.ActorDeadError):
        late.get(timeout=10)


def test_a_busy_actor_does_not_starve_the_others():
    pool = WorkerPool(workers=1).start()
    try:
        gate = threading.Event()
        actors = {}
        busy = Recorder.start(pool, "busy", actors)
        other = Recorder.start(pool, "other")
        # Hold the only worker so that everything below is queued before anything runs.
        held = busy.ask(("hold", gate), block=False)
        for n in range(1000):
            busy.tell(("record", n))
        progress = other.ask(("peek", actors["busy"]), block=False)
        done = busy.ask(("seen",), block=False)
        gate.set()
        held.get(timeout=10)
        # The other actor was served after a few of the busy one's messages, not after all.
        assert progress.get(timeout=10) < 100
        assert len(done.get(timeout=10)) == 1000
    finally:
        pykka.ActorRegistry.stop_all(timeout=5)
        pool.stop()


def test_a_blocking_wait_does_not_hold_up_other_actors(monkeypatch):
    monkeypatch.setattr(worker_pool_module, "EXTRA_WORKER_IDLE", 0.2)
    pool = WorkerPool(workers=1).start()
    try:
        release = threading.Event()
        slow, quick = Recorder.start(pool, "slow"), Recorder.start(pool, "quick")
        waiting = slow.ask(("block", release), block=False)
        started = time.monotonic()
        quick.tell(("record", 1))
        assert quick.ask(("seen",), timeout=5) == [1]
        assert time.monotonic() - started < 2.0
        assert pool.live_workers == 2  # one waits, one serves the others
        release.set()
        assert waiting.get(timeout=10) == "unblocked"
        deadline = time.monotonic() + 10
        while pool.live_workers > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.live_workers == 1  # the extra worker stops once idle
    finally:
        pykka.ActorRegistry.stop_all(timeout=5)
        pool.stop()


class Faulty(Recorder):
    """Breaks the pool's handling of one message, as a bug in it would."""

    def _receive(self, envelope):
        if envelope.message == ("break",):
            raise RuntimeError("the pool broke")
        super()._receive(envelope)


def test_a_fault_in_the_pool_stops_that_actor_not_the_worker():
    pool = WorkerPool(workers=1).start()
    try:
        faulty, other = Faulty.start(pool, "faulty"), Recorder.start(pool, "other")
        faulty.tell(("break",))
        with pytest.raises(pykka.ActorDeadError):  # refused when queued, or when sent
            faulty.ask(("seen",), timeout=10)
        assert not faulty.is_alive()
        assert other.ask(("seen",), timeout=10) == []
        assert pool.live_workers == 1
    finally:
        pykka.ActorRegistry.stop_all(timeout=5)
        pool.stop()


def test_blocking_outside_a_worker_starts_no_worker(pool):
    with pool.blocking():
        assert pool.live_workers == 2


def test_stop_ends_the_workers():
    pool = WorkerPool(workers=3).start()
    assert pool.live_workers == 3
    pool.stop()
    assert pool.live_workers == 0


def test_worker_counts_are_checked():
    with pytest.raises(ValueError):
        WorkerPool(workers=0)
    with pytest.raises(ValueError):
        WorkerPool(workers=3, max_workers=2)

"""Tests for the Redis lock store (tickets, leases, expiry) and the lock desk that takes them
for a process's requests, against the real Redis at 127.0.0.1:6379."""

import threading
import time
import uuid

import pytest

from coreactors.actors.interface import ConversationError, StoreUnavailable
from coreactors.actors.lock_desk import LockDesk
from coreactors.stores.base import StoreError, WriteChain
from coreactors.stores.config import lock_store_from_endpoint, lock_wait_timeout
from coreactors.stores.lock import (
    EXPIRED, GRANTED, WAITING, Claim, Lease, RedisLockStore, Release, Renew)
from tests.live_server import free_port, start_redis
from tests.test_stores import redis_client


@pytest.fixture
def prefix():
    """This test's keys only; removed afterwards."""
    name = "coreactors-locktest-{}".format(uuid.uuid4().hex)
    yield name
    client = redis_client()
    for key in client.scan_iter(match=name + ":*"):
        client.delete(key)
    client.close()


def locks_of(prefix, lifetime=10.0):
    return RedisLockStore(redis_client(), prefix=prefix, lifetime=lifetime)


# --------------------------------------------------------------------------- the lock store


def test_the_first_ticket_holds_the_lease_and_the_next_waits(prefix):
    locks = locks_of(prefix)
    first, second = locks.run([Claim("ada", "p1.1"), Claim("ada", "p2.1")])
    assert first.state == GRANTED and first.previous == ""
    assert second.state == WAITING and second.ticket == first.ticket + 1
    # Asked again, it still waits while the first holds the lease.
    assert locks.run([Claim("ada", "p2.1", second.ticket)])[0].state == WAITING
    released, again = locks.run([Release("ada", first.ticket),
                                 Claim("ada", "p2.1", second.ticket)])
    assert again.state == GRANTED and again.previous == "p1.1"
    # Another conversation is not held up by ada's.
    assert locks.run([Claim("bob", "p2.1")])[0].state == GRANTED


def test_tickets_start_from_the_time_so_they_outgrow_lost_keys(prefix):
    locks = locks_of(prefix)
    ticket = locks.run([Claim("ada", "p1.1")])[0].ticket
    assert ticket > int(time.time() * 1000) * 1000 - 60_000_000  # ms x 1,000, give or take
    client = redis_client()
    for key in client.scan_iter(match=prefix + ":*"):
        client.delete(key)  # Redis lost the lock keys (a flush, a restart without disk)
    time.sleep(0.002)
    again = locks.run([Claim("ada", "p1.1")])[0]
    assert again.state == GRANTED and again.ticket > ticket
    # Exact: tickets this large survive Lua's doubles and the way back.
    following = locks.run([Release("ada", again.ticket), Claim("ada", "p1.1")])[1]
    assert following.ticket == again.ticket + 1


def test_a_ticket_that_is_not_renewed_expires_and_the_next_goes_on(prefix):
    locks = locks_of(prefix, lifetime=0.3)
    held = locks.run([Claim("ada", "dead.1")])[0]
    waiting = locks.run([Claim("ada", "p2.1")])[0]
    assert waiting.state == WAITING
    time.sleep(0.2)
    assert locks.run([Claim("ada", "p2.1", waiting.ticket)])[0].state == WAITING
    time.sleep(0.2)  # the holder's lifetime is over; the waiter renewed its own by asking
    granted = locks.run([Claim("ada", "p2.1", waiting.ticket)])[0]
    assert granted.state == GRANTED and granted.previous == "dead.1"
    # The dead holder's ticket is gone: renewing or claiming it again says so.
    assert locks.run([Renew("ada", held.ticket)]) == [False]
    assert locks.run([Claim("ada", "dead.1", held.ticket)])[0].state == EXPIRED


def test_renewal_keeps_a_lease_past_its_lifetime(prefix):
    locks = locks_of(prefix, lifetime=0.3)
    held = locks.run([Claim("ada", "p1.1")])[0]
    waiting = locks.run([Claim("ada", "p2.1")])[0]
    for _ in range(4):
        time.sleep(0.1)
        assert locks.run([Renew("ada", held.ticket)]) == [True]
        assert locks.run([Claim("ada", "p2.1", waiting.ticket)])[0].state == WAITING


def test_lock_keys_expire_when_nobody_asks(prefix):
    locks = locks_of(prefix)
    locks.run([Claim("ada", "p1.1")])
    client = redis_client()
    ttls = [client.ttl(key) for key in client.scan_iter(match=prefix + ":*")]
    assert len(ttls) == 2 and all(0 < ttl <= 3600 for ttl in ttls)


def test_a_lock_store_that_is_down_raises_store_error(tmp_path):
    locks = RedisLockStore.from_config("127.0.0.1", free_port(), timeout=0.5)
    with pytest.raises(StoreError, match="lock store"):
        locks.run([Claim("ada", "p1.1")])


def test_the_lock_store_block_of_endpoints():
    assert lock_store_from_endpoint(None) is None
    assert lock_store_from_endpoint({"type": "in_memory"}) is None
    locks = lock_store_from_endpoint({"type": "redis", "url": "127.0.0.1", "port": 6390,
                                      "lifetime": 4, "key_prefix": "x"})
    assert isinstance(locks, RedisLockStore) and locks.lifetime == 4.0
    assert lock_wait_timeout({"wait_timeout": 2}) == 2.0
    assert lock_wait_timeout(None) == 30.0
    for bad, message in [({"type": "zookeeper"}, "'zookeeper' is not supported"),
                         ({}, "type must be given"), ("redis", "must be a mapping"),
                         ({"type": "redis", "port": "x"}, "lock_store port must be a int"),
                         ({"type": "redis", "lifetime": 0}, "positive")]:
        with pytest.raises(ValueError, match=message):
            lock_store_from_endpoint(bad)
    with pytest.raises(ValueError, match="positive"):
        lock_wait_timeout({"wait_timeout": -1})


# --------------------------------------------------------------------------- the desk


class Recorder:
    """Collects what a desk grants and refuses, in order, and gives leases back on demand."""

    def __init__(self, desk=None):
        self.desk = desk
        self.events = []
        self.condition = threading.Condition()

    def claim(self, desk, sender_id, holder, name, release_after=None):
        def granted(lease):
            with self.condition:
                self.events.append(("granted", name, lease))
                self.condition.notify_all()
            if release_after is not None:
                threading.Timer(release_after, desk.release, [lease]).start()

        def refused(error):
            with self.condition:
                self.events.append(("refused", name, error))
                self.condition.notify_all()
        desk.claim(sender_id, holder, granted, refused)

    def wait_for(self, count, timeout=10.0):
        with self.condition:
            assert self.condition.wait_for(lambda: len(self.events) >= count, timeout), \
                self.events
            return list(self.events)


@pytest.fixture
def desks(prefix):
    made = []

    def make(lifetime=10.0, wait_timeout=30.0):
        desk = LockDesk(locks_of(prefix, lifetime), wait_timeout)
        desk.start()
        made.append(desk)
        return desk
    yield make
    for desk in made:
        desk.stop()


def test_a_desk_grants_one_request_of_a_conversation_at_a_time_in_arrival_order(desks):
    desk = desks()
    recorder = Recorder()
    for number in range(30):
        recorder.claim(desk, "ada", "p1.1", number, release_after=0.002)
    events = recorder.wait_for(30)
    assert [name for _, name, _ in events] == list(range(30))
    tickets = [lease.ticket for _, _, lease in events]
    assert tickets == sorted(tickets) and len(set(tickets)) == 30
    assert events[0][2].others_held_it or events[0][2].previous == ""
    assert all(not lease.others_held_it for _, _, lease in events[1:])


def test_a_held_lease_holds_up_only_its_own_conversation(desks):
    desk = desks()
    recorder = Recorder()
    recorder.claim(desk, "ada", "p1.1", "ada-1")  # never given back in this test
    recorder.claim(desk, "ada", "p1.1", "ada-2")
    recorder.claim(desk, "bob", "p1.2", "bob-1")
    events = recorder.wait_for(2)
    time.sleep(0.1)
    assert sorted(name for _, name, _ in recorder.events) == ["ada-1", "bob-1"]
    assert desk.waiting() == 1
    desk.release(events[0][2] if events[0][1] == "ada-1" else events[1][2])
    assert recorder.wait_for(3)[2][1] == "ada-2"


def test_two_desks_never_hold_one_conversation_at_once_and_keep_ticket_order(desks):
    # Two processes' desks on one conversation: each request holds the lease alone, and the
    # leases go out in ticket order (the order requests reached the lock store).
    first, second = desks(), desks()
    holding = []
    grants = []
    lock = threading.Lock()
    done = threading.Event()
    total = 60

    def claim(desk, holder, number):
        def granted(lease):
            with lock:
                holding.append(number)
                assert len(holding) == 1, holding
                grants.append(lease.ticket)

            def finish():
                with lock:
                    holding.remove(number)
                    if len(grants) == total:
                        done.set()
                desk.release(lease)
            threading.Timer(0.001, finish).start()
        desk.claim("ada", holder, granted, lambda error: pytest.fail(str(error)))

    for number in range(total):
        claim(first if number % 3 else second, "p1.1" if number % 3 else "p2.1", number)
        time.sleep(0.0005)
    assert done.wait(20)
    assert grants == sorted(grants)


def test_a_lease_held_by_a_dead_process_expires_and_the_desk_goes_on(desks, prefix):
    dead = locks_of(prefix, lifetime=0.3)
    assert dead.run([Claim("ada", "dead.1")])[0].state == GRANTED  # never renewed nor released
    desk = desks(lifetime=0.3)
    recorder = Recorder()
    started = time.monotonic()
    recorder.claim(desk, "ada", "p1.1", "next")
    kind, _, lease = recorder.wait_for(1)[0]
    assert kind == "granted" and lease.previous == "dead.1" and lease.others_held_it
    assert 0.2 < time.monotonic() - started < 3


def test_a_desk_renews_what_it_holds(desks, prefix):
    desk = desks(lifetime=0.3)
    recorder = Recorder()
    recorder.claim(desk, "ada", "p1.1", "holder")
    lease = recorder.wait_for(1)[0][2]
    other = locks_of(prefix, lifetime=0.3)
    waiting = other.run([Claim("ada", "p2.1")])[0]
    for _ in range(8):
        time.sleep(0.1)
        assert other.run([Claim("ada", "p2.1", waiting.ticket)])[0].state == WAITING
    desk.release(lease)
    deadline = time.monotonic() + 5
    while other.run([Claim("ada", "p2.1", waiting.ticket)])[0].state != GRANTED:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_request_that_waits_too_long_is_refused_and_gives_up_its_ticket(desks, prefix):
    desk = desks(wait_timeout=0.3)
    recorder = Recorder()
    recorder.claim(desk, "ada", "p1.1", "holder")
    holder = recorder.wait_for(1)[0][2]
    recorder.claim(desk, "ada", "p1.1", "waiter")
    kind, name, error = recorder.wait_for(2)[1]
    assert (kind, name) == ("refused", "waiter")
    assert isinstance(error, ConversationError) and error.status == 503
    assert error.reason == "ConversationBusy"
    desk.release(holder)
    recorder.claim(desk, "ada", "p1.1", "after")  # the waiter's ticket does not hold it up
    assert recorder.wait_for(3)[2][:2] == ("granted", "after")


def test_a_lock_store_that_goes_away_answers_503_and_the_desk_recovers(tmp_path):
    port = free_port()
    redis_server = start_redis(port, str(tmp_path))
    desk = LockDesk(RedisLockStore.from_config("127.0.0.1", port, timeout=0.5), 5.0)
    desk.start()
    recorder = Recorder()
    try:
        recorder.claim(desk, "ada", "p1.1", "before", release_after=0)
        assert recorder.wait_for(1)[0][0] == "granted"
        redis_server.kill()
        redis_server.wait()
        recorder.claim(desk, "ada", "p1.1", "down")
        kind, _, error = recorder.wait_for(2)[1]
        assert kind == "refused" and isinstance(error, StoreUnavailable)
        assert "lock store" in str(error)
        redis_server = start_redis(port, str(tmp_path))
        recorder.claim(desk, "ada", "p1.1", "after")
        assert recorder.wait_for(3)[2][:2] == ("granted", "after")
    finally:
        desk.stop()
        redis_server.kill()
        redis_server.wait()


def test_stopping_a_desk_refuses_what_waits(desks):
    desk = desks()
    recorder = Recorder()
    recorder.claim(desk, "ada", "p1.1", "holder")
    recorder.wait_for(1)
    recorder.claim(desk, "ada", "p1.1", "waiter")
    time.sleep(0.05)
    desk.stop()
    kind, name, error = recorder.wait_for(2)[1]
    assert (kind, name, error.reason) == ("refused", "waiter", "ShuttingDown")
    recorder.claim(desk, "ada", "p1.1", "late")
    assert recorder.wait_for(3)[2][0] == "refused"


def test_a_lease_names_whether_another_holder_came_between():
    assert not Lease("ada", 5, "p1.1", "p1.1").others_held_it
    assert Lease("ada", 5, "p1.1", "p2.1").others_held_it
    assert Lease("ada", 5, "p1.1", "").others_held_it


# --------------------------------------------------------------------------- start-up checks


def test_several_processes_need_a_shared_store_and_a_lock_store(tmp_path):
    from coreactors.endpoints import AvailableEndpoints
    from coreactors.service import make_desk
    from coreactors.stores.memory import InMemoryTrackerStore
    from coreactors.stores.redis import RedisTrackerStore

    def endpoints(lock=None):
        return AvailableEndpoints({"lock_store": lock} if lock else {})
    redis_lock = {"type": "redis", "url": "127.0.0.1", "port": 6379}
    shared = RedisTrackerStore.from_config("127.0.0.1", 6379)
    alone = InMemoryTrackerStore()
    assert make_desk(endpoints(), alone) is None  # one process, as always
    assert make_desk(endpoints(), shared) is None
    assert isinstance(make_desk(endpoints(redis_lock), shared), LockDesk)
    assert isinstance(make_desk(endpoints(redis_lock), shared, workers=2), LockDesk)
    assert make_desk(endpoints({"type": "in_memory"}), alone) is None
    with pytest.raises(ValueError, match="lock_store serves several processes"):
        make_desk(endpoints(redis_lock), alone)
    with pytest.raises(ValueError, match="need a tracker store they can share"):
        make_desk(endpoints(), alone, workers=2)
    with pytest.raises(ValueError, match="without a lock store"):
        make_desk(endpoints(), shared, workers=3)


# --------------------------------------------------------------------------- actors under leases


class CountingRedisStore:
    """Makes a RedisTrackerStore that records each load_since (version asked, events got)."""

    @staticmethod
    def make(prefix):
        from coreactors.stores.redis import RedisTrackerStore

        class Counting(RedisTrackerStore):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.reads = []

            def load_since(self, sender_id, version, fence=None):
                since = super().load_since(sender_id, version, fence)
                self.reads.append((version, None if since is None else len(since.events)))
                return since
        return Counting(redis_client(), prefix=prefix)


def test_an_actor_reads_only_what_other_processes_wrote_since_its_version(prefix):
    # Two supervisors stand for two processes on one Redis tracker store and lock store.
    from coreactors.actors.conversation import ConversationActor
    from coreactors.actors.supervisor import Supervisor
    from coreactors.actors.worker_pool import InlineWorkerPool
    from tests.test_actor_layer import FakeReactor, inline, make_model
    model = make_model("one")
    stores, supervisors, desks = [], [], []
    for _ in range(2):
        store = CountingRedisStore.make(prefix)
        desk = LockDesk(locks_of(prefix), 5.0)
        supervisor = Supervisor(store, model, reactor=FakeReactor(), pool=InlineWorkerPool(),
                                actor_type=ConversationActor, run_in_thread=inline, desk=desk)
        supervisor.start()
        stores.append(store)
        supervisors.append(supervisor)
        desks.append(desk)

    def turn(number, text):
        supervisor = supervisors[number]
        results = []
        supervisor.handle_message("ada", text).addBoth(results.append)
        deadline = time.monotonic() + 10
        while not results:  # the desk grants from its thread; the pool runs here
            assert time.monotonic() < deadline, "no answer"
            supervisor.pool.run()
            time.sleep(0.002)
        assert not isinstance(results[0], Exception), results[0]
        return [m.get("text") for m in results[0]]

    try:
        assert turn(0, "/greet") == ["hello from one"]
        assert stores[0].reads == [(0, None)]  # a new conversation: one read, finding nothing
        assert turn(0, "/goodbye") == ["bye"]
        assert stores[0].reads == [(0, None)]  # it held the lease last: nothing to read
        assert turn(1, "/greet") == ["hello from one"]
        assert stores[1].reads == [(0, 9)]  # the other process reads it all (9 events) once
        assert turn(0, "/goodbye") == ["bye"]
        # Back in the first: only the other's one write since its version (2 writes).
        assert stores[0].reads == [(0, None), (2, 4)]
        stored = stores[0].load("ada")
        names = [e.get("name") or e.get("text") for e in stored if e["event"] != "user"]
        assert names == ["action_listen", "utter_greet", "hello from one", "action_listen",
                         "utter_goodbye", "bye", "action_listen",
                         "utter_greet", "hello from one", "action_listen",
                         "utter_goodbye", "bye", "action_listen"]
    finally:
        for supervisor in supervisors:
            supervisor.stop()
            supervisor.pool.run()
        pykka_stop_all()


def pykka_stop_all():
    import pykka
    pykka.ActorRegistry.stop_all(timeout=5)


def test_a_store_on_the_lock_stores_redis_gives_the_lease_back_with_the_write(prefix):
    from coreactors.stores.base import StaleLease
    from coreactors.stores.redis import RedisTrackerStore
    locks = locks_of(prefix)
    store = RedisTrackerStore(redis_client(), prefix=prefix)
    store.give_back_leases(locks.lease_keys)
    try:
        first = locks.run([Claim("ada", "p1.1")])[0]
        lease = Lease("ada", first.ticket, "p1.1", first.previous)
        outcome = []
        store.append_then("ada", [{"event": "action", "name": "action_listen"}],
                          outcome.append, fence=lease.ticket, lease=lease)
        store.then("ada", outcome.append, WriteChain())
        deadline = time.monotonic() + 5
        while len(outcome) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert outcome[0] is None and lease.given_back
        # The next ticket holds the lease at once: nobody had to send it back.
        second = locks.run([Claim("ada", "p2.1")])[0]
        assert second.state == GRANTED and second.previous == "p1.1"
        store.load_since("ada", 1, fence=second.ticket)
        # A write under the lost first lease is refused, and gives nothing back.
        stale = Lease("ada", first.ticket, "p1.1", "")
        with pytest.raises(StaleLease):
            store.append("ada", [{"event": "action", "name": "action_listen"}],
                         fence=first.ticket)
        refused = []
        store.append_then("ada", [{"event": "action", "name": "action_listen"}],
                          refused.append, fence=stale.ticket, lease=stale)
        while not refused:
            time.sleep(0.005)
        assert isinstance(refused[0], StaleLease) and not stale.given_back
        assert locks.run([Claim("ada", "p3.1")])[0].state == WAITING  # second still holds
    finally:
        store.close()


def test_the_lease_goes_back_with_the_write_only_on_the_same_redis(prefix):
    from coreactors.endpoints import AvailableEndpoints
    from coreactors.service import make_desk
    from coreactors.stores.redis import RedisTrackerStore
    lock = {"type": "redis", "url": "127.0.0.1", "port": 6379}
    same = RedisTrackerStore.from_config("127.0.0.1", 6379)
    other_db = RedisTrackerStore.from_config("127.0.0.1", 6379, db=1)
    try:
        make_desk(AvailableEndpoints({"lock_store": lock}), same)
        make_desk(AvailableEndpoints({"lock_store": lock}), other_db)
        assert same._lease_keys is not None and other_db._lease_keys is None
    finally:
        same.close()
        other_db.close()


def test_a_redis_that_forgot_the_scripts_is_taught_them_again(prefix):
    # After a restart Redis knows no script: the lock store (and the tracker store's writer,
    # through the same RedisLink) load theirs again and go on.
    locks = locks_of(prefix)
    first = locks.run([Claim("ada", "p1.1")])[0]
    redis_client().script_flush()
    assert locks.run([Release("ada", first.ticket), Claim("ada", "p1.1")])[1].state == GRANTED

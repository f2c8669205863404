"""Tests for coreactors.stores: the tracker store contract, SQLite durability and failures,
and choosing a store from endpoints.yml.

Contract tests run against both stores. Everything is written under pytest's tmp_path.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pytest

from coreactors.stores.base import (
    Since, StaleLease, StoreError, TrackerStore, VersionedTrackerStore, WriteChain)
from coreactors.stores.config import store_from_endpoint
from coreactors.stores.memory import InMemoryTrackerStore
from coreactors.stores.sqlite import SQLiteTrackerStore

# --------------------------------------------------------------------------- helpers


def turn(number, text="hello"):
    """The events of one turn, shaped like Event.as_dict() output."""
    return [
        {"event": "user", "timestamp": 1000.0 + number, "text": "{} {}".format(text, number),
         "parse_data": {"intent": {"name": "greet", "confidence": 0.9},
                        "entities": [{"entity": "name", "value": "Ada"}]}},
        {"event": "action", "timestamp": 1000.5 + number, "name": "utter_greet"},
        {"event": "bot", "timestamp": 1000.6 + number, "text": "hi {}".format(number)},
        {"event": "action", "timestamp": 1000.7 + number, "name": "action_listen"},
    ]


def redis_client():
    """A client of the Redis at 127.0.0.1:6379 (every development and CI machine runs one),
    or a skip naming why there is none."""
    import redis
    client = redis.Redis(host="127.0.0.1", port=6379, db=0, socket_connect_timeout=1,
                         socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.skip("no Redis at 127.0.0.1:6379 ({}); the Redis store's tests need one"
                    .format(error))
    return client


POSTGRES = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=2"


def postgres_schema():
    """A fresh schema in the PostgreSQL at 127.0.0.1:5432 (database test, trust auth; every
    development and CI machine runs one) and a function that drops it, or a skip naming why
    there is none."""
    import psycopg
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True)
    except psycopg.Error as error:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 ({}); the SQL store's tests need one"
                    .format(str(error).strip()))
    schema = "coreactors_test_{}".format(uuid.uuid4().hex)
    admin.execute("CREATE SCHEMA {}".format(schema))

    def drop() -> None:
        admin.execute("DROP SCHEMA {} CASCADE".format(schema))
        admin.close()
    return POSTGRES + " options='-c search_path={}'".format(schema), drop


@pytest.fixture(params=["memory", "sqlite", "redis", "postgresql"])
def store(request, tmp_path):
    if request.param == "postgresql":
        from coreactors.stores.sql import SQLTrackerStore
        conninfo, drop = postgres_schema()
        made = SQLTrackerStore(conninfo)
        yield made
        made.close()
        drop()
        return
    if request.param == "memory":
        made = InMemoryTrackerStore()
    elif request.param == "sqlite":
        made = SQLiteTrackerStore(str(tmp_path / "trackers.db"))
    else:
        from coreactors.stores.redis import RedisTrackerStore
        client = redis_client()
        prefix = "coreactors-test-{}".format(uuid.uuid4().hex)  # this test's keys only
        made = RedisTrackerStore(redis_client(), prefix=prefix)
    yield made
    made.close()
    if request.param == "redis":
        for key in client.scan_iter(match=prefix + ":*"):
            client.delete(key)
        client.close()


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "trackers.db")


@pytest.fixture
def sqlite_store(db_path):
    made = SQLiteTrackerStore(db_path)
    yield made
    made.close()


# --------------------------------------------------------------------------- the contract


def test_stores_are_tracker_stores(store):
    assert isinstance(store, TrackerStore)


def test_load_of_unknown_conversation_is_none(store):
    assert store.load("nobody") is None
    store.append("somebody", turn(1))
    assert store.load("nobody") is None


def test_append_creates_then_extends_in_order(store):
    store.append("ada", turn(1))
    assert store.load("ada") == turn(1)
    store.append("ada", turn(2))
    store.append("ada", turn(3)[:1])
    assert store.load("ada") == turn(1) + turn(2) + turn(3)[:1]


def test_append_of_a_large_batch_keeps_order(store):
    # More events than the SQLite store's single-statement path takes at once.
    store.append("ada", turn(0))
    many = [{"event": "slot", "name": "n", "value": index} for index in range(500)]
    store.append("ada", many)
    store.append("ada", turn(1))
    assert store.load("ada") == turn(0) + many + turn(1)
    store.append("new", many)
    assert store.load("new") == many


def test_append_of_an_empty_list_creates_a_known_conversation(store):
    store.append("ada", [])
    assert store.load("ada") == []
    assert store.conversation_ids() == ["ada"]
    store.append("ada", turn(1))
    store.append("ada", [])
    assert store.load("ada") == turn(1)


def test_replace_swaps_the_whole_conversation(store):
    store.append("ada", turn(1) + turn(2))
    store.replace("ada", turn(7))
    assert store.load("ada") == turn(7)
    store.append("ada", turn(8))
    assert store.load("ada") == turn(7) + turn(8)
    store.replace("ada", [])
    assert store.load("ada") == []


def test_replace_creates_an_unknown_conversation(store):
    store.replace("ada", turn(1))
    assert store.load("ada") == turn(1)
    store.replace("bob", [])
    assert store.load("bob") == []
    assert store.conversation_ids() == ["ada", "bob"]


def test_conversation_ids_are_in_first_seen_order(store):
    assert store.conversation_ids() == []
    for sender_id in ["zed", "ada", "mia", "bob"]:
        store.append(sender_id, turn(1))
    store.append("ada", turn(2))
    store.replace("zed", turn(3))
    store.replace("kim", turn(4))
    store.append("mia", [])
    assert store.conversation_ids() == ["zed", "ada", "mia", "bob", "kim"]


def test_returned_and_given_lists_are_copies(store):
    given = turn(1)
    store.append("ada", given)
    given.append({"event": "restart"})
    given[0]["text"] = "changed by the caller"
    given[0]["parse_data"]["intent"]["name"] = "changed"
    assert store.load("ada") == turn(1)

    loaded = store.load("ada")
    loaded.clear()
    store.load("ada")[1]["name"] = "changed"
    store.load("ada")[0]["parse_data"]["entities"].append({"entity": "x"})
    assert store.load("ada") == turn(1)
    assert store.load("ada") is not store.load("ada")

    ids = store.conversation_ids()
    ids.append("intruder")
    assert store.conversation_ids() == ["ada"]


@pytest.mark.parametrize("sender_id", [
    "ünïcødé-用户-🤖",
    "x" * 20000,
    "a/b/../c",
    "/leading/slash/",
    "back\\slash",
    "quote'and\"double",
    "per%2Fcent",
    "",
    " spaces ",
    "null\x00byte",
])
def test_unusual_sender_ids(store, sender_id):
    store.append(sender_id, turn(1))
    store.append(sender_id + "-other", turn(2))
    store.append(sender_id, turn(3))
    assert store.load(sender_id) == turn(1) + turn(3)
    assert store.load(sender_id + "-other") == turn(2)
    assert store.conversation_ids() == [sender_id, sender_id + "-other"]


def test_event_values_round_trip(store):
    events = [{"event": "slot", "name": "note", "value": {
        "text": "naïve café ✓ 🤖 \u2028 \"quoted\" \\ \n tab\t",
        "long": "y" * 100000, "numbers": [0, -1, 1.5, 1e300, 2 ** 62], "flags": [True, False],
        "nothing": None, "nested": {"a": [{"b": []}]}}}]
    store.append("ada", events)
    assert store.load("ada") == events


def test_an_unencodable_event_is_refused_and_nothing_is_stored(store):
    store.append("ada", turn(1))
    with pytest.raises(StoreError, match="event 2 of conversation 'ada'"):
        store.append("ada", turn(2)[:2] + [{"event": "bot", "data": object()}])
    assert store.load("ada") == turn(1)
    with pytest.raises(StoreError):
        store.replace("ada", [{"event": "bot", "data": {1, 2}}])
    assert store.load("ada") == turn(1)
    with pytest.raises(StoreError):
        store.append("new", [{"event": "bot", "data": object()}])
    assert store.load("new") is None
    assert store.conversation_ids() == ["ada"]


def test_a_sender_id_that_is_not_a_string_is_refused(store):
    with pytest.raises(StoreError, match="sender id must be a string"):
        store.append(42, turn(1))
    with pytest.raises(StoreError):
        store.load(None)
    assert store.conversation_ids() == []


def test_a_closed_store_raises_store_error(store):
    store.append("ada", turn(1))
    store.close()
    store.close()  # closing twice is harmless
    for call in (lambda: store.load("ada"), lambda: store.append("ada", turn(2)),
                 lambda: store.replace("ada", []), store.conversation_ids):
        with pytest.raises(StoreError, match="closed"):
            call()


def test_a_store_is_a_context_manager(store):
    with store as same:
        same.append("ada", turn(1))
    with pytest.raises(StoreError):
        store.load("ada")


# --------------------------------------------------------------------------- concurrency


def test_parallel_writers_to_different_conversations_lose_nothing(store):
    threads, appends = 16, 60
    errors = []
    start = threading.Barrier(threads)

    def writer(number):
        try:
            start.wait()
            for index in range(appends):
                store.append("user-{}".format(number), turn(index, text="t{}".format(number)))
                if index % 20 == 0:
                    assert store.load("user-{}".format(number))[-1] == \
                        turn(index, text="t{}".format(number))[-1]
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    workers = [threading.Thread(target=writer, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors
    assert sorted(store.conversation_ids()) == sorted(
        "user-{}".format(number) for number in range(threads))
    for number in range(threads):
        expected = [event for index in range(appends)
                    for event in turn(index, text="t{}".format(number))]
        assert store.load("user-{}".format(number)) == expected


def test_writers_sharing_a_conversation_under_their_own_lock_lose_nothing(store):
    threads, appends = 4, 50
    their_lock = threading.Lock()
    written = []
    errors = []

    def writer(number):
        try:
            for index in range(appends):
                events = [{"event": "slot", "name": "w{}".format(number), "value": index}]
                with their_lock:
                    store.append("shared", events)
                    written.extend(events)
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=writer, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors
    assert len(written) == threads * appends
    assert store.load("shared") == written


# --------------------------------------------------------------------------- SQLite: durability


def test_sqlite_a_second_store_on_the_file_sees_appended_events(sqlite_store, db_path):
    sqlite_store.append("ada", turn(1))
    sqlite_store.append("bob", [])
    second = SQLiteTrackerStore(db_path)
    try:
        assert second.load("ada") == turn(1)
        assert second.load("bob") == []
        assert second.conversation_ids() == ["ada", "bob"]
        second.append("ada", turn(2))
        assert sqlite_store.load("ada") == turn(1) + turn(2)
    finally:
        second.close()
    sqlite_store.close()
    reopened = SQLiteTrackerStore(db_path)
    try:
        assert reopened.load("ada") == turn(1) + turn(2)
    finally:
        reopened.close()


def test_sqlite_another_process_sees_appended_events(sqlite_store, db_path, tmp_path):
    sqlite_store.append("ada", turn(1))
    sqlite_store.replace("bob", turn(2))
    # The first store stays open: what append committed must already be visible.
    code = ("import json, sys\n"
            "from coreactors.stores.sqlite import SQLiteTrackerStore\n"
            "store = SQLiteTrackerStore(sys.argv[1])\n"
            "print(json.dumps({'ids': store.conversation_ids(), 'ada': store.load('ada'),\n"
            "                  'bob': store.load('bob')}))\n"
            "store.append('carl', [{'event': 'restart'}])\n"
            "store.close()\n")
    result = subprocess.run([sys.executable, "-c", code, db_path], cwd=str(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == {"ids": ["ada", "bob"], "ada": turn(1), "bob": turn(2)}
    assert sqlite_store.load("carl") == [{"event": "restart"}]
    assert sqlite_store.conversation_ids() == ["ada", "bob", "carl"]


def test_sqlite_uses_the_wal_journal(sqlite_store, db_path):
    sqlite_store.append("ada", turn(1))
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()
    assert os.path.exists(db_path + "-wal")


def test_sqlite_checkpoints_in_the_background(db_path, tmp_path):
    store = SQLiteTrackerStore(db_path, checkpoint_interval=0.02)
    try:
        store.append("ada", turn(1))
        # The database file alone (without its WAL) holds the events once checkpointed.
        copy = str(tmp_path / "copy.db")
        deadline = time.monotonic() + 30
        while True:
            shutil.copyfile(db_path, copy)
            raw = sqlite3.connect(copy)
            try:
                tables = raw.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                rows = raw.execute("SELECT data FROM events").fetchall() if tables else []
                count = sum(len(json.loads(data)) for (data,) in rows)
            except sqlite3.DatabaseError:
                count = None  # copied while a checkpoint was writing it: look again
            finally:
                raw.close()
            os.remove(copy)
            if count == len(turn(1)) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert count == len(turn(1))
    finally:
        store.close()


def test_sqlite_wal_starts_over_while_writes_go_on(db_path):
    # A passive checkpoint racing with writes never leaves the WAL fully copied by itself, so
    # without the catch-up under the lock the WAL would grow to ~40 MB here.
    store = SQLiteTrackerStore(db_path, checkpoint_interval=0.01)
    try:
        for index in range(4000):
            store.append("user-{}".format(index % 8), turn(index))
            time.sleep(0)  # let the checkpointer thread run, as pauses between turns do
        assert os.path.getsize(db_path + "-wal") < 16 * 1024 * 1024
        assert len(store.load("user-0")) == 500 * len(turn(0))
    finally:
        store.close()


def checkpointers():
    return [thread for thread in threading.enumerate()
            if thread.name == "tracker-store-checkpoint"]


def test_sqlite_works_without_the_background_checkpointer(db_path):
    before = len(checkpointers())
    store = SQLiteTrackerStore(db_path, checkpoint_interval=None)
    try:
        assert len(checkpointers()) == before
        store.append("ada", turn(1))
        store.append("ada", turn(2))
        assert store.load("ada") == turn(1) + turn(2)
    finally:
        store.close()


def test_sqlite_close_stops_the_checkpointer(db_path):
    before = len(checkpointers())
    store = SQLiteTrackerStore(db_path)
    assert len(checkpointers()) == before + 1
    store.close()
    assert len(checkpointers()) == before


# --------------------------------------------------------------------------- SQLite: failures


def test_sqlite_a_corrupt_file_raises_store_error(db_path):
    with open(db_path, "wb") as handle:
        handle.write(b"this is not a database, just garbage \x00\xff" * 300)
    with pytest.raises(StoreError, match="trackers.db"):
        SQLiteTrackerStore(db_path)


def test_sqlite_an_empty_file_becomes_a_store(db_path):
    open(db_path, "wb").close()
    store = SQLiteTrackerStore(db_path)
    try:
        store.append("ada", turn(1))
        assert store.load("ada") == turn(1)
    finally:
        store.close()


def test_sqlite_a_path_in_a_missing_folder_raises_store_error(tmp_path):
    missing = tmp_path / "no" / "such" / "folder" / "trackers.db"
    with pytest.raises(StoreError, match="does not exist"):
        SQLiteTrackerStore(str(missing))
    assert not (tmp_path / "no").exists()


def test_sqlite_a_folder_as_path_raises_store_error(tmp_path):
    with pytest.raises(StoreError):
        SQLiteTrackerStore(str(tmp_path))


def test_sqlite_a_database_of_another_program_raises_store_error(db_path):
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TABLE events (id INTEGER, sender_id TEXT, type_name TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="another program"):
        SQLiteTrackerStore(db_path)



def test_an_event_that_is_not_a_json_object_is_refused(store):
    for event in (["event", "user"], "user", 42, None):
        with pytest.raises(StoreError,
                           match="event 1 of conversation 'ada' must be a JSON object"):
            store.append("ada", turn(1)[:1] + [event])
        with pytest.raises(StoreError, match="must be a JSON object"):
            store.replace("ada", [event])
    assert store.load("ada") is None


def test_sqlite_stores_one_row_per_write(sqlite_store, db_path):
    sqlite_store.append("ada", turn(1))
    sqlite_store.append("ada", turn(2)[:1])
    sqlite_store.append("ada", [])
    raw = sqlite3.connect(db_path)
    try:
        rows = [json.loads(data)
                for (data,) in raw.execute("SELECT data FROM events ORDER BY seq")]
    finally:
        raw.close()
    assert rows == [turn(1), turn(2)[:1]]
    sqlite_store.replace("ada", turn(3) + turn(4))
    assert sqlite_store.load("ada") == turn(3) + turn(4)


SCHEMA_1 = (
    "CREATE TABLE conversations (id INTEGER PRIMARY KEY, sender_id TEXT NOT NULL UNIQUE)",
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, "
    "conversation INTEGER NOT NULL REFERENCES conversations (id), data TEXT NOT NULL)",
    "CREATE INDEX events_by_conversation ON events (conversation, seq)",
    "PRAGMA user_version = 1",
)


def test_sqlite_reads_a_file_of_schema_1_and_goes_on_in_it(db_path):
    # Schema 1 stored a row per event; such a file is read as it is and marked as schema 2.
    raw = sqlite3.connect(db_path)
    for statement in SCHEMA_1:
        raw.execute(statement)
    raw.execute("INSERT INTO conversations (sender_id) VALUES ('ada'), ('bob')")
    for conversation, events in ((1, turn(1)), (2, turn(5)), (1, turn(2))):
        raw.executemany("INSERT INTO events (conversation, data) VALUES (?, ?)",
                        [(conversation, json.dumps(e)) for e in events])
    raw.commit()
    raw.close()
    store = SQLiteTrackerStore(db_path)
    try:
        assert store.load("ada") == turn(1) + turn(2)
        store.append("ada", turn(3))
        assert store.load("ada") == turn(1) + turn(2) + turn(3)
        assert store.load("bob") == turn(5)
        assert store.conversation_ids() == ["ada", "bob"]
    finally:
        store.close()
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
    finally:
        raw.close()
    with SQLiteTrackerStore(db_path) as again:
        assert again.load("ada") == turn(1) + turn(2) + turn(3)

def test_sqlite_a_newer_schema_raises_store_error(sqlite_store, db_path):
    sqlite_store.close()
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SQLiteTrackerStore(db_path)


def add_failing_trigger(db_path):
    """Makes SQLite itself fail any insert of an event whose JSON mentions "boom"."""
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TRIGGER fail_on_boom BEFORE INSERT ON events "
                "WHEN NEW.data LIKE '%boom%' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    raw.commit()
    raw.close()


def test_sqlite_a_failing_append_leaves_earlier_events_intact(sqlite_store, db_path):
    sqlite_store.append("ada", turn(1))
    add_failing_trigger(db_path)
    boom = turn(2) + [{"event": "bot", "text": "boom"}] + turn(3)
    with pytest.raises(StoreError, match="disk on fire") as raised:
        sqlite_store.append("ada", boom)
    assert "append" in str(raised.value) and "'ada'" in str(raised.value)
    assert sqlite_store.load("ada") == turn(1)
    # The large-batch path (one explicit transaction) is just as atomic.
    with pytest.raises(StoreError):
        sqlite_store.append("ada", turn(4) * 30 + [{"event": "bot", "text": "boom"}])
    assert sqlite_store.load("ada") == turn(1)
    # A new conversation whose first append fails is not created.
    with pytest.raises(StoreError):
        sqlite_store.append("bob", boom)
    assert sqlite_store.load("bob") is None
    assert sqlite_store.conversation_ids() == ["ada"]
    # The store keeps working afterwards.
    sqlite_store.append("ada", turn(5))
    assert sqlite_store.load("ada") == turn(1) + turn(5)


class Outcomes:
    """Collects the ``done`` calls of append_then/then, in the order they came."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, name):
        def done(error):
            with self.lock:
                self.calls.append((name, error))
        return done

    def wait(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.calls) >= count:
                    return dict(self.calls)
            time.sleep(0.001)
        raise AssertionError("only {} of {} callbacks came".format(len(self.calls), count))

    @property
    def order(self):
        return [name for name, _ in self.calls]


def hold_the_writer(store):
    """Stops the writer thread inside a callback until the returned Event is set, so writes
    queued meanwhile wait (and then go into one batch)."""
    held, release = threading.Event(), threading.Event()

    def block(error):
        held.set()
        release.wait(10)
    store.then("holder", block, WriteChain())
    assert held.wait(10)
    return release


def test_sqlite_group_commit_fails_only_the_bad_append_of_a_batch(sqlite_store, db_path):
    for name in ("ada", "bob", "cy", "dee"):
        sqlite_store.append(name, turn(0))
    add_failing_trigger(db_path)
    outcomes = Outcomes()
    release = hold_the_writer(sqlite_store)
    for name, events in (("ada", turn(1)), ("bob", turn(1)),
                         ("cy", turn(1) + [{"event": "bot", "text": "boom"}]), ("dee", turn(1))):
        sqlite_store.append_then(name, events, outcomes(name))
    assert outcomes.calls == []  # nothing is written while the writer is held
    release.set()
    results = outcomes.wait(4)
    assert outcomes.order == ["ada", "bob", "cy", "dee"]
    assert isinstance(results["cy"], StoreError) and "disk on fire" in str(results["cy"])
    assert [results[name] for name in ("ada", "bob", "dee")] == [None] * 3
    for name in ("ada", "bob", "dee"):
        assert sqlite_store.load(name) == turn(0) + turn(1)
    assert sqlite_store.load("cy") == turn(0)


def test_append_then_calls_back_once_stored(store):
    outcomes = Outcomes()
    chain = WriteChain()
    store.append_then("ada", turn(1), outcomes("first"), chain)
    store.append_then("ada", turn(2), outcomes("second"), chain)
    store.then("ada", outcomes("then"), chain)
    assert outcomes.wait(3) == {"first": None, "second": None, "then": None}
    assert outcomes.order == ["first", "second", "then"]
    assert not chain.pending() and not chain.failed
    assert store.load("ada") == turn(1) + turn(2)


def test_a_failed_append_fails_the_later_writes_of_its_chain_only(store):
    outcomes = Outcomes()
    ada, bob = WriteChain(), WriteChain()
    store.append_then("ada", turn(1), outcomes("ada 1"), ada)
    store.append_then("ada", turn(2) + [{"event": "bot", "data": object()}], outcomes("ada 2"),
                      ada)
    store.append_then("bob", turn(1), outcomes("bob 1"), bob)
    store.append_then("ada", turn(3), outcomes("ada 3"), ada)
    store.then("ada", outcomes("ada then"), ada)
    results = outcomes.wait(5)
    assert results["ada 1"] is None and results["bob 1"] is None
    assert "event 4 of conversation 'ada'" in str(results["ada 2"])
    for later in ("ada 3", "ada then"):
        assert isinstance(results[later], StoreError)
        assert "an earlier write of conversation 'ada' failed" in str(results[later])
    assert ada.failed and not ada.pending() and not bob.failed
    assert store.load("ada") == turn(1) and store.load("bob") == turn(1)
    # A new chain (the actor reads the conversation again) writes as usual.
    fresh = WriteChain()
    store.append_then("ada", turn(4), outcomes("ada 4"), fresh)
    assert outcomes.wait(6)["ada 4"] is None
    assert store.load("ada") == turn(1) + turn(4)


def test_sqlite_a_failure_in_the_database_fails_the_rest_of_the_chain(sqlite_store, db_path):
    sqlite_store.append("ada", turn(0))
    add_failing_trigger(db_path)
    outcomes = Outcomes()
    chain = WriteChain()
    release = hold_the_writer(sqlite_store)
    sqlite_store.append_then("ada", turn(1), outcomes("1"), chain)
    sqlite_store.append_then("ada", [{"event": "bot", "text": "boom"}], outcomes("boom"), chain)
    sqlite_store.append_then("ada", turn(2), outcomes("2"), chain)
    sqlite_store.append_then("bob", turn(2), outcomes("bob"))
    release.set()
    results = outcomes.wait(4)
    assert results["1"] is None and results["bob"] is None
    assert "disk on fire" in str(results["boom"])
    assert "an earlier write" in str(results["2"])
    assert sqlite_store.load("ada") == turn(0) + turn(1)
    assert sqlite_store.load("bob") == turn(2)


def test_sqlite_then_waits_for_the_writes_before_it(sqlite_store):
    outcomes = Outcomes()
    chain = WriteChain()
    release = hold_the_writer(sqlite_store)
    sqlite_store.append_then("ada", turn(1), outcomes("append"), chain)
    sqlite_store.then("ada", outcomes("then"), chain)
    time.sleep(0.05)
    assert outcomes.calls == [] and chain.pending()
    release.set()
    assert outcomes.wait(2) == {"append": None, "then": None}
    assert outcomes.order == ["append", "then"] and not chain.pending()


def test_sqlite_load_waits_for_the_conversations_queued_writes(sqlite_store):
    sqlite_store.append("ada", turn(1))
    release = hold_the_writer(sqlite_store)
    sqlite_store.append_then("ada", turn(2), lambda error: None)
    loaded = []
    reader = threading.Thread(target=lambda: loaded.append(sqlite_store.load("ada")))
    reader.start()
    assert sqlite_store.load("bob") is None  # other conversations do not wait
    time.sleep(0.05)
    assert loaded == []
    release.set()
    reader.join(10)
    assert loaded == [turn(1) + turn(2)]


def test_sqlite_replace_comes_after_the_writes_queued_before_it(sqlite_store):
    sqlite_store.append("ada", turn(1))
    release = hold_the_writer(sqlite_store)
    sqlite_store.append_then("ada", turn(2), lambda error: None)
    replacer = threading.Thread(target=sqlite_store.replace, args=("ada", turn(5)))
    replacer.start()
    time.sleep(0.05)
    release.set()
    replacer.join(10)
    assert sqlite_store.load("ada") == turn(5)


def test_sqlite_close_does_the_queued_writes_first(db_path):
    store = SQLiteTrackerStore(db_path)
    outcomes = Outcomes()
    release = hold_the_writer(store)
    for number in range(5):
        store.append_then("ada", turn(number), outcomes(number))
    closer = threading.Thread(target=store.close)
    closer.start()
    time.sleep(0.05)
    release.set()
    closer.join(10)
    assert outcomes.wait(5) == {number: None for number in range(5)}
    store.append_then("ada", turn(9), outcomes("late"))
    assert "closed" in str(outcomes.wait(6)["late"])
    with SQLiteTrackerStore(db_path) as again:
        assert again.load("ada") == [e for n in range(5) for e in turn(n)]


def test_sqlite_a_failing_replace_leaves_the_conversation_intact(sqlite_store, db_path):
    sqlite_store.append("ada", turn(1))
    add_failing_trigger(db_path)
    with pytest.raises(StoreError, match="replace"):
        sqlite_store.replace("ada", turn(2) + [{"event": "bot", "text": "boom"}])
    assert sqlite_store.load("ada") == turn(1)


def test_sqlite_a_database_locked_too_long_raises_store_error(db_path):
    store = SQLiteTrackerStore(db_path, timeout=0.2)
    try:
        store.append("ada", turn(1))
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreError, match="locked"):
                store.append("ada", turn(2))
            with pytest.raises(StoreError, match="locked"):
                store.append("new", [])
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert store.load("ada") == turn(1)
        store.append("ada", turn(3))
        assert store.load("ada") == turn(1) + turn(3)
    finally:
        store.close()


def test_sqlite_a_sender_id_sqlite_cannot_encode_raises_store_error(sqlite_store):
    with pytest.raises(StoreError):
        sqlite_store.append("lone \ud800 surrogate", turn(1))
    assert sqlite_store.conversation_ids() == []


def test_sqlite_an_event_corrupted_on_disk_raises_store_error(sqlite_store, db_path):
    sqlite_store.append("ada", turn(1))
    raw = sqlite3.connect(db_path)
    raw.execute("UPDATE events SET data = '{not json' WHERE seq = (SELECT min(seq) FROM events)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="not JSON"):
        sqlite_store.load("ada")


# --------------------------------------------------------------------------- store_from_endpoint


@pytest.fixture
def made():
    """Collects stores made by a test and closes them afterwards."""
    stores = []
    yield stores.append
    for each in stores:
        each.close()


def opened(store, made):
    made(store)
    return store


@pytest.mark.parametrize("config", [None, {}])
def test_endpoint_without_a_block_is_sqlite_at_the_default_path(config, tmp_path, made):
    default = str(tmp_path / "default.db")
    store = opened(store_from_endpoint(config, default_path=default), made)
    assert isinstance(store, SQLiteTrackerStore)
    assert store.path == default
    store.append("ada", turn(1))
    assert os.path.exists(default)


@pytest.mark.parametrize("key", ["db", "path", "url"])
@pytest.mark.parametrize("type_key", ["type", "store_type"])
def test_endpoint_sqlite_names_its_file(key, type_key, tmp_path, made):
    path = str(tmp_path / "named.db")
    store = opened(store_from_endpoint({type_key: "sqlite", key: path},
                                       default_path=str(tmp_path / "default.db")), made)
    assert isinstance(store, SQLiteTrackerStore)
    assert store.path == path
    assert not os.path.exists(tmp_path / "default.db")


def test_endpoint_sqlite_url_forms(tmp_path, monkeypatch, made):
    monkeypatch.chdir(tmp_path)
    relative = opened(store_from_endpoint({"type": "sqlite", "url": "sqlite:///rel.db"}), made)
    assert relative.path == "rel.db"
    absolute = str(tmp_path / "abs.db")
    store = opened(store_from_endpoint({"type": "sqlite", "url": "sqlite:///" + absolute}),
                   made)
    assert store.path == absolute
    assert os.path.exists(absolute)


def test_endpoint_sqlite_without_a_file_uses_the_default_path(tmp_path, made):
    default = str(tmp_path / "default.db")
    store = opened(store_from_endpoint({"store_type": "SQLite"}, default_path=default), made)
    assert store.path == default


def test_endpoint_agreeing_file_keys_are_fine_and_disagreeing_ones_refused(tmp_path, made):
    path = str(tmp_path / "same.db")
    store = opened(store_from_endpoint({"type": "sqlite", "db": path, "path": path}), made)
    assert store.path == path
    with pytest.raises(ValueError, match="only one of"):
        store_from_endpoint({"type": "sqlite", "db": path, "url": str(tmp_path / "other.db")})


@pytest.mark.parametrize("name", ["memory", "in_memory", "InMemoryTrackerStore", "MEMORY"])
def test_endpoint_memory_types(name, tmp_path, made):
    default = str(tmp_path / "default.db")
    store = opened(store_from_endpoint({"store_type": name}, default_path=default), made)
    assert isinstance(store, InMemoryTrackerStore)
    assert not os.path.exists(default)


def test_endpoint_store_type_wins_over_type(tmp_path, made):
    default = str(tmp_path / "default.db")
    store = opened(store_from_endpoint({"type": "mongod", "store_type": "memory"},
                                       default_path=default), made)
    assert isinstance(store, InMemoryTrackerStore)
    with pytest.raises(ValueError, match="'mongod'"):
        store_from_endpoint({"type": "memory", "store_type": "mongod"}, default_path=default)


@pytest.mark.parametrize("name", ["mongod", "dynamo", "my_module.MyTrackerStore"])
def test_endpoint_unsupported_types_are_refused(name, tmp_path):
    default = str(tmp_path / "default.db")
    with pytest.raises(ValueError) as raised:
        store_from_endpoint({"store_type": name, "url": "localhost", "db": "rasa"},
                            default_path=default)
    message = str(raised.value)
    assert repr(name) in message and "sqlite" in message and "memory" in message
    assert not os.listdir(str(tmp_path))


@pytest.mark.parametrize("config, complaint", [
    ({"type": 3}, "non-empty string"),
    ({"store_type": ""}, "non-empty string"),
    ({"type": "sqlite", "db": ""}, "must name the SQLite file"),
    ({"type": "sqlite", "db": 5}, "must name the SQLite file"),
    ({"type": "sqlite", "url": "redis://localhost:6379"}, "not a SQLite file"),
    ({"type": "sqlite", "url": "sqlite:///"}, "names no SQLite file"),
    (["sqlite"], "must be a mapping"),
])
def test_endpoint_malformed_blocks_are_refused(config, complaint, tmp_path):
    with pytest.raises(ValueError, match=complaint):
        store_from_endpoint(config, default_path=str(tmp_path / "default.db"))


def test_endpoint_sqlite_in_a_missing_folder_raises_store_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        store_from_endpoint({"type": "sqlite", "db": str(tmp_path / "missing" / "t.db")})


# --------------------------------------------------------------------------- reads and new senders


def test_sqlite_a_read_does_not_wait_for_the_writer_mid_batch(sqlite_store):
    """Reads have connections of their own: a writer holding the shared connection (as it does
    for a whole batch) does not hold up a first read of another sender."""
    sqlite_store.append("ada", turn(1))
    loaded = []
    with sqlite_store._lock:  # the writer's connection, taken as a batch takes it
        reader = threading.Thread(target=lambda: loaded.append(
            (sqlite_store.load("ada"), sqlite_store.load("someone new"),
             sqlite_store.conversation_ids())))
        reader.start()
        reader.join(5)
        assert loaded == [(turn(1), None, ["ada"])]


def test_sqlite_a_read_on_another_thread_sees_each_write_once_it_is_done(sqlite_store):
    seen = []

    def read(name):
        done = threading.Event()
        threading.Thread(target=lambda: (seen.append(sqlite_store.load(name)),
                                         done.set())).start()
        assert done.wait(5)
        return seen.pop()
    assert read("ada") is None  # that thread's read connection is now open
    for number in range(3):
        sqlite_store.append("ada", turn(number))
        assert read("ada") == [e for n in range(number + 1) for e in turn(n)]
    sqlite_store.replace("ada", turn(9))
    assert read("ada") == turn(9)


def test_sqlite_close_closes_the_read_connections(db_path):
    store = SQLiteTrackerStore(db_path)
    store.append("ada", turn(1))
    errors = []
    started, closed = threading.Event(), threading.Event()

    def reader():
        store.load("ada")
        started.set()
        closed.wait(5)
        try:
            store.load("ada")
        except StoreError as error:
            errors.append(error)
    thread = threading.Thread(target=reader)
    thread.start()
    assert started.wait(5)
    store.close()
    closed.set()
    thread.join(5)
    assert len(errors) == 1 and "closed" in str(errors[0])
    assert store._reader_list == []
    with pytest.raises(StoreError, match="closed"):
        store.load("ada")  # this thread never had a read connection


def test_sqlite_a_batch_of_many_new_senders_stores_each_in_first_seen_order(sqlite_store):
    """New senders get their rows in two statements per batch (64 at a time): a batch of 150
    new senders, some writing twice, amid known ones, loses nothing and keeps the order."""
    sqlite_store.append("known", turn(0))
    outcomes = Outcomes()
    release = hold_the_writer(sqlite_store)
    names = ["new-{}".format(n) for n in range(150)]
    for name in names:
        sqlite_store.append_then(name, turn(1), outcomes(name))
        if name.endswith("7"):
            sqlite_store.append_then(name, turn(2), outcomes(name + "+"))
        sqlite_store.append_then("known", turn(3), outcomes("known"))
    release.set()
    results = outcomes.wait(2 * 150 + 15)
    assert set(results.values()) == {None}
    assert sqlite_store.conversation_ids() == ["known"] + names
    for name in names:
        assert sqlite_store.load(name) == turn(1) + (turn(2) if name.endswith("7") else [])
    assert sqlite_store.load("known") == turn(0) + turn(3) * 150


# --------------------------------------------------------------------------- Redis


@pytest.mark.parametrize("block", [
    {"type": "redis", "url": "127.0.0.1", "port": 6379, "db": 0},
    {"store_type": "redis", "url": "redis://127.0.0.1:6379/0"},
])
def test_endpoint_redis_store_round_trips(block):
    client = redis_client()
    prefix = "coreactors-test-{}".format(uuid.uuid4().hex)
    store = store_from_endpoint(dict(block, key_prefix=prefix))
    try:
        assert type(store).__name__ == "RedisTrackerStore"
        store.append("ada", turn(1))
        again = store_from_endpoint(dict(block, key_prefix=prefix))  # a restart, say
        assert again.load("ada") == turn(1) and again.conversation_ids() == ["ada"]
        again.close()
    finally:
        store.close()
        for key in client.scan_iter(match=prefix + ":*"):
            client.delete(key)


def test_endpoint_redis_settings_of_the_wrong_kind_are_refused():
    with pytest.raises(ValueError, match="port must be a int"):
        store_from_endpoint({"type": "redis", "port": "six"})


def test_load_since_returns_what_came_after_a_version(store):
    if not hasattr(store, "load_since"):
        pytest.skip("load_since is the shared stores' (Redis, PostgreSQL)")
    assert store.load_since("ada", 0) is None
    store.append("ada", turn(1))
    events, version, whole = store.load_since("ada", 0)
    assert events == turn(1) and version == 1 and whole
    store.append("ada", turn(2))
    store.append("ada", [])
    assert store.load_since("ada", version) == Since(turn(2), 3, False)
    assert store.load_since("ada", 3) == Since([], 3, False)


def test_redis_conversations_expire_after_record_exp():
    from coreactors.stores.redis import RedisTrackerStore
    client = redis_client()
    prefix = "coreactors-test-{}".format(uuid.uuid4().hex)
    store = RedisTrackerStore(client, prefix=prefix, record_exp=1)
    try:
        store.append("ada", turn(1))
        store.replace("bob", turn(2))
        assert client.ttl(prefix + ":events:ada") in (0, 1)
        assert client.ttl(prefix + ":events:bob") in (0, 1)
        deadline = time.monotonic() + 5
        while store.conversation_ids() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.conversation_ids() == [] and store.load("ada") is None
    finally:
        store.close()
        for key in client.scan_iter(match=prefix + ":*"):
            client.delete(key)


def test_redis_down_is_a_store_error_and_the_store_recovers_by_itself(tmp_path):
    """A Redis of the test's own: stopped, every call is a StoreError; started again on the
    same port, the same store object works again (redis-py connects anew)."""
    from live_server import free_port, start_redis
    port = free_port()
    process = start_redis(port, str(tmp_path))
    store = store_from_endpoint({"type": "redis", "url": "127.0.0.1", "port": port})
    try:
        store.append("ada", turn(1))
        process.terminate()
        process.wait(10)
        for call in (lambda: store.load("ada"), lambda: store.append("ada", turn(2)),
                     lambda: store.replace("ada", turn(3)), store.conversation_ids):
            with pytest.raises(StoreError, match="Redis at 127.0.0.1"):
                call()
        process = start_redis(port, str(tmp_path))  # empty: it keeps nothing on disk
        store.append("ada", turn(4))
        assert store.load("ada") == turn(4)
    finally:
        store.close()
        process.kill()
        process.wait()



# --------------------------------------------------------------------------- PostgreSQL


def test_endpoint_sql_postgresql_store_round_trips():
    import psycopg
    conninfo, drop = postgres_schema()
    schema = conninfo.rsplit("search_path=", 1)[1].rstrip("'")
    block = {"type": "sql", "dialect": "postgresql", "url": "127.0.0.1", "port": 5432,
             "db": "test", "username": "postgres"}
    try:
        store = store_from_endpoint(block)
        try:
            assert type(store).__name__ == "SQLTrackerStore"
            # The block's tables go to the database's default schema: moved to this test's.
            store.append("coreactors-test-" + schema, turn(1))
            assert store.load("coreactors-test-" + schema) == turn(1)
        finally:
            store.close()
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute("DELETE FROM events WHERE conversation IN (SELECT id FROM "
                          "conversations WHERE sender_id = %s)",
                          (("coreactors-test-" + schema).encode(),))
            admin.execute("DELETE FROM conversations WHERE sender_id = %s",
                          (("coreactors-test-" + schema).encode(),))
        drop()


def test_endpoint_sql_sqlite_dialect_is_the_sqlite_store(tmp_path, made):
    path = str(tmp_path / "rasa.db")
    store = opened(store_from_endpoint({"type": "sql", "db": path}), made)
    assert isinstance(store, SQLiteTrackerStore) and store.path == path


def test_endpoint_sql_other_dialects_are_refused():
    with pytest.raises(ValueError, match="dialect 'mysql' is not supported"):
        store_from_endpoint({"type": "sql", "dialect": "mysql"})


def test_postgresql_unreachable_is_a_store_error_and_the_server_can_start():
    from coreactors.stores.sql import SQLTrackerStore
    from live_server import free_port
    store = SQLTrackerStore.from_config(host="127.0.0.1", port=free_port(), db="test",
                                        username="postgres", timeout=1)
    try:
        for call in (lambda: store.load("ada"), lambda: store.append("ada", turn(1)),
                     lambda: store.replace("ada", turn(1)), store.conversation_ids):
            with pytest.raises(StoreError, match="PostgreSQL at 127.0.0.1"):
                call()
    finally:
        store.close()


def test_postgresql_a_dropped_connection_fails_one_call_then_the_store_connects_again():
    import psycopg

    from coreactors.stores.sql import SQLTrackerStore
    conninfo, drop = postgres_schema()
    store = SQLTrackerStore(conninfo)
    try:
        store.append("ada", turn(1))
        backend = store._connection.info.backend_pid
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        with pytest.raises(StoreError):
            store.append("ada", turn(2))
        store.append("ada", turn(3))
        assert store.load("ada") == turn(1) + turn(3)
    finally:
        store.close()
        drop()


# --------------------------------------------------------------------------- versions and fencing
# The shared stores (Redis, PostgreSQL) only; the local ones skip.


@pytest.fixture
def shared(store):
    if not isinstance(store, VersionedTrackerStore):
        pytest.skip("versions and fencing are the shared stores' (Redis, PostgreSQL)")
    return store


def is_redis(store):
    return type(store).__name__ == "RedisTrackerStore"


def another(store):
    """A second store object on the same data, as another server has (its own connection)."""
    if is_redis(store):
        from coreactors.stores.redis import RedisTrackerStore
        return RedisTrackerStore(redis_client(), prefix=store._prefix)
    from coreactors.stores.sql import SQLTrackerStore
    return SQLTrackerStore(store._conninfo)


def raw_sql(store, statement, params=()):
    """Runs a statement on the store's database on a connection of its own; its rows, if any."""
    import psycopg
    with psycopg.connect(store._conninfo, autocommit=True) as connection:
        cursor = connection.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


# What a server of the earlier layout ran for an append (no versions, no tokens).
EARLIER_SQL_APPEND = """
WITH new AS (INSERT INTO conversations (sender_id) VALUES (%(sender)s)
             ON CONFLICT (sender_id) DO NOTHING RETURNING id)
INSERT INTO events (conversation, data)
SELECT id, %(data)s FROM new
UNION ALL SELECT id, %(data)s FROM conversations WHERE sender_id = %(sender)s
"""


def write_earlier_layout(store, sender_id, writes):
    """Writes as a server of the earlier layout did: in Redis the list alone (no hash), in
    PostgreSQL rows without a version (and the conversation's version left at 0)."""
    if is_redis(store):
        client, prefix = store._client, store._prefix
        for events in writes:
            client.rpush("{}:events:{}".format(prefix, sender_id), json.dumps(events))
        if client.zscore(prefix + ":conversations", sender_id) is None:
            client.zadd(prefix + ":conversations",
                        {sender_id: client.incr(prefix + ":conversation_counter")})
        return
    for events in writes:
        raw_sql(store, EARLIER_SQL_APPEND,
                {"sender": sender_id.encode(), "data": json.dumps(events)})


def stored_fence(store, sender_id):
    if is_redis(store):
        return store._client.hget("{}:meta:{}".format(store._prefix, sender_id), "fence")
    return raw_sql(store, "SELECT fence FROM conversations WHERE sender_id = %s",
                   (sender_id.encode(),))[0][0]


def lose(store, sender_id):
    """Loses a conversation as a flushed Redis or a restored older backup would."""
    if is_redis(store):
        store._client.delete("{}:events:{}".format(store._prefix, sender_id),
                             "{}:meta:{}".format(store._prefix, sender_id))
        return
    raw_sql(store, "DELETE FROM events WHERE conversation = "
                   "(SELECT id FROM conversations WHERE sender_id = %s)", (sender_id.encode(),))
    raw_sql(store, "DELETE FROM conversations WHERE sender_id = %s", (sender_id.encode(),))


def test_versions_count_writes(shared):
    for number in range(3):
        shared.append("ada", turn(number))
        assert shared.load_since("ada", 0).version == number + 1
    shared.append("ada", [])
    shared.replace("ada", turn(7))
    assert shared.load_since("ada", 0) == Since(turn(7), 5, True)
    shared.replace("bob", [])  # a replace that makes a conversation is its first write
    assert shared.load_since("bob", 0) == Since([], 1, True)


def test_load_since_a_version_returns_only_what_came_after_it(shared):
    for number in range(4):
        shared.append("ada", turn(number))
    for version in range(1, 5):
        expected = [event for number in range(version, 4) for event in turn(number)]
        assert shared.load_since("ada", version) == Since(expected, 4, False)


def test_load_since_version_0_is_the_whole_conversation(shared):
    shared.append("ada", turn(1))
    shared.append("ada", turn(2))
    assert shared.load_since("ada", 0) == Since(turn(1) + turn(2), 2, True)
    assert shared.load_since("ada", -3) == Since(turn(1) + turn(2), 2, True)
    with pytest.raises(StoreError, match="version"):
        shared.load_since("ada", "1")


def test_a_replace_sends_the_readers_before_it_everything(shared):
    shared.append("ada", turn(1))
    shared.append("ada", turn(2))
    shared.replace("ada", turn(3))  # version 3: 1 and 2 are gone
    assert shared.load_since("ada", 2) == Since(turn(3), 3, True)
    assert shared.load_since("ada", 1) == Since(turn(3), 3, True)
    assert shared.load_since("ada", 3) == Since([], 3, False)
    shared.append("ada", turn(4))
    assert shared.load_since("ada", 3) == Since(turn(4), 4, False)
    assert shared.load_since("ada", 2) == Since(turn(3) + turn(4), 4, True)
    shared.replace("ada", [])
    shared.replace("ada", turn(5))
    assert shared.load_since("ada", 5) == Since(turn(5), 6, True)
    assert shared.load_since("ada", 6) == Since([], 6, False)


def test_a_reader_ahead_of_the_store_gets_everything(shared):
    shared.append("ada", turn(1))
    assert shared.load_since("ada", 99) == Since(turn(1), 1, True)
    for number in range(2, 4):
        shared.append("ada", turn(number))
    lose(shared, "ada")
    assert shared.load_since("ada", 3) is None
    shared.append("ada", turn(9))  # starts again from version 0
    assert shared.load_since("ada", 3) == Since(turn(9), 1, True)
    assert shared.load_since("ada", 1) == Since([], 1, False)


def test_a_write_under_a_lost_lease_is_refused_and_writes_nothing(shared):
    import pickle
    shared.append("ada", turn(1))
    old_server = another(shared)
    try:
        # The new holder (token 5) reads; the old one (token 3) has not noticed yet.
        assert shared.load_since("ada", 1, fence=5) == Since([], 1, False)
        with pytest.raises(StaleLease) as raised:
            old_server.append("ada", turn(2), fence=3)
        message = str(raised.value)
        assert "lease was lost" in message and "'ada'" in message
        assert "token 3 is older" in message and "(5)" in message
        assert (raised.value.fence, raised.value.newest) == (3, 5)
        assert isinstance(raised.value, StoreError)
        assert str(pickle.loads(pickle.dumps(raised.value))) == message
        with pytest.raises(StaleLease):
            old_server.replace("ada", turn(8), fence=4)
        assert shared.load_since("ada", 0) == Since(turn(1), 1, True)  # version unchanged
        shared.append("ada", turn(2), fence=5)
        old_server.append("ada", turn(3), fence=6)  # a newer lease yet
        with pytest.raises(StaleLease, match=r"token 5 is older .*\(6\)"):
            shared.append("ada", turn(4), fence=5)
        with pytest.raises(StaleLease, match="token 5 is older"):
            shared.replace("ada", turn(4), fence=5)
        assert shared.load_since("ada", 1) == Since(turn(2) + turn(3), 3, False)
        shared.append("ada", turn(5))  # without a token: never refused
        old_server.replace("ada", turn(6), fence=6)
        assert shared.load_since("ada", 4) == Since(turn(6), 5, True)
        assert stored_fence(shared, "ada") in (6, b"6")
    finally:
        old_server.close()


def test_an_older_token_never_lowers_the_conversations(shared):
    shared.append("ada", turn(1), fence=7)  # a new conversation takes its first writer's
    with pytest.raises(StaleLease, match=r"\(7\)"):
        shared.append("ada", turn(2), fence=6)
    assert shared.load_since("ada", 0, fence=2) == Since(turn(1), 1, True)
    with pytest.raises(StaleLease, match=r"\(7\)"):
        shared.append("ada", turn(2), fence=6)
    shared.append("ada", turn(2), fence=7)
    assert shared.load("ada") == turn(1) + turn(2)


def unknown_everywhere(store, sender_id):
    """Whether every reader takes the conversation for unknown."""
    return (store.load_since(sender_id, 0) is None and store.load(sender_id) is None
            and sender_id not in store.conversation_ids())


def test_a_read_with_a_token_of_an_unknown_conversation_fences_its_first_write(shared):
    shared.append("first", turn(0))
    assert shared.load_since("ada", 0, fence=5) is None
    assert unknown_everywhere(shared, "ada") and shared.conversation_ids() == ["first"]
    assert shared.load_since("ada", 3, fence=5) is None  # read again under the same lease
    with pytest.raises(StaleLease) as raised:
        shared.append("ada", turn(1), fence=4)
    assert (raised.value.fence, raised.value.newest) == (4, 5)
    with pytest.raises(StaleLease, match=r"token 3 is older .*\(5\)"):
        shared.replace("ada", turn(1), fence=3)
    assert unknown_everywhere(shared, "ada")  # nothing written
    shared.append("bob", turn(2))
    # The same token writes: the conversation's first write, placed after bob's.
    shared.append("ada", turn(1), fence=5)
    assert shared.load_since("ada", 0) == Since(turn(1), 1, True)
    assert shared.conversation_ids() == ["first", "bob", "ada"]
    with pytest.raises(StaleLease):
        shared.append("ada", turn(2), fence=4)
    shared.append("ada", turn(2), fence=6)
    assert shared.load_since("ada", 1) == Since(turn(2), 2, False)


def test_a_lease_holder_that_found_nothing_cannot_write_under_the_next_one(shared):
    # A (token 5) reads a new conversation and stalls; B (token 7) reads it; A resumes.
    stalled = another(shared)
    try:
        assert stalled.load_since("ada", 0, fence=5) is None
        assert shared.load_since("ada", 0, fence=7) is None
        with pytest.raises(StaleLease, match=r"token 5 is older .*\(7\)"):
            stalled.append("ada", turn(1), fence=5)
        with pytest.raises(StaleLease):
            stalled.replace("ada", turn(1), fence=6)
        assert unknown_everywhere(shared, "ada")
        shared.append("ada", turn(2), fence=7)  # B writes on what it read: nothing
        assert stalled.load_since("ada", 0) == Since(turn(2), 1, True)
        assert shared.conversation_ids() == ["ada"]
        # An older token read afterwards lowers nothing.
        assert stalled.load_since("ada", 1, fence=6) == Since([], 1, False)
        with pytest.raises(StaleLease, match=r"\(7\)"):
            stalled.append("ada", turn(3), fence=6)
    finally:
        stalled.close()


def test_fencing_reads_of_an_unknown_conversation_keep_the_newest_token(shared):
    assert shared.load_since("ada", 0, fence=5) is None
    assert shared.load_since("ada", 0, fence=7) is None  # a newer lease raises it
    assert shared.load_since("ada", 0, fence=6) is None  # an older one does not lower it
    assert stored_fence(shared, "ada") in (7, b"7")
    assert unknown_everywhere(shared, "ada")
    for token in (5, 6):
        with pytest.raises(StaleLease, match=r"\(7\)"):
            shared.append("ada", turn(1), fence=token)
    shared.replace("ada", turn(1), fence=7)  # a replace may be the first write too
    assert shared.load_since("ada", 0) == Since(turn(1), 1, True)
    assert shared.conversation_ids() == ["ada"]


def test_a_write_without_a_token_makes_a_fenced_unknown_conversation(shared):
    assert shared.load_since("ada", 0, fence=5) is None
    shared.append("ada", turn(1))  # no lock store: never refused
    assert shared.load_since("ada", 0) == Since(turn(1), 1, True)
    assert shared.conversation_ids() == ["ada"]
    with pytest.raises(StaleLease, match=r"\(5\)"):  # the read's token is kept
        shared.append("ada", turn(2), fence=4)


def test_a_read_with_token_0_or_none_of_an_unknown_conversation_records_nothing(shared):
    assert shared.load_since("ada", 0) is None
    assert shared.load_since("ada", 0, fence=0) is None
    if is_redis(shared):
        assert list(shared._client.scan_iter(match=shared._prefix + ":*")) == []
    else:
        assert raw_sql(shared, "SELECT count(*) FROM conversations") == [(0,)]
    shared.append("ada", turn(1), fence=0)
    assert shared.load_since("ada", 0) == Since(turn(1), 1, True)


def test_append_then_under_a_lost_lease_fails_its_chain(shared):
    shared.append("ada", turn(1))
    shared.load_since("ada", 1, fence=5)
    outcomes = Outcomes()
    chain = WriteChain()
    shared.append_then("ada", turn(2), outcomes("stale"), chain, fence=3)
    shared.append_then("ada", turn(3), outcomes("after"), chain, fence=5)
    shared.then("ada", outcomes("then"), chain)
    results = outcomes.wait(3)
    assert isinstance(results["stale"], StaleLease) and "lease was lost" in str(results["stale"])
    assert "an earlier write" in str(results["after"]) and "an earlier write" in str(
        results["then"])
    assert chain.failed and not chain.pending()
    assert shared.load_since("ada", 0) == Since(turn(1), 1, True)
    fresh = WriteChain()
    shared.append_then("ada", turn(4), outcomes("fresh"), fresh, fence=5)
    shared.append_then("ada", turn(5), outcomes("no token"), fresh)
    assert outcomes.wait(5)["fresh"] is None and outcomes.wait(5)["no token"] is None
    assert shared.load_since("ada", 1) == Since(turn(4) + turn(5), 3, False)


def test_append_then_with_no_token_works_on_the_stores_using_the_contracts(store):
    # The in-memory store's append takes no token: append_then passes one only when given.
    if isinstance(store, SQLiteTrackerStore):
        pytest.skip("the SQLite store's append_then is its own (queued writes), without tokens")
    outcomes = Outcomes()
    store.append_then("ada", turn(1), outcomes("plain"), WriteChain(), fence=None)
    assert outcomes.wait(1) == {"plain": None}
    assert store.load("ada") == turn(1)


def test_tokens_near_2e15_round_trip_and_compare_exactly(shared):
    # Beyond what a double holds to the unit from 2**53 on; these are exact in both stores.
    token = 1_765_000_000_000_123
    shared.append("ada", turn(1), fence=token)
    assert stored_fence(shared, "ada") in (token, str(token).encode())
    shared.load_since("ada", 1, fence=token + 1)
    with pytest.raises(StaleLease) as raised:
        shared.append("ada", turn(2), fence=token)
    assert raised.value.newest == token + 1
    assert "token 1765000000000123 is older" in str(raised.value)
    assert "(1765000000000124)" in str(raised.value)
    shared.append("ada", turn(2), fence=token + 1)
    largest = 2 ** 63 - 1
    shared.append("ada", turn(3), fence=largest - 1)
    with pytest.raises(StaleLease):
        shared.append("ada", turn(4), fence=largest - 2)  # equal as doubles, not as integers
    shared.append("ada", turn(4), fence=largest)
    assert stored_fence(shared, "ada") in (largest, str(largest).encode())
    # Tokens of different lengths, and of equal length differing in their first digits.
    shared.append("bob", turn(1), fence=999)
    shared.append("bob", turn(2), fence=1000)
    with pytest.raises(StaleLease):
        shared.append("bob", turn(3), fence=999)
    shared.load_since("bob", 0, fence=2_000_000_000_000_000)
    with pytest.raises(StaleLease):
        shared.append("bob", turn(3), fence=1_999_999_999_999_999)
    for bad in (-1, 2 ** 63, "5", 5.0, True):
        with pytest.raises(StoreError, match="fencing token") as refused:
            shared.append("ada", turn(5), fence=bad)
        assert not isinstance(refused.value, StaleLease)
        with pytest.raises(StoreError, match="fencing token"):
            shared.load_since("ada", 0, fence=bad)
    assert shared.load_since("ada", 0).version == 4


def test_a_conversation_of_the_earlier_layout_loads_and_goes_on(shared):
    write_earlier_layout(shared, "ada", [turn(1), turn(2), []])
    write_earlier_layout(shared, "bob", [turn(5)])
    assert shared.load("ada") == turn(1) + turn(2)
    assert shared.load_since("ada", 0) == Since(turn(1) + turn(2), 3, True)
    assert shared.load_since("ada", 1) == Since(turn(2), 3, False)
    assert shared.load_since("ada", 3) == Since([], 3, False)
    shared.append("ada", turn(3))
    assert shared.load_since("ada", 3) == Since(turn(3), 4, False)
    assert shared.load_since("ada", 2) == Since(turn(3), 4, False)
    # Its first write may come before any read, and may be a fenced one.
    shared.append("bob", turn(6), fence=4)
    assert shared.load_since("bob", 1) == Since(turn(6), 2, False)
    with pytest.raises(StaleLease):
        shared.append("bob", turn(7), fence=3)
    write_earlier_layout(shared, "cy", [turn(8), turn(9)])
    shared.replace("cy", turn(10))
    assert shared.load_since("cy", 2) == Since(turn(10), 3, True)
    assert shared.conversation_ids() == ["ada", "bob", "cy"]


def test_a_read_with_a_token_fences_a_conversation_of_the_earlier_layout(shared):
    write_earlier_layout(shared, "ada", [turn(1), turn(2)])
    assert shared.load_since("ada", 2, fence=5) == Since([], 2, False)
    with pytest.raises(StaleLease):
        shared.append("ada", turn(3), fence=4)
    assert shared.load_since("ada", 0) == Since(turn(1) + turn(2), 2, True)
    shared.append("ada", turn(3), fence=5)
    assert shared.load_since("ada", 2) == Since(turn(3), 3, False)


def race(stores, work):
    """Runs ``work(number)`` on a thread per store, all starting together; closes the stores and
    raises what any thread raised."""
    start = threading.Barrier(len(stores))
    errors = []

    def run(number):
        try:
            start.wait()
            work(number)
        except BaseException as error:
            errors.append(error)
    try:
        workers = [threading.Thread(target=run, args=(number,))
                   for number in range(len(stores))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
    finally:
        for each in stores:
            each.close()
    assert not errors, errors


def test_racing_writers_to_one_conversation_count_every_write(shared):
    # No lock of theirs: each has its own store (connection), as servers do.
    threads, appends = 4, 50
    stores = [another(shared) for _ in range(threads)]

    def writer(number):
        for index in range(appends):
            stores[number].append("shared", [
                {"event": "slot", "name": "w{}".format(number), "value": index}])
    race(stores, writer)
    loaded = shared.load_since("shared", 0)
    assert loaded.version == threads * appends and loaded.whole
    for number in range(threads):
        assert [event["value"] for event in loaded.events
                if event["name"] == "w{}".format(number)] == list(range(appends))
    # Each version holds exactly one write.
    for version in range(threads * appends):
        assert len(shared.load_since("shared", version).events) == threads * appends - version


def test_redis_a_conversation_and_its_hash_expire_together():
    from coreactors.stores.redis import RedisTrackerStore
    client = redis_client()
    prefix = "coreactors-test-{}".format(uuid.uuid4().hex)
    store = RedisTrackerStore(client, prefix=prefix, record_exp=100)
    try:
        store.append("ada", turn(1), fence=3)
        assert 99 <= client.ttl(prefix + ":meta:ada") <= 100
        store.replace("bob", turn(2))
        assert 99 <= client.ttl(prefix + ":meta:bob") <= 100
        # A hash a fenced read makes for a conversation of the earlier layout goes with it.
        client.rpush(prefix + ":events:cy", json.dumps(turn(3)))
        client.expire(prefix + ":events:cy", 50)
        store.load_since("cy", 1, fence=2)
        assert 49 <= client.ttl(prefix + ":meta:cy") <= 50
        assert client.hgetall(prefix + ":meta:cy") == {b"fence": b"2"}
        assert store.load_since("cy", 0) == Since(turn(3), 1, True)
    finally:
        store.close()
        for key in client.scan_iter(match=prefix + ":*"):
            client.delete(key)


def test_redis_the_hash_of_a_fenced_unknown_conversation_expires():
    from coreactors.stores.redis import UNWRITTEN_FENCE_EXPIRY, RedisTrackerStore
    assert UNWRITTEN_FENCE_EXPIRY == 86400
    client = redis_client()
    prefix = "coreactors-test-{}".format(uuid.uuid4().hex)
    stores = [RedisTrackerStore(client, prefix=prefix, record_exp=exp)
              for exp in (None, 100, 200000)]
    plain, short, long = stores
    try:
        assert plain.load_since("ada", 0, fence=5) is None
        # The token alone, in the hash only, for a day: no list, no first-seen place.
        assert client.hgetall(prefix + ":meta:ada") == {b"fence": b"5"}
        assert 86399 <= client.ttl(prefix + ":meta:ada") <= 86400
        assert client.exists(prefix + ":events:ada") == 0
        assert client.zscore(prefix + ":conversations", "ada") is None
        # Each read that finds it still unwritten starts the day again.
        client.expire(prefix + ":meta:ada", 50)
        assert plain.load_since("ada", 0, fence=5) is None
        assert 86399 <= client.ttl(prefix + ":meta:ada") <= 86400
        # A record_exp longer than a day is kept instead, a shorter one is not.
        assert short.load_since("bob", 0, fence=5) is None
        assert 86399 <= client.ttl(prefix + ":meta:bob") <= 86400
        assert long.load_since("cy", 0, fence=5) is None
        assert 199999 <= client.ttl(prefix + ":meta:cy") <= 200000
        # Its first write makes it the conversation's hash, with the conversation's expiry.
        short.append("bob", turn(1), fence=5)
        assert client.hgetall(prefix + ":meta:bob") == {b"fence": b"5", b"version": b"1"}
        assert 99 <= client.ttl(prefix + ":meta:bob") <= 100
        assert 99 <= client.ttl(prefix + ":events:bob") <= 100
        assert short.load_since("bob", 0) == Since(turn(1), 1, True)
        # Once it has expired, the conversation is as new: the token went with it.
        client.pexpire(prefix + ":meta:ada", 1)
        time.sleep(0.05)
        assert client.exists(prefix + ":meta:ada") == 0
        plain.append("ada", turn(2), fence=1)
        assert plain.load_since("ada", 0) == Since(turn(2), 1, True)
        # A hash whose list alone was lost keeps its expiry (none here): it is no placeholder.
        client.delete(prefix + ":events:ada")
        assert plain.load_since("ada", 0, fence=9) is None
        assert client.ttl(prefix + ":meta:ada") == -1
        assert client.hget(prefix + ":meta:ada", "fence") == b"9"
    finally:
        for store in stores:
            store.close()
        for key in client.scan_iter(match=prefix + ":*"):
            client.delete(key)


def test_postgresql_a_fenced_unknown_conversation_is_a_row_no_reader_sees(shared):
    if is_redis(shared):
        pytest.skip("only the PostgreSQL store keeps a row for it")
    write_earlier_layout(shared, "old", [turn(0)])  # version 0 too, but it has rows
    shared.append("first", turn(1))
    assert shared.load_since("ada", 0, fence=5) is None
    assert raw_sql(shared, "SELECT version, base, fence FROM conversations "
                           "WHERE sender_id = %s", (b"ada",)) == [(0, 0, 5)]
    assert unknown_everywhere(shared, "ada")
    assert shared.conversation_ids() == ["old", "first"]
    shared.append("bob", turn(2))
    shared.append("ada", turn(3), fence=5)  # placed at its first write: after bob
    assert shared.conversation_ids() == ["old", "first", "bob", "ada"]
    assert shared.load_since("old", 0, fence=2) == Since(turn(0), 1, True)
    # Reading again under the same lease draws no id from the sequence, nor does a known one.
    ids = raw_sql(shared, "SELECT last_value FROM conversations_id_seq")
    shared.load_since("ada", 1, fence=5)
    shared.load_since("ada", 1, fence=6)
    assert raw_sql(shared, "SELECT last_value FROM conversations_id_seq") == ids


EARLIER_SQL_SCHEMA = (
    """CREATE TABLE conversations (id BIGSERIAL PRIMARY KEY, sender_id BYTEA NOT NULL UNIQUE)""",
    """CREATE TABLE events (seq BIGSERIAL PRIMARY KEY,
                            conversation BIGINT NOT NULL REFERENCES conversations (id),
                            data TEXT NOT NULL)""",
    "CREATE INDEX events_by_conversation ON events (conversation, seq)",
)


def test_postgresql_a_database_of_the_earlier_schema_gets_versions_and_goes_on():
    import psycopg

    from coreactors.stores.sql import SQLTrackerStore
    conninfo, drop = postgres_schema()
    try:
        with psycopg.connect(conninfo, autocommit=True) as raw:
            for statement in EARLIER_SQL_SCHEMA:
                raw.execute(statement)
            for sender_id, events in (("ada", turn(1)), ("bob", turn(5)), ("ada", turn(2))):
                raw.execute(EARLIER_SQL_APPEND,
                            {"sender": sender_id.encode(), "data": json.dumps(events)})
        with SQLTrackerStore(conninfo) as store:
            assert store.load_since("ada", 0) == Since(turn(1) + turn(2), 2, True)
            store.append("ada", turn(3), fence=1)
            assert store.load_since("ada", 2) == Since(turn(3), 3, False)
            store.append("bob", turn(6))
            assert store.load_since("bob", 1) == Since(turn(6), 2, False)
            assert store.conversation_ids() == ["ada", "bob"]
        with psycopg.connect(conninfo, autocommit=True) as raw:
            assert raw.execute("SELECT data, version FROM events WHERE version IS NULL"
                               ).fetchall() == []
            assert raw.execute("SELECT version, base, fence FROM conversations ORDER BY id"
                               ).fetchall() == [(3, 0, 1), (2, 0, 0)]
        with SQLTrackerStore(conninfo) as again:  # the columns are there: nothing to add
            assert again.load("ada") == turn(1) + turn(2) + turn(3)
    finally:
        drop()


def test_postgresql_rows_an_earlier_server_adds_later_come_after_the_rest(shared):
    if is_redis(shared):
        pytest.skip("only the PostgreSQL store numbers the rows of an earlier server")
    shared.append("ada", turn(1))
    shared.append("ada", turn(2))
    write_earlier_layout(shared, "ada", [turn(3), turn(4)])
    shared.append("ada", turn(5))  # numbers them first, then writes after them
    assert shared.load_since("ada", 2) == Since(turn(3) + turn(4) + turn(5), 5, False)
    write_earlier_layout(shared, "ada", [turn(6)])
    assert shared.load_since("ada", 5) == Since(turn(6), 6, False)


def test_postgresql_stores_numbering_one_conversation_at_once_agree(shared):
    if is_redis(shared):
        pytest.skip("only the PostgreSQL store numbers the rows of an earlier server")
    write_earlier_layout(shared, "ada", [turn(n) for n in range(3)])
    threads, appends = 4, 10
    stores = [another(shared) for _ in range(threads)]

    def writer(number):
        if number % 2:
            stores[number].load_since("ada", 1)
        for index in range(appends):
            stores[number].append("ada", [{"event": "slot", "name": str(number),
                                           "value": index}])
    race(stores, writer)
    loaded = shared.load_since("ada", 3)
    assert loaded.version == 3 + threads * appends and not loaded.whole
    assert len(loaded.events) == threads * appends
    assert shared.load_since("ada", 0).events[:12] == turn(0) + turn(1) + turn(2)
    versions = raw_sql(shared, "SELECT version FROM events ORDER BY seq")
    assert [version for (version,) in versions] == list(range(1, 3 + threads * appends + 1))


def test_redis_a_fenced_unknown_conversations_hash_stops_expiring_at_its_first_write():
    from coreactors.stores.redis import RedisTrackerStore
    client = redis_client()
    prefix = "coreactors-test-{}".format(uuid.uuid4().hex)
    store = RedisTrackerStore(client, prefix=prefix)
    try:
        for sender_id, write in (("ada", store.append), ("bob", store.replace)):
            assert store.load_since(sender_id, 0, fence=5) is None
            assert client.ttl(prefix + ":meta:" + sender_id) > 0
            write(sender_id, turn(1), fence=5)
            assert client.ttl(prefix + ":meta:" + sender_id) == -1
    finally:
        store.close()
        for key in client.scan_iter(match=prefix + ":*"):
            client.delete(key)

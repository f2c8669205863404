"""The default tracker store: conversations in one SQLite file (standard library ``sqlite3``).

Durability: ``append`` and ``replace`` commit before they return, so an answered message is
never lost when the server stops or crashes; another store on the same file, in this process or
another, sees the events at once. The journal is WAL with ``synchronous=NORMAL``: a commit only
writes to the WAL file (no fsync); fsyncs happen at checkpoints. A power cut may lose the last
turns, a process crash loses nothing; that is the price of thousands of turns per second on
ordinary disks.

Concurrency, chosen by measuring 16 threads appending 6 events each (on a 2-core machine):

- One connection, guarded by one lock, shared by all threads. SQLite runs one write transaction
  at a time anyway; a Python lock hands the writer slot over in microseconds, whereas writers on
  separate connections wait for each other in SQLite's busy handler, which sleeps in steps of
  milliseconds (one connection per thread had a p99.9 of >100 ms under load).
- Checkpoints run in a background thread on a connection of their own. SQLite's automatic
  checkpoint would copy ~1,000 pages inside the unlucky ``append`` that crosses the limit, while
  every other writer waits on the lock: that alone made the p99 latency at 2,500 appends/s ~5 ms
  instead of ~0.2 ms. A passive checkpoint does not block writers; once the WAL is long, a
  short catch-up under the lock copies what was written meanwhile, so the WAL can start over
  and stays small.
- Reads have connections of their own, one per reading thread (the conversation actors'
  workers), so a read never waits for the writer: in WAL mode a read sees every commit made
  before it and runs while the writer writes. A first read of an unknown sender used to wait
  for the writer's whole batch on the shared connection's lock.
- Writes are made by one writer thread, in the order they were asked for. A conversation
  actor hands its turn's events over (``append_then``) and goes on with its next message; the
  writer commits everything queued meanwhile in one transaction (group commit), then calls
  each caller back, and only then is the turn answered. Under load one commit serves many
  turns and no actor waits for the disk; a lone append is one short transaction.
  Conversation row ids are cached, so a batch for known conversations is one multi-row
  ``INSERT`` (a transaction of its own), with one row per write: a turn's events go in as one
  JSON array. A row per event cost the writer thread 35-40 us of CPU per turn under load
  (moodbot, 16 connections, one CPU), a row per write 23: each row is a step down the table
  and down the index. ``append`` and ``replace`` queue the same way and wait for their turn;
  ``load`` first waits for the conversation's queued writes.

Schema (``PRAGMA user_version`` = 2)::

    conversations(id INTEGER PRIMARY KEY, sender_id TEXT NOT NULL UNIQUE)
    events(seq INTEGER PRIMARY KEY, conversation INTEGER NOT NULL, data TEXT NOT NULL)
    index events_by_conversation(conversation, seq)

``events.data`` is the JSON array of the events one write added (schema 2), or the JSON object
of one event (the rows of schema 1, which had a row per event): a file of schema 1 is read as it
is and marked as schema 2 when opened. Events are JSON objects, so the two cannot be confused.

``conversations.id`` is the rowid, so it gives first-seen order (and survives VACUUM, which may
renumber implicit rowids); the sender id is a unique key, and events refer to the small integer
rather than to the sender id, which may be long. ``events.seq`` grows with every insert, so
ordering one conversation's rows by it gives their order of appending, and the index loads
one conversation in order without sorting.
"""

import functools
import json
import os
import queue
import sqlite3
import sys
import threading
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional

from twisted.logger import Logger

from coreactors.log_observers import levelled
from coreactors.stores.base import (
    Done, StoreError, TrackerStore, WriteChain, check_sender_id,
    encode_events)
from coreactors.stores.writer import Write

log = Logger(observer=levelled)

SCHEMA_VERSION = 2
# Schemas this version opens (marking them SCHEMA_VERSION); rows of schema 1 hold one event each.
_READABLE_VERSIONS = (1, 2)

_SCHEMA = (
    """CREATE TABLE conversations (
           id INTEGER PRIMARY KEY,
           sender_id TEXT NOT NULL UNIQUE
       )""",
    """CREATE TABLE events (
           seq INTEGER PRIMARY KEY,
           conversation INTEGER NOT NULL REFERENCES conversations (id),
           data TEXT NOT NULL
       )""",
    "CREATE INDEX events_by_conversation ON events (conversation, seq)",
)

# The LEFT JOIN tells an unknown conversation (no row) from an empty one (one row, NULL data)
# in a single statement, so one read snapshot answers both questions.
_LOAD = """SELECT e.data FROM conversations AS c
           LEFT JOIN events AS e ON e.conversation = c.id
           WHERE c.sender_id = ? ORDER BY e.seq"""
_ADD_CONVERSATIONS = "INSERT OR IGNORE INTO conversations (sender_id) VALUES "
_FIND_CONVERSATIONS = "SELECT id, sender_id FROM conversations WHERE sender_id IN ({})"
_ADD_EVENTS = "INSERT INTO events (conversation, data) VALUES "
# Rows per INSERT: sqlite3 releases the GIL around every statement step, and executemany steps
# once per row; under load each release hands the GIL to another thread and costs a thread
# switch to get it back, so a batch goes in as few multi-row INSERTs. 64 rows (128 variables)
# stays far below the smallest SQLITE_MAX_VARIABLE_NUMBER (999), and the statements for every
# row count fit in the statement cache.
_ROWS_PER_INSERT = 64
_DELETE_EVENTS = "DELETE FROM events WHERE conversation = ?"
_CONVERSATION_IDS = "SELECT sender_id FROM conversations ORDER BY id"

_STATEMENT_CACHE = _ROWS_PER_INSERT + 32

# A WAL this many frames long is checkpointed to the end under the lock, so it cannot grow
# without bound while writes never pause.
_CATCH_UP_FRAMES = 1000
# Past this size the WAL file is truncated when it starts over, rather than kept at its peak.
_JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024

# Errors raised by sqlite3 itself, plus what binding a str with a lone surrogate raises.
_FAILURES = (sqlite3.Error, UnicodeError)


class SQLiteTrackerStore(TrackerStore):
    """Conversations in a SQLite file; see the module docstring for durability and threads."""

    def __init__(self, path: str = "coreactors.db", timeout: float = 5.0,
                 checkpoint_interval: Optional[float] = 0.5,
                 writer_setup: Optional[Callable[[], None]] = None) -> None:
        """Opens (creating if needed) the database at ``path``; its folder must exist.

        ``timeout`` is how long, in seconds, to wait for another process's lock before failing.
        ``checkpoint_interval`` is the pause, in seconds, between background checkpoints; None
        leaves checkpoints to SQLite (inside the commits that fill the WAL).
        ``writer_setup`` runs first thing on the writer thread (the server marks it as a
        background thread there: see ``coreactors.affinity``).
        """
        self.path = path
        self._timeout = timeout
        self._lock = threading.Lock()
        # Known conversation row ids (used by the writer thread only).
        self._conversation_ids: Dict[str, int] = {}
        self._connection: Optional[sqlite3.Connection] = self._open(path, timeout)
        # Writes waiting for the writer thread, and how many each conversation has queued (so
        # load can wait for them).
        self._requests: "queue.SimpleQueue[Optional[_Write]]" = queue.SimpleQueue()
        self._queued_lock = threading.Lock()
        self._queued_changed = threading.Condition(self._queued_lock)
        self._queued: Dict[str, int] = {}
        self._closing = False
        # It holds the store weakly, so an unclosed store can still be freed (and stop it).
        self._writer = threading.Thread(target=_write_loop,
                                        args=(self._requests, weakref.ref(self), writer_setup),
                                        daemon=True, name="tracker-store-writer")
        self._writer.start()
        weakref.finalize(self, self._requests.put, None)
        # Read connections, one per reading thread (opened on its first read); ":memory:" is a
        # database per connection, so there reads share the writer's connection.
        self._readers = threading.local()
        self._reader_list: List["_Reader"] = []
        self._readers_lock = threading.Lock()
        self._checkpointer: Optional[_Checkpointer] = None
        if checkpoint_interval is not None and path != ":memory:":
            self._connection.execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = _Checkpointer(self, checkpoint_interval)
            self._checkpointer.start()
            # Stops the thread even when the store is dropped without close().
            weakref.finalize(self, self._checkpointer.stop)

    def _open(self, path: str, timeout: float) -> sqlite3.Connection:
        if path != ":memory:":
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise StoreError("cannot open the tracker store {!r}: the folder {!r} does not "
                                 "exist".format(path, folder))
        try:
            # isolation_level=None: sqlite3 must not open transactions behind our back; we
            # open them ourselves with BEGIN IMMEDIATE. check_same_thread=False: our lock
            # serialises use across threads.
            connection = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                                         check_same_thread=False,
                                         cached_statements=_STATEMENT_CACHE)
        except _FAILURES as error:
            raise StoreError("cannot open the tracker store {!r}: {}".format(path, error)) \
                from error
        try:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal" and path != ":memory:":
                log.warn("tracker store {path!r}: WAL journal refused (mode is {mode}); writes "
                         "will be slower and block readers", path=path, mode=mode)
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA journal_size_limit = {:d}".format(_JOURNAL_SIZE_LIMIT))
            self._prepare_schema(connection)
        except StoreError:
            connection.close()
            raise
        except _FAILURES as error:
            connection.close()
            raise StoreError("cannot open the tracker store {!r}: not a usable SQLite database "
                             "({})".format(path, error)) from error
        return connection

    def _prepare_schema(self, connection: sqlite3.Connection) -> None:
        """Creates the tables in a new file; refuses a database made by something else."""
        # IMMEDIATE, so two processes opening a new file at once do not both create tables.
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'").fetchall()
                if tables:
                    raise StoreError(
                        "cannot open the tracker store {!r}: it is a SQLite database of another "
                        "program (tables: {})".format(
                            self.path, ", ".join(sorted(name for (name,) in tables))))
                for statement in _SCHEMA:
                    connection.execute(statement)
                connection.execute("PRAGMA user_version = {:d}".format(SCHEMA_VERSION))
            elif version in _READABLE_VERSIONS:
                if version != SCHEMA_VERSION:
                    connection.execute("PRAGMA user_version = {:d}".format(SCHEMA_VERSION))
            else:
                raise StoreError("cannot open the tracker store {!r}: schema version {} is not "
                                 "supported (expected {})".format(self.path, version,
                                                                  SCHEMA_VERSION))
            connection.execute("COMMIT")
        except BaseException:
            _rollback(connection)
            raise

    @contextmanager
    def _using(self, what: str, sender_id: Optional[str] = None
               ) -> Iterator[sqlite3.Connection]:
        """Lends the connection for single statements; a storage failure becomes StoreError."""
        with self._lock:
            connection = self._live_connection(what, sender_id)
            try:
                yield connection
            except _FAILURES as error:
                raise self._failure(what, sender_id, error) from error

    @contextmanager
    def _reading(self, what: str, sender_id: Optional[str] = None
                 ) -> Iterator[sqlite3.Connection]:
        """Lends this thread's read connection (opened on first use); a storage failure
        becomes StoreError."""
        if self.path == ":memory:":
            with self._using(what, sender_id) as connection:
                yield connection
            return
        reader: Optional[_Reader] = getattr(self._readers, "reader", None)
        if reader is None:
            reader = self._open_reader(what, sender_id)
        with reader.lock:
            if reader.connection is None:
                raise self._failure(what, sender_id, "the store is closed")
            try:
                yield reader.connection
            except _FAILURES as error:
                raise self._failure(what, sender_id, error) from error

    def _open_reader(self, what: str, sender_id: Optional[str]) -> "_Reader":
        with self._readers_lock:
            # close() sets _closing before it takes the list: a reader opened later is refused.
            if self._closing or self._connection is None:
                raise self._failure(what, sender_id, "the store is closed")
            try:
                connection = sqlite3.connect(self.path, timeout=self._timeout,
                                             isolation_level=None, check_same_thread=False)
                connection.execute("PRAGMA query_only = 1")
            except _FAILURES as error:
                raise self._failure(what, sender_id, error) from error
            reader = _Reader(connection)
            self._reader_list.append(reader)
        self._readers.reader = reader
        return reader

    @contextmanager
    def _transaction(self, what: str, sender_id: Optional[str] = None
                     ) -> Iterator[sqlite3.Connection]:
        """Runs the block in one write transaction: committed on success, rolled back on error."""
        with self._lock:
            connection = self._live_connection(what, sender_id)
            try:
                # IMMEDIATE takes the write lock now, so a concurrent writer in another
                # process makes us wait (busy timeout) here instead of failing at COMMIT.
                connection.execute("BEGIN IMMEDIATE")
                yield connection
                connection.execute("COMMIT")
            except _FAILURES as error:
                _rollback(connection)
                raise self._failure(what, sender_id, error) from error
            except BaseException:
                _rollback(connection)
                raise

    def _live_connection(self, what: str, sender_id: Optional[str]) -> sqlite3.Connection:
        if self._connection is None:
            raise self._failure(what, sender_id, "the store is closed")
        return self._connection

    def _failure(self, what: str, sender_id: Optional[str], error: Any) -> StoreError:
        # Built only when something failed, so the hot path formats no messages.
        target = "" if sender_id is None else " conversation {!r}".format(sender_id)
        return StoreError("SQLite tracker store {!r}: cannot {}{}: {}".format(
            self.path, what, target, error))

    def load(self, sender_id: str) -> Optional[List[Dict[str, Any]]]:
        check_sender_id(sender_id)
        with self._queued_lock:
            # Normally none: an actor's writes are done before another actor loads its
            # conversation. After a crash, the new actor must see the old one's last turns.
            while self._queued.get(sender_id) and not self._closing:
                self._queued_changed.wait(1.0)
        with self._reading("load", sender_id) as connection:
            rows = connection.execute(_LOAD, (sender_id,)).fetchall()
        if not rows:
            return None
        events: List[Dict[str, Any]] = []
        try:
            for (data,) in rows:
                if data is not None:
                    value = json.loads(data)
                    if isinstance(value, list):
                        events.extend(value)
                    else:
                        events.append(value)  # a row of schema 1: one event
            return events
        except ValueError as error:
            raise self._failure("load", sender_id,
                                "an event is not JSON ({})".format(error)) from error

    def append(self, sender_id: str, events: List[Dict[str, Any]]) -> None:
        """Appends and returns once committed (sharing the commit with whatever is queued)."""
        self._wait_for(self._queue_write(_Write(sender_id, "append", events, None, None)))

    def append_then(self, sender_id: str, events: List[Dict[str, Any]], done: Done,
                    chain: Optional[WriteChain] = None) -> None:
        """Queues the append for the writer thread and returns; ``done`` is called from that
        thread once it is committed (or has failed)."""
        if chain is not None:
            chain.issued += 1
        self._queue_write(_Write(sender_id, "append", events, done, chain))

    def then(self, sender_id: str, done: Done, chain: WriteChain) -> None:
        chain.issued += 1
        self._queue_write(_Write(sender_id, "then", None, done, chain))

    def replace(self, sender_id: str, events: List[Dict[str, Any]]) -> None:
        """Replaces the conversation once the writes queued before are done; waits for it."""
        self._wait_for(self._queue_write(_Write(sender_id, "replace", events, None, None)))

    def _queue_write(self, write: "_Write") -> "_Write":
        if write.kind != "then":
            try:
                check_sender_id(write.sender_id)
                # Encoded here, on the caller's thread: a bad event is refused in its turn,
                # without a write, and the writer thread only writes.
                write.texts = encode_events(write.sender_id, write.events)
            except StoreError as error:
                write.error = error
            write.events = None
        with self._queued_lock:
            if self._closing:
                write.fail(self._failure("write to", write.sender_id, "the store is closed"))
                write.resolve()
                return write
            self._queued[write.sender_id] = self._queued.get(write.sender_id, 0) + 1
        self._requests.put(write)
        return write

    @staticmethod
    def _wait_for(write: "_Write") -> None:
        write.wait()  # raises the write's StoreError, if it failed

    def _process(self, batch: List["_Write"]) -> None:
        """Does the writes of a batch in order: runs of appends in one transaction each."""
        run: List[_Write] = []
        for write in batch:
            if write.kind == "append":
                run.append(write)
                continue
            self._commit_appends(run)
            run = []
            if write.kind == "replace":
                self._replace(write)
            else:
                write.stopped_by_chain()
        self._commit_appends(run)

    def _finish(self, batch: List["_Write"]) -> None:
        """The batch is done: its conversations' queued counts go down, its callers are told."""
        with self._queued_lock:
            for write in batch:
                left = self._queued[write.sender_id] - 1
                if left:
                    self._queued[write.sender_id] = left
                else:
                    del self._queued[write.sender_id]
            self._queued_changed.notify_all()
        for write in batch:
            write.resolve()

    def _commit_appends(self, run: List["_Write"]) -> None:
        live = []
        for write in run:
            if write.error is not None:
                write.fail(write.error)  # refused before writing (unencodable): the chain stops
            elif not write.stopped_by_chain():
                live.append(write)
        if live:
            with self._lock:
                self._write_batch(live)

    def _replace(self, write: "_Write") -> None:
        if write.error is not None:
            return
        try:
            with self._transaction("replace", write.sender_id) as connection:
                self._conversation_ids.pop(write.sender_id, None)
                ((_, conversation),) = _find_or_add_conversations(connection,
                                                                  [write.sender_id])
                connection.execute(_DELETE_EVENTS, (conversation,))
                if write.texts:
                    _insert_events(connection, [conversation, _row_data(write.texts)])
        except StoreError as error:
            write.error = error

    def _write_batch(self, batch: List["_Write"]) -> None:
        """Writes the batch in one transaction; on failure, each append alone (under the lock)."""
        try:
            connection = self._live_connection("append to", batch[0].sender_id)
        except StoreError as error:
            for request in batch:
                request.fail(error)
            return
        try:
            rows = self._rows(batch)
            if rows is not None and len(rows) <= 2 * _ROWS_PER_INSERT:
                # Every conversation is known and one INSERT holds the batch: a single
                # statement is a transaction of its own, one step instead of three.
                if rows:
                    connection.execute(_insert_statement(len(rows) // 2), rows)
            else:
                connection.execute("BEGIN IMMEDIATE")
                unknown = list(dict.fromkeys(request.sender_id for request in batch
                                             if request.sender_id not in self._conversation_ids))
                self._conversation_ids.update(_find_or_add_conversations(connection, unknown))
                _insert_events(connection, self._rows(batch))
                connection.execute("COMMIT")
        except _FAILURES:
            _rollback(connection)
            self._conversation_ids.clear()
            if len(batch) > 1:
                # Find out whose append failed: the others must not fail with it (but the
                # later appends of a failed one's chain must).
                for request in batch:
                    if not request.stopped_by_chain():
                        self._write_batch([request])
                return
            error = sys.exc_info()[1]
            batch[0].fail(self._failure("append to", batch[0].sender_id, error))
            return
        except BaseException:
            _rollback(connection)
            self._conversation_ids.clear()
            raise

    def _rows(self, batch: List["_Write"]) -> Optional[List[Any]]:
        """The batch's rows, one per write with events, as flat INSERT values (conversation,
        data, conversation, ...), or None while a conversation of the batch has no known row
        id."""
        rows: List[Any] = []
        for request in batch:
            conversation = self._conversation_ids.get(request.sender_id)
            if conversation is None:
                return None
            if request.texts:
                rows.append(conversation)
                rows.append(_row_data(request.texts))
        return rows

    def conversation_ids(self) -> List[str]:
        with self._reading("list conversations") as connection:
            return [sender_id for (sender_id,) in connection.execute(_CONVERSATION_IDS)]

    def close(self) -> None:
        # Writes queued so far are done first; later ones fail at once.
        with self._queued_lock:
            closing, self._closing = self._closing, True
            self._queued_changed.notify_all()
        if not closing:
            self._requests.put(None)
        if self._writer is not threading.current_thread():
            self._writer.join()
        # Stop the checkpointer first, without holding the lock: its catch-up takes the lock.
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        with self._readers_lock:
            readers, self._reader_list = self._reader_list, []
        for reader in readers:
            reader.close()
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            try:
                # The last connection to close checkpoints the WAL and removes it.
                connection.close()
            except _FAILURES as error:
                raise self._failure("close", None, error) from error

    def __repr__(self) -> str:
        return "SQLiteTrackerStore({!r})".format(self.path)


class _Reader:
    """A reading thread's connection; its lock lets ``close`` wait for a read in progress."""

    __slots__ = ("connection", "lock")

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection: Optional[sqlite3.Connection] = connection
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.close()
            except _FAILURES:
                pass  # it only read: nothing of the store's is lost with it


class _Write(Write):
    """One write waiting for the writer thread: an append, a replace, or a ``then`` (no write:
    only called back once its chain's earlier writes are done); its events, then their
    encoded texts."""

    __slots__ = ("events", "texts")

    def __init__(self, sender_id: str, kind: str, events: Any, done: Optional[Done],
                 chain: Optional[WriteChain]) -> None:
        super().__init__(sender_id, kind, done=done, chain=chain)
        self.events = events
        self.texts: List[str] = []


def _write_loop(requests: "queue.SimpleQueue[Optional[_Write]]",
                store_ref: "weakref.ref[SQLiteTrackerStore]",
                setup: Optional[Callable[[], None]]) -> None:
    """The writer thread: takes every write queued so far, does them, and again, until None."""
    if setup is not None:
        setup()
    while True:
        first = requests.get()
        if first is None:
            return
        batch = [first]
        stop = False
        while True:
            try:
                write = requests.get_nowait()
            except queue.Empty:
                break
            if write is None:
                stop = True
                break
            batch.append(write)
        store = store_ref()
        if store is None:
            return
        try:
            store._process(batch)
        except BaseException as error:  # nothing may strand a caller waiting for its write
            log.failure("tracker store {path!r}: the writer failed", path=store.path)
            for write in batch:
                if write.error is None:
                    write.fail(store._failure("write to", write.sender_id, error))
        finally:
            store._finish(batch)
        del store
        if stop:
            return


class _Checkpointer:
    """A daemon thread that checkpoints a store's WAL every ``interval`` seconds.

    It holds the store weakly, so a store that is dropped without ``close()`` is still freed
    (and the thread ends with it).
    """

    def __init__(self, store: SQLiteTrackerStore, interval: float) -> None:
        self._store = weakref.ref(store)
        self._path = store.path
        self._timeout = store._timeout
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="tracker-store-checkpoint")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(self._path, timeout=self._timeout,
                                         isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA wal_autocheckpoint = 0")
        except _FAILURES as error:
            self._fall_back(error)
            return
        try:
            while not self._stopping.wait(self._interval):
                try:
                    if not self._checkpoint(connection):
                        break
                except _FAILURES as error:
                    # A failed checkpoint loses nothing (the WAL still holds the data); the
                    # next round tries again, and writes report their own failures.
                    log.warn("tracker store {path!r}: checkpoint failed: {error}", path=self._path,
                             error=error)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> bool:
        """Checkpoints once; False when the store is gone or closed."""
        # The bulk is copied without the store's lock: a passive checkpoint does not stop
        # writers. Its counts describe the WAL as it was when it started, so even "all
        # copied" may leave frames written meanwhile, and the WAL only starts over when a
        # write finds everything copied. Once the WAL is long, the rest is copied under the
        # lock (a few frames, so a short pause) to make sure it does.
        _busy, frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames >= _CATCH_UP_FRAMES:
            store = self._store()
            if store is None:
                return False
            with store._lock:
                if store._connection is None:
                    return False
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return self._store() is not None

    def _fall_back(self, error: BaseException) -> None:
        """Without a checkpoint connection, lets SQLite checkpoint inside commits again."""
        log.error("tracker store {path!r}: cannot open a checkpoint connection ({error}); "
                  "SQLite's automatic checkpoints are used instead", path=self._path, error=error)
        store = self._store()
        if store is None:
            return
        with store._lock:
            if store._connection is not None:
                try:
                    store._connection.execute("PRAGMA wal_autocheckpoint = 1000")
                except _FAILURES:
                    pass


def _find_or_add_conversations(connection: sqlite3.Connection, sender_ids: List[str]
                      ) -> List[Any]:
    """Finds the conversations' row ids, adding the new ones (inside a transaction): two
    statements for a batch's new senders, however many, rather than two for each."""
    found: List[Any] = []
    step = _ROWS_PER_INSERT
    for start in range(0, len(sender_ids), step):
        chunk = sender_ids[start:start + step]
        marks = ",".join(["(?)"] * len(chunk))
        connection.execute(_ADD_CONVERSATIONS + marks, chunk)
        found += connection.execute(
            _FIND_CONVERSATIONS.format(",".join(["?"] * len(chunk))), chunk).fetchall()
    return [(sender_id, conversation) for (conversation, sender_id) in found]


def _row_data(texts: List[str]) -> str:
    """The ``data`` of the row of one write: its events' JSON texts as one JSON array."""
    return "[" + ",".join(texts) + "]"


def _insert_events(connection: sqlite3.Connection, rows: List[Any]) -> None:
    """Inserts rows, in order; ``rows`` is flat: conversation, data, conversation, data..."""
    step = 2 * _ROWS_PER_INSERT
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        connection.execute(_insert_statement(len(chunk) // 2), chunk)


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_statement(count: int) -> str:
    return _ADD_EVENTS + ",".join(["(?,?)"] * count)


def _rollback(connection: sqlite3.Connection) -> None:
    """Rolls back if a transaction is open; SQLite may already have rolled back by itself."""
    try:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
    except _FAILURES:
        # The original error is the one worth reporting; a failed rollback leaves the
        # transaction to be undone by SQLite when the connection or process goes away.
        pass

"""A tracker store on PostgreSQL (psycopg 3), configured as Rasa 1.x's SQL tracker store is.

It uses the SQLite store's layout. ``conversations(id, sender_id UNIQUE)`` gives first-seen
order (the sender id as UTF-8 bytes: PostgreSQL's text cannot hold the NUL character a sender
id may have); ``events(seq, conversation, data)`` has one row per write, holding a turn's
events as one JSON array. A conversation's version is its number of rows: ``load_since``
returns the events written after a version a reader already has.

An append is one statement: the conversation's row, made if new, and the event row, in one
autocommit statement. A replace is one transaction. Any failure of the database becomes
``StoreError``: unreachable, timed out, refused, or a value it cannot store, such as a NUL
character. The server answers 503 for the turns that need the store. A broken connection is
dropped and the next call connects again, so the server recovers by itself when the database
is back.

One connection per store, guarded by a lock; calls are made on the calling thread.
"""

import threading
from typing import Any, Dict, List, Optional, Tuple

import psycopg

from coreactors.stores.base import (
    StoreError, VersionedTrackerStore, check_sender_id, events_of_rows, store_failure,
    write_row)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS conversations (
           id BIGSERIAL PRIMARY KEY,
           sender_id BYTEA NOT NULL UNIQUE
       )""",
    """CREATE TABLE IF NOT EXISTS events (
           seq BIGSERIAL PRIMARY KEY,
           conversation BIGINT NOT NULL REFERENCES conversations (id),
           data TEXT NOT NULL
       )""",
    "CREATE INDEX IF NOT EXISTS events_by_conversation ON events (conversation, seq)",
)
# The CTE's insert is invisible to the rest of its statement, so the second SELECT finds only a
# conversation that existed before; exactly one of the two gives the id.
_APPEND = """
WITH new AS (INSERT INTO conversations (sender_id) VALUES (%(sender)s)
             ON CONFLICT (sender_id) DO NOTHING RETURNING id)
INSERT INTO events (conversation, data)
SELECT id, %(data)s FROM new
UNION ALL SELECT id, %(data)s FROM conversations WHERE sender_id = %(sender)s
"""
_ADD_CONVERSATION = ("INSERT INTO conversations (sender_id) VALUES (%s) "
                     "ON CONFLICT (sender_id) DO NOTHING")
_DELETE_EVENTS = ("DELETE FROM events WHERE conversation = "
                  "(SELECT id FROM conversations WHERE sender_id = %s)")
_ADD_ROW = ("INSERT INTO events (conversation, data) "
            "SELECT id, %s FROM conversations WHERE sender_id = %s")
_LOAD = """SELECT e.data FROM conversations AS c
           LEFT JOIN events AS e ON e.conversation = c.id
           WHERE c.sender_id = %s ORDER BY e.seq"""
_CONVERSATION_IDS = "SELECT sender_id FROM conversations ORDER BY id"

# What a call may raise: the database's errors, and a value the driver cannot encode.
_FAILURES = (psycopg.Error, UnicodeError, ValueError)


def _key(sender_id: str) -> bytes:
    return sender_id.encode("utf-8", "surrogatepass")


class SQLTrackerStore(VersionedTrackerStore):
    """Conversations in PostgreSQL; see the module docstring."""

    def __init__(self, conninfo: str, where: str = "PostgreSQL",
                 timeout: float = 5.0) -> None:
        self._conninfo = conninfo
        self._where = where
        self._timeout = timeout
        self._lock = threading.Lock()
        self._connection: Optional[psycopg.Connection] = None
        self._closed = False
        with self._lock:
            try:
                self._connect()  # the tables, made now if the database is there
            except _FAILURES:
                # Not fatal: the server starts, answers 503, and connects when it can.
                self._connection = None

    @classmethod
    def from_config(cls, host: str = "localhost", port: int = 5432, db: str = "rasa",
                    username: Optional[str] = None, password: Optional[str] = None,
                    timeout: float = 5.0) -> "SQLTrackerStore":
        """Rasa 1.x's keys for ``dialect: postgresql``: ``url`` (the host), ``port``, ``db``,
        ``username``, ``password``."""
        conninfo = psycopg.conninfo.make_conninfo(
            host=host, port=port, dbname=db, user=username, password=password,
            connect_timeout=max(1, int(timeout)))
        return cls(conninfo, "PostgreSQL at {}:{}/{}".format(host, port, db), timeout)

    # ----------------------------------------------------------------- connection

    def _connect(self) -> psycopg.Connection:
        connection = psycopg.connect(self._conninfo, autocommit=True)
        # A statement that runs longer than the timeout fails rather than holding a turn.
        connection.execute("SET statement_timeout = {:d}".format(int(self._timeout * 1000)))
        for statement in _SCHEMA:
            connection.execute(statement)
        self._connection = connection
        return connection

    def _run(self, what: str, sender_id: Optional[str], work: Any) -> Any:
        """Runs ``work(connection)`` under the lock; a broken connection is dropped (the next
        call connects again), every failure becomes StoreError."""
        with self._lock:
            if self._closed:
                raise self._failure(what, sender_id, "the store is closed")
            try:
                connection = self._connection
                if connection is None or connection.closed:
                    connection = self._connect()
                return work(connection)
            except _FAILURES as error:
                connection = self._connection
                if connection is not None and (connection.broken or connection.closed):
                    self._connection = None
                raise self._failure(what, sender_id, error) from error

    def _failure(self, what: str, sender_id: Optional[str], error: Any) -> StoreError:
        return store_failure(self._where, what, sender_id, error)

    # ----------------------------------------------------------------- the contract

    def load_since(self, sender_id: str, version: int
                   ) -> Optional[Tuple[List[Dict[str, Any]], int]]:
        check_sender_id(sender_id)
        key = _key(sender_id)
        rows = self._run("load", sender_id, lambda c: c.execute(_LOAD, (key,)).fetchall())
        if not rows:
            return None
        texts = [data for (data,) in rows if data is not None]
        try:
            return events_of_rows(texts[version:]), len(texts)
        except ValueError as error:
            raise self._failure("load", sender_id,
                                "a row is not JSON ({})".format(error)) from error

    def append(self, sender_id: str, events: List[Dict[str, Any]]) -> None:
        check_sender_id(sender_id)
        data = write_row(sender_id, events)
        key = _key(sender_id)
        self._run("append to", sender_id,
                  lambda c: c.execute(_APPEND, {"sender": key, "data": data}))

    def replace(self, sender_id: str, events: List[Dict[str, Any]]) -> None:
        check_sender_id(sender_id)
        data = write_row(sender_id, events)

        key = _key(sender_id)

        def replace(connection: psycopg.Connection) -> None:
            with connection.transaction():
                connection.execute(_ADD_CONVERSATION, (key,))
                connection.execute(_DELETE_EVENTS, (key,))
                connection.execute(_ADD_ROW, (data, key))
        self._run("replace", sender_id, replace)

    def conversation_ids(self) -> List[str]:
        rows = self._run("list conversations", None,
                         lambda c: c.execute(_CONVERSATION_IDS).fetchall())
        return [bytes(sender_id).decode("utf-8", "surrogatepass") for (sender_id,) in rows]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except psycopg.Error:
                pass  # nothing of ours is left in it

    def __repr__(self) -> str:
        return "SQLTrackerStore({!r})".format(self._where)


__all__ = ["SQLTrackerStore"]

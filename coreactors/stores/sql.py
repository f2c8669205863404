"""A tracker store on PostgreSQL (psycopg 3), configured as Rasa 1.x's SQL tracker store is.

It uses the SQLite store's layout, plus versions and fencing tokens:

* ``conversations(id, sender_id UNIQUE, version, base, fence)``: ``id`` gives first-seen order
  (the sender id is kept as UTF-8 bytes: PostgreSQL's text cannot hold the NUL character a
  sender id may have); ``version`` is the number of writes ever made to the conversation;
  ``base`` the version before its last replace (0 if none); ``fence`` the newest fencing token
  seen.
* ``events(seq, conversation, data, version)``: one row per write still reachable, holding a
  turn's events as one JSON array and the conversation's version that write made. A replace
  deletes the rows before it, so a reader whose version is at or before ``base`` gets all the
  events again (``Since.whole``), as does a reader ahead of ``version`` (the database lost
  data, restored from an older backup say).

An append is one autocommit statement: the conversation's row, made if new, counts the write
and raises the token, and the event row is added, or neither happens. The upsert locks the
conversation's row, so concurrent writes to one conversation take their versions one after
the other. A write whose token is older than the conversation's is refused with
``StaleLease`` (the writer lost its lease to a newer holder, which has read the conversation
since). A replace is one transaction. ``load_since`` with a token first raises the
conversation's token (committed), then reads.

A read with a token of a conversation nobody has written yet records the token too: it makes
the conversation's row with version 0 and that token, so that the first write of an older
lease holder is refused as any later one is (otherwise a holder that found nothing and then
lost its lease could still make the first turn under the newer holder, which would write on
top of a turn it never read). Such a row (version 0, no event rows) is not a conversation yet:
``load_since`` answers None and ``conversation_ids`` leaves it out. Its first write gives it a
new ``id``, so its first-seen place is that of its first write, as if the read had made
nothing (the row has no event rows to follow it). A row whose conversation is never written
stays (one small row per such sender id; nothing expires in this store).

A database made by the earlier layout (no versions) gets the new columns when a store
connects. Its rows, version NULL, are numbered in order after the conversation's version the
first time the store meets them (for a conversation of the earlier layout, 1, 2, ...; rows an
earlier server wrote since come after the rest). Until then its conversations are at version 0
too, but each has rows (the earlier layout wrote a conversation with its first row), so none
is taken for one that only a read with a token made.

Any other failure of the database becomes ``StoreError``: unreachable, timed out, refused, or
a value it cannot store, such as a NUL character. The server answers 503 for the turns that
need the store. A broken connection is dropped and the next call connects again, so the
server recovers by itself when the database is back.

One connection per store, guarded by a lock; calls are made on the calling thread.
"""

import threading
from typing import Any, Dict, List, Optional

import psycopg

from coreactors.stores.base import (
    Since, StaleLease, StoreError, VersionedTrackerStore, check_fence, check_sender_id,
    check_version, events_of_rows, store_failure, write_row)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS conversations (
           id BIGSERIAL PRIMARY KEY,
           sender_id BYTEA NOT NULL UNIQUE,
           version BIGINT NOT NULL DEFAULT 0,
           base BIGINT NOT NULL DEFAULT 0,
           fence BIGINT NOT NULL DEFAULT 0
       )""",
    """CREATE TABLE IF NOT EXISTS events (
           seq BIGSERIAL PRIMARY KEY,
           conversation BIGINT NOT NULL REFERENCES conversations (id),
           data TEXT NOT NULL,
           version BIGINT
       )""",
)
# Whether the new columns and indexes are all there: the statements that add them run only
# when something is missing, since ALTER TABLE and CREATE INDEX lock the table against the
# other servers' writes even when there is nothing to add, and every store connecting would.
_COMPLETE = """SELECT (SELECT count(*) FROM pg_attribute WHERE NOT attisdropped AND (
                          (attrelid = 'conversations'::regclass
                           AND attname IN ('version', 'base', 'fence'))
                          OR (attrelid = 'events'::regclass AND attname = 'version'))) = 4
                      AND to_regclass('events_by_version') IS NOT NULL
                      AND to_regclass('events_unnumbered') IS NOT NULL"""
_MIGRATE = (
    "ALTER TABLE conversations ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE conversations ADD COLUMN IF NOT EXISTS base BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE conversations ADD COLUMN IF NOT EXISTS fence BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE events ADD COLUMN IF NOT EXISTS version BIGINT",
)
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_by_version ON events (conversation, version)",
    # Finds the rows of the earlier layout (still unnumbered) without a scan; empty otherwise.
    "CREATE INDEX IF NOT EXISTS events_unnumbered ON events (conversation) "
    "WHERE version IS NULL",
)

# The id of a conversation's row at its first write: a row a read with a token made (version 0,
# no event rows, so none refers to its id) takes the id this insert drew (EXCLUDED.id), giving
# the conversation its first-seen place now. A row of the earlier layout (version 0 too) has
# event rows, and keeps its id.
_FIRST_SEEN = """id = CASE WHEN c.version = 0 AND NOT EXISTS (
                              SELECT 1 FROM events AS f WHERE f.conversation = c.id)
                          THEN EXCLUDED.id ELSE c.id END"""

# A token of None (no lease) passes the check and leaves the conversation's as it is:
# GREATEST ignores NULLs. The check also refuses a conversation that still has rows of the
# earlier layout: they must be numbered first, or this write's version would repeat theirs.
_APPEND = """
WITH conversation AS (
    INSERT INTO conversations AS c (sender_id, version, base, fence)
    VALUES (%(sender)s, 1, 0, COALESCE(%(fence)s::bigint, 0))
    ON CONFLICT (sender_id) DO UPDATE
        SET version = c.version + 1, fence = GREATEST(c.fence, %(fence)s::bigint),
            """ + _FIRST_SEEN + """
        WHERE (%(fence)s::bigint IS NULL OR %(fence)s::bigint >= c.fence)
          AND NOT EXISTS (SELECT 1 FROM events AS u
                          WHERE u.conversation = c.id AND u.version IS NULL)
    RETURNING id, version)
INSERT INTO events (conversation, data, version)
SELECT id, %(data)s, version FROM conversation
RETURNING version
"""
# Why an append wrote nothing: the conversation's token, and whether it has unnumbered rows.
_REFUSED = """SELECT c.fence, EXISTS (SELECT 1 FROM events AS u
                                      WHERE u.conversation = c.id AND u.version IS NULL)
              FROM conversations AS c WHERE c.sender_id = %s"""
# A replace's first statement: it locks the conversation's row, so the DELETE after it (a new
# snapshot) sees every row written before and none can be added until the commit. The rows of
# the earlier layout go with the rest, so they need no numbering, only counting as writes.
_REPLACE_CONVERSATION = """
INSERT INTO conversations AS c (sender_id, version, base, fence)
VALUES (%(sender)s, 1, 0, COALESCE(%(fence)s::bigint, 0))
ON CONFLICT (sender_id) DO UPDATE
    SET base = c.version + (SELECT count(*) FROM events AS u
                            WHERE u.conversation = c.id AND u.version IS NULL),
        version = c.version + 1 + (SELECT count(*) FROM events AS u
                                   WHERE u.conversation = c.id AND u.version IS NULL),
        fence = GREATEST(c.fence, %(fence)s::bigint),
        """ + _FIRST_SEEN + """
    WHERE %(fence)s::bigint IS NULL OR %(fence)s::bigint >= c.fence
RETURNING id, version
"""
_FENCE = "SELECT fence FROM conversations WHERE sender_id = %s"
_DELETE_EVENTS = "DELETE FROM events WHERE conversation = %s"
_ADD_ROW = "INSERT INTO events (conversation, data, version) VALUES (%s, %s, %s)"
# Writes only when it raises: a holder reading again under the same lease adds no row version.
# A conversation without a row gets one (version 0: not known yet, see the module docstring);
# the insert runs only then, so a known conversation's read draws no id from the sequence. Its
# ON CONFLICT is for a row another store made after this statement's snapshot.
_RAISE_FENCE = """
WITH raised AS (
    UPDATE conversations SET fence = %(fence)s::bigint
    WHERE sender_id = %(sender)s AND fence < %(fence)s::bigint)
INSERT INTO conversations AS c (sender_id, version, base, fence)
SELECT %(sender)s, 0, 0, %(fence)s::bigint
WHERE %(fence)s::bigint > 0
  AND NOT EXISTS (SELECT 1 FROM conversations WHERE sender_id = %(sender)s)
ON CONFLICT (sender_id) DO UPDATE SET fence = EXCLUDED.fence WHERE c.fence < EXCLUDED.fence
"""
# The conversation's version and base, whether it has unnumbered rows, and only the rows a
# reader at version %(since)s lacks (all of them when it is at or before the last replace, or
# ahead of the store), read in one snapshot, so the version matches the rows. A conversation
# with a row gives at least one row (data NULL when nothing came after the version); it is
# known unless its version is 0 and it has no unnumbered rows (a row a read with a token made:
# every row of the earlier layout is unnumbered, so it has no event rows at all). The
# conversation's part is MATERIALIZED so that its EXISTS runs once, not once per row.
_LOAD_SINCE = """
WITH c AS MATERIALIZED (
    SELECT id, version, base,
           EXISTS (SELECT 1 FROM events AS u
                   WHERE u.conversation = conversations.id AND u.version IS NULL) AS unnumbered
    FROM conversations WHERE sender_id = %(sender)s)
SELECT c.version, c.base, c.unnumbered, e.data
FROM c LEFT JOIN events AS e ON e.conversation = c.id AND e.version > (
    CASE WHEN %(since)s::bigint <= c.base OR %(since)s::bigint > c.version THEN c.base
         ELSE %(since)s::bigint END)
ORDER BY e.version
"""
# Numbers a conversation's rows of the earlier layout, in order, after its version; run once
# the conversation's row is locked (_LOCK), in a statement of its own so that its snapshot
# sees what another store numbered while this one waited for the lock.
_LOCK = "SELECT id, version FROM conversations WHERE sender_id = %s FOR UPDATE"
_NUMBER = """
WITH numbered AS (
    SELECT seq, %(version)s::bigint + row_number() OVER (ORDER BY seq) AS version
    FROM events WHERE conversation = %(id)s AND version IS NULL),
done AS (
    UPDATE events AS e SET version = n.version FROM numbered AS n WHERE e.seq = n.seq
    RETURNING e.version)
UPDATE conversations SET version = (SELECT max(version) FROM done)
WHERE id = %(id)s AND EXISTS (SELECT 1 FROM done)
"""
# The rows a read with a token made for a conversation nobody has written are left out.
_CONVERSATION_IDS = """SELECT sender_id FROM conversations AS c
                       WHERE c.version > 0
                          OR EXISTS (SELECT 1 FROM events AS e WHERE e.conversation = c.id)
                       ORDER BY c.id"""

# An append or a load that found rows to number tries again; more than this many times means
# something else keeps changing the conversation (earlier servers writing all the time).
_ATTEMPTS = 5

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
        if not connection.execute(_COMPLETE).fetchone()[0]:
            for statement in _MIGRATE + _INDEXES:
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

    def load_since(self, sender_id: str, version: int, fence: Optional[int] = None
                   ) -> Optional[Since]:
        check_sender_id(sender_id)
        check_version(sender_id, version)
        check_fence(sender_id, fence)
        key = _key(sender_id)

        def load(connection: psycopg.Connection) -> Optional[List[Any]]:
            if fence is not None:
                # The raise commits on its own, before the read: from then on every write
                # with an older token is refused, and the writes it waited for (their row
                # locks) have committed. The read is a statement of its own, so its snapshot,
                # taken after the raise, sees those writes; in one statement with the raise it
                # could predate them. It takes the version and the rows together from that
                # snapshot, rather than the rows up to a version the raise returned, since a
                # replace committed in between would have deleted those. An unknown
                # conversation gets a row holding the token (not known yet: the read finds
                # nothing).
                connection.execute(_RAISE_FENCE, {"fence": fence, "sender": key})
            for _ in range(_ATTEMPTS):
                rows = connection.execute(
                    _LOAD_SINCE, {"since": version, "sender": key}).fetchall()
                if not rows:
                    return None
                if not rows[0][2]:
                    # Version 0 and nothing unnumbered: only a read with a token made it.
                    return None if rows[0][0] == 0 else rows
                _number(connection, key)
            raise self._failure("load", sender_id, "its rows of the earlier layout keep "
                                "changing while they are numbered")

        rows = self._run("load", sender_id, load)
        if rows is None:
            return None
        now, base = rows[0][0], rows[0][1]
        try:
            events = events_of_rows([data for (_, _, _, data) in rows if data is not None])
        except ValueError as error:
            raise self._failure("load", sender_id,
                                "a row is not JSON ({})".format(error)) from error
        return Since(events, now, version <= base or version > now)

    def append(self, sender_id: str, events: List[Dict[str, Any]],
               fence: Optional[int] = None) -> None:
        check_sender_id(sender_id)
        check_fence(sender_id, fence)
        data = write_row(sender_id, events)
        key = _key(sender_id)

        def append(connection: psycopg.Connection) -> None:
            for _ in range(_ATTEMPTS):
                if connection.execute(_APPEND, {"sender": key, "data": data, "fence": fence}
                                      ).fetchone() is not None:
                    return
                refused = connection.execute(_REFUSED, (key,)).fetchone()
                if refused is None:
                    continue  # cannot be refused when new; deleted meanwhile by hand: again
                newest, unnumbered = refused
                if unnumbered:
                    _number(connection, key)
                elif fence is not None and fence < newest:
                    raise StaleLease(sender_id, fence, newest)
                # Otherwise what refused it changed meanwhile (another store numbered the
                # rows of the earlier layout): again.
            raise self._failure("append to", sender_id, "its rows of the earlier layout keep "
                                "changing while they are numbered")
        self._run("append to", sender_id, append)

    def replace(self, sender_id: str, events: List[Dict[str, Any]],
                fence: Optional[int] = None) -> None:
        check_sender_id(sender_id)
        check_fence(sender_id, fence)
        data = write_row(sender_id, events)
        key = _key(sender_id)

        def replace(connection: psycopg.Connection) -> None:
            with connection.transaction():
                made = connection.execute(_REPLACE_CONVERSATION,
                                          {"sender": key, "fence": fence}).fetchone()
                if made is None:
                    # Only a token refuses it; the one that did is read for the message.
                    newest = connection.execute(_FENCE, (key,)).fetchone()
                    raise StaleLease(sender_id, fence,  # type: ignore[arg-type]
                                     None if newest is None else newest[0])
                conversation, version = made
                connection.execute(_DELETE_EVENTS, (conversation,))
                connection.execute(_ADD_ROW, (conversation, data, version))
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


def _number(connection: psycopg.Connection, key: bytes) -> None:
    """Numbers the conversation's rows of the earlier layout (see _NUMBER)."""
    with connection.transaction():
        locked = connection.execute(_LOCK, (key,)).fetchone()
        if locked is not None:
            conversation, version = locked
            connection.execute(_NUMBER, {"id": conversation, "version": version})


__all__ = ["SQLTrackerStore"]

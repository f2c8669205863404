"""The tracker store contract: what every store promises the conversation actors.

A store keeps each conversation's events as a list of JSON-able dicts (what ``Event.as_dict()``
gives), keyed by sender id. Conversation actors call it from their own threads: one conversation
is only ever written by one thread at a time, but different conversations are written in
parallel, so every store must be thread-safe across conversations.

A conversation actor does not wait for its turn's events to be written: it hands them over
with ``append_then`` and goes on with its next message, and the store calls back once they are
stored; only then is the turn answered. The appends of one actor form a ``WriteChain``: each
builds on the ones before, so once one fails the later ones are refused too.

Every failure of the underlying storage (disk full, database locked too long, corrupt file,
store already closed, an event that cannot be encoded) surfaces as ``StoreError``, never as
another exception type, so the HTTP layer has exactly one thing to turn into a 503.

The shared stores (Redis, PostgreSQL) are ``VersionedTrackerStore``: several servers may hold a
conversation, so each write counts as a version a reader can catch up from (``load_since``),
and writes may carry a fencing token, so that a server which lost its lease on a conversation
cannot write over the one that took it over (``StaleLease``).
"""

import json
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from twisted.logger import Logger

from coreactors.compact_json import compact_encoder
from coreactors.log_observers import levelled

log = Logger(observer=levelled)


class StoreError(Exception):
    """The store failed (disk full, locked too long, corrupt); the server answers 503."""


class StaleLease(StoreError):
    """A write under a lease whose fencing token is older than the conversation's latest: the
    lease was lost, another server holds the conversation now, and nothing was written."""

    def __init__(self, sender_id: str, fence: int, newest: Optional[int] = None) -> None:
        self.sender_id = sender_id
        self.fence = fence
        self.newest = newest
        latest = "" if newest is None else " ({})".format(newest)
        super().__init__(
            "conversation {!r}: the lease was lost: fencing token {} is older than the "
            "conversation's latest{}, so nothing was written".format(sender_id, fence, latest))

    def __reduce__(self) -> Any:
        # The message is built from these, so a copy is built the same way.
        return StaleLease, (self.sender_id, self.fence, self.newest)


class Since(NamedTuple):
    """What ``VersionedTrackerStore.load_since`` found.

    ``events``: the events written after the version asked for, or all of them when ``whole``.
    ``version``: the conversation's version now (one more for each write made to it).
    ``whole``: whether ``events`` are all the conversation's events, so the reader rebuilds
    rather than appends: the version asked for was 0, or before the last replace, or newer
    than the store's (the store lost data, a flushed Redis say).
    """

    events: List[Dict[str, Any]]
    version: int
    whole: bool


# Called once a write is done: with None when it is stored, else with the StoreError.
Done = Callable[[Optional[StoreError]], None]


class WriteChain:
    """The writes of one conversation actor, in the order it made them.

    Each write builds on the ones before it (a turn's events follow the previous turn's), so
    once one fails, the later ones of the chain are not written and fail too; the actor then
    starts a new chain from what the store holds. ``issued`` is counted by the actor's side,
    ``confirmed`` by the store as each write is done (each by one thread only).
    """

    __slots__ = ("issued", "confirmed", "failed")

    def __init__(self) -> None:
        self.issued = 0
        self.confirmed = 0
        self.failed = False

    def pending(self) -> bool:
        """Whether a write of the chain is not done yet."""
        return self.confirmed < self.issued


def call_done(done: Done, error: Optional[StoreError]) -> None:
    """Calls a write's ``done``; its failure is logged, never passed to the store's thread."""
    try:
        done(error)
    except Exception:
        log.failure("A tracker store callback failed.")


def store_failure(where: str, what: str, sender_id: Optional[str], error: Any) -> StoreError:
    """The StoreError of a store at ``where`` that could not do ``what`` (for a conversation,
    when ``sender_id`` is given): built only once something failed."""
    target = "" if sender_id is None else " conversation {!r}".format(sender_id)
    return StoreError("{} tracker store: cannot {}{}: {}".format(
        where, what, target, str(error).strip()))


def chain_failure(sender_id: str) -> StoreError:
    return StoreError("an earlier write of conversation {!r} failed, so this one was not "
                      "made".format(sender_id))


class TrackerStore:
    """Keeps conversations' events; subclasses implement the storage.

    ``append`` and ``replace`` are atomic: after a failure the conversation is exactly as it was.
    Lists given to or returned by a store are never shared with it, so callers may mutate them.
    """

    def load(self, sender_id: str) -> Optional[List[Dict[str, Any]]]:
        """Returns the conversation's events in order, or None when the conversation is unknown."""
        raise NotImplementedError

    def append(self, sender_id: str, events: List[Dict[str, Any]]) -> None:
        """Adds events at the end of the conversation, creating it if new (also with [])."""
        raise NotImplementedError

    def replace(self, sender_id: str, events: List[Dict[str, Any]]) -> None:
        """Replaces the whole conversation with these events, creating it if new."""
        raise NotImplementedError

    def append_then(self, sender_id: str, events: List[Dict[str, Any]], done: Done,
                    chain: Optional[WriteChain] = None, fence: Optional[int] = None,
                    lease: Any = None) -> None:
        """Appends like ``append``, then calls ``done(None)``, or ``done(error)`` if it failed.

        This store writes at once, on the calling thread; a store that writes in the
        background returns at once and calls ``done`` from its own thread after the commit.
        Either way writes are done, and ``done`` called, in the order of the calls. With a
        ``chain``, an append after a failed one of the same chain fails without a write.
        A ``fence`` goes to ``append`` (a versioned store's; it is a ``StaleLease`` when the
        lease was lost), and only when given, since the local stores take none. ``lease``, the
        request's, is for a store that can give it back with the write (the Redis store on
        the lock store's Redis); this one cannot, and leaves it to the lock desk.
        """
        if chain is not None:
            chain.issued += 1
        error: Optional[StoreError] = None
        if chain is not None and chain.failed:
            error = chain_failure(sender_id)
        else:
            try:
                if fence is None:
                    self.append(sender_id, events)
                else:
                    self.append(sender_id, events, fence=fence)  # type: ignore[call-arg]
            except StoreError as e:
                error = e
        if chain is not None:
            if error is not None:
                chain.failed = True
            chain.confirmed += 1
        call_done(done, error)

    def then(self, sender_id: str, done: Done, chain: WriteChain) -> None:
        """Calls ``done`` once every write of ``chain`` made so far is done: with None when
        all of them are stored, else with an error (an answer built on them must not go out).
        """
        chain.issued += 1
        chain.confirmed += 1
        call_done(done, chain_failure(sender_id) if chain.failed else None)

    def conversation_ids(self) -> List[str]:
        """Returns the sender ids of all known conversations, in first-seen order."""
        raise NotImplementedError

    def close(self) -> None:
        """Releases the store's resources; later calls raise StoreError. Closing twice is fine."""
        raise NotImplementedError

    def __enter__(self) -> "TrackerStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class VersionedTrackerStore(TrackerStore):
    """A store that counts each conversation's writes (its version), so a reader that has a
    conversation up to a version can ask for what was written after it (the shared stores:
    another process may have written since).

    Each write, append or replace, adds exactly 1 to the version; a new conversation is at 0,
    so its first write makes it 1. A replace makes what came before it unreachable: a reader
    whose version is before the replace gets all the events again (``Since.whole``).

    Fencing: a server that holds a conversation under a lease passes the lease's fencing token
    (a non-negative integer below 2**63; each new lease's is larger) to ``load_since`` and to
    its writes. The conversation keeps the newest token it has seen; a write with an older one
    is refused with ``StaleLease`` and writes nothing. Writes without a token are never
    refused (one process, no lock store). A reader's token is recorded even for a conversation
    nobody has written yet (which stays unknown to every reader until its first write), so the
    first write of an older lease holder that found nothing is refused too.
    """

    def load(self, sender_id: str) -> Optional[List[Dict[str, Any]]]:
        loaded = self.load_since(sender_id, 0)
        return None if loaded is None else loaded.events

    def load_since(self, sender_id: str, version: int, fence: Optional[int] = None
                   ) -> Optional[Since]:
        """The events written after ``version`` (0: all of them) and the conversation's version
        now, or None when the conversation is unknown. With ``fence``, the conversation's
        token is first raised to it (if larger), together with the read, so that from then on
        the writes of an older lease holder are refused."""
        raise NotImplementedError

    def append(self, sender_id: str, events: List[Dict[str, Any]],
               fence: Optional[int] = None) -> None:
        """Appends as ``TrackerStore.append`` does; with ``fence``, raises StaleLease (writing
        nothing) when it is older than the conversation's token, else raises the token to it."""
        raise NotImplementedError

    def replace(self, sender_id: str, events: List[Dict[str, Any]],
                fence: Optional[int] = None) -> None:
        """Replaces as ``TrackerStore.replace`` does, fenced as ``append`` is."""
        raise NotImplementedError


# Both shared stores keep tokens exactly: PostgreSQL as BIGINT, Redis as decimal text.
_LARGEST_FENCE = 2 ** 63 - 1


def check_fence(sender_id: str, fence: Optional[int]) -> Optional[int]:
    """Refuses a fencing token that is not an integer from 0 to 2**63 - 1."""
    if fence is None:
        return None
    if isinstance(fence, bool) or not isinstance(fence, int) or \
            not 0 <= fence <= _LARGEST_FENCE:
        raise StoreError("fencing token of conversation {!r} must be an integer from 0 to "
                         "2**63 - 1, got {!r}".format(sender_id, fence))
    return fence


def check_version(sender_id: str, version: int) -> int:
    """Refuses a version to read from that is not an integer."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise StoreError("version of conversation {!r} must be an integer, got {!r}".format(
            sender_id, version))
    return version


def check_sender_id(sender_id: str) -> str:
    """Refuses a sender id that is not a string, which would be stored under a different key."""
    if not isinstance(sender_id, str):
        raise StoreError("sender id must be a string, got {}".format(type(sender_id).__name__))
    return sender_id


_encode = compact_encoder()


def encode_event(sender_id: str, index: int, event: Dict[str, Any]) -> str:
    """Encodes one event as compact JSON, turning an unencodable event into a StoreError.

    Both stores encode on the way in, so an event that could not be written to disk is refused
    by the in-memory store too, and both hand back the same normalised values (tuples as lists).
    ASCII escapes are kept (the ``json`` default) because they make lone surrogates storable.
    """
    if not isinstance(event, dict):
        # Events are JSON objects; the SQLite store also relies on it to tell its rows apart.
        raise StoreError("event {} of conversation {!r} must be a JSON object, got {}".format(
            index, sender_id, type(event).__name__))
    try:
        return _encode(event)
    except (TypeError, ValueError, RecursionError) as error:
        raise StoreError("event {} of conversation {!r} cannot be stored as JSON: {}".format(
            index, sender_id, error)) from error


def write_row(sender_id: str, events: List[Dict[str, Any]]) -> str:
    """One write's events as the one JSON array the shared stores keep per write (checked and
    encoded as ``encode_events`` does)."""
    return "[" + ",".join(encode_events(sender_id, events)) + "]"


def events_of_rows(rows: List[Any]) -> List[Dict[str, Any]]:
    """The events of rows made by ``write_row``, in order; ValueError for a row that is not
    JSON."""
    events: List[Dict[str, Any]] = []
    for row in rows:
        events.extend(json.loads(row))
    return events


def encode_events(sender_id: str, events: List[Dict[str, Any]]) -> List[str]:
    """Encodes a turn's events before any write, so a bad event leaves the store untouched."""
    if not isinstance(events, (list, tuple)):
        raise StoreError("events of conversation {!r} must be a list, got {}".format(
            sender_id, type(events).__name__))
    return [encode_event(sender_id, index, event) for index, event in enumerate(events)]

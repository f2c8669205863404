"""A tracker store that keeps conversations in a dict: for tests and throw-away servers.

Nothing survives a restart. Events are kept as their JSON text, so the store never shares a
list or dict with its callers (mutating what ``load`` returned, or what was passed to
``append``, cannot change stored data) and behaves exactly like the SQLite store: the same
events are refused, the same values come back.
"""

import json
import threading
from typing import Any, Dict, List, Optional

from coreactors.stores.base import StoreError, TrackerStore, check_sender_id, encode_events


class InMemoryTrackerStore(TrackerStore):
    """Conversations in a dict guarded by one lock; insertion order is first-seen order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conversations: Dict[str, List[str]] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the in-memory tracker store is closed")

    def load(self, sender_id: str) -> Optional[List[Dict[str, Any]]]:
        check_sender_id(sender_id)
        with self._lock:
            self._check_open()
            stored = self._conversations.get(sender_id)
            if stored is None:
                return None
            # Copy the list of strings under the lock; decode outside it so a long
            # conversation does not hold up other threads.
            texts = list(stored)
        return [json.loads(text) for text in texts]

    def append(self, sender_id: str, events: List[Dict[str, Any]]) -> None:
        check_sender_id(sender_id)
        texts = encode_events(sender_id, events)
        with self._lock:
            self._check_open()
            self._conversations.setdefault(sender_id, []).extend(texts)

    def replace(self, sender_id: str, events: List[Dict[str, Any]]) -> None:
        check_sender_id(sender_id)
        texts = encode_events(sender_id, events)
        with self._lock:
            self._check_open()
            # Assigning to an existing key keeps the conversation's first-seen position.
            self._conversations[sender_id] = texts

    def conversation_ids(self) -> List[str]:
        with self._lock:
            self._check_open()
            return list(self._conversations)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conversations = {}

    def __repr__(self) -> str:
        return "InMemoryTrackerStore()"

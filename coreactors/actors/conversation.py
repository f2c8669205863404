"""The conversation actor: owns one conversation's tracker and runs its requests one at a time.

Every request about a conversation is a message to its actor, so requests of one conversation
run serially in arrival order with no lock, and different conversations run side by side. A
turn's new events reach the store before the reply leaves, so an answered message is never lost.
A new model arrives as a message too, so it is picked up between two requests, never during one.
"""

import collections
import logging
import queue
import threading
from typing import Any, Callable, Dict, List, Optional

import pykka
from twisted.python.failure import Failure

from coreactors.actions.remote import ActionServerClient
from coreactors.actors.interface import ConversationError, StoreUnavailable
from coreactors.dialogue.domain import UnknownAction
from coreactors.dialogue.events import ActionExecuted, InvalidEvent, events_from_dicts
from coreactors.dialogue.tracker import DialogueStateTracker, EventVerbosity
from coreactors.model import Model
from coreactors.processor import MessageProcessor, UserMessage
from coreactors.stores.base import StoreError, TrackerStore

logger = logging.getLogger(__name__)

# Runs a function on the reactor thread (reactor.callFromThread, a ReplyBridge, or a test's
# stand-in).
CallFromThread = Callable[..., None]


class ReplyBridge:
    """Carries actors' answers to the reactor thread, one wake-up per burst of answers.

    ``callFromThread`` wakes the reactor through a pipe each time; under load many actors answer
    at once, so answers are queued and the reactor drains the queue in one call.
    """

    def __init__(self, call_from_thread: CallFromThread) -> None:
        self.call_from_thread = call_from_thread
        self._queue: "collections.deque" = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def __call__(self, function: Callable, argument: Any) -> None:
        with self._lock:
            self._queue.append((function, argument))
            if self._scheduled:
                return
            self._scheduled = True
        self.call_from_thread(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._scheduled = False
                    return
                batch = list(self._queue)
                self._queue.clear()
            for function, argument in batch:
                try:
                    function(argument)
                except Exception:  # one failing callback must not strand the others
                    logger.exception("Delivering an actor's answer failed.")


class Reply:
    """Where an answer goes: a Deferred fired on the reactor thread via ``call_from_thread``."""

    __slots__ = ("deferred", "call_from_thread")

    def __init__(self, deferred: Any, call_from_thread: CallFromThread) -> None:
        self.deferred = deferred
        self.call_from_thread = call_from_thread

    def succeed(self, value: Any) -> None:
        self.call_from_thread(self.deferred.callback, value)

    def fail(self, error: BaseException) -> None:
        self.call_from_thread(self.deferred.errback, Failure(error))


class ConversationActor(pykka.ThreadingActor):
    """The actor of one sender id. Messages are ``(command, args, reply)`` tuples."""

    use_daemon_thread = True

    @staticmethod
    def _create_actor_inbox() -> "queue.SimpleQueue":
        # pykka's hook for the inbox type. queue.Queue wakes a waiting actor through a Python
        # Condition (a mutex plus a lock per waiter, which the sender and the woken actor then
        # contend for); SimpleQueue is one C lock: one wake-up per message and less memory
        # for each of thousands of idle actors.
        return queue.SimpleQueue()

    def __init__(self, sender_id: str, model: Model, store: TrackerStore,
                 action_client: Optional[ActionServerClient] = None,
                 listener_bridge: Optional[Callable[[Callable, Dict[str, Any]], None]] = None
                 ) -> None:
        super().__init__()
        self.sender_id = sender_id
        self.store = store
        self.action_client = action_client
        self.listener_bridge = listener_bridge
        self.model = model
        self.processor = MessageProcessor(model, action_client)
        self.tracker: Optional[DialogueStateTracker] = None

    # ----------------------------------------------------------------- plumbing

    def on_receive(self, message: Any) -> None:
        command, args, reply = message
        if command == "model":
            self._take_model(args)
            return
        try:
            handler = getattr(self, "_do_" + command)
            reply.succeed(handler(*args))
        except ConversationError as e:
            reply.fail(e)
        except Exception as e:  # an unexpected fault fails this request, not the actor
            logger.exception("Conversation '%s' failed on '%s'.", self.sender_id, command)
            self.tracker = None  # read it again from the store on the next request
            reply.fail(e)

    def on_stop(self) -> None:
        # Requests still queued behind a stop would otherwise never be answered.
        while not self.actor_inbox.empty():
            try:
                queued = getattr(self.actor_inbox.get_nowait(), "message", None)
            except Exception:
                break
            if isinstance(queued, tuple) and len(queued) == 3 and queued[2] is not None:
                queued[2].fail(ConversationError("The conversation was stopped; try again.",
                                                 503, "ConversationStopped"))

    def _take_model(self, model: Model) -> None:
        self.model = model
        self.processor = MessageProcessor(model, self.action_client)
        # The tracker moves to the new domain when the next request needs it (_load): a swap
        # reaches every live conversation, and most of them are idle, so they pay nothing now.

    def _load(self) -> DialogueStateTracker:
        if self.tracker is not None:
            if self.tracker.domain is not self.model.domain:
                # Same events, read with the new domain's slots (re-read only if that can differ).
                self.tracker = self.tracker.switch_domain(self.model.domain)
            return self.tracker
        try:
            stored = self.store.load(self.sender_id)
        except StoreError as e:
            raise StoreUnavailable("The tracker store failed: {}".format(e))
        if stored is None:
            tracker = DialogueStateTracker(self.sender_id, self.model.domain)
            tracker.update(ActionExecuted("action_listen"))
            self._persist(tracker, 0)
        else:
            try:
                tracker = DialogueStateTracker.from_dicts(self.sender_id, stored,
                                                          self.model.domain)
            except InvalidEvent as e:
                raise ConversationError("The stored conversation cannot be read: {}".format(e),
                                        500, "CorruptConversation")
        self.tracker = tracker
        return tracker

    def _persist(self, tracker: DialogueStateTracker, known: int) -> None:
        """Appends the events after the first ``known`` to the store, or undoes them."""
        new = tracker.events[known:]
        try:
            self.store.append(self.sender_id, [e.as_dict() for e in new])
        except StoreError as e:
            self._roll_back(tracker, known)
            raise StoreUnavailable("The tracker store failed: {}".format(e))

    def _roll_back(self, tracker: DialogueStateTracker, known: int) -> None:
        self.tracker = DialogueStateTracker.from_events(self.sender_id, tracker.events[:known],
                                                        self.model.domain)

    def _mutating(self, work: Callable[[DialogueStateTracker], Any]) -> Any:
        """Runs ``work`` on the tracker and stores what it added; a failure adds nothing."""
        tracker = self._load()
        known = len(tracker.events)
        try:
            result = work(tracker)
        except BaseException:
            self._roll_back(tracker, known)
            raise
        if len(tracker.events) > known:
            self._persist(tracker, known)
        return result

    def _listener(self, listener: Optional[Callable]) -> Optional[Callable]:
        if listener is None or self.listener_bridge is None:
            return None
        bridge = self.listener_bridge
        return lambda message: bridge(listener, message)

    # ----------------------------------------------------------------- commands

    def _do_handle_message(self, text: str, input_channel: Optional[str],
                           listener: Optional[Callable] = None) -> List[Dict[str, Any]]:
        message = UserMessage(text, self.sender_id, input_channel)
        result = self._mutating(lambda t: self.processor.handle_message(
            t, message, self._listener(listener)))
        return result.messages

    def _do_log_message(self, text: str, parse_data: Optional[Dict[str, Any]],
                        verbosity: EventVerbosity) -> Dict[str, Any]:
        message = UserMessage(text, self.sender_id, parse_data=parse_data)
        self._mutating(lambda t: self.processor.log_message(t, message))
        return self._load().current_state(verbosity)

    def _do_tracker(self, verbosity: EventVerbosity, until: Optional[float]) -> Dict[str, Any]:
        tracker = self._load()
        if until is not None:
            tracker = tracker.travel_back_in_time(until)
        return tracker.current_state(verbosity)

    def _do_story(self, until: Optional[float]) -> str:
        tracker = self._load()
        if until is not None:
            tracker = tracker.travel_back_in_time(until)
        return tracker.export_stories(e2e=True)

    def _do_append_events(self, event_dicts: List[Dict[str, Any]],
                          verbosity: EventVerbosity) -> Dict[str, Any]:
        try:
            events = events_from_dicts(event_dicts)
        except InvalidEvent as e:
            raise ConversationError(str(e), 400, "InvalidEvent")
        self._mutating(lambda t: t.update_many(events))
        return self._load().current_state(verbosity)

    def _do_replace_events(self, event_dicts: List[Dict[str, Any]],
                           verbosity: EventVerbosity) -> Dict[str, Any]:
        try:
            tracker = DialogueStateTracker.from_dicts(self.sender_id, event_dicts,
                                                      self.model.domain)
        except InvalidEvent as e:
            raise ConversationError(str(e), 400, "InvalidEvent")
        try:
            self.store.replace(self.sender_id, [e.as_dict() for e in tracker.events])
        except StoreError as e:
            raise StoreUnavailable("The tracker store failed: {}".format(e))
        self.tracker = tracker
        return tracker.current_state(verbosity)

    def _do_predict(self) -> Dict[str, Any]:
        # The form policy may log a form_validation event while predicting.
        return self._mutating(lambda t: self.processor.predict_next(t))

    def _do_execute(self, action: str, policy: Optional[str], confidence: Optional[float],
                    verbosity: EventVerbosity) -> Dict[str, Any]:
        try:
            self.model.domain.index_for_action(action)
        except UnknownAction as e:
            raise ConversationError(str(e), 400, "UnknownAction")
        result = self._mutating(lambda t: self.processor.execute_action(
            t, action, policy, confidence))
        return {"tracker": self._load().current_state(verbosity), "messages": result.messages}

"""The conversation actor: owns one conversation's tracker and runs its requests one at a time.

Every request about a conversation is a message to its actor, so requests of one conversation
run serially in arrival order with no lock, and different conversations run side by side. A
turn's new events are handed to the store and the actor goes on with its next message; the
answer leaves only once the store has them, so an answered message is never lost. An answer
that reads the conversation also waits for the writes before it, so no answer shows events that
may yet fail to be stored; if one does fail, its answer and every later one built on it is a
503, and the actor reads the conversation again from the store. A new model arrives as a
message too, so it is picked up between two requests, never during one.
"""

import collections
import logging
import threading
from typing import Any, Callable, Dict, List, Optional

from twisted.python.failure import Failure

from coreactors.actions.remote import ActionServerClient
from coreactors.actors.dispatcher import Dispatcher, PooledActor
from coreactors.actors.interface import ConversationError, StoreUnavailable
from coreactors.dialogue.domain import UnknownAction
from coreactors.dialogue.events import ActionExecuted, InvalidEvent, events_from_dicts
from coreactors.dialogue.tracker import DialogueStateTracker, EventVerbosity
from coreactors.model import Model
from coreactors.processor import MessageProcessor, UserMessage
from coreactors.stores.base import StoreError, TrackerStore, WriteChain

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


class ConversationActor(PooledActor):
    """The actor of one sender id. Messages are ``(command, args, reply)`` tuples."""

    def __init__(self, dispatcher: Dispatcher, sender_id: str, model: Model,
                 store: TrackerStore, action_client: Optional[ActionServerClient] = None,
                 listener_bridge: Optional[Callable[[Callable, Dict[str, Any]], None]] = None
                 ) -> None:
        super().__init__(dispatcher)
        self.sender_id = sender_id
        self.store = store
        self.action_client = action_client
        self.listener_bridge = listener_bridge
        self.model = model
        self.processor = MessageProcessor(model, action_client)
        self.tracker: Optional[DialogueStateTracker] = None
        # The tracker's events up to here are handed to the store (in self._chain's writes).
        self._handed_over = 0
        self._chain = WriteChain()

    # ----------------------------------------------------------------- plumbing

    def on_receive(self, message: Any) -> None:
        command, args, reply = message
        if command == "model":
            self._take_model(args)
            return
        if self._chain.failed:
            # A turn's events could not be stored (its answer said so): go on from what the
            # store has.
            self.tracker = None
            self._chain = WriteChain()
        try:
            handler = getattr(self, "_do_" + command)
            value = handler(*args)
        except ConversationError as e:
            reply.fail(e)
            return
        except Exception as e:  # an unexpected fault fails this request, not the actor
            logger.exception("Conversation '%s' failed on '%s'.", self.sender_id, command)
            self.tracker = None  # read it again from the store on the next request
            reply.fail(e)
            return
        self._answer_when_stored(reply, value)

    def _answer_when_stored(self, reply: Reply, value: Any) -> None:
        """Hands the new events to the store; the answer goes once they and the writes before
        them are stored (at once when nothing is waiting to be written)."""
        tracker = self.tracker
        new = tracker.events[self._handed_over:] if tracker is not None else []
        if new:
            self._handed_over = len(tracker.events)  # type: ignore[union-attr]
            self.store.append_then(self.sender_id, [e.as_dict() for e in new],
                                   _Answer(reply, value), self._chain)
        elif self._chain.pending():
            self.store.then(self.sender_id, _Answer(reply, value), self._chain)
        else:
            reply.succeed(value)

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
        self._handed_over = len(stored or ())
        if stored is None:
            # A new conversation: stored with the answer to this request, like a turn.
            tracker = DialogueStateTracker(self.sender_id, self.model.domain)
            tracker.update(ActionExecuted("action_listen"))
        else:
            try:
                tracker = DialogueStateTracker.from_dicts(self.sender_id, stored,
                                                          self.model.domain)
            except InvalidEvent as e:
                raise ConversationError("The stored conversation cannot be read: {}".format(e),
                                        500, "CorruptConversation")
        self.tracker = tracker
        return tracker

    def _roll_back(self, tracker: DialogueStateTracker, known: int) -> None:
        self.tracker = DialogueStateTracker.from_events(self.sender_id, tracker.events[:known],
                                                        self.model.domain)

    def _mutating(self, work: Callable[[DialogueStateTracker], Any]) -> Any:
        """Runs ``work`` on the tracker; a failure adds nothing (what it added is stored with
        the answer, see on_receive)."""
        tracker = self._load()
        known = len(tracker.events)
        try:
            return work(tracker)
        except BaseException:
            self._roll_back(tracker, known)
            raise

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
            # Done after this conversation's queued writes, which it then replaces.
            self.store.replace(self.sender_id, [e.as_dict() for e in tracker.events])
        except StoreError as e:
            raise StoreUnavailable("The tracker store failed: {}".format(e))
        self.tracker = tracker
        self._handed_over = len(tracker.events)
        # What this conversation wrote before is replaced, whether or not it was stored.
        self._chain = WriteChain()
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


class _Answer:
    """A write's ``done``: answers the request once its events are stored, or with a 503."""

    __slots__ = ("reply", "value")

    def __init__(self, reply: Reply, value: Any) -> None:
        self.reply = reply
        self.value = value

    def __call__(self, error: Optional[StoreError]) -> None:
        if error is None:
            self.reply.succeed(self.value)
        else:
            self.reply.fail(StoreUnavailable("The tracker store failed: {}".format(error)))

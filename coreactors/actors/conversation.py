"""The conversation actor: owns one conversation's tracker and runs its requests one at a time.

Every request about a conversation is a message to its actor (``messages.Ask``), so requests of
one conversation run serially in arrival order with no lock, and different conversations run
side by side. A turn's new events are handed to the store and the actor goes on with its next
message; the answer leaves only once the store has them, so an answered message is never lost.
An answer that reads the conversation also waits for the writes before it, so no answer shows
events that may yet fail to be stored; if one does fail, its answer and every later one built
on it is a 503, and the actor reads the conversation again from the store. A new model arrives
as a message too (``messages.TakeModel``), so it is picked up between two requests, never
during one.

The actor runs on a worker of the pool (``ConversationActor``), or on a thread of its own when
the ``worker_pool`` fast path is off (``ThreadedConversationActor``); both do the same.
"""

from typing import Any, Callable, Dict, List, Optional, Type

from twisted.logger import Logger

from coreactors import fastpaths
from coreactors.actions.remote import ActionServerClient
from coreactors.actors.interface import ConversationError, StoreUnavailable
from coreactors.stores.lock import Lease
from coreactors.actors.messages import (
    AppendEvents, Ask, ConversationRequest, Execute, GetStory, GetTracker, HandleMessage,
    LogMessage, MessageListener, Passivate, Predict, ReplaceEvents, TakeConversation,
    TakeModel)
from coreactors.actors.reply import Reply
from coreactors.actors.worker_pool import ThreadedActor
from coreactors.dialogue.domain import UnknownAction
from coreactors.dialogue.events import ActionExecuted, InvalidEvent, events_from_dicts
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.fastpaths.pykka_pool import PooledActor
from coreactors.log_observers import levelled
from coreactors.model import Model
from coreactors.processor import MessageProcessor, UserMessage
from coreactors.stores.base import StoreError, TrackerStore, WriteChain

log = Logger(observer=levelled)

# Carries a listener's call to the reactor thread: ``bridge(listener, message)``.
ListenerBridge = Callable[[Callable[[Any], Any], Dict[str, Any]], None]


class Conversation:
    """What a conversation actor does with each message; mixed into the actor classes below
    (which run it on a pool's worker or on a thread of its own)."""

    def __init__(self, pool: Any, sender_id: str, model: Model, store: TrackerStore,
                 action_client: Optional[ActionServerClient] = None,
                 listener_bridge: Optional[ListenerBridge] = None,
                 processor: Optional[MessageProcessor] = None) -> None:
        """``processor``, the message loop for ``model``, may be shared with other actors (it
        keeps no state of a conversation's): starting an actor then builds none."""
        super().__init__(pool)  # type: ignore[call-arg]
        self.sender_id = sender_id
        self.store = store
        self.action_client = action_client
        self.listener_bridge = listener_bridge
        self.model = model
        self.processor = processor if processor is not None and processor.model is model \
            else MessageProcessor(model, action_client)
        self.tracker: Optional[DialogueStateTracker] = None
        # The tracker's events up to here are handed to the store (in self._chain's writes).
        self._handed_over = 0
        self._chain = WriteChain()
        # With a lock store: the store's version of the conversation the tracker holds, and
        # the lease of the request in progress (its ticket fences the writes).
        self._version = 0
        self._lease: Optional[Lease] = None

    # ----------------------------------------------------------------- plumbing

    def on_receive(self, message: Any) -> None:
        match message:
            case Ask(request, reply, lease):
                self._answer(request, reply, lease)
            case TakeModel(model):
                self._take_model(model)
            case TakeConversation(sender_id):
                self._take_conversation(sender_id)
            case Passivate():
                # pykka's own stop, queued behind what is already queued (nothing, normally:
                # the Supervisor passivates only actors with nothing in flight).
                self.stop()  # type: ignore[attr-defined]
            case _:
                raise TypeError("A conversation actor cannot handle {!r}.".format(message))

    def _answer(self, request: ConversationRequest, reply: Reply,
                lease: Optional[Lease] = None) -> None:
        if self._chain.failed:
            # A turn's events could not be stored (its answer said so): go on from what the
            # store has.
            self.tracker = None
            self._chain = WriteChain()
        self._lease = lease
        try:
            if lease is not None:
                self._catch_up(lease)
            value = self._handle(request)
        except ConversationError as e:
            reply.fail(e)
            return
        except Exception as e:  # an unexpected fault fails this request, not the actor
            log.failure("Conversation {sender_id} failed on {request}.",
                        sender_id=self.sender_id, request=type(request).__name__)
            self.tracker = None  # read it again from the store on the next request
            reply.fail(e)
            return
        self._answer_when_stored(reply, value)

    def _handle(self, request: ConversationRequest) -> Any:
        match request:
            case HandleMessage():
                return self._handle_message(request)
            case GetTracker():
                return self._get_tracker(request)
            case LogMessage():
                return self._log_message(request)
            case AppendEvents():
                return self._append_events(request)
            case ReplaceEvents():
                return self._replace_events(request)
            case Predict():
                return self._predict()
            case Execute():
                return self._execute(request)
            case GetStory():
                return self._get_story(request)
        raise TypeError("Not a conversation request: {!r}.".format(request))

    def _answer_when_stored(self, reply: Reply, value: Any) -> None:
        """Hands the new events to the store; the answer goes once they and the writes before
        them are stored (at once when nothing is waiting to be written)."""
        tracker = self.tracker
        new = tracker.events[self._handed_over:] if tracker is not None else []
        if new:
            self._handed_over = len(tracker.events)  # type: ignore[union-attr]
            if self._lease is None:
                self.store.append_then(self.sender_id, [e.as_dict() for e in new],
                                       _Answer(reply, value), self._chain)
            else:
                self._version += 1
                self.store.append_then(self.sender_id, [e.as_dict() for e in new],
                                       _Answer(reply, value), self._chain,
                                       fence=self._lease.ticket, lease=self._lease)
        elif self._chain.pending():
            self.store.then(self.sender_id, _Answer(reply, value), self._chain)
        else:
            reply.succeed(value)

    def on_stop(self) -> None:
        # Requests still queued behind a stop would otherwise never be answered.
        while not self.actor_inbox.empty():  # type: ignore[attr-defined]
            try:
                queued = self.actor_inbox.get_nowait()  # type: ignore[attr-defined]
            except Exception:
                break
            message = getattr(queued, "message", None)
            if isinstance(message, Ask):
                message.reply.fail(ConversationError(
                    "The conversation was stopped; try again.", 503, "ConversationStopped"))

    def _take_conversation(self, sender_id: str) -> None:
        # Sent only with nothing in flight: every answer is out, so every write is done and the
        # store has the conversation held so far; the new one is read on its first request.
        self.sender_id = sender_id
        self.tracker = None
        self._handed_over = 0
        self._chain = WriteChain()

    def _take_model(self, model: Model) -> None:
        self.model = model
        self.processor = MessageProcessor(model, self.action_client)
        # The tracker moves to the new domain when the next request needs it (_load): a swap
        # reaches every live conversation, and most of them are idle, so they pay nothing now.

    def _catch_up(self, lease: Lease) -> None:
        """Under a new lease: reads what other holders wrote since this actor's version (usually
        nothing), and raises the store's fence to this lease's token before any write."""
        if self.tracker is None:
            return  # _load reads it all, under the fence
        if not lease.others_held_it:
            return  # every write since this holder's last lease was its own
        try:
            since = self.store.load_since(  # type: ignore[attr-defined]
                self.sender_id, self._version, fence=lease.ticket)
        except StoreError as e:
            raise StoreUnavailable("The tracker store failed: {}".format(e))
        if since is None or since.whole:
            self.tracker = None  # rebuilt by _load from what the store holds now
            self._adopt(since)
            return
        self._version = since.version
        if since.events:
            try:
                self.tracker.update_many(events_from_dicts(since.events))
            except InvalidEvent as e:
                self.tracker = None
                raise ConversationError("The stored conversation cannot be read: {}".format(e),
                                        500, "CorruptConversation")
            self._handed_over = len(self.tracker.events)

    def _read_store(self) -> Optional[List[Dict[str, Any]]]:
        try:
            if self._lease is None:
                return self.store.load(self.sender_id)
            since = self.store.load_since(  # type: ignore[attr-defined]
                self.sender_id, 0, fence=self._lease.ticket)
        except StoreError as e:
            raise StoreUnavailable("The tracker store failed: {}".format(e))
        self._version = 0 if since is None else since.version
        return None if since is None else since.events

    def _adopt(self, since: Any) -> None:
        """Builds the tracker from a whole read (``load_since`` that found a replace, or lost
        data, or no conversation at all)."""
        self._version = 0 if since is None else since.version
        self._build(None if since is None else since.events)

    def _load(self) -> DialogueStateTracker:
        if self.tracker is not None:
            if self.tracker.domain is not self.model.domain:
                # Same events, read with the new domain's slots (re-read only if that can differ).
                self.tracker = self.tracker.switch_domain(self.model.domain)
            return self.tracker
        return self._build(self._read_store())

    def _build(self, stored: Optional[List[Dict[str, Any]]]) -> DialogueStateTracker:
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
        the answer, see _answer)."""
        tracker = self._load()
        known = len(tracker.events)
        try:
            return work(tracker)
        except BaseException:
            self._roll_back(tracker, known)
            raise

    def _listener(self, listener: Optional[MessageListener]) -> Optional[MessageListener]:
        if listener is None or self.listener_bridge is None:
            return None
        bridge = self.listener_bridge
        return lambda message: bridge(listener, message)

    # ----------------------------------------------------------------- requests

    def _handle_message(self, request: HandleMessage) -> List[Dict[str, Any]]:
        message = UserMessage(request.text, self.sender_id, request.input_channel)
        listener = self._listener(request.listener)
        result = self._mutating(lambda t: self.processor.handle_message(t, message, listener))
        return result.messages

    def _log_message(self, request: LogMessage) -> Dict[str, Any]:
        message = UserMessage(request.text, self.sender_id, parse_data=request.parse_data)
        self._mutating(lambda t: self.processor.log_message(t, message))
        return self._load().current_state(request.verbosity)

    def _get_tracker(self, request: GetTracker) -> Dict[str, Any]:
        tracker = self._load()
        if request.until is not None:
            tracker = tracker.travel_back_in_time(request.until)
        return tracker.current_state(request.verbosity)

    def _get_story(self, request: GetStory) -> str:
        tracker = self._load()
        if request.until is not None:
            tracker = tracker.travel_back_in_time(request.until)
        return tracker.export_stories(e2e=True)

    def _append_events(self, request: AppendEvents) -> Dict[str, Any]:
        try:
            events = events_from_dicts(request.events)
        except InvalidEvent as e:
            raise ConversationError(str(e), 400, "InvalidEvent")
        self._mutating(lambda t: t.update_many(events))
        return self._load().current_state(request.verbosity)

    def _replace_events(self, request: ReplaceEvents) -> Dict[str, Any]:
        try:
            tracker = DialogueStateTracker.from_dicts(self.sender_id, request.events,
                                                      self.model.domain)
        except InvalidEvent as e:
            raise ConversationError(str(e), 400, "InvalidEvent")
        events = [e.as_dict() for e in tracker.events]
        try:
            # Done after this conversation's queued writes, which it then replaces.
            if self._lease is None:
                self.store.replace(self.sender_id, events)
            else:
                self.store.replace(self.sender_id, events,  # type: ignore[call-arg]
                                   fence=self._lease.ticket)
                self._version += 1
        except StoreError as e:
            raise StoreUnavailable("The tracker store failed: {}".format(e))
        self.tracker = tracker
        self._handed_over = len(tracker.events)
        # What this conversation wrote before is replaced, whether or not it was stored.
        self._chain = WriteChain()
        return tracker.current_state(request.verbosity)

    def _predict(self) -> Dict[str, Any]:
        # The form policy may log a form_validation event while predicting.
        return self._mutating(lambda t: self.processor.predict_next(t))

    def _execute(self, request: Execute) -> Dict[str, Any]:
        try:
            self.model.domain.index_for_action(request.action)
        except UnknownAction as e:
            raise ConversationError(str(e), 400, "UnknownAction")
        result = self._mutating(lambda t: self.processor.execute_action(
            t, request.action, request.policy, request.confidence))
        return {"tracker": self._load().current_state(request.verbosity),
                "messages": result.messages}


class ConversationActor(Conversation, PooledActor):
    """A conversation actor on a worker of the pool (the default)."""


class ThreadedConversationActor(Conversation, ThreadedActor):
    """A conversation actor on a thread of its own (the ``worker_pool`` fast path off)."""


def conversation_actor_type(fast: Optional[bool] = None) -> Type[Conversation]:
    """The conversation actor class: pooled unless the ``worker_pool`` fast path is off (or
    ``fast`` says otherwise)."""
    return ConversationActor if fastpaths.choose("worker_pool", fast) \
        else ThreadedConversationActor


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


__all__ = ["Conversation", "ConversationActor", "ThreadedConversationActor",
           "conversation_actor_type"]

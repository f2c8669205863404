"""The supervisor: routes requests to conversation actors, starts and passivates them.

It lives on the reactor thread (only the reactor touches its map, so it needs no lock). It maps a
sender id to its actor, starts the actor on first use, stops actors idle longer than
``idle_timeout`` and keeps at most ``max_actors`` alive (least recently used first), starts a
dead actor again, and hands every new model to every live actor. Replies come back as Deferreds
fired on the reactor thread; the reactor never waits on an actor.
"""

import copy
import logging
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional

import pykka
from twisted.internet import threads
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import LoopingCall
from zope.interface import implementer

from coreactors.actions.remote import ActionServerClient
from coreactors.actors.conversation import ConversationActor, Reply, ReplyBridge
from coreactors.actors.dispatcher import Dispatcher
from coreactors.actors.interface import (
    ConversationError, IConversations, IModelArchives, MessageListener, NoModelLoaded,
    StoreUnavailable)
from coreactors.actors.model_watcher import ModelArchives
from coreactors.dialogue.domain import Domain
from coreactors.dialogue.events import InvalidEvent
from coreactors.dialogue.tracker import DialogueStateTracker, EventVerbosity
from coreactors.model import InvalidModel, Model
from coreactors.nlu.interpreter import INTENT_MESSAGE_PREFIX, RegexInterpreter
from coreactors.processor import MessageProcessor
from coreactors.stores.base import StoreError, TrackerStore

logger = logging.getLogger(__name__)

# A new model reaches idle actors this many at a time, a batch per interval (1,000 actors/s):
# waking every actor at once starves the reactor of the GIL (measured by bench/swap.py).
HANDOVER_BATCH = 50
HANDOVER_INTERVAL = 0.05


class _Entry:
    __slots__ = ("ref", "in_flight", "last_used", "model")

    def __init__(self, ref: pykka.ActorRef, model: Model) -> None:
        self.ref = ref
        self.in_flight = 0
        self.last_used = time.monotonic()
        self.model = model  # the last model this actor was given


@implementer(IConversations, IModelArchives)
class Supervisor:
    """Owns the conversation actors of one process."""

    def __init__(self, store: TrackerStore, model: Optional[Model] = None,
                 action_client: Optional[ActionServerClient] = None, reactor: Any = None,
                 max_actors: int = 2000, idle_timeout: float = 300.0,
                 interpreter: Any = None, dispatcher: Optional[Dispatcher] = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor
            reactor = global_reactor
        self.reactor = reactor
        self.store = store
        # The interpreter of -u or the nlu endpoint. It replaces the NLU of the model given here
        # (the operator asked for it); later models keep their own NLU, if they bring one.
        self.interpreter = interpreter
        if model is not None and interpreter is not None:
            model = model.with_interpreter(interpreter)
        self.model = model
        # Unpacked model zips (the model server's and POST /model's): one loading path.
        self.archives = ModelArchives()
        self.action_client = action_client
        self.max_actors = max_actors
        self.idle_timeout = idle_timeout
        self.actors: "OrderedDict[str, _Entry]" = OrderedDict()
        self._reaper: Optional[LoopingCall] = None
        self._handover: Any = None  # the next batch of a model hand-over (set_model)
        self.stopping = False
        self.replies = ReplyBridge(reactor.callFromThread)
        # The threads the conversation actors run on (see dispatcher.py).
        self.dispatcher = dispatcher if dispatcher is not None else Dispatcher()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self.dispatcher.start()
        self._reaper = LoopingCall(self.passivate_idle)
        self._reaper.clock = self.reactor
        interval = max(0.5, min(self.idle_timeout / 4.0, 30.0))
        self._reaper.start(interval, now=False)

    def in_flight(self) -> int:
        return sum(e.in_flight for e in self.actors.values())

    def stop(self) -> Deferred:
        """Stops every actor once its queued requests are done (off the reactor thread)."""
        self.stopping = True
        if self._reaper is not None and self._reaper.running:
            self._reaper.stop()
        if self._handover is not None and self._handover.active():
            self._handover.cancel()
        refs = [e.ref for e in self.actors.values()]
        self.actors.clear()

        def stop_all() -> None:
            for ref in refs:
                try:
                    ref.stop(block=True, timeout=5)
                except Exception:  # a stuck actor must not hold up the shutdown
                    logger.warning("An actor did not stop in time.")
            self.dispatcher.stop()
            self.archives.remove_all()  # models live in memory; their unpacked zips can go
        return self._in_thread(stop_all)

    # ----------------------------------------------------------------- models

    @property
    def is_ready(self) -> bool:
        return self.model is not None

    @property
    def fingerprint(self) -> Optional[str]:
        return self.model.fingerprint if self.model is not None else None

    def domain(self) -> Domain:
        return self._model().domain

    def _model(self) -> Model:
        if self.model is None:
            raise NoModelLoaded("No model is loaded. Train one, or wait for the model server.")
        return self.model

    def _with_interpreter(self, model: Model) -> Model:
        if model.interpreter is None and self.interpreter is not None:
            return model.with_interpreter(self.interpreter)
        return model

    def set_model(self, model: Model) -> None:
        """Every live actor takes the model before its next request: ``_send`` hands it over
        with that request at the latest, and idle actors get it a batch at a time meanwhile
        (so their old models can go), never all woken at once."""
        model = self._with_interpreter(model)
        self.model = model
        self.archives.published(model.path)
        if self._handover is None or not self._handover.active():
            self._handover = self.reactor.callLater(0, self._hand_over_batch)

    def _hand_over(self, entry: _Entry) -> None:
        if entry.model is not self.model:
            entry.model = self.model
            try:
                entry.ref.tell(("model", self.model, None))
            except pykka.ActorDeadError:
                pass

    def _hand_over_batch(self) -> None:
        self._handover = None
        if self.stopping:
            return
        stale = [e for e in self.actors.values() if e.model is not self.model]
        for entry in stale[:HANDOVER_BATCH]:
            self._hand_over(entry)
        if len(stale) > HANDOVER_BATCH:
            self._handover = self.reactor.callLater(HANDOVER_INTERVAL, self._hand_over_batch)

    def load_model_archive(self, data: bytes) -> Deferred:
        if self.stopping:
            return fail(ConversationError("The server is shutting down.", 503, "ShuttingDown"))

        def refuse(failure: Any) -> None:
            failure.trap(InvalidModel)
            raise ConversationError(str(failure.value), 400, "InvalidModel")

        def swap(model: Model) -> Optional[str]:
            self.set_model(model)
            logger.info("Now serving model %s, uploaded with POST /model.", self.fingerprint)
            self._in_thread(self.archives.prune)  # the folder two models back can go now
            return self.fingerprint
        return self._in_thread(lambda: self.archives.load(data)).addCallbacks(swap, refuse)

    # ----------------------------------------------------------------- actors

    def _start_actor(self, sender_id: str) -> _Entry:
        ref = ConversationActor.start(self.dispatcher, sender_id, self._model(), self.store,
                                      self.action_client, self._bridge_listener)
        entry = _Entry(ref, self._model())
        self.actors[sender_id] = entry
        if len(self.actors) > self.max_actors:
            self._evict(len(self.actors) - self.max_actors)
        return entry

    def _bridge_listener(self, listener: Callable, message: Dict[str, Any]) -> None:
        self.replies(listener, message)

    def _evict(self, count: int) -> None:
        """Stops up to ``count`` least recently used actors that have nothing to do."""
        for sender_id in list(self.actors):
            if count <= 0:
                break
            entry = self.actors[sender_id]
            if entry.in_flight == 0:
                self._stop_entry(sender_id, entry)
                count -= 1

    def _stop_entry(self, sender_id: str, entry: _Entry) -> None:
        # Nothing is in flight, so the actor's last turn is stored: a new actor reads it back.
        del self.actors[sender_id]
        try:
            entry.ref.stop(block=False)
        except pykka.ActorDeadError:
            pass

    def passivate_idle(self) -> None:
        deadline = time.monotonic() - self.idle_timeout
        for sender_id in list(self.actors):
            entry = self.actors[sender_id]
            if entry.in_flight == 0 and entry.last_used < deadline:
                self._stop_entry(sender_id, entry)

    def _send(self, sender_id: str, command: str, *args: Any) -> Deferred:
        if self.stopping:
            return fail(ConversationError("The server is shutting down.", 503, "ShuttingDown"))
        try:
            self._model()
        except NoModelLoaded as e:
            return fail(e)
        entry = self.actors.get(sender_id)
        if entry is None:
            entry = self._start_actor(sender_id)
        else:
            self.actors.move_to_end(sender_id)
            self._hand_over(entry)  # a model swapped in since: it goes first
        deferred: Deferred = Deferred()
        try:
            entry.ref.tell((command, args, Reply(deferred, self.replies)))
        except pykka.ActorDeadError:
            # It died between two requests: start it again from the store.
            self.actors.pop(sender_id, None)
            entry = self._start_actor(sender_id)
            entry.ref.tell((command, args, Reply(deferred, self.replies)))
        entry.in_flight += 1

        def done(result: Any) -> Any:
            entry.in_flight -= 1
            entry.last_used = time.monotonic()
            return result
        deferred.addBoth(done)
        return deferred

    # ----------------------------------------------------------------- IConversations

    def handle_message(self, sender_id: str, text: str, input_channel: Optional[str] = None,
                       listener: Optional[MessageListener] = None) -> Deferred:
        return self._send(sender_id, "handle_message", text, input_channel, listener)

    def log_message(self, sender_id: str, text: str, parse_data: Optional[Dict[str, Any]],
                    verbosity: EventVerbosity) -> Deferred:
        return self._send(sender_id, "log_message", text, parse_data, verbosity)

    def tracker(self, sender_id: str, verbosity: EventVerbosity,
                until: Optional[float] = None) -> Deferred:
        return self._send(sender_id, "tracker", verbosity, until)

    def story(self, sender_id: str, until: Optional[float] = None) -> Deferred:
        return self._send(sender_id, "story", until)

    def append_events(self, sender_id: str, events: List[Dict[str, Any]],
                      verbosity: EventVerbosity) -> Deferred:
        return self._send(sender_id, "append_events", events, verbosity)

    def replace_events(self, sender_id: str, events: List[Dict[str, Any]],
                       verbosity: EventVerbosity) -> Deferred:
        return self._send(sender_id, "replace_events", events, verbosity)

    def predict(self, sender_id: str) -> Deferred:
        return self._send(sender_id, "predict")

    def execute(self, sender_id: str, action: str, policy: Optional[str],
                confidence: Optional[float], verbosity: EventVerbosity) -> Deferred:
        return self._send(sender_id, "execute", action, policy, confidence, verbosity)

    def _in_thread(self, work: Callable[[], Any]) -> Deferred:
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), work)

    def conversation_ids(self) -> Deferred:
        def read() -> List[str]:
            try:
                return self.store.conversation_ids()
            except StoreError as e:
                raise StoreUnavailable("The tracker store failed: {}".format(e))
        return self._in_thread(read)

    def parse(self, text: str) -> Deferred:
        interpreter = self.model.interpreter if self.model is not None else self.interpreter

        def work() -> Dict[str, Any]:
            if interpreter is None or text.startswith(INTENT_MESSAGE_PREFIX):
                return RegexInterpreter().parse(text)
            return interpreter.parse(text)
        return self._in_thread(work)

    def _with_model(self, work: Callable[[Model], Any]) -> Deferred:
        """Runs model-level work (not tied to a conversation) in the thread pool."""
        try:
            model = self._model()
        except NoModelLoaded as e:
            return fail(e)
        return self._in_thread(lambda: work(model))

    def predict_for_events(self, events: List[Dict[str, Any]]) -> Deferred:
        def work(model: Model) -> Dict[str, Any]:
            result = MessageProcessor(model).predict_next(
                _tracker_from_dicts("default", events, model))
            result.pop("confidence", None)
            return result
        return self._with_model(work)

    def evaluate(self, stories: str, e2e: bool) -> Deferred:
        def work(model: Model) -> Dict[str, Any]:
            from coreactors.dialogue.stories import StoryParseError
            from coreactors.training.evaluate import evaluate_stories
            try:
                return evaluate_stories(model, text=stories, e2e=e2e).as_dict()
            except (StoryParseError, ValueError) as e:
                raise ConversationError("Evaluation could not be created. Error: {}".format(e),
                                        400, "FailedEvaluation")
        return self._with_model(work)

    def finetune(self, events: List[Dict[str, Any]]) -> Deferred:
        def work(model: Model) -> Model:
            tracker = _tracker_from_dicts("finetune", events, model)
            # Models are immutable: train a copy, then swap it in like any new model.
            ensemble = copy.deepcopy(model.policy_ensemble)
            ensemble.continue_training([tracker], model.domain)
            fingerprint = "{}-ft{}".format(model.fingerprint or "model", int(time.time() * 1000))
            return Model(model.domain, ensemble, model.interpreter, fingerprint, model.path)
        return self._with_model(work).addCallback(self.set_model)


def _tracker_from_dicts(sender_id: str, events: List[Dict[str, Any]], model: Model
                        ) -> DialogueStateTracker:
    try:
        return DialogueStateTracker.from_dicts(sender_id, events, model.domain)
    except InvalidEvent as e:
        raise ConversationError(str(e), 400, "InvalidEvent")

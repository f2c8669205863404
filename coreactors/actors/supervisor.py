"""The supervisor: routes requests to conversation actors, starts and passivates them, and
hands them new models.

It lives on the reactor thread (only the reactor touches its map, so it needs no lock). It maps a
sender id to its actor, starts the actor on first use, stops actors idle longer than
``idle_timeout`` and keeps at most ``max_actors`` alive (least recently used first), starts a
dead actor again, and hands every new model to every live actor. Replies come back as Deferreds
fired on the reactor thread; the reactor never waits on an actor. Time is the reactor's
(``reactor.seconds()``), so a test drives passivation with a ``task.Clock``.

A request counts as in flight from the moment it is sent until its actor has answered, even if
its caller stopped waiting (a client that went away cancels its Deferred): an actor with a
request in flight is never stopped, so two actors never hold one conversation.
"""

import itertools
import os
import uuid
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Type

import pykka
from twisted.internet import threads
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from coreactors.actions.remote import ActionServerClient
from coreactors.actors.conversation import Conversation, conversation_actor_type
from coreactors.actors.interface import ConversationError, NoModelLoaded, StoreUnavailable
from coreactors.actors.lock_desk import LockDesk
from coreactors.actors.messages import (
    AppendEvents, Ask, ConversationRequest, Execute, GetStory, GetTracker, HandleMessage,
    LogMessage, MessageListener, Passivate, Predict, ReplaceEvents, TakeConversation,
    TakeModel)
from coreactors.actors.reply import Reply, ReplyBridge
from coreactors.actors.worker_pool import WorkerPool
from coreactors.dialogue.domain import Domain
from coreactors.dialogue.tracker import EventVerbosity
from coreactors.log_observers import levelled
from coreactors.model import Model
from coreactors.model_archives import ModelArchives
from coreactors.processor import MessageProcessor
from coreactors.stores.base import StoreError, TrackerStore
from coreactors.stores.lock import Lease

log = Logger(observer=levelled)

# A new model reaches idle actors this many at a time, a batch per interval (1,000 actors/s):
# waking every actor at once starves the reactor of the GIL (measured by bench/swap.py).
HANDOVER_BATCH = 50
HANDOVER_INTERVAL = 0.05

# Runs blocking work off the reactor thread; fires with its result.
RunInThread = Callable[[Callable[[], Any]], Deferred]


class _Entry:
    """A live actor as the Supervisor keeps it."""

    __slots__ = ("ref", "in_flight", "last_used", "model", "holder")

    def __init__(self, ref: pykka.ActorRef, model: Model, now: float, holder: str) -> None:
        self.ref = ref
        self.in_flight = 0
        self.last_used = now
        self.model = model  # the last model this actor was given
        # Who this actor is to the lock store while it holds its present conversation: a
        # lease whose previous holder is this one finds nothing new in the store.
        self.holder = holder


class Supervisor:
    """Owns the conversation actors of one process: routing, lifecycle, model hand-over."""

    def __init__(self, store: TrackerStore, model: Optional[Model] = None,
                 action_client: Optional[ActionServerClient] = None, reactor: Any = None,
                 max_actors: int = 2000, idle_timeout: float = 300.0,
                 interpreter: Any = None, pool: Any = None,
                 actor_type: Optional[Type[Conversation]] = None,
                 archives: Optional[ModelArchives] = None,
                 run_in_thread: Optional[RunInThread] = None,
                 desk: Optional[LockDesk] = None) -> None:
        """With a ``desk`` (a lock store: several processes share the conversations), each
        request goes to its actor once it holds the conversation's lease."""
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
        # Where unpacked model zips are kept track of (set_model tells it which is in use).
        self.archives = archives if archives is not None else ModelArchives()
        self.action_client = action_client
        self.max_actors = max_actors
        self.idle_timeout = idle_timeout
        self.actors: "OrderedDict[str, _Entry]" = OrderedDict()
        self._reaper: Optional[LoopingCall] = None
        self._handover: Any = None  # the next batch of a model hand-over (set_model)
        self.stopping = False
        self.replies = ReplyBridge(reactor.callFromThread)
        # The threads the conversation actors run on (see worker_pool.py).
        self.pool = pool if pool is not None else WorkerPool()
        self.actor_type = actor_type if actor_type is not None else conversation_actor_type()
        self.run_in_thread: RunInThread = run_in_thread or self._in_thread_pool
        self._processor: Optional[MessageProcessor] = None  # see _processor_for
        self.taken_over = 0  # conversations an idle actor took over at the cap (_take_over)
        self.desk = desk
        # Holder names are unique across processes and across an actor's conversations.
        self._holder_prefix = "{}.{}".format(uuid.uuid4().hex[:12], os.getpid())
        self._holders = itertools.count(1)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self.pool.start()
        if self.desk is not None:
            self.desk.start()
        self._reaper = LoopingCall(self.passivate_idle)
        self._reaper.clock = self.reactor
        self._reaper.start(self.passivation_interval, now=False)

    @property
    def passivation_interval(self) -> float:
        """How often idle actors are looked for: a quarter of the idle time, 0.5 s to 30 s."""
        return max(0.5, min(self.idle_timeout / 4.0, 30.0))

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
        pool, desk = self.pool, self.desk

        def stop_all() -> None:
            for ref in refs:
                try:
                    ref.stop(block=True, timeout=5)
                except Exception:  # a stuck actor must not hold up the shutdown
                    log.warn("An actor did not stop in time.")
            pool.stop()
            if desk is not None:
                desk.stop()  # refuses what still waits for a lease, gives back what is held
                log.debug("The lock desk made {rounds} round trips for {operations} "
                          "operations.", rounds=desk.rounds, operations=desk.operations)
        return self.run_in_thread(stop_all)

    # ----------------------------------------------------------------- models

    @property
    def is_ready(self) -> bool:
        return self.model is not None

    @property
    def fingerprint(self) -> Optional[str]:
        return self.model.fingerprint if self.model is not None else None

    def domain(self) -> Domain:
        return self.current_model().domain

    def current_model(self) -> Model:
        """The model in use; raises NoModelLoaded before the first one."""
        if self.model is None:
            raise NoModelLoaded("No model is loaded. Train one, or wait for the model server.")
        return self.model

    def set_model(self, model: Model) -> None:
        """Every live actor takes the model before its next request: ``_send`` hands it over
        with that request at the latest, and idle actors get it a batch at a time meanwhile
        (so their old models can go), never all woken at once."""
        if model.interpreter is None and self.interpreter is not None:
            model = model.with_interpreter(self.interpreter)
        self.model = model
        self.archives.published(model.path)
        if self._handover is None or not self._handover.active():
            self._handover = self.reactor.callLater(0, self._hand_over_batch)

    def _hand_over(self, entry: _Entry) -> None:
        if entry.model is not self.model:
            entry.model = self.model
            try:
                entry.ref.tell(TakeModel(self.model))
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

    # ----------------------------------------------------------------- actors

    def _processor_for(self, model: Model) -> MessageProcessor:
        """The message loop the actors started with ``model`` share (one per model)."""
        if self._processor is None or self._processor.model is not model:
            self._processor = MessageProcessor(model, self.action_client)
        return self._processor

    def _start_actor(self, sender_id: str, model: Model) -> _Entry:
        """An actor for ``sender_id``: at the cap, the least recently used idle actor takes the
        conversation over (one message, no actor stopped or started); else a new one."""
        entry = self._take_over(sender_id) if len(self.actors) >= self.max_actors else None
        if entry is None:
            ref = self.actor_type.start(self.pool, sender_id, model, self.store,  # type: ignore
                                        self.action_client, self.replies,
                                        self._processor_for(model))
            entry = _Entry(ref, model, self.reactor.seconds(), self._new_holder())
            self.actors[sender_id] = entry
        if len(self.actors) > self.max_actors:
            # Beyond the cap since every actor was busy: back to it as they come free.
            self._evict(len(self.actors) - self.max_actors, keep=sender_id)
        return entry

    def _new_holder(self) -> str:
        return "{}.{}".format(self._holder_prefix, next(self._holders))

    def _take_over(self, sender_id: str) -> Optional[_Entry]:
        """Hands the least recently used idle actor's place to ``sender_id``, or None when
        every actor has a request in flight (or the one found has died)."""
        for old_sender, entry in self.actors.items():
            if entry.in_flight == 0:
                break
        else:
            return None
        del self.actors[old_sender]
        try:
            entry.ref.tell(TakeConversation(sender_id))
        except pykka.ActorDeadError:
            return None
        entry.last_used = self.reactor.seconds()
        entry.holder = self._new_holder()
        self.actors[sender_id] = entry
        self.taken_over += 1
        self._hand_over(entry)  # a model swapped in since it last got one
        return entry

    def _evict(self, count: int, keep: Optional[str] = None) -> None:
        """Stops up to ``count`` least recently used actors that have nothing to do, other
        than ``keep``'s (the one a request is about to be sent to).

        It looks from the least recently used end and stops as soon as it has found them
        (usually the first ``count``), so starting an actor at the cap costs the same with
        2,000 actors alive as with 20."""
        idle: List[Any] = []
        for sender_id, entry in self.actors.items():
            if entry.in_flight == 0 and sender_id != keep:
                idle.append((sender_id, entry))
                if len(idle) == count:
                    break
        for sender_id, entry in idle:
            self._stop_entry(sender_id, entry)

    def _stop_entry(self, sender_id: str, entry: _Entry) -> None:
        # Nothing is in flight, so the actor's last turn is stored: a new actor reads it back.
        # A tell, not pykka's ActorRef.stop, which makes a future for an answer nobody awaits.
        del self.actors[sender_id]
        try:
            entry.ref.tell(Passivate())
        except pykka.ActorDeadError:
            pass

    def passivate_idle(self) -> None:
        """Stops the actors idle for longer than ``idle_timeout``."""
        deadline = self.reactor.seconds() - self.idle_timeout
        for sender_id in list(self.actors):
            entry = self.actors[sender_id]
            if entry.in_flight == 0 and entry.last_used < deadline:
                self._stop_entry(sender_id, entry)

    def _send(self, sender_id: str, request: ConversationRequest) -> Deferred:
        if not isinstance(request, ConversationRequest):
            raise TypeError("Not a conversation request: {!r}".format(request))
        if self.stopping:
            return fail(ConversationError("The server is shutting down.", 503, "ShuttingDown"))
        try:
            model = self.current_model()
        except NoModelLoaded as e:
            return fail(e)
        entry = self.actors.get(sender_id)
        if entry is None:
            entry = self._start_actor(sender_id, model)
        else:
            self.actors.move_to_end(sender_id)
            self._hand_over(entry)  # a model swapped in since: it goes first
        deferred: Deferred = Deferred()
        if self.desk is not None:
            self._claim(sender_id, entry, request, deferred)
            return deferred
        try:
            self._tell(entry, request, deferred)
        except pykka.ActorDeadError:
            # It died between two requests: start it again from the store.
            self.actors.pop(sender_id, None)
            entry = self._start_actor(sender_id, model)
            self._tell(entry, request, deferred)
        return deferred

    def _tell(self, entry: _Entry, request: ConversationRequest, deferred: Deferred) -> None:
        # Counted before it is sent: an actor may answer before tell returns.
        entry.in_flight += 1
        try:
            entry.ref.tell(Ask(request, Reply(deferred, self.replies, _Settled(self, entry))))
        except BaseException:
            entry.in_flight -= 1
            raise

    def _claim(self, sender_id: str, entry: _Entry, request: ConversationRequest,
               deferred: Deferred) -> None:
        """Sends the request to its actor once it holds the conversation's lease; the lease
        is given back when the actor has answered (its events stored)."""
        entry.in_flight += 1  # from now until answered: the actor must not be stopped
        settled = _Settled(self, entry)
        reply = Reply(deferred, self.replies, settled)
        ref = entry.ref

        def granted(lease: Lease) -> None:
            # The desk's thread.
            settled.lease = lease
            try:
                ref.tell(Ask(request, reply, lease))
            except pykka.ActorDeadError:
                reply.fail(ConversationError("The conversation was stopped; try again.", 503,
                                             "ConversationStopped"))
        assert self.desk is not None
        self.desk.claim(sender_id, entry.holder, granted, reply.fail)

    # ----------------------------------------------------------------- conversation requests

    def handle_message(self, sender_id: str, text: str, input_channel: Optional[str] = None,
                       listener: Optional[MessageListener] = None) -> Deferred:
        return self._send(sender_id, HandleMessage(text, input_channel, listener))

    def log_message(self, sender_id: str, text: str, parse_data: Optional[Dict[str, Any]],
                    verbosity: EventVerbosity) -> Deferred:
        return self._send(sender_id, LogMessage(text, parse_data, verbosity))

    def tracker(self, sender_id: str, verbosity: EventVerbosity,
                until: Optional[float] = None) -> Deferred:
        return self._send(sender_id, GetTracker(verbosity, until))

    def story(self, sender_id: str, until: Optional[float] = None) -> Deferred:
        return self._send(sender_id, GetStory(until))

    def append_events(self, sender_id: str, events: List[Dict[str, Any]],
                      verbosity: EventVerbosity) -> Deferred:
        return self._send(sender_id, AppendEvents(events, verbosity))

    def replace_events(self, sender_id: str, events: List[Dict[str, Any]],
                       verbosity: EventVerbosity) -> Deferred:
        return self._send(sender_id, ReplaceEvents(events, verbosity))

    def predict(self, sender_id: str) -> Deferred:
        return self._send(sender_id, Predict())

    def execute(self, sender_id: str, action: str, policy: Optional[str],
                confidence: Optional[float], verbosity: EventVerbosity) -> Deferred:
        return self._send(sender_id, Execute(action, policy, confidence, verbosity))

    def conversation_ids(self) -> Deferred:
        def read() -> List[str]:
            try:
                return self.store.conversation_ids()
            except StoreError as e:
                raise StoreUnavailable("The tracker store failed: {}".format(e))
        return self.run_in_thread(read)

    def _in_thread_pool(self, work: Callable[[], Any]) -> Deferred:
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), work)


class _Settled:
    """Runs on the reactor thread when an actor has answered a request (whether or not its
    caller still waits): the request is no longer in flight, and the actor was last used now."""

    __slots__ = ("supervisor", "entry", "lease")

    def __init__(self, supervisor: Supervisor, entry: _Entry) -> None:
        self.supervisor = supervisor
        self.entry = entry
        self.lease: Optional[Lease] = None  # the request's lease, given back now

    def __call__(self) -> None:
        self.entry.in_flight -= 1
        self.entry.last_used = self.supervisor.reactor.seconds()
        if self.lease is not None and self.supervisor.desk is not None:
            self.supervisor.desk.release(self.lease)


__all__ = ["HANDOVER_BATCH", "HANDOVER_INTERVAL", "RunInThread", "Supervisor"]

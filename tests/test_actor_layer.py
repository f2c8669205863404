"""The actor layer below the whole server: the Supervisor, the conversation actors and the reply
path, driven on a fake clock (``task.Clock``) with a worker pool that runs messages inline.

No threads, no sockets, no sleeping: time moves when a test advances the clock, and a message
runs when the pool is told to run it, so lifecycle races (a model handed over between two
messages, a client gone before its answer) are set up exactly.
"""

import gc
import weakref
from typing import Any, Dict, List

import pykka
import pytest
from twisted.internet import defer
from twisted.internet.defer import CancelledError, maybeDeferred
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from coreactors.actors.agent import Agent
from coreactors.actors.conversation import (
    ConversationActor, ThreadedConversationActor, conversation_actor_type)
from coreactors.actors.interface import ConversationError, IConversations, IModelArchives
from coreactors.actors.messages import (
    CONVERSATION_REQUESTS, AppendEvents, Ask, Execute, GetStory, GetTracker, HandleMessage,
    LogMessage, Poll, Predict, Prune, ReplaceEvents, TakeModel)
from coreactors.actors.model_requests import ModelRequests
from coreactors.actors.model_server import ModelServerClient, PullSettings
from coreactors.actors.model_watcher import ModelWatcher
from coreactors.actors.reply import Reply, ReplyBridge, direct_bridge
from coreactors.actors.supervisor import HANDOVER_BATCH, HANDOVER_INTERVAL, Supervisor
from coreactors.actors.worker_pool import InlineWorkerPool
from coreactors.dialogue.domain import Domain
from coreactors.dialogue.stories import read_stories
from coreactors.dialogue.tracker import EventVerbosity
from coreactors.endpoints import EndpointConfig
from coreactors.model import Model
from coreactors.model_archives import ModelArchives
from coreactors.policies.ensemble import PolicyEnsemble
from coreactors.policies.memoization import MemoizationPolicy
from coreactors.stores.memory import InMemoryTrackerStore
from coreactors.training.generator import generate_trackers

DOMAIN = """
intents: [greet, goodbye]
slots:
  name:
    type: text
templates:
  utter_greet:
    - "hello from {model}"
  utter_goodbye:
    - "bye"
actions: [utter_greet, utter_goodbye]
"""

STORIES = """
## greet
* greet
    - utter_greet

## goodbye
* goodbye
    - utter_goodbye
"""

ALL = EventVerbosity.ALL


def make_model(name: str) -> Model:
    """A tiny memoization model whose greeting names it, so an answer shows its model."""
    domain = Domain.from_yaml(DOMAIN.replace("{model}", name))
    ensemble = PolicyEnsemble([MemoizationPolicy(max_history=1)])
    ensemble.train(generate_trackers(read_stories(STORIES), domain, augmentation_factor=0),
                   domain)
    return Model(domain, ensemble, fingerprint=name)


@pytest.fixture(scope="module")
def model_one() -> Model:
    return make_model("one")


@pytest.fixture(scope="module")
def model_two() -> Model:
    return make_model("two")


class FakeReactor(Clock):
    """A Clock that is also the reactor thread: calls from 'other threads' run at once."""

    def callFromThread(self, function: Any, *args: Any, **kwargs: Any) -> None:
        function(*args, **kwargs)


class HeldStore(InMemoryTrackerStore):
    """An in-memory store whose writes complete when the test says so (a slow disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.waiting: List[Any] = []

    def append_then(self, sender_id: str, events: List[Dict[str, Any]], done: Any,
                    chain: Any) -> None:
        if not self.holding:
            return super().append_then(sender_id, events, done, chain)
        self.waiting.append(lambda: super(HeldStore, self).append_then(
            sender_id, events, done, chain))

    def release(self) -> None:
        waiting, self.waiting = self.waiting, []
        for write in waiting:
            write()


def inline(work: Any) -> defer.Deferred:
    return maybeDeferred(work)


@pytest.fixture
def system(model_one):
    """A supervisor on a fake clock: in-memory store, inline pool, at most 3 actors, 60 s idle."""
    reactor = FakeReactor()
    pool = InlineWorkerPool(hold=True)
    store = HeldStore()
    supervisor = Supervisor(store, model_one, reactor=reactor, max_actors=3, idle_timeout=60,
                            pool=pool, actor_type=ConversationActor, run_in_thread=inline)
    supervisor.start()
    yield supervisor
    pool.hold = False
    store.holding = False
    store.release()
    pool.run()
    supervisor.stop()
    pool.run()
    # Anything a test started behind the supervisor's back.
    pykka.ActorRegistry.stop_all(timeout=5)


def answer(supervisor: Supervisor, d: defer.Deferred) -> Any:
    """Runs what is queued and returns what ``d`` fired with (raising what it failed with)."""
    supervisor.pool.run()
    results: List[Any] = []
    d.addBoth(results.append)
    assert results, "no answer"
    if isinstance(results[0], defer.Failure):
        results[0].raiseException()
    return results[0]


def texts(messages: List[Dict[str, Any]]) -> List[str]:
    return [m.get("text") for m in messages]


def event_names(supervisor: Supervisor, sender_id: str) -> List[str]:
    stored = supervisor.store.load(sender_id) or []
    return [e.get("name") or e.get("text") or e["event"] for e in stored]


# ----------------------------------------------------------------------- start and answer


def test_a_first_message_starts_the_actor_and_is_stored(system):
    assert texts(answer(system, system.handle_message("ann", "/greet"))) == ["hello from one"]
    assert list(system.actors) == ["ann"]
    assert event_names(system, "ann") == [
        "action_listen", "/greet", "utter_greet", "hello from one", "action_listen"]
    assert system.in_flight() == 0


def test_the_agent_provides_the_http_interfaces(system):
    agent = Agent(system, ModelRequests(system, run_in_thread=inline))
    assert verifyObject(IConversations, agent)
    assert verifyObject(IModelArchives, agent)
    assert agent.fingerprint == "one" and agent.is_ready


def test_every_request_type_reaches_the_actor(system):
    """One of each request, through the Supervisor, with what each answers."""
    sent = set()
    original = system._send

    def recording(sender_id, request):
        sent.add(type(request))
        return original(sender_id, request)
    system._send = recording

    bob = "bob"
    assert texts(answer(system, system.handle_message(bob, "/greet", "rest"))) == [
        "hello from one"]
    state = answer(system, system.log_message(bob, "/goodbye", None, ALL))
    assert state["latest_message"]["intent"]["name"] == "goodbye"
    prediction = answer(system, system.predict(bob))
    assert prediction["scores"] and prediction["policy"]
    executed = answer(system, system.execute(bob, "utter_goodbye", None, None, ALL))
    assert texts(executed["messages"]) == ["bye"]
    appended = answer(system, system.append_events(
        bob, [{"event": "slot", "name": "name", "value": "Bob"}], ALL))
    assert appended["slots"]["name"] == "Bob"
    tracker = answer(system, system.tracker(bob, ALL))
    assert tracker["slots"]["name"] == "Bob" and tracker["sender_id"] == bob
    story = answer(system, system.story(bob))
    assert "* greet" in story and "utter_goodbye" in story
    replaced = answer(system, system.replace_events(
        bob, [{"event": "action", "name": "action_listen"}], ALL))
    assert [e["event"] for e in replaced["events"]] == ["action"]
    assert event_names(system, bob) == ["action_listen"]
    assert sent == set(CONVERSATION_REQUESTS)


def test_a_value_that_is_not_a_request_is_refused_where_it_is_sent(system):
    with pytest.raises(TypeError):
        system._send("ann", ("handle_message", ("/greet", None, None), None))
    assert system.actors == {}


def test_an_actor_refuses_a_message_of_the_wrong_type(model_one):
    ref = ConversationActor.start(InlineWorkerPool(), "x", model_one, InMemoryTrackerStore())
    try:
        with pytest.raises(TypeError):
            ref.ask(("tracker", (ALL, None), None))
        assert ref.is_alive()  # a wrong message fails itself, not the conversation
    finally:
        ref.stop()


# ----------------------------------------------------------------------- passivation


def test_idle_actors_are_passivated_on_the_clock_and_come_back_from_the_store(system):
    answer(system, system.handle_message("ann", "/greet"))
    system.reactor.advance(30)
    answer(system, system.handle_message("bob", "/greet"))
    system.reactor.advance(31)  # ann idle 61 s, bob 31 s
    system.reactor.advance(system.passivation_interval)
    assert list(system.actors) == ["bob"]
    # Ann's next message starts a new actor that continues from the store.
    assert texts(answer(system, system.handle_message("ann", "/goodbye"))) == ["bye"]
    assert event_names(system, "ann")[-3:] == ["utter_goodbye", "bye", "action_listen"]
    assert event_names(system, "ann").count("utter_greet") == 1


def test_an_actor_with_a_request_in_flight_is_not_passivated(system):
    system.store.holding = True
    d = system.handle_message("ann", "/greet")
    system.pool.run()  # the turn ran; its events wait for the store
    assert not d.called and system.in_flight() == 1
    system.reactor.advance(10 * system.idle_timeout)
    assert list(system.actors) == ["ann"]
    system.store.release()
    assert texts(answer(system, d)) == ["hello from one"]
    assert system.in_flight() == 0
    system.reactor.advance(system.idle_timeout + system.passivation_interval)
    assert list(system.actors) == []


# ----------------------------------------------------------------------- eviction


def test_the_least_recently_used_idle_actor_is_evicted_at_the_cap(system):
    for sender in ("a", "b", "c"):
        answer(system, system.handle_message(sender, "/greet"))
        system.reactor.advance(1)
    answer(system, system.tracker("a", ALL))  # a is now the most recently used
    answer(system, system.handle_message("d", "/greet"))
    assert list(system.actors) == ["c", "a", "d"]
    # b comes back from the store, exactly as it was.
    tracker = answer(system, system.tracker("b", ALL))
    assert [e["event"] for e in tracker["events"]] == [
        "action", "user", "action", "bot", "action"]


def test_an_actor_with_a_request_in_flight_is_not_evicted(system):
    answer(system, system.handle_message("a", "/greet"))
    system.store.holding = True
    slow = system.handle_message("a", "/goodbye")
    system.pool.run()
    for sender in ("b", "c", "d"):
        system.handle_message(sender, "/greet")
    system.pool.run()
    assert "a" in system.actors  # the oldest, but busy: the next oldest idle one went
    system.store.release()
    system.pool.run()
    assert texts(answer(system, slow)) == ["bye"]


class RecordedActor(ConversationActor):
    """A conversation actor the test can find (weakly, so it can see it go)."""

    started: "weakref.WeakValueDictionary[str, RecordedActor]" = weakref.WeakValueDictionary()

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        RecordedActor.started[self.sender_id] = self


@pytest.fixture
def recorded(system):
    system.actor_type = RecordedActor
    RecordedActor.started.clear()
    return system


def test_at_the_cap_the_least_recently_used_idle_actor_takes_over_a_new_conversation(
        recorded):
    """No actor is stopped or started at the cap: the idle actor used longest ago drops its
    (stored) conversation and holds the new sender's, and both conversations stay whole."""
    system = recorded
    for sender in ("a", "b", "c"):
        answer(system, system.handle_message(sender, "/greet"))
        system.reactor.advance(1)
    first = system.actors["a"].ref
    answer(system, system.handle_message("d", "/goodbye"))
    assert list(system.actors) == ["b", "c", "d"] and system.actors["d"].ref is first
    assert first.is_alive() and RecordedActor.started["a"].sender_id == "d"
    assert len(RecordedActor.started) == 3 and system.taken_over == 1
    assert event_names(system, "d") == [
        "action_listen", "/goodbye", "utter_goodbye", "bye", "action_listen"]
    # a comes back in b's actor, from the store, exactly as it was.
    assert texts(answer(system, system.handle_message("a", "/goodbye"))) == ["bye"]
    assert event_names(system, "a") == ["action_listen", "/greet", "utter_greet",
                                        "hello from one", "action_listen", "/goodbye",
                                        "utter_goodbye", "bye", "action_listen"]
    assert "b" not in system.actors and system.taken_over == 2


def test_beyond_the_cap_while_every_actor_is_busy_the_actors_come_back_to_it(system):
    """Every actor busy: a new sender gets an actor beyond the cap. Once they are free, the
    next new sender takes one over and one more is stopped, so the cap holds again; the
    actor a request is about to go to is never the one stopped."""
    system.store.holding = True
    busy = [system.handle_message(sender, "/greet") for sender in ("a", "b", "c")]
    system.pool.run()
    extra = system.handle_message("d", "/greet")
    system.pool.run()
    assert list(system.actors) == ["a", "b", "c", "d"]
    system.store.release()
    system.pool.run()
    assert all(texts(answer(system, d)) == ["hello from one"] for d in busy + [extra])
    system.store.holding = False
    assert texts(answer(system, system.handle_message("e", "/greet"))) == ["hello from one"]
    assert list(system.actors) == ["c", "d", "e"] and system.taken_over == 1


def test_an_actor_that_takes_over_a_conversation_gets_the_model_swapped_in_since(
        system, model_two):
    for sender in ("a", "b", "c"):
        answer(system, system.handle_message(sender, "/greet"))
    system.set_model(model_two)  # no batch of the hand-over has run yet
    assert texts(answer(system, system.handle_message("d", "/greet"))) == ["hello from two"]


def test_passivated_actors_stop_and_are_freed(recorded):
    """An idle actor leaves by a Passivate message: once the pool has run it, the actor is
    stopped and nothing keeps it (or its conversation) alive."""
    system = recorded
    answer(system, system.handle_message("a", "/greet"))
    first = system.actors["a"].ref
    system.reactor.advance(system.idle_timeout + system.passivation_interval)
    system.pool.run()
    assert list(system.actors) == [] and not first.is_alive()
    gc.collect()
    assert list(RecordedActor.started) == []


def test_actors_started_with_one_model_share_its_message_loop(recorded, model_two):
    system = recorded
    for sender in ("a", "b"):
        answer(system, system.handle_message(sender, "/greet"))
    loops = {RecordedActor.started[s].processor for s in ("a", "b")}
    assert len(loops) == 1 and next(iter(loops)).model is system.model
    system.set_model(model_two)
    system.reactor.advance(0)
    assert texts(answer(system, system.handle_message("c", "/greet"))) == ["hello from two"]
    assert texts(answer(system, system.handle_message("a", "/greet"))) == ["hello from two"]
    started_after = RecordedActor.started["c"].processor
    assert started_after.model is model_two and started_after not in loops


def test_a_conversation_evicted_and_passivated_mid_way_continues_exactly(model_one):
    """The same requests to a conversation that stays in its actor and to one whose actor is
    evicted or passivated between every two of them give the same conversation: events,
    slots, active form, paused."""
    steps = [
        lambda s, who: s.handle_message(who, "/greet"),
        lambda s, who: s.append_events(who, [
            {"event": "form", "name": "name_form", "timestamp": 1.0},
            {"event": "slot", "name": "name", "value": "Ada", "timestamp": 2.0}], ALL),
        lambda s, who: s.handle_message(who, "/goodbye"),
        lambda s, who: s.append_events(who, [{"event": "pause", "timestamp": 3.0}], ALL),
        lambda s, who: s.handle_message(who, "/greet"),
        lambda s, who: s.tracker(who, ALL),
    ]

    def run(max_actors: int, move_out: bool) -> Dict[str, Any]:
        reactor = FakeReactor()
        supervisor = Supervisor(InMemoryTrackerStore(), model_one, reactor=reactor,
                                max_actors=max_actors, idle_timeout=60,
                                pool=InlineWorkerPool(hold=True), actor_type=ConversationActor,
                                run_in_thread=inline)
        supervisor.start()
        state: Dict[str, Any] = {}
        try:
            for number, step in enumerate(steps):
                state = answer(supervisor, step(supervisor, "ann"))
                if move_out and number % 2 == 0:  # evicted: two others fill the cap
                    for other in ("x{}".format(number), "y{}".format(number)):
                        answer(supervisor, supervisor.handle_message(other, "/greet"))
                    assert "ann" not in supervisor.actors
                elif move_out:  # passivated: idle past the timeout
                    reactor.advance(supervisor.idle_timeout + supervisor.passivation_interval)
                    supervisor.pool.run()
                    assert "ann" not in supervisor.actors
        finally:
            supervisor.pool.hold = False
            supervisor.stop()
        return state

    kept, moved = run(100, False), run(2, True)
    assert moved["slots"] == {"name": "Ada"} and moved["active_form"]["name"] == "name_form"
    assert moved["paused"] is True

    def timeless(state: Dict[str, Any]) -> Dict[str, Any]:
        events = [{k: v for k, v in e.items() if k != "timestamp"} for e in state["events"]]
        return dict(state, events=events, latest_event_time=None)
    assert len(moved["events"]) == 11  # the paused conversation only logs the last greet
    assert timeless(moved) == timeless(kept)


# ----------------------------------------------------------------------- crashes


def test_an_actor_that_died_is_started_again_from_the_store(system):
    answer(system, system.handle_message("ann", "/greet"))
    dead = system.actors["ann"].ref
    dead.stop(block=False)  # behind the supervisor's back, as a crash would
    system.pool.run()
    assert not dead.is_alive()
    assert texts(answer(system, system.handle_message("ann", "/goodbye"))) == ["bye"]
    assert system.actors["ann"].ref is not dead
    assert event_names(system, "ann").count("utter_greet") == 1


class BrokenEnsemble:
    """A policy ensemble with a bug: every prediction raises."""

    def probabilities_using_best_policy(self, tracker: Any, domain: Any) -> Any:
        raise RuntimeError("a bug in a policy")


def test_an_unexpected_fault_fails_one_request_and_the_conversation_goes_on(system, model_one):
    answer(system, system.handle_message("ann", "/greet"))
    system.set_model(Model(model_one.domain, BrokenEnsemble(), fingerprint="broken"))
    with pytest.raises(RuntimeError):
        answer(system, system.handle_message("ann", "/goodbye"))
    assert system.in_flight() == 0 and "ann" in system.actors
    system.set_model(model_one)
    # Nothing of the failed turn was kept; the conversation continues from the store.
    assert texts(answer(system, system.handle_message("ann", "/goodbye"))) == ["bye"]
    assert event_names(system, "ann").count("/goodbye") == 1


def test_requests_queued_behind_a_stop_are_refused_with_503(system):
    answer(system, system.handle_message("ann", "/greet"))
    entry = system.actors["ann"]
    entry.ref.stop(block=False)  # queued first
    d = system.handle_message("ann", "/goodbye")
    with pytest.raises(ConversationError) as caught:
        answer(system, d)
    assert caught.value.status == 503 and caught.value.reason == "ConversationStopped"
    assert system.in_flight() == 0


# ----------------------------------------------------------------------- models


def test_a_model_handed_over_between_two_messages_takes_effect_between_them(system, model_two):
    answer(system, system.handle_message("ann", "/greet"))
    first = system.handle_message("ann", "/greet")
    system.set_model(model_two)
    system.reactor.advance(0)  # the hand-over batch (queued behind the first message)
    second = system.handle_message("ann", "/greet")
    system.pool.run()
    assert texts(answer(system, first)) == ["hello from one"]
    assert texts(answer(system, second)) == ["hello from two"]
    # A new conversation starts with the new model.
    assert texts(answer(system, system.handle_message("bob", "/greet"))) == ["hello from two"]


def test_idle_actors_get_a_new_model_a_batch_at_a_time(model_one, model_two):
    taken: List[Any] = []

    class Recording(ConversationActor):
        def _take_model(self, model: Model) -> None:
            taken.append(self.sender_id)
            super()._take_model(model)
    reactor = FakeReactor()
    supervisor = Supervisor(InMemoryTrackerStore(), model_one, reactor=reactor,
                            max_actors=1000, pool=InlineWorkerPool(),
                            actor_type=Recording, run_in_thread=inline)
    supervisor.start()
    try:
        for n in range(HANDOVER_BATCH * 2 + 10):
            supervisor.tracker("s{}".format(n), ALL)
        supervisor.set_model(model_two)

        def handed() -> int:
            return sum(e.model is model_two for e in supervisor.actors.values())
        assert handed() == 0
        reactor.advance(0)
        assert handed() == HANDOVER_BATCH == len(taken)
        reactor.advance(HANDOVER_INTERVAL)
        assert handed() == 2 * HANDOVER_BATCH
        reactor.advance(HANDOVER_INTERVAL)
        assert handed() == len(supervisor.actors)
        # Each actor took it, once, without a request of its own.
        assert sorted(taken) == sorted(supervisor.actors)
        assert texts(supervisor.handle_message("s0", "/greet").result) == ["hello from two"]
        assert len(taken) == len(supervisor.actors)
    finally:
        supervisor.stop()


def test_no_model_means_503_and_no_actor(model_one):
    supervisor = Supervisor(InMemoryTrackerStore(), None, reactor=FakeReactor(),
                            pool=InlineWorkerPool(), actor_type=ConversationActor,
                            run_in_thread=inline)
    failures: List[Any] = []
    supervisor.handle_message("ann", "/greet").addErrback(failures.append)
    assert failures[0].value.reason == "NoAgent" and supervisor.actors == {}


def test_model_requests_run_on_the_model_in_use(system, model_two):
    requests = ModelRequests(system, run_in_thread=inline)
    parse = answer(system, requests.parse("/greet"))
    assert parse["intent"]["name"] == "greet"
    predicted = answer(system, requests.predict_for_events(
        [{"event": "action", "name": "action_listen"},
         {"event": "user", "text": "/greet", "parse_data": parse}]))
    assert predicted["scores"] and "confidence" not in predicted
    answer(system, requests.finetune(
        [{"event": "action", "name": "action_listen"},
         {"event": "user", "text": "/greet", "parse_data": parse},
         {"event": "action", "name": "utter_greet"},
         {"event": "action", "name": "action_listen"}]))
    system.reactor.advance(0)
    assert system.fingerprint.startswith("one-ft")
    with pytest.raises(ConversationError) as caught:
        answer(system, requests.load_model_archive(b"not a zip"))
    assert caught.value.reason == "InvalidModel"


# ----------------------------------------------------------------------- replies


def test_a_reply_after_the_client_went_away_is_dropped_but_the_turn_is_kept(system):
    d = system.handle_message("ann", "/greet")
    gone: List[Any] = []
    d.addErrback(gone.append)
    d.cancel()  # what Klein does when the request's connection is lost
    assert gone[0].check(CancelledError)
    # The actor has not answered yet: the request is still in flight, so it is not stopped.
    assert system.in_flight() == 1
    system.reactor.advance(10 * system.idle_timeout)
    assert "ann" in system.actors
    system.pool.run()  # the turn runs and answers into the void
    assert system.in_flight() == 0
    assert event_names(system, "ann")[-2:] == ["hello from one", "action_listen"]


def test_the_reply_bridge_delivers_a_burst_in_one_wake_up_and_in_order():
    wake_ups: List[Any] = []
    bridge = ReplyBridge(lambda function: wake_ups.append(function))
    seen: List[Any] = []
    for n in range(5):
        bridge(seen.append, n)
    assert len(wake_ups) == 1 and seen == []
    wake_ups[0]()
    assert seen == [0, 1, 2, 3, 4]
    bridge(seen.append, 5)
    assert len(wake_ups) == 2


def test_a_failing_delivery_does_not_strand_the_others():
    wake_ups: List[Any] = []
    bridge = ReplyBridge(lambda function: wake_ups.append(function))
    seen: List[Any] = []

    def broken(_: Any) -> None:
        raise RuntimeError("broken callback")
    bridge(broken, 0)
    bridge(seen.append, 1)
    wake_ups[0]()
    assert seen == [1]


def test_a_reply_runs_its_bookkeeping_before_firing_and_even_when_cancelled():
    order: List[str] = []
    d: defer.Deferred = defer.Deferred()
    d.addCallback(lambda value: order.append("fired " + value))
    Reply(d, direct_bridge, lambda: order.append("settled")).succeed("yes")
    assert order == ["settled", "fired yes"]
    cancelled: defer.Deferred = defer.Deferred()
    cancelled.addErrback(lambda failure: None)
    cancelled.cancel()
    Reply(cancelled, direct_bridge, lambda: order.append("settled again")).fail(
        ValueError("late"))
    assert order[-1] == "settled again"


# ----------------------------------------------------------------------- the model watcher


def test_the_model_watcher_takes_poll_and_prune(tmp_path, model_one):
    archives = ModelArchives(parent=str(tmp_path))
    client = ModelServerClient(EndpointConfig("http://127.0.0.1:9/model"), FakeReactor(),
                               lambda: None, PullSettings(None, 1.0, 1000))
    client.closed = True  # a stopping server: the poll answers at once, with no model
    ref = ModelWatcher.start(client, archives, FakeReactor())
    try:
        stale = tmp_path / "coreactors-model-stale"
        stale.mkdir()
        archives._folders.append(str(stale))  # as if loaded and then replaced
        polled: List[Any] = []
        d: defer.Deferred = defer.Deferred()
        d.addCallback(polled.append)
        ref.tell(Poll(Reply(d, direct_bridge)))
        ref.ask(Prune(), timeout=5)
        assert polled == [None]
        assert not stale.exists()
        with pytest.raises(TypeError):
            ref.ask(("poll", None), timeout=5)
    finally:
        ref.stop()


# ----------------------------------------------------------------------- the two runtimes


def test_the_worker_pool_switch_picks_the_actor_class():
    assert conversation_actor_type(True) is ConversationActor
    assert conversation_actor_type(False) is ThreadedConversationActor


def test_a_thread_per_actor_answers_the_same(model_one):
    """The worker_pool fast path off: the same conversation on a thread of its own."""
    store = InMemoryTrackerStore()
    ref = ThreadedConversationActor.start(None, "ann", model_one, store)
    try:
        answers: List[Any] = []
        d: defer.Deferred = defer.Deferred()
        d.addCallback(answers.append)
        ref.ask(Ask(HandleMessage("/greet"), Reply(d, direct_bridge)), timeout=5)
        ref.ask(TakeModel(make_model("three")), timeout=5)
        d2: defer.Deferred = defer.Deferred()
        d2.addCallback(answers.append)
        ref.ask(Ask(HandleMessage("/greet"), Reply(d2, direct_bridge)), timeout=5)
        assert [texts(a) for a in answers] == [["hello from one"], ["hello from three"]]
    finally:
        ref.stop()


def test_requests_and_replies_are_frozen_values():
    request = GetTracker(ALL)
    with pytest.raises(AttributeError):
        request.until = 5  # type: ignore[misc]
    assert GetStory() == GetStory(None)
    assert {Predict(), Predict()} == {Predict()}
    assert Execute("utter_greet", None, None, ALL).action == "utter_greet"
    assert LogMessage("hi", None, ALL) != LogMessage("ho", None, ALL)
    assert AppendEvents([], ALL).events == [] and ReplaceEvents([], ALL).verbosity is ALL


def test_a_request_counts_as_in_flight_before_its_actor_can_answer(model_one):
    """With a pool that runs the message at once, the answer arrives before ``tell`` returns:
    the request must already be counted, or the count dips below zero meanwhile."""
    counts: List[int] = []

    class Watching(FakeReactor):
        def callFromThread(self, function: Any, *args: Any, **kwargs: Any) -> None:
            function(*args, **kwargs)
            counts.extend(e.in_flight for e in supervisor.actors.values())
    supervisor = Supervisor(InMemoryTrackerStore(), model_one, reactor=Watching(),
                            pool=InlineWorkerPool(), actor_type=ConversationActor,
                            run_in_thread=inline)
    supervisor.start()
    try:
        assert texts(supervisor.handle_message("ann", "/greet").result) == ["hello from one"]
        assert counts and min(counts) == 0 and supervisor.in_flight() == 0
    finally:
        supervisor.stop()

"""Reverts (rewind, undo, restart) go back to a kept state instead of replaying the conversation:
the tracker they leave must equal one rebuilt from the applied events, for every part of the
state policies read, over long random conversations with forms, slots, restarts and reverts of
reverts, and every policy must predict the same on both."""

import random
from typing import Any, Dict, List, Optional

import pytest

from coreactors.dialogue.domain import Domain
from coreactors.dialogue.events import (
    ActionExecuted, ActionExecutionRejected, ActionReverted, AllSlotsReset, BotUttered,
    ConversationPaused, ConversationResumed, Event, FollowupAction, Form, FormValidation,
    Restarted, SlotSet, UserUttered, UserUtteranceReverted)
from coreactors.dialogue.tracker import DialogueStateTracker, EventVerbosity
from coreactors.policies.ensemble import PolicyEnsemble
from coreactors.policies.fallback import FallbackPolicy, TwoStageFallbackPolicy
from coreactors.policies.featurizers import (
    FullDialogueTrackerFeaturizer, MaxHistoryTrackerFeaturizer)
from coreactors.policies.form import FormPolicy
from coreactors.policies.mapping import MappingPolicy
from coreactors.policies.memoization import AugmentedMemoizationPolicy, MemoizationPolicy
from coreactors.policies.neural import NeuralPolicy

DOMAIN = """
intents:
  - greet
  - inform
  - start_form
  - stop
  - deny
  - affirm
  - out_of_scope
  - help:
      triggers: utter_help
entities: [cuisine, location, number]
slots:
  cuisine:
    type: categorical
    values: [thai, greek]
  location:
    type: text
  number:
    type: float
  confirmed:
    type: bool
  notes:
    type: unfeaturized
  requested_slot:
    type: unfeaturized
templates:
  utter_greet: ["hi"]
  utter_help: ["help"]
  utter_ask_continue: ["continue?"]
actions: [utter_greet, utter_help, utter_ask_continue, action_custom]
forms: [some_form]
"""

INTENTS = ["greet", "inform", "start_form", "stop", "deny", "affirm", "out_of_scope", "help"]
ACTIONS = ["action_listen", "utter_greet", "utter_help", "utter_ask_continue", "action_custom",
           "some_form", "action_deactivate_form", "action_default_fallback"]
SLOT_VALUES = {"cuisine": ["thai", "greek", None], "location": ["paris", None],
               "number": [1.0, 7.5, None], "confirmed": [True, False, None],
               "notes": ["x", None], "requested_slot": ["cuisine", "location", None]}


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.from_yaml(DOMAIN, "reverts-domain.yml")


def user(intent: str, confidence: float = 1.0, entities: Optional[Dict[str, Any]] = None
         ) -> UserUttered:
    found = [{"entity": k, "start": 0, "end": 1, "value": v}
             for k, v in (entities or {}).items()]
    return UserUttered("/" + intent, {"name": intent, "confidence": confidence}, found)


def random_event(rng: random.Random) -> Event:
    roll = rng.random()
    if roll < 0.22:
        entities = {}
        if rng.random() < 0.4:
            entities["cuisine"] = rng.choice(["thai", "greek"])
        if rng.random() < 0.2:
            entities["location"] = "paris"
        return user(rng.choice(INTENTS), rng.choice([1.0, 0.9, 0.2]), entities)
    if roll < 0.50:
        return ActionExecuted(rng.choice(ACTIONS))
    if roll < 0.60:
        name = rng.choice(list(SLOT_VALUES))
        return SlotSet(name, rng.choice(SLOT_VALUES[name]))
    if roll < 0.65:
        return Form(rng.choice(["some_form", "some_form", None]))
    if roll < 0.67:
        return FormValidation(rng.random() < 0.5)
    if roll < 0.70:
        return ActionExecutionRejected(rng.choice(["some_form", "utter_greet"]))
    if roll < 0.78:
        return UserUtteranceReverted()
    if roll < 0.84:
        return ActionReverted()
    if roll < 0.86:
        return Restarted()
    if roll < 0.88:
        return rng.choice([ConversationPaused(), ConversationResumed()])
    if roll < 0.92:
        return BotUttered("hi", {"buttons": None})
    if roll < 0.94:
        return AllSlotsReset()
    return FollowupAction(rng.choice(["utter_greet", "action_listen"]))


def applied_by_definition(events: List[Event]) -> List[Event]:
    """The applied events as Rasa defines them: nothing before the last restart; a rewind
    drops back to the latest user message and the action before it, an undo the latest
    action (written out here independently of the tracker)."""
    applied: List[Event] = []

    def drop_till(kind: type) -> None:
        while applied:
            if isinstance(applied.pop(), kind):
                return
    for event in events:
        if isinstance(event, Restarted):
            applied = []
        elif isinstance(event, ActionReverted):
            drop_till(ActionExecuted)
        elif isinstance(event, UserUtteranceReverted):
            drop_till(UserUttered)
            drop_till(ActionExecuted)
        else:
            applied.append(event)
    return applied


def replayed(tracker: DialogueStateTracker) -> DialogueStateTracker:
    """What a full replay gives: the state rebuilt from the applied events alone (no revert in
    sight), with all the conversation's events logged (as the tracker keeps them)."""
    fresh = DialogueStateTracker.from_events(tracker.sender_id, applied_by_definition(
        tracker.events), tracker.domain)
    fresh.events = list(tracker.events)
    return fresh


def assert_same_state(live: DialogueStateTracker, fresh: DialogueStateTracker) -> None:
    assert live.applied_events() == fresh.applied_events()
    assert live.current_slot_values() == fresh.current_slot_values()
    assert live.paused == fresh.paused
    assert live.latest_action_name == fresh.latest_action_name
    # (The empty message and utterance of a fresh tracker carry their own time stamps.)
    for message in ("latest_message", "_feature_message", "_message_before_form"):
        a, b = getattr(live, message), getattr(fresh, message)
        assert (a.text, a.parse_data, a.input_channel) == (b.text, b.parse_data,
                                                           b.input_channel), message
    assert (live.latest_bot_utterance.text, live.latest_bot_utterance.data) == \
        (fresh.latest_bot_utterance.text, fresh.latest_bot_utterance.data)
    assert live.followup_action == fresh.followup_action
    assert live.active_form == fresh.active_form
    assert live.past_states() == fresh.past_states()
    assert live.training_examples() == fresh.training_examples()
    for n in (1, 2, 3, 5):
        assert live.last_window(n) == fresh.last_window(n)
    live_state = live.current_state(EventVerbosity.APPLIED)
    fresh_state = fresh.current_state(EventVerbosity.APPLIED)
    for key in ("slots", "latest_message", "followup_action", "paused", "events",
                "active_form", "latest_action_name"):
        assert live_state[key] == fresh_state[key], key
    for kind in (ActionExecuted, UserUttered, SlotSet):
        assert live.get_last_event_for(kind) == fresh.get_last_event_for(kind)


@pytest.mark.parametrize("seed", range(4))
def test_random_conversations_with_reverts_equal_a_full_replay(domain, seed):
    rng = random.Random(seed)
    tracker = DialogueStateTracker("random-{}".format(seed), domain)
    reverts = 0
    for step in range(1500):
        event = random_event(rng)
        tracker.update(event)
        if isinstance(event, (ActionReverted, UserUtteranceReverted, Restarted)):
            reverts += 1
            assert_same_state(tracker, replayed(tracker))
        elif step % 50 == 0:
            assert_same_state(tracker, replayed(tracker))
    assert_same_state(tracker, replayed(tracker))
    assert reverts > 150  # reverts of reverts included: they come in runs


def test_reverts_of_reverts_and_reverts_past_the_start(domain):
    events = [ActionExecuted("action_listen"), user("greet"), ActionExecuted("utter_greet"),
              ActionExecuted("action_listen"), user("start_form"),
              ActionExecuted("some_form"), Form("some_form"), SlotSet("requested_slot",
                                                                       "cuisine"),
              ActionExecuted("action_listen"), user("inform", entities={"cuisine": "thai"}),
              ActionExecuted("some_form"), SlotSet("cuisine", "thai"),
              ActionReverted(), ActionReverted(), UserUtteranceReverted(),
              UserUtteranceReverted(), UserUtteranceReverted(), ActionReverted(),
              UserUtteranceReverted(), user("greet"), ActionReverted()]
    tracker = DialogueStateTracker("nested", domain)
    for event in events:
        tracker.update(event)
        assert_same_state(tracker, replayed(tracker))


@pytest.mark.parametrize("turns", [10, 3000])
def test_a_revert_applies_a_bounded_number_of_events(domain, monkeypatch, turns):
    """The point of the marks: a rewind and an undo at turn 3,000 apply again no more events
    than at turn 10 (at most the MARK_EVERY since the latest mark), never the conversation."""
    from coreactors.dialogue.tracker import MARK_EVERY
    tracker = DialogueStateTracker("long", domain)
    for turn in range(turns):
        tracker.update_many([ActionExecuted("action_listen"), user("greet"),
                             ActionExecuted("utter_greet"), SlotSet("notes", str(turn))])
    applied: List[Event] = []
    original = DialogueStateTracker._apply

    def counting(self: DialogueStateTracker, event: Event) -> None:
        applied.append(event)
        original(self, event)
    monkeypatch.setattr(DialogueStateTracker, "_apply", counting)
    tracker.update(UserUtteranceReverted())
    tracker.update(ActionReverted())
    assert len(applied) <= 2 + 2 * MARK_EVERY
    monkeypatch.undo()
    assert_same_state(tracker, replayed(tracker))
    assert tracker.get_slot("notes") == str(turns - 3)  # the undo took the turn before's action


def test_a_domain_switch_between_a_mark_and_its_revert(domain):
    """A new model with one more slot (nobody set it): a revert still reads the marks made
    under the old domain right, with the new slot at its initial value."""
    bigger = Domain.from_yaml(DOMAIN.replace("slots:\n", "slots:\n  extra:\n    type: text\n"),
                              "bigger.yml")
    tracker = DialogueStateTracker("switch", domain)
    tracker.update_many([ActionExecuted("action_listen"), user("greet"),
                         SlotSet("location", "paris"), ActionExecuted("utter_greet"),
                         ActionExecuted("action_listen"), user("inform"),
                         SlotSet("location", "rome")])
    switched = tracker.switch_domain(bigger)
    assert switched is tracker  # no replay: the new slot is not named by any event
    tracker.update(SlotSet("extra", "late"))  # set after the marks were made
    tracker.update(UserUtteranceReverted())
    fresh = DialogueStateTracker.from_events("switch", applied_by_definition(tracker.events),
                                             bigger)
    assert_same_state(tracker, fresh)
    assert tracker.get_slot("location") == "paris" and tracker.get_slot("extra") is None
    assert list(tracker.slots) == list(bigger.fresh_slots())


def story_trackers(domain: Domain) -> List[DialogueStateTracker]:
    def listen() -> ActionExecuted:
        return ActionExecuted("action_listen")
    stories = [
        [listen(), user("greet"), ActionExecuted("utter_greet"), listen()],
        [listen(), user("help"), ActionExecuted("utter_help"), listen()],
        [listen(), user("start_form"), ActionExecuted("some_form"), Form("some_form"),
         SlotSet("requested_slot", "cuisine"), listen(),
         user("inform", entities={"cuisine": "thai"}), ActionExecuted("some_form"),
         SlotSet("cuisine", "thai"), Form(None), SlotSet("requested_slot", None), listen()],
        [listen(), user("start_form"), ActionExecuted("some_form"), Form("some_form"),
         SlotSet("requested_slot", "cuisine"), listen(), user("stop"),
         ActionExecutionRejected("some_form"), ActionExecuted("utter_ask_continue"), listen(),
         user("deny"), ActionExecuted("action_deactivate_form"), Form(None),
         SlotSet("requested_slot", None), listen()],
    ]
    return [DialogueStateTracker.from_events("story-{}".format(i), events, domain)
            for i, events in enumerate(stories)]


def policy_sets() -> List[Any]:
    """Each policy (and featurizer) with a FormPolicy, which a domain with forms requires."""
    return [[policy, FormPolicy()] for policy in (
        MemoizationPolicy(max_history=3),
        AugmentedMemoizationPolicy(max_history=3),
        NeuralPolicy(MaxHistoryTrackerFeaturizer(max_history=3), epochs=3),
        NeuralPolicy(FullDialogueTrackerFeaturizer(), epochs=3),
        FallbackPolicy(nlu_threshold=0.5),
        TwoStageFallbackPolicy(nlu_threshold=0.5),
        MappingPolicy(),
    )]


@pytest.mark.parametrize("index", range(len(policy_sets())))
def test_every_policy_predicts_the_same_after_reverts(domain, index):
    ensemble = PolicyEnsemble(policy_sets()[index])
    ensemble.train(story_trackers(domain), domain)
    rng = random.Random(100 + index)
    tracker = DialogueStateTracker("predict", domain)
    compared = 0
    for _ in range(600):
        event = random_event(rng)
        tracker.update(event)
        if isinstance(event, (ActionReverted, UserUtteranceReverted)):
            fresh = replayed(tracker)
            assert ensemble.probabilities_using_best_policy(tracker, domain) == \
                ensemble.probabilities_using_best_policy(fresh, domain)
            compared += 1
    assert compared > 50


@pytest.mark.parametrize("pattern", ["undo", "rewind", "mixed"])
def test_reverts_further_back_than_the_marks_kept_replay_right(domain, pattern):
    from coreactors.dialogue.tracker import MARKS_KEPT
    tracker = DialogueStateTracker("deep", domain)
    for turn in range(3 * MARKS_KEPT):
        tracker.update_many([ActionExecuted("action_listen"), user("greet"),
                             SlotSet("notes", str(turn)), ActionExecuted("utter_greet")])
    assert len(tracker._marks) <= 2 * MARKS_KEPT  # bounded, however long the conversation
    steps = 0
    while tracker.applied_events():  # reverts all the way back: past the marks kept
        undo = pattern == "undo" or (pattern == "mixed" and steps % 3)
        tracker.update(ActionReverted() if undo else UserUtteranceReverted())
        assert_same_state(tracker, replayed(tracker))
        steps += 1
    assert steps > 2 * MARKS_KEPT if pattern != "rewind" else steps > MARKS_KEPT


def test_a_revert_to_a_mark_gets_the_form_as_it_was_there(domain):
    """The active form changes in place (validation, rejection) after a mark is taken: going
    back to the mark must give the form as it was then."""
    from coreactors.dialogue.tracker import MARK_EVERY
    tracker = DialogueStateTracker("form", domain)
    tracker.update_many([ActionExecuted("action_listen"), user("start_form"),
                         ActionExecuted("some_form"), Form("some_form")])
    while len(tracker.applied_events()) < MARK_EVERY:
        tracker.update(SlotSet("notes", "x"))
    tracker.update(ActionExecuted("some_form"))  # a mark is taken just before it
    tracker.update_many([FormValidation(False), ActionExecutionRejected("some_form")])
    tracker.update(ActionReverted())
    assert_same_state(tracker, replayed(tracker))
    assert tracker.active_form == {"name": "some_form", "validate": True, "rejected": False}


def test_a_domain_switch_between_a_mark_and_a_revert_to_it(domain):
    """As above, with a mark (more than MARK_EVERY events) made under the old domain."""
    from coreactors.dialogue.tracker import MARK_EVERY
    bigger = Domain.from_yaml(DOMAIN.replace("slots:\n", "slots:\n  extra:\n    type: text\n"),
                              "bigger.yml")
    tracker = DialogueStateTracker("switch-mark", domain)
    for turn in range(MARK_EVERY):
        tracker.update_many([ActionExecuted("action_listen"), user("greet"),
                             SlotSet("location", "city-{}".format(turn))])
    assert tracker.switch_domain(bigger) is tracker
    tracker.update_many([SlotSet("extra", "late"), ActionExecuted("utter_greet")])
    for _ in range(3):
        tracker.update(UserUtteranceReverted())
        fresh = DialogueStateTracker.from_events(
            "switch-mark", applied_by_definition(tracker.events), bigger)
        assert_same_state(tracker, fresh)
    assert tracker.get_slot("extra") is None


@pytest.mark.parametrize("seed", range(3))
def test_action_positions_follow_the_applied_events(domain, seed):
    """What augmented memoization reads instead of walking the whole conversation."""
    rng = random.Random(50 + seed)
    tracker = DialogueStateTracker("positions", domain)
    for _ in range(1200):
        tracker.update(random_event(rng))
        applied = tracker.applied_events()
        starts = [i for i, e in enumerate(applied) if isinstance(e, ActionExecuted)]
        assert tracker.last_action_positions(21) == starts[-21:]
        if starts:
            assert tracker.applied_events_from(starts[-1]) == applied[starts[-1]:]
    assert tracker.last_action_positions(0) == []

"""Tests for the policies: featurizers, memoization, form, fallback (incl. two-stage), mapping,
neural, the ensemble and the policy configuration (Rasa Core test_policies P1-P8)."""

import copy
import json
import math
import os

import numpy as np
import pytest

from coreactors.dialogue.domain import (
    ACTION_DEFAULT_ASK_AFFIRMATION_NAME, ACTION_DEFAULT_ASK_REPHRASE_NAME,
    ACTION_DEFAULT_FALLBACK_NAME, ACTION_LISTEN_NAME, ACTION_REVERT_FALLBACK_EVENTS_NAME, Domain,
    InvalidDomain)
from coreactors.dialogue.events import (
    ActionExecuted, ActionExecutionRejected, Form, FormValidation, SlotSet, UserUttered)
from coreactors.dialogue.stories import read_stories
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.policies.ensemble import (
    DEFAULT_POLICY_CONFIG, METADATA_FILE, InvalidPolicyConfig, PolicyEnsemble,
    load_policy_config, policies_from_config)
from coreactors.policies.fallback import FallbackPolicy, TwoStageFallbackPolicy
from coreactors.policies.featurizers import (
    BinarySingleStateFeaturizer, FullDialogueTrackerFeaturizer, MaxHistoryTrackerFeaturizer)
from coreactors.policies.form import FormPolicy
from coreactors.policies.mapping import MappingPolicy
from coreactors.policies.memoization import AugmentedMemoizationPolicy, MemoizationPolicy
from coreactors.policies.neural import NeuralPolicy
from coreactors.policies.policy import Policy, keys_predictions
from coreactors.training.generator import generate_trackers

DOMAIN_YAML = """
intents:
  - greet
  - default
  - goodbye
  - affirm
  - deny
  - out_of_scope
  - bye
  - mood_great: {triggers: utter_happy}
entities:
  - name
slots:
  name:
    type: text
templates:
  utter_greet:
    - "hey there {name}!"
  utter_default:
    - "default message"
  utter_goodbye:
    - "bye"
  utter_happy:
    - "great!"
actions:
  - utter_greet
  - utter_default
  - utter_goodbye
  - utter_happy
"""

STORIES = """
## only start
> check_greet
* default
    - utter_default

## only end
* greet OR greet{"name": "Peter"}
    - utter_greet
> check_greet

## three turns
* greet
    - utter_greet
* default
    - utter_default
* goodbye
    - utter_goodbye

## bye
* bye
    - utter_goodbye
"""

FORM_DOMAIN_YAML = """
intents: [greet, default, goodbye, start_form, stop, affirm, deny, inform]
slots:
  cuisine: {type: text}
templates:
  utter_greet: ["hey"]
actions: [utter_default, utter_greet, utter_goodbye, utter_ask_continue]
forms: [some_form]
"""

FORM_STORIES = """
## happy
* greet
    - utter_greet
* start_form
    - some_form
    - form{"name": "some_form"}
* form: inform
    - form: some_form
    - form{"name": null}
* default
    - utter_default

## unhappy
* greet
    - utter_greet
* start_form
    - some_form
    - form{"name": "some_form"}
* default
    - utter_default
    - some_form
    - form{"name": null}
* goodbye
    - utter_goodbye

## stop continue
* start_form
    - some_form
    - form{"name": "some_form"}
* stop
    - utter_ask_continue
* affirm
    - some_form
    - form{"name": null}
"""


@pytest.fixture(scope="module")
def domain():
    return Domain.from_yaml(DOMAIN_YAML)


@pytest.fixture(scope="module")
def form_domain():
    return Domain.from_yaml(FORM_DOMAIN_YAML)


@pytest.fixture(scope="module")
def trackers(domain):
    return generate_trackers(read_stories(STORIES), domain, augmentation_factor=20)


@pytest.fixture(scope="module")
def form_trackers(form_domain):
    return generate_trackers(read_stories(FORM_STORIES), form_domain, augmentation_factor=0)


def user(intent, confidence=1.0, entities=None, text=None):
    intent_dict = {"name": intent, "confidence": confidence}
    entities = entities or []
    return UserUttered(text or "/" + intent, intent_dict, entities,
                       {"text": text or "/" + intent, "intent": intent_dict,
                        "intent_ranking": [intent_dict], "entities": entities})


def listen():
    return ActionExecuted(ACTION_LISTEN_NAME)


def act(name):
    return ActionExecuted(name)


def tracker_of(domain, *events, sender="t"):
    return DialogueStateTracker.from_events(sender, list(events), domain)


def best(domain, probabilities):
    return domain.action_names[int(np.argmax(probabilities))]


def prefixes_before_actions(tracker):
    """Trackers rebuilt up to each predictable action, with the action that followed."""
    result = []
    _, actions = tracker.training_examples()
    events = tracker.events
    positions = [i for i, e in enumerate(events) if isinstance(e, ActionExecuted)]
    for i, (name, predictable) in zip(positions, actions):
        if predictable:
            result.append((DialogueStateTracker.from_events(tracker.sender_id, events[:i],
                                                            tracker.domain), name))
    return result


# --------------------------------------------------------------------------- generic contract

def neural():
    return NeuralPolicy(epochs=40, max_history=3, hidden_layers_sizes=(16,), batch_size=16)


POLICY_FACTORIES = [
    ("memoization", lambda: MemoizationPolicy(max_history=3), "plain"),
    ("augmented", lambda: AugmentedMemoizationPolicy(max_history=3), "plain"),
    ("neural", neural, "plain"),
    ("fallback", lambda: FallbackPolicy(nlu_threshold=0.4, core_threshold=0.2), "plain"),
    ("two_stage", lambda: TwoStageFallbackPolicy(deny_suggestion_intent_name="deny"), "plain"),
    ("mapping", MappingPolicy, "plain"),
    ("form", FormPolicy, "form"),
]


@pytest.fixture(scope="module")
def trained_policies(domain, form_domain, trackers, form_trackers):
    result = {}
    for name, factory, setup in POLICY_FACTORIES:
        policy = factory()
        d, t = (domain, trackers) if setup == "plain" else (form_domain, form_trackers)
        policy.train(t, d)
        result[name] = (policy, d, t)
    return result


@pytest.mark.parametrize("name", [n for n, _, _ in POLICY_FACTORIES])
def test_persist_and_load_give_identical_predictions(name, trained_policies, tmp_path):
    # P1
    policy, d, training = trained_policies[name]
    path = str(tmp_path / name)
    policy.persist(path)
    loaded = type(policy).load(path)
    assert type(loaded) is type(policy)
    assert loaded.priority == policy.priority
    assert loaded.max_history == policy.max_history
    checked = 0
    for tracker in training:
        for prefix, _ in [(tracker, None)] + prefixes_before_actions(tracker)[:6]:
            expected = policy.predict_action_probabilities(prefix, d)
            got = loaded.predict_action_probabilities(prefix, d)
            assert got == pytest.approx(expected, abs=1e-7)
            checked += 1
    assert checked > len(training)


@pytest.mark.parametrize("name", [n for n, _, _ in POLICY_FACTORIES])
def test_prediction_shape_on_empty_tracker(name, trained_policies):
    # P2
    policy, d, _ = trained_policies[name]
    probabilities = policy.predict_action_probabilities(DialogueStateTracker("empty", d), d)
    assert len(probabilities) == d.num_actions
    assert all(0.0 <= p <= 1.0 for p in probabilities)


@pytest.mark.parametrize("name, factory, setup", POLICY_FACTORIES)
def test_untrained_policy_persists_and_loads(name, factory, setup, tmp_path, domain,
                                             form_domain):
    # P3
    policy = factory()
    path = str(tmp_path / name)
    policy.persist(path)
    loaded = type(policy).load(path)
    assert loaded is not None and type(loaded) is type(policy)
    d = domain if setup == "plain" else form_domain
    tracker = tracker_of(d, listen(), user("greet"))
    assert len(loaded.predict_action_probabilities(tracker, d)) == d.num_actions


def test_priorities_are_the_defaults():
    assert NeuralPolicy().priority == 1
    assert MemoizationPolicy().priority == 2
    assert AugmentedMemoizationPolicy().priority == 2
    assert FallbackPolicy().priority == 3
    assert TwoStageFallbackPolicy().priority == 3
    assert FormPolicy().priority == 4
    assert MappingPolicy().priority == 5
    assert MemoizationPolicy(priority=7).priority == 7


# --------------------------------------------------------------------------- featurizers

def test_binary_featurizer_padding_and_values(domain):
    featurizer = BinarySingleStateFeaturizer()
    padding = featurizer.encode(None, domain)
    assert padding.shape == (domain.num_states,)
    assert (padding == -1).all()
    state = frozenset({("intent_greet", 1.0), ("prev_action_listen", 1.0),
                       ("unknown_feature", 1.0)})
    vector = featurizer.encode(state, domain)
    assert vector.sum() == 2.0
    assert vector[domain.input_state_index["intent_greet"]] == 1.0
    assert vector[domain.input_state_index["prev_action_listen"]] == 1.0


def test_max_history_windows_are_padded(domain, trackers):
    featurizer = MaxHistoryTrackerFeaturizer(max_history=3)
    windows, labels = featurizer.training_examples(trackers[:1])
    assert all(len(w) == 3 for w in windows)
    assert windows[0] == (None, None, frozenset())
    assert labels[0] == ACTION_LISTEN_NAME


def test_duplicate_examples_are_kept_one_plus_log2_times(domain):
    (tracker,) = generate_trackers(read_stories("## s\n* greet\n    - utter_greet\n"), domain,
                                   augmentation_factor=0)
    featurizer = MaxHistoryTrackerFeaturizer(max_history=2)
    single, _ = featurizer.training_examples([tracker])
    assert len(single) == 3           # listen, utter_greet, listen
    for n, copies in [(1, 1), (2, 2), (3, 2), (4, 3), (8, 4), (9, 4)]:
        windows, labels = featurizer.training_examples([tracker] * n)
        assert len(windows) == 3 * copies, n
        assert labels.count("utter_greet") == copies
    no_dedup = MaxHistoryTrackerFeaturizer(max_history=2, remove_duplicates=False)
    windows, _ = no_dedup.training_examples([tracker] * 4)
    assert len(windows) == 12


def test_full_dialogue_featurizer_uses_longest_dialogue(domain, trackers):
    featurizer = FullDialogueTrackerFeaturizer()
    windows, _ = featurizer.training_examples(trackers)
    longest = max(len(t.training_examples()[0]) for t in trackers)
    assert featurizer.max_history == longest
    assert all(len(w) == longest for w in windows)


# --------------------------------------------------------------------------- memoization

def test_memoization_recalls_every_training_action(domain, trackers):
    # P5: exact recall of every (non-augmented) training state sequence
    policy = MemoizationPolicy(max_history=3)
    policy.train(trackers, domain)
    checked = 0
    for tracker in trackers:
        if tracker.is_augmented:
            continue
        for prefix, action in prefixes_before_actions(tracker):
            probabilities = policy.predict_action_probabilities(prefix, domain)
            assert best(domain, probabilities) == action
            assert max(probabilities) == 1.0
            assert sum(probabilities) == 1.0
            checked += 1
    assert checked >= 20


def test_memoization_predicts_nothing_for_unknown_states(domain, trackers):
    policy = MemoizationPolicy(max_history=3)
    policy.train(trackers, domain)
    unknown = tracker_of(domain, listen(), user("mood_great"), act("utter_goodbye"), listen(),
                         user("affirm"))
    assert policy.predict_action_probabilities(unknown, domain) == [0.0] * domain.num_actions
    assert policy.recall(unknown, domain) is None


def test_memoization_learns_augmented_windows_without_overriding_written_stories(domain):
    steps = read_stories(STORIES)
    plain = MemoizationPolicy(max_history=3)
    plain.train(generate_trackers(steps, domain, augmentation_factor=0), domain)
    augmented = MemoizationPolicy(max_history=3)
    augmented_trackers = generate_trackers(steps, domain, augmentation_factor=20)
    assert any(t.is_augmented for t in augmented_trackers)
    augmented.train(augmented_trackers, domain)
    # Everything the written stories say is kept exactly ...
    assert {k: augmented.lookup[k] for k in plain.lookup} == plain.lookup
    # ... and the glued stories add the situations between stories.
    assert len(augmented.lookup) > len(plain.lookup)


def test_augmented_windows_never_revive_an_ambiguous_written_window(domain):
    steps = read_stories("## a\n* greet\n    - utter_greet\n\n## b\n* greet\n"
                         "    - utter_default\n\n## c\n* goodbye\n    - utter_goodbye\n")
    policy = MemoizationPolicy(max_history=2)
    policy.train(generate_trackers(steps, domain, augmentation_factor=20), domain)
    ambiguous = tracker_of(domain, listen(), user("greet"))
    assert policy.predict_action_probabilities(ambiguous, domain) == [0.0] * domain.num_actions


def test_memoization_forgets_ambiguous_windows(domain):
    trackers = generate_trackers(read_stories(
        "## a\n* greet\n    - utter_greet\n\n## b\n* greet\n    - utter_default\n\n"
        "## c\n* goodbye\n    - utter_goodbye\n"), domain, augmentation_factor=0)
    policy = MemoizationPolicy(max_history=2)
    policy.train(trackers, domain)
    ambiguous = tracker_of(domain, listen(), user("greet"))
    assert policy.predict_action_probabilities(ambiguous, domain) == [0.0] * domain.num_actions
    clear = tracker_of(domain, listen(), user("goodbye"))
    assert best(domain, policy.predict_action_probabilities(clear, domain)) == "utter_goodbye"
    # a third story agreeing with one of them does not bring the window back
    more = trackers + generate_trackers(read_stories("## d\n* greet\n    - utter_greet\n"),
                                        domain, augmentation_factor=0)
    policy.train(more, domain)
    assert policy.predict_action_probabilities(ambiguous, domain) == [0.0] * domain.num_actions


def test_memoization_continue_training_overwrites(domain):
    policy = MemoizationPolicy(max_history=2)
    policy.train(generate_trackers(read_stories("## a\n* greet\n    - utter_greet\n"), domain,
                                   augmentation_factor=0), domain)
    tracker = tracker_of(domain, listen(), user("greet"))
    assert best(domain, policy.predict_action_probabilities(tracker, domain)) == "utter_greet"
    policy.continue_training(generate_trackers(
        read_stories("## b\n* greet\n    - utter_default\n"), domain, augmentation_factor=0),
        domain)
    assert best(domain, policy.predict_action_probabilities(tracker, domain)) == "utter_default"


def test_memoization_can_be_disabled(domain, trackers):
    policy = MemoizationPolicy(max_history=3)
    policy.train(trackers, domain)
    tracker = tracker_of(domain, listen(), user("greet"))
    assert max(policy.predict_action_probabilities(tracker, domain)) == 1.0
    policy.is_enabled = False
    assert max(policy.predict_action_probabilities(tracker, domain)) == 0.0


def test_augmented_memoization_recalls_after_an_unrelated_earlier_turn(domain, trackers):
    memo = MemoizationPolicy(max_history=5)
    augmented = AugmentedMemoizationPolicy(max_history=5)
    # Only the written stories: glued ones would teach plain memoization this very case.
    written = [t for t in trackers if not t.is_augmented]
    memo.train(written, domain)
    augmented.train(written, domain)
    # an unrelated turn ("bye"), then the second turn of the "three turns" story
    tracker = tracker_of(domain, listen(), user("bye"), act("utter_goodbye"), listen(),
                         user("greet"), act("utter_greet"), listen(), user("default"))
    assert memo.predict_action_probabilities(tracker, domain) == [0.0] * domain.num_actions
    assert best(domain, augmented.predict_action_probabilities(tracker, domain)) == \
        "utter_default"


def test_augmented_memoization_forgets_a_slot_from_an_earlier_turn(domain):
    trackers = generate_trackers(read_stories(
        '## a\n* greet\n    - utter_greet\n* default\n    - utter_default\n\n'
        '## b\n* bye{"name": "Ann"}\n    - utter_goodbye\n'), domain, augmentation_factor=0)
    memo = MemoizationPolicy(max_history=5)
    augmented = AugmentedMemoizationPolicy(max_history=5)
    memo.train(trackers, domain)
    augmented.train(trackers, domain)
    # the name slot set in the first turn would make every later state unknown
    tracker = tracker_of(domain, listen(), user("bye", entities=[
        {"entity": "name", "value": "Ann", "start": 0, "end": 3}]), SlotSet("name", "Ann"),
        act("utter_goodbye"), listen(), user("greet"), act("utter_greet"), listen(),
        user("default"))
    assert memo.recall(tracker, domain) is None
    assert augmented.recall(tracker, domain) == "utter_default"


def test_augmented_memoization_recalls_a_first_turn_after_an_unrelated_turn(domain, trackers):
    augmented = AugmentedMemoizationPolicy(max_history=3)
    augmented.train(trackers, domain)
    tracker = tracker_of(domain, listen(), user("bye"), act("utter_goodbye"), listen(),
                         user("greet"))
    assert augmented.recall(tracker, domain) == "utter_greet"


def test_augmented_memoization_forgets_back_only_max_forget_steps(domain, trackers):
    policy = AugmentedMemoizationPolicy(max_history=5)
    policy.train([t for t in trackers if not t.is_augmented], domain)
    tracker = tracker_of(domain, listen(), user("bye"), act("utter_goodbye"), listen(),
                         user("greet"), act("utter_greet"), listen(), user("default"))
    assert policy.recall(tracker, domain) == "utter_default"
    policy.MAX_FORGET_STEPS = 2       # the matching start is 3 actions back
    assert policy.recall(tracker, domain) is None
    assert AugmentedMemoizationPolicy.MAX_FORGET_STEPS == 20


def test_memoization_persisted_lookup_is_json(domain, trackers, tmp_path):
    policy = MemoizationPolicy(max_history=3)
    policy.train(trackers, domain)
    policy.persist(str(tmp_path))
    with open(os.path.join(str(tmp_path), "memorized_turns.json")) as f:
        data = json.load(f)
    assert data["max_history"] == 3
    assert len(data["lookup"]) == len(policy.lookup)
    # loading a folder without the lookup gives an empty policy
    empty = MemoizationPolicy.load(str(tmp_path / "nothing"))
    assert empty.lookup == {}


# --------------------------------------------------------------------------- fallback

def test_should_nlu_fallback():
    # P4
    policy = FallbackPolicy()
    assert policy.nlu_threshold == 0.3 and policy.core_threshold == 0.3
    assert policy.fallback_action_name == ACTION_DEFAULT_FALLBACK_NAME
    assert policy.should_nlu_fallback(0.1, "some_action") is False
    assert policy.should_nlu_fallback(0.1, ACTION_LISTEN_NAME) is True
    assert policy.should_nlu_fallback(0.9, ACTION_LISTEN_NAME) is False
    assert policy.should_nlu_fallback(0.9, "some_action") is False


def test_fallback_predictions(domain):
    policy = FallbackPolicy(nlu_threshold=0.4, core_threshold=0.2)
    fallback = domain.index_for_action(ACTION_DEFAULT_FALLBACK_NAME)
    # unsure NLU right after the user spoke: fallback outright
    low = policy.predict_action_probabilities(tracker_of(domain, listen(), user("greet", 0.3)),
                                              domain)
    assert low[fallback] == 1.0 and sum(low) == 1.0
    # sure NLU: fallback with the core threshold only
    sure = policy.predict_action_probabilities(tracker_of(domain, listen(), user("greet", 0.9)),
                                               domain)
    assert sure[fallback] == pytest.approx(0.2) and sum(sure) == pytest.approx(0.2)
    # unsure NLU, but the bot already acted: not an NLU fallback
    acted = policy.predict_action_probabilities(
        tracker_of(domain, listen(), user("greet", 0.3), act("utter_greet")), domain)
    assert acted[fallback] == pytest.approx(0.2)
    # after the fallback action: listen
    after = policy.predict_action_probabilities(
        tracker_of(domain, listen(), user("greet", 0.3), act(ACTION_DEFAULT_FALLBACK_NAME)),
        domain)
    assert best(domain, after) == ACTION_LISTEN_NAME and max(after) == 1.0
    # a message without confidence counts as sure
    no_conf = UserUttered("hi", {"name": "greet"}, [], {"intent": {"name": "greet"},
                                                       "entities": [], "text": "hi"})
    assert policy.predict_action_probabilities(tracker_of(domain, listen(), no_conf),
                                               domain)[fallback] == pytest.approx(0.2)


def test_fallback_custom_action_name(domain):
    policy = FallbackPolicy(fallback_action_name="utter_default")
    probabilities = policy.predict_action_probabilities(
        tracker_of(domain, listen(), user("greet", 0.1)), domain)
    assert best(domain, probabilities) == "utter_default"


def two_stage_predict(domain, *events, policy=None):
    policy = policy or TwoStageFallbackPolicy(deny_suggestion_intent_name="deny")
    probabilities = policy.predict_action_probabilities(tracker_of(domain, *events), domain)
    return best(domain, probabilities), max(probabilities)


ASK_AFF = ACTION_DEFAULT_ASK_AFFIRMATION_NAME
ASK_REPH = ACTION_DEFAULT_ASK_REPHRASE_NAME
REVERT = ACTION_REVERT_FALLBACK_EVENTS_NAME
FALLBACK = ACTION_DEFAULT_FALLBACK_NAME


@pytest.mark.parametrize("events, expected", [
    # low confidence after listen -> ask affirmation
    ([listen(), user("greet", 0.2)], ASK_AFF),
    # after each helper action -> listen
    ([listen(), user("greet", 0.2), act(ASK_AFF)], ACTION_LISTEN_NAME),
    ([listen(), user("greet", 0.2), act(ASK_AFF), listen(), user("deny"), act(ASK_REPH)],
     ACTION_LISTEN_NAME),
    ([listen(), user("greet", 0.2), act(FALLBACK)], ACTION_LISTEN_NAME),
    # affirmed (same intent, confident) -> revert the detour
    ([listen(), user("greet", 0.2), act(ASK_AFF), listen(), user("greet", 1.0)], REVERT),
    # denied -> ask to rephrase
    ([listen(), user("greet", 0.2), act(ASK_AFF), listen(), user("deny")], ASK_REPH),
    # rephrased clearly -> revert
    ([listen(), user("greet", 0.2), act(ASK_AFF), listen(), user("deny"), act(ASK_REPH),
      listen(), user("bye")], REVERT),
    # rephrased, still unclear -> ask affirmation again
    ([listen(), user("greet", 0.2), act(ASK_AFF), listen(), user("deny"), act(ASK_REPH),
      listen(), user("bye", 0.1)], ASK_AFF),
    # ... and affirmed this time -> revert
    ([listen(), user("greet", 0.2), act(ASK_AFF), listen(), user("deny"), act(ASK_REPH),
      listen(), user("bye", 0.1), act(ASK_AFF), listen(), user("bye")], REVERT),
    # ... or denied again -> the NLU fallback action
    ([listen(), user("greet", 0.2), act(ASK_AFF), listen(), user("deny"), act(ASK_REPH),
      listen(), user("bye", 0.1), act(ASK_AFF), listen(), user("deny")], FALLBACK),
    # a different, confident intent instead of affirming -> revert (keeps that intent)
    ([listen(), user("greet", 0.2), act(ASK_AFF), listen(), user("bye")], REVERT),
    # unclear twice in a row -> fallback
    ([listen(), user("greet", 0.2), act(ASK_AFF), listen(), user("greet", 0.2)], FALLBACK),
])
def test_two_stage_fallback_decision_table(domain, events, expected):
    # P8
    action, score = two_stage_predict(domain, *events)
    assert action == expected
    assert score == 1.0


def test_two_stage_fallback_otherwise_predicts_core_fallback_with_threshold(domain):
    policy = TwoStageFallbackPolicy(core_threshold=0.25, deny_suggestion_intent_name="deny")
    probabilities = policy.predict_action_probabilities(
        tracker_of(domain, listen(), user("greet", 0.9)), domain)
    assert best(domain, probabilities) == FALLBACK
    assert max(probabilities) == pytest.approx(0.25)


def test_two_stage_fallback_custom_nlu_action(domain):
    policy = TwoStageFallbackPolicy(deny_suggestion_intent_name="deny",
                                    fallback_nlu_action_name="utter_default")
    action, _ = two_stage_predict(
        domain, listen(), user("greet", 0.2), act(ASK_AFF), listen(), user("greet", 0.2),
        policy=policy)
    assert action == "utter_default"


def test_two_stage_fallback_default_deny_intent_is_out_of_scope(domain):
    policy = TwoStageFallbackPolicy()
    assert policy.deny_suggestion_intent_name == "out_of_scope"
    action, _ = two_stage_predict(domain, listen(), user("greet", 0.2), act(ASK_AFF), listen(),
                                  user("out_of_scope"), policy=policy)
    assert action == ASK_REPH


def test_two_stage_fallback_needs_the_deny_intent(domain):
    policy = TwoStageFallbackPolicy(deny_suggestion_intent_name="no_such_intent")
    with pytest.raises(InvalidDomain) as info:
        policy.predict_action_probabilities(tracker_of(domain, listen(), user("greet")), domain)
    assert "no_such_intent" in str(info.value)
    with pytest.raises(InvalidDomain):
        policy.train([], domain)


def test_two_stage_fallback_settings_persist(tmp_path):
    policy = TwoStageFallbackPolicy(nlu_threshold=0.1, core_threshold=0.2,
                                    fallback_core_action_name="utter_a",
                                    fallback_nlu_action_name="utter_b",
                                    deny_suggestion_intent_name="deny", priority=9)
    policy.persist(str(tmp_path))
    loaded = TwoStageFallbackPolicy.load(str(tmp_path))
    assert (loaded.nlu_threshold, loaded.core_threshold, loaded.fallback_action_name,
            loaded.fallback_nlu_action_name, loaded.deny_suggestion_intent_name,
            loaded.priority) == (0.1, 0.2, "utter_a", "utter_b", "deny", 9)


# --------------------------------------------------------------------------- form

def test_form_policy_predicts_nothing_without_active_form(form_domain, form_trackers):
    policy = FormPolicy()
    policy.train(form_trackers, form_domain)
    tracker = tracker_of(form_domain, listen(), user("greet"))
    assert policy.predict_action_probabilities(tracker, form_domain) == \
        [0.0] * form_domain.num_actions
    # never predicts the form for the form-starting intent
    tracker = tracker_of(form_domain, listen(), user("start_form"))
    assert max(policy.predict_action_probabilities(tracker, form_domain)) == 0.0


def form_started(form_domain, *more):
    return tracker_of(form_domain, listen(), user("start_form"), act("some_form"),
                      Form("some_form"), listen(), *more)


def test_form_policy_runs_the_form_after_listen_and_listens_after_it(form_domain,
                                                                     form_trackers):
    policy = FormPolicy()
    policy.train(form_trackers, form_domain)
    tracker = form_started(form_domain, user("inform"))
    probabilities = policy.predict_action_probabilities(tracker, form_domain)
    assert best(form_domain, probabilities) == "some_form" and max(probabilities) == 1.0
    tracker.update(act("some_form"))
    probabilities = policy.predict_action_probabilities(tracker, form_domain)
    assert best(form_domain, probabilities) == ACTION_LISTEN_NAME
    assert max(probabilities) == 1.0
    # after some other action inside the form: nothing
    tracker.update(listen())
    tracker.update(user("inform"))
    tracker.update(act("utter_default"))
    assert max(policy.predict_action_probabilities(tracker, form_domain)) == 0.0


def test_form_policy_steps_aside_on_a_learned_unhappy_path(form_domain, form_trackers):
    policy = FormPolicy()
    policy.train(form_trackers, form_domain)
    tracker = form_started(form_domain, user("default"))
    # not yet rejected: run the form
    assert best(form_domain, policy.predict_action_probabilities(tracker, form_domain)) == \
        "some_form"
    tracker.update(ActionExecutionRejected("some_form"))
    count = len(tracker.events)
    probabilities = policy.predict_action_probabilities(tracker, form_domain)
    assert probabilities == [0.0] * form_domain.num_actions
    assert len(tracker.events) == count + 1
    assert isinstance(tracker.events[-1], FormValidation)
    assert tracker.events[-1].validate is False
    assert tracker.active_form["validate"] is False
    # asking again does not log a second FormValidation
    policy.predict_action_probabilities(tracker, form_domain)
    assert len(tracker.events) == count + 1


def test_form_policy_runs_the_form_on_a_rejection_the_stories_do_not_show(form_domain,
                                                                          form_trackers):
    policy = FormPolicy()
    policy.train(form_trackers, form_domain)
    tracker = form_started(form_domain, user("goodbye"))
    tracker.update(ActionExecutionRejected("some_form"))
    count = len(tracker.events)
    probabilities = policy.predict_action_probabilities(tracker, form_domain)
    assert best(form_domain, probabilities) == "some_form"
    assert len(tracker.events) == count


def test_forms_without_form_policy_are_invalid(form_domain, form_trackers):
    ensemble = PolicyEnsemble([MemoizationPolicy()])
    with pytest.raises(InvalidDomain):
        ensemble.check_domain(form_domain)
    with pytest.raises(InvalidDomain):
        ensemble.train(form_trackers, form_domain)
    PolicyEnsemble([MemoizationPolicy(), FormPolicy()]).check_domain(form_domain)


# --------------------------------------------------------------------------- mapping

def test_mapping_policy_triggers(domain):
    policy = MappingPolicy()
    tracker = tracker_of(domain, listen(), user("mood_great"))
    probabilities = policy.predict_action_probabilities(tracker, domain)
    assert best(domain, probabilities) == "utter_happy" and max(probabilities) == 1.0
    assert sum(probabilities) == 1.0
    tracker.update(act("utter_happy"))
    probabilities = policy.predict_action_probabilities(tracker, domain)
    assert best(domain, probabilities) == ACTION_LISTEN_NAME and max(probabilities) == 1.0
    tracker.update(act("utter_greet"))
    assert max(policy.predict_action_probabilities(tracker, domain)) == 0.0
    # an intent without a trigger: nothing
    plain = tracker_of(domain, listen(), user("greet"))
    assert max(policy.predict_action_probabilities(plain, domain)) == 0.0


def test_mapping_policy_unknown_triggered_action(domain):
    odd = Domain.from_yaml("intents:\n  - greet: {triggers: utter_missing}\n"
                           "actions: [utter_greet]\n")
    tracker = tracker_of(odd, listen(), user("greet"))
    assert max(MappingPolicy().predict_action_probabilities(tracker, odd)) == 0.0


# --------------------------------------------------------------------------- neural

def test_neural_policy_learns_the_stories(domain, trackers, trained_policies):
    policy, _, _ = trained_policies["neural"]
    tracker = tracker_of(domain, listen(), user("greet"))
    assert best(domain, policy.predict_action_probabilities(tracker, domain)) == "utter_greet"
    tracker.update(act("utter_greet"))
    assert best(domain, policy.predict_action_probabilities(tracker, domain)) == \
        ACTION_LISTEN_NAME
    probabilities = policy.predict_action_probabilities(tracker, domain)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)


def test_neural_policy_training_is_deterministic(domain, trackers):
    tracker = tracker_of(domain, listen(), user("default"))
    first, second = neural(), neural()
    first.train(trackers, domain)
    second.train(trackers, domain)
    assert first.predict_action_probabilities(tracker, domain) == \
        second.predict_action_probabilities(tracker, domain)
    other_seed = NeuralPolicy(epochs=40, max_history=3, hidden_layers_sizes=(16,),
                              batch_size=16, random_seed=7)
    other_seed.train(trackers, domain)
    assert other_seed.predict_action_probabilities(tracker, domain) != \
        first.predict_action_probabilities(tracker, domain)


def _network_answer(policy, tracker, domain):
    window = policy.featurizer.prediction_window(tracker)
    x = policy.featurizer.state_featurizer.encode_window(window, domain)
    return policy.network.predict_one(x).tolist()


def test_neural_policy_remembered_answers_are_the_networks(domain, trackers):
    policy = neural()
    policy.train(trackers, domain)
    situations = [tracker_of(domain, listen(), user("greet")),
                  tracker_of(domain, listen(), user("greet"), act("utter_greet")),
                  tracker_of(domain, listen(), user("default"))]
    for _ in range(3):  # the first round computes, the later ones remember
        for tracker in situations:
            answer = policy.predict_action_probabilities(tracker, domain)
            assert answer == _network_answer(policy, tracker, domain)
            answer[0] = 99.0  # a caller changing its answer changes nothing remembered
    assert policy.predict_action_probabilities(situations[0], domain)[0] != 99.0


def test_neural_policy_forgets_answers_when_retrained_or_asked_about_another_domain(
        domain, trackers):
    policy = neural()
    policy.train(trackers, domain)
    tracker = tracker_of(domain, listen(), user("default"))
    before = policy.predict_action_probabilities(tracker, domain)
    # Retraining on other stories (what /finetune does to a copy) gives another network.
    policy.random_seed = 7
    policy.continue_training(trackers, domain)
    after = policy.predict_action_probabilities(tracker, domain)
    assert after == _network_answer(policy, tracker, domain)
    assert after != before
    # The same window is another input vector where the features are laid out otherwise
    # (features go in name order: "affirm" made "zzz" moves "default" one place up).
    other = Domain.from_yaml(DOMAIN_YAML.replace("  - affirm\n", "  - zzz\n"))
    other_tracker = tracker_of(other, listen(), user("default"))
    answer = policy.predict_action_probabilities(other_tracker, other)
    assert answer == _network_answer(policy, other_tracker, other)
    assert answer != after


def test_neural_policy_copy_keeps_answers_of_its_own_network(domain, trackers):
    policy = neural()
    policy.train(trackers, domain)
    tracker = tracker_of(domain, listen(), user("default"))
    policy.predict_action_probabilities(tracker, domain)
    copied = copy.deepcopy(policy)
    copied.random_seed = 3
    copied.continue_training(trackers, domain)
    assert copied.predict_action_probabilities(tracker, domain) == \
        _network_answer(copied, tracker, domain)
    assert policy.predict_action_probabilities(tracker, domain) == \
        _network_answer(policy, tracker, domain)


def test_neural_policy_options(domain):
    policy = NeuralPolicy(rnn_size=8, epochs=3, some_keras_option=1)
    assert policy.hidden_layers_sizes == (8,)
    assert policy.epochs == 3
    assert NeuralPolicy(max_history=2).max_history == 2


# --------------------------------------------------------------------------- ensemble

class FixedPolicy(Policy):
    """Predicts a fixed score per action name."""

    uses_featurizer = False

    def __init__(self, scores=None, priority=None, featurizer=None):
        super().__init__(None, priority)
        self.scores = scores or {}

    def standard_featurizer(self):
        return None

    def predict_action_probabilities(self, tracker, domain):
        result = [0.0] * domain.num_actions
        for name, value in self.scores.items():
            result[domain.index_for_action(name)] = value
        return result


class OtherFixedPolicy(FixedPolicy):
    pass


def after_greet(domain):
    return tracker_of(domain, listen(), user("greet"))


def test_ensemble_most_confident_policy_wins(domain):
    ensemble = PolicyEnsemble([FixedPolicy({"utter_greet": 0.6}, priority=5),
                               OtherFixedPolicy({"utter_default": 0.8}, priority=1)])
    probabilities, name = ensemble.probabilities_using_best_policy(after_greet(domain), domain)
    assert name == "policy_1_OtherFixedPolicy"
    assert best(domain, probabilities) == "utter_default"
    assert ensemble.policy_names == ["policy_0_FixedPolicy", "policy_1_OtherFixedPolicy"]


def test_ensemble_tie_goes_to_higher_priority_then_list_order(domain):
    tracker = after_greet(domain)
    ensemble = PolicyEnsemble([FixedPolicy({"utter_greet": 1.0}, priority=1),
                               OtherFixedPolicy({"utter_default": 1.0}, priority=2)])
    probabilities, name = ensemble.probabilities_using_best_policy(tracker, domain)
    assert name == "policy_1_OtherFixedPolicy"
    assert best(domain, probabilities) == "utter_default"
    same = PolicyEnsemble([FixedPolicy({"utter_greet": 1.0}, priority=2),
                           OtherFixedPolicy({"utter_default": 1.0}, priority=2)])
    probabilities, name = same.probabilities_using_best_policy(tracker, domain)
    assert name == "policy_0_FixedPolicy"
    assert best(domain, probabilities) == "utter_greet"


def test_ensemble_memoization_beats_neural_on_a_tie(domain, trackers):
    class Certain(NeuralPolicy):
        def predict_action_probabilities(self, tracker, domain):
            return FixedPolicy({"utter_default": 1.0}).predict_action_probabilities(
                tracker, domain)

    memo = MemoizationPolicy(max_history=3)
    memo.train(trackers, domain)
    ensemble = PolicyEnsemble([Certain(), memo])
    probabilities, name = ensemble.probabilities_using_best_policy(after_greet(domain), domain)
    assert name == "policy_1_MemoizationPolicy"
    assert best(domain, probabilities) == "utter_greet"


def test_ensemble_masks_the_rejected_action(domain):
    ensemble = PolicyEnsemble([FixedPolicy({"utter_greet": 1.0, "utter_default": 0.1}),
                               OtherFixedPolicy({"utter_goodbye": 0.5})])
    tracker = after_greet(domain)
    _, name = ensemble.probabilities_using_best_policy(tracker, domain)
    assert name == "policy_0_FixedPolicy"
    tracker.update(ActionExecutionRejected("utter_greet"))
    probabilities, name = ensemble.probabilities_using_best_policy(tracker, domain)
    assert name == "policy_1_OtherFixedPolicy"
    assert probabilities[domain.index_for_action("utter_greet")] == 0.0
    assert best(domain, probabilities) == "utter_goodbye"


def test_ensemble_fallback_overrides_listen_right_after_listen(domain):
    ensemble = PolicyEnsemble([FixedPolicy({ACTION_LISTEN_NAME: 0.9}),
                               FallbackPolicy(core_threshold=0.3)])
    probabilities, name = ensemble.probabilities_using_best_policy(after_greet(domain), domain)
    assert name == "policy_1_FallbackPolicy"
    assert best(domain, probabilities) == ACTION_DEFAULT_FALLBACK_NAME
    assert max(probabilities) == 1.0
    # not after a bot action
    tracker = tracker_of(domain, listen(), user("greet"), act("utter_greet"))
    probabilities, name = ensemble.probabilities_using_best_policy(tracker, domain)
    assert name == "policy_0_FixedPolicy"
    assert best(domain, probabilities) == ACTION_LISTEN_NAME
    # no fallback policy: no override
    alone = PolicyEnsemble([FixedPolicy({ACTION_LISTEN_NAME: 0.9})])
    probabilities, name = alone.probabilities_using_best_policy(after_greet(domain), domain)
    assert best(domain, probabilities) == ACTION_LISTEN_NAME


def test_ensemble_no_fallback_override_when_memoization_wins(domain):
    memo = MemoizationPolicy(max_history=3)
    memo.train(generate_trackers(read_stories("## s\n* greet\n    - action_listen\n"), domain,
                                 augmentation_factor=0), domain)
    ensemble = PolicyEnsemble([memo, FallbackPolicy()])
    probabilities, name = ensemble.probabilities_using_best_policy(after_greet(domain), domain)
    assert name == "policy_0_MemoizationPolicy"
    assert best(domain, probabilities) == ACTION_LISTEN_NAME


def test_ensemble_two_stage_fallback_also_overrides(domain):
    ensemble = PolicyEnsemble([FixedPolicy({ACTION_LISTEN_NAME: 0.9}),
                               TwoStageFallbackPolicy(deny_suggestion_intent_name="deny")])
    probabilities, name = ensemble.probabilities_using_best_policy(after_greet(domain), domain)
    assert name == "policy_1_TwoStageFallbackPolicy"
    assert best(domain, probabilities) == ACTION_DEFAULT_FALLBACK_NAME


def test_ensemble_normalises(domain):
    ensemble = PolicyEnsemble([FixedPolicy({"utter_greet": 0.4, "utter_default": 0.1,
                                            "utter_goodbye": 0.3})])
    probabilities, _ = ensemble.probabilities_using_best_policy(after_greet(domain), domain)
    assert sum(probabilities) == pytest.approx(1.0)
    assert probabilities[domain.index_for_action("utter_greet")] == pytest.approx(0.5)
    assert probabilities[domain.index_for_action("utter_goodbye")] == pytest.approx(0.375)
    # all zeros stay zeros
    zeros, _ = PolicyEnsemble([FixedPolicy({})]).probabilities_using_best_policy(
        after_greet(domain), domain)
    assert zeros == [0.0] * domain.num_actions



def test_ensemble_normalising_skips_nan_and_keeps_sums_of_one(domain):
    tracker = after_greet(domain)
    with_nan = {"utter_greet": 0.5, "utter_default": float("nan"), "utter_goodbye": 0.25}
    probabilities, _ = PolicyEnsemble([FixedPolicy(with_nan)]).probabilities_using_best_policy(
        tracker, domain)
    assert probabilities[domain.index_for_action("utter_greet")] == pytest.approx(2 / 3)
    assert probabilities[domain.index_for_action("utter_goodbye")] == pytest.approx(1 / 3)
    assert math.isnan(probabilities[domain.index_for_action("utter_default")])
    # Already summing to one: the very same numbers come back.
    exact = {"utter_greet": 0.1, "utter_default": 0.2, "utter_goodbye": 0.7}
    assert sum(exact.values()) == 1.0
    probabilities, _ = PolicyEnsemble([FixedPolicy(exact)]).probabilities_using_best_policy(
        tracker, domain)
    assert [probabilities[domain.index_for_action(a)] for a in exact] == [0.1, 0.2, 0.7]

def test_ensemble_fallback_wins_when_nobody_is_sure(domain, trackers):
    memo = MemoizationPolicy(max_history=3)
    memo.train(trackers, domain)
    ensemble = PolicyEnsemble([memo, FallbackPolicy(core_threshold=0.3)])
    unknown = tracker_of(domain, listen(), user("affirm"), act("utter_greet"), listen(),
                         user("affirm"))
    probabilities, name = ensemble.probabilities_using_best_policy(unknown, domain)
    assert name == "policy_1_FallbackPolicy"
    assert best(domain, probabilities) == ACTION_DEFAULT_FALLBACK_NAME
    assert max(probabilities) == pytest.approx(1.0)


def test_ensemble_persist_and_load(domain, trackers, tmp_path):
    ensemble = PolicyEnsemble([MemoizationPolicy(max_history=3), FallbackPolicy(),
                               MappingPolicy()])
    ensemble.train(trackers, domain)
    ensemble.persist(str(tmp_path))
    with open(os.path.join(str(tmp_path), METADATA_FILE)) as f:
        metadata = json.load(f)
    assert metadata["policy_names"] == [
        "coreactors.policies.memoization.MemoizationPolicy",
        "coreactors.policies.fallback.FallbackPolicy",
        "coreactors.policies.mapping.MappingPolicy"]
    assert metadata["max_histories"] == [3, None, None]
    assert metadata["trained_at"]
    for name in ensemble.policy_names:
        assert os.path.isdir(os.path.join(str(tmp_path), name))
    loaded = PolicyEnsemble.load(str(tmp_path))
    assert [type(p) for p in loaded.policies] == [type(p) for p in ensemble.policies]
    assert loaded.policy_names == ensemble.policy_names
    for tracker in trackers:
        assert loaded.probabilities_using_best_policy(tracker, domain) == \
            ensemble.probabilities_using_best_policy(tracker, domain)


def test_ensemble_load_of_a_non_model_folder(tmp_path):
    with pytest.raises(ValueError):
        PolicyEnsemble.load(str(tmp_path))


# --------------------------------------------------------------------------- policy config

def write(tmp_path, text, name="policies.yml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_default_policy_config():
    policies = load_policy_config(None)
    assert [type(p) for p in policies] == [NeuralPolicy, FallbackPolicy, MemoizationPolicy,
                                           FormPolicy]
    assert policies[0].epochs == 100 and policies[0].max_history == 5
    assert policies[1].fallback_action_name == ACTION_DEFAULT_FALLBACK_NAME
    assert policies[2].max_history == 5
    assert DEFAULT_POLICY_CONFIG["policies"][0]["name"] == "KerasPolicy"


def test_policy_config_file(tmp_path):
    policies = load_policy_config(write(tmp_path, """
policies:
  - name: KerasPolicy
    epochs: 7
    max_history: 2
  - name: FallbackPolicy
    nlu_threshold: 0.5
    core_threshold: 0.1
    fallback_action_name: utter_default
  - name: AugmentedMemoizationPolicy
    max_history: 4
  - name: TwoStageFallbackPolicy
    deny_suggestion_intent_name: deny
  - name: MappingPolicy
  - name: FormPolicy
    priority: 10
  - name: coreactors.policies.memoization.MemoizationPolicy
"""))
    assert [type(p) for p in policies] == [
        NeuralPolicy, FallbackPolicy, AugmentedMemoizationPolicy, TwoStageFallbackPolicy,
        MappingPolicy, FormPolicy, MemoizationPolicy]
    assert policies[0].epochs == 7 and policies[0].max_history == 2
    assert (policies[1].nlu_threshold, policies[1].core_threshold,
            policies[1].fallback_action_name) == (0.5, 0.1, "utter_default")
    assert policies[2].max_history == 4
    assert policies[3].deny_suggestion_intent_name == "deny"
    assert policies[5].priority == 10


def test_policy_config_alias_key(tmp_path):
    policies = load_policy_config(write(tmp_path, "policy:\n  - name: MemoizationPolicy\n"))
    assert [type(p) for p in policies] == [MemoizationPolicy]


def test_policy_config_featurizer(tmp_path):
    (policy,) = load_policy_config(write(tmp_path, """
policies:
  - name: KerasPolicy
    epochs: 1
    featurizer:
      - name: MaxHistoryTrackerFeaturizer
        max_history: 7
        remove_duplicates: false
        state_featurizer:
          - name: BinarySingleStateFeaturizer
"""))
    assert isinstance(policy.featurizer, MaxHistoryTrackerFeaturizer)
    assert policy.max_history == 7
    assert policy.featurizer.remove_duplicates is False
    assert isinstance(policy.featurizer.state_featurizer, BinarySingleStateFeaturizer)
    (full,) = policies_from_config({"policies": [
        {"name": "NeuralPolicy", "featurizer": [{"name": "FullDialogueTrackerFeaturizer"}]}]})
    assert isinstance(full.featurizer, FullDialogueTrackerFeaturizer)


@pytest.mark.parametrize("text", [
    "policies:\n  - name: NoSuchPolicy\n",
    "policies:\n  - name: my_pkg.policies.NoSuchPolicy\n",
    "policies:\n  - name: MemoizationPolicy\n    no_such_option: 1\n",
    "policies:\n  - name: FallbackPolicy\n    nlu_treshold: 0.3\n",
    "policies: []\n",
    "something_else: 1\n",
    "",
    "policies:\n  - max_history: 3\n",
    "policies:\n  - name: MemoizationPolicy\n    featurizer:\n"
    "      - name: MaxHistoryTrackerFeaturizer\n      - name: MaxHistoryTrackerFeaturizer\n",
    "policies:\n  - name: MemoizationPolicy\n    featurizer:\n      - name: NoFeaturizer\n",
    "policies:\n  - name: KerasPolicy\n    featurizer:\n"
    "      - name: MaxHistoryTrackerFeaturizer\n        state_featurizer:\n"
    "          - name: A\n          - name: B\n",
    "policies:\n  - name: FallbackPolicy\n    featurizer:\n"
    "      - name: MaxHistoryTrackerFeaturizer\n",
    "policies: [\n",
])
def test_invalid_policy_configs(tmp_path, text):
    with pytest.raises(InvalidPolicyConfig) as info:
        load_policy_config(write(tmp_path, text))
    message = str(info.value)
    # the message names the file, or the unknown policy
    assert "policies.yml" in message or "Unknown policy" in message


def test_missing_policy_config_file(tmp_path):
    with pytest.raises(InvalidPolicyConfig):
        load_policy_config(str(tmp_path / "missing.yml"))


# --------------------------------------------------------------------------- remembered decisions

def _situations(domain, trackers):
    """Trackers at every point a policy is asked, plus variations the stories lack: unsure
    NLU (for fallback), a rejected action, after the fallback action, a mapped intent."""
    result = [prefix for tracker in trackers for prefix, _ in prefixes_before_actions(tracker)]
    for confidence in (0.1, 0.29, 0.3, 0.9):
        result.append(tracker_of(domain, listen(), user("greet", confidence)))
        result.append(tracker_of(domain, listen(), user("default", confidence),
                                 act("utter_default")))
    result.append(tracker_of(domain, listen(), user("greet"),
                             ActionExecutionRejected("utter_greet")))
    result.append(tracker_of(domain, listen(), user("greet"), act("action_default_fallback")))
    if domain.intent_properties.get("mood_great"):
        result.append(tracker_of(domain, listen(), user("mood_great")))
        result.append(tracker_of(domain, listen(), user("mood_great"), act("utter_happy")))
    return result


KEYED_FACTORIES = [
    ("memoization", lambda: MemoizationPolicy(max_history=3), "plain"),
    ("neural", neural, "plain"),
    ("fallback", lambda: FallbackPolicy(nlu_threshold=0.3, core_threshold=0.2), "plain"),
    ("mapping", MappingPolicy, "plain"),
    ("form", FormPolicy, "form"),
]


@pytest.mark.parametrize("name,factory,setup", KEYED_FACTORIES, ids=[f[0] for f in KEYED_FACTORIES])
def test_equal_prediction_keys_mean_equal_predictions(name, factory, setup, domain, form_domain,
                                                      trackers, form_trackers):
    d, t = (domain, trackers) if setup == "plain" else (form_domain, form_trackers)
    policy = factory()
    policy.train(t, d)
    assert keys_predictions(policy)
    seen = {}
    keyed = 0
    for tracker in _situations(d, t):
        key = policy.prediction_key(tracker)
        if key is None:
            continue
        keyed += 1
        prediction = policy.predict_action_probabilities(tracker, d)
        if key in seen:
            assert seen[key] == prediction, key
        seen[key] = prediction
    assert keyed > len(seen) > 1 or name == "form"  # keys repeat, and tell situations apart


def test_only_classes_whose_key_covers_their_behaviour_key_predictions():
    class NewPrediction(MemoizationPolicy):
        def predict_action_probabilities(self, tracker, domain):
            return [1.0] * domain.num_actions

    class NewRecall(FallbackPolicy):
        def fallback_scores(self, domain, score=1.0):
            return [score] * domain.num_actions

    class KeyedAgain(NewPrediction):
        def prediction_key(self, tracker):
            return ()

    assert all(keys_predictions(p) for p in (MemoizationPolicy(), NeuralPolicy(),
                                               FallbackPolicy(), FormPolicy(), MappingPolicy()))
    for policy in (AugmentedMemoizationPolicy(), TwoStageFallbackPolicy(), NewPrediction(),
                   NewRecall(), FixedPolicy()):
        assert not keys_predictions(policy), type(policy).__name__
    assert keys_predictions(KeyedAgain())


class _Counting(Policy):
    """Wraps a policy, counting its predictions; keyed like the wrapped one."""

    uses_featurizer = False

    def __init__(self, inner):
        super().__init__(None, inner.priority)
        self.inner = inner
        self.calls = 0

    def standard_featurizer(self):
        return None

    def predict_action_probabilities(self, tracker, domain):
        self.calls += 1
        return self.inner.predict_action_probabilities(tracker, domain)

    def prediction_key(self, tracker):
        return self.inner.prediction_key(tracker)


def _keyed_ensemble(domain, trackers):
    policies = [neural(), FallbackPolicy(nlu_threshold=0.3, core_threshold=0.2),
                MemoizationPolicy(max_history=3), MappingPolicy(), FormPolicy()]
    for policy in policies:
        policy.train(trackers, domain)
    return PolicyEnsemble([_Counting(p) for p in policies])


def test_the_ensemble_remembers_decisions_equal_to_fresh_ones(domain, trackers):
    ensemble = _keyed_ensemble(domain, trackers)
    situations = _situations(domain, trackers)
    for tracker in situations:
        assert ensemble.probabilities_using_best_policy(tracker, domain) == \
            ensemble._decide(tracker, domain)
    asked = sum(p.calls for p in ensemble.policies)
    for tracker in situations:
        again = ensemble.probabilities_using_best_policy(tracker, domain)
        assert again == ensemble._decide(tracker, domain)
    # The second round's fresh decisions asked each policy once per situation; the
    # remembered ones asked nobody.
    assert sum(p.calls for p in ensemble.policies) == asked + len(situations) * 5
    answer, _ = ensemble.probabilities_using_best_policy(situations[0], domain)
    answer[0] = 42.0  # a caller changing its answer changes nothing remembered
    assert ensemble.probabilities_using_best_policy(situations[0], domain)[0][0] != 42.0


def test_the_ensemble_forgets_decisions_when_trained_or_asked_about_another_domain(
        domain, trackers):
    ensemble = _keyed_ensemble(domain, trackers)
    tracker = tracker_of(domain, listen(), user("greet"))
    ensemble.probabilities_using_best_policy(tracker, domain)
    calls = sum(p.calls for p in ensemble.policies)
    ensemble.probabilities_using_best_policy(tracker, domain)
    assert sum(p.calls for p in ensemble.policies) == calls
    other = Domain.from_yaml(DOMAIN_YAML)
    ensemble.probabilities_using_best_policy(tracker_of(other, listen(), user("greet")), other)
    assert sum(p.calls for p in ensemble.policies) == calls + 5
    for _ in range(2):  # back to the first domain: decided afresh once, then remembered
        ensemble.probabilities_using_best_policy(tracker, domain)
    assert sum(p.calls for p in ensemble.policies) == calls + 10
    ensemble.continue_training(trackers, domain)
    ensemble.probabilities_using_best_policy(tracker, domain)
    assert sum(p.calls for p in ensemble.policies) == calls + 15
    ensemble.train(trackers, domain)
    ensemble.probabilities_using_best_policy(tracker, domain)
    assert sum(p.calls for p in ensemble.policies) == calls + 20


def test_an_unkeyed_policy_or_an_active_form_means_nothing_is_remembered(
        domain, trackers, form_domain, form_trackers):
    memo, augmented = MemoizationPolicy(max_history=3), AugmentedMemoizationPolicy(max_history=3)
    memo.train(trackers, domain)
    augmented.train(trackers, domain)
    unkeyed = PolicyEnsemble([_Counting(memo), augmented])
    tracker = tracker_of(domain, listen(), user("greet"))
    for _ in range(3):
        unkeyed.probabilities_using_best_policy(tracker, domain)
    assert unkeyed.policies[0].calls == 3
    form_policy, form_memo = FormPolicy(), MemoizationPolicy(max_history=3)
    form_policy.train(form_trackers, form_domain)
    form_memo.train(form_trackers, form_domain)
    form = _Counting(form_policy)
    with_form = PolicyEnsemble([form, _Counting(form_memo)])
    active = tracker_of(form_domain, listen(), user("start_form"), act("some_form"),
                        Form("some_form"), listen(), user("inform"))
    for _ in range(3):
        with_form.probabilities_using_best_policy(active, form_domain)
    assert form.calls == 3

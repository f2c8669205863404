"""Tests for coreactors.dialogue.tracker (semantics note, section 2).

Deliberate difference from Rasa tested here: ``travel_back_in_time`` (and ``copy``) keep the
conversation's real sender id instead of reporting "default".
"""

import json
import os

import pytest

from coreactors.dialogue.domain import Domain
from coreactors.dialogue.events import (
    ActionExecuted, ActionExecutionRejected, ActionReverted, AgentUttered, AllSlotsReset,
    BotUttered, ConversationPaused, ConversationResumed, FollowupAction, Form, FormValidation,
    InvalidEvent, ReminderScheduled, Restarted, SlotSet, StoryExported, UserUttered,
    UserUtteranceReverted)
from coreactors.dialogue.tracker import DialogueStateTracker, EventVerbosity
from coreactors.nlu.interpreter import RegexInterpreter
from shared_data import SHARED_DATA

FIXTURES = os.path.join(SHARED_DATA, "fixtures")

# --------------------------------------------------------------------------- test data

DOMAIN_YAML = """
intents:
  - greet
  - inform:
      use_entities: false
  - bye
  - start_form
  - stop
  - deny
  - mood_great
  - affirm
entities:
  - name
  - cuisine
  - location
slots:
  name:
    type: text
  cuisine:
    type: text
  ok:
    type: text
  location:
    type: text
actions:
  - utter_greet
  - utter_bye
  - utter_happy
  - action_custom
  - my_action
  - my_action_1
  - my_action_2
  - utter_ask_continue
"""

FORM_DOMAIN_YAML = DOMAIN_YAML + """
forms:
  - some_form
"""


@pytest.fixture
def domain():
    return Domain.from_yaml(DOMAIN_YAML, "tracker-test-domain.yml")


@pytest.fixture
def form_domain():
    return Domain.from_yaml(FORM_DOMAIN_YAML, "tracker-form-domain.yml")


def listen(timestamp=None):
    return ActionExecuted("action_listen", timestamp=timestamp)


def act(name, timestamp=None):
    return ActionExecuted(name, timestamp=timestamp)


def user(intent, entities=None, text=None, timestamp=None, channel=None):
    """A user message as the processor would log it."""
    entity_list = [{"entity": k, "start": 0, "end": 1, "value": v}
                   for k, v in (entities or {}).items()]
    return UserUttered(text if text is not None else "/" + intent,
                       {"name": intent, "confidence": 1.0}, entity_list,
                       timestamp=timestamp, input_channel=channel)


def regex_user(text, channel=None):
    parse_data = RegexInterpreter().parse(text)
    return UserUttered(text, parse_data["intent"], parse_data["entities"], parse_data,
                       input_channel=channel)


def worked_example():
    """The example of section 2.4 of the semantics note."""
    return [
        listen(), user("greet", {"name": "Joe"}), SlotSet("name", "Joe"), act("utter_greet"),
        BotUttered("hey Joe"), listen(), user("inform", {"cuisine": "thai"}),
        SlotSet("cuisine", "thai"), act("action_custom"), SlotSet("ok", "yes"),
        ActionReverted(), act("utter_bye"), listen(), user("bye"), UserUtteranceReverted(),
    ]


def mood_events():
    """A dump shaped like a moodbot conversation (7 events, non-monotonic timestamps)."""
    return [
        {"event": "action", "timestamp": 1000.31, "name": "action_listen", "policy": None,
         "confidence": None},
        {"event": "user", "timestamp": 1000.10, "text": "/greet", "input_channel": None,
         "parse_data": {"entities": [], "intent": {"confidence": 0.54, "name": "greet"},
                        "text": "/greet",
                        "intent_ranking": [{"confidence": 0.54, "name": "greet"},
                                           {"confidence": 0.46, "name": "bye"}]}},
        {"event": "action", "timestamp": 1000.12, "name": "utter_greet", "policy": None,
         "confidence": None},
        {"event": "action", "timestamp": 1000.32, "name": "action_listen", "policy": None,
         "confidence": None},
        {"event": "user", "timestamp": 1000.20, "text": "/mood_great", "input_channel": None,
         "parse_data": {"entities": [], "intent": {"confidence": 0.6, "name": "mood_great"},
                        "text": "/mood_great",
                        "intent_ranking": [{"confidence": 0.6, "name": "mood_great"},
                                           {"confidence": 0.4, "name": "greet"}]}},
        {"event": "action", "timestamp": 1000.21, "name": "utter_happy",
         "policy": "policy_1_KerasPolicy", "confidence": 0.8},
        {"event": "action", "timestamp": 1000.33, "name": "action_listen",
         "policy": "policy_2_MemoizationPolicy", "confidence": 1.0},
    ]


def names(state):
    return sorted(feature for feature, _ in state)


def state_names(tracker):
    return [names(s) for s in tracker.past_states()]


def form_happy_path():
    return [
        listen(), regex_user("/start_form"), act("some_form"), Form("some_form"),
        SlotSet("requested_slot", "cuisine"), listen(),
        regex_user('/inform{"cuisine": "thai"}'), act("some_form"), SlotSet("cuisine", "thai"),
        SlotSet("requested_slot", "location"), listen(),
        regex_user('/inform{"location": "paris"}'), act("some_form"),
        SlotSet("location", "paris"), Form(None), SlotSet("requested_slot", None), listen(),
    ]


def form_rejected_path():
    return [
        listen(), regex_user("/start_form"), act("some_form"), Form("some_form"),
        SlotSet("requested_slot", "cuisine"), listen(), regex_user("/stop"),
        ActionExecutionRejected("some_form"), act("utter_ask_continue"), listen(),
        regex_user("/deny"), act("action_deactivate_form"), Form(None),
        SlotSet("requested_slot", None), listen(),
    ]


# --------------------------------------------------------------------------- initial state

def test_initial_state(domain):
    tracker = DialogueStateTracker("conv1", domain)
    assert tracker.sender_id == "conv1"
    assert tracker.events == []
    assert tracker.current_slot_values() == {"cuisine": None, "location": None, "name": None,
                                             "ok": None}
    assert tracker.latest_message.text is None
    assert tracker.latest_message.intent == {}
    assert tracker.latest_message.entities == []
    assert tracker.latest_bot_utterance.text is None
    assert tracker.latest_action_name is None
    assert tracker.followup_action == "action_listen"
    assert tracker.paused is False
    assert tracker.active_form == {}
    assert tracker.applied_events() == []
    assert tracker.latest_input_channel() is None


def test_initial_current_state_exactly():
    # The tracker part of Rasa's remote-action request (AC6), with a domain of one text slot.
    domain = Domain.from_yaml("slots:\n  name:\n    type: text\n")
    state = DialogueStateTracker("default", domain).current_state(EventVerbosity.ALL)
    assert state == {
        "sender_id": "default", "slots": {"name": None},
        "latest_message": {"text": None, "intent": {}, "entities": []},
        "latest_event_time": None, "followup_action": "action_listen", "paused": False,
        "events": [], "latest_input_channel": None, "active_form": {},
        "latest_action_name": None,
    }


def test_initial_slots_use_initial_values():
    domain = Domain.from_yaml("slots:\n  mood:\n    type: text\n    initial_value: happy\n")
    assert DialogueStateTracker("x", domain).get_slot("mood") == "happy"


def test_trackers_do_not_share_slots(domain):
    one, two = DialogueStateTracker("1", domain), DialogueStateTracker("2", domain)
    one.update(SlotSet("name", "Joe"))
    assert two.get_slot("name") is None
    assert DialogueStateTracker("3", domain).get_slot("name") is None
    assert domain.slot("name").value is None


def test_new_conversation_with_listen_clears_followup(domain):
    tracker = DialogueStateTracker("x", domain)
    tracker.update(listen())
    assert tracker.followup_action is None
    assert tracker.latest_action_name == "action_listen"


# --------------------------------------------------------------------------- current_state

def test_current_state_keys_in_rasa_order(domain):
    tracker = DialogueStateTracker.from_events("conv1", worked_example(), domain)
    assert list(tracker.current_state()) == [
        "sender_id", "slots", "latest_message", "latest_event_time", "followup_action",
        "paused", "events", "latest_input_channel", "active_form", "latest_action_name"]


def test_current_state_values(domain):
    events = [listen(timestamp=1.0), regex_user('/inform{"cuisine": "thai"}', channel="rest"),
              SlotSet("cuisine", "thai", timestamp=3.0), SlotSet("name", "Joe", timestamp=4.0),
              act("utter_bye", timestamp=15.0)]
    tracker = DialogueStateTracker.from_events("conv1", events, domain)
    state = tracker.current_state()
    assert state == {
        "sender_id": "conv1",
        "slots": {"cuisine": "thai", "location": None, "name": "Joe", "ok": None},
        "latest_message": {"text": '/inform{"cuisine": "thai"}',
                           "intent": {"name": "inform", "confidence": 1.0},
                           "intent_ranking": [{"name": "inform", "confidence": 1.0}],
                           "entities": [{"entity": "cuisine", "start": 7, "end": 26,
                                         "value": "thai"}]},
        "latest_event_time": 15.0,
        "followup_action": None,
        "paused": False,
        "events": None,
        "latest_input_channel": "rest",
        "active_form": {},
        "latest_action_name": "utter_bye",
    }
    json.dumps(state)  # JSON-serialisable


def test_current_state_latest_message_is_parse_data_verbatim(domain):
    parse_data = {"intent": {"name": "greet", "confidence": 0.5}, "entities": [], "text": "hi",
                  "project": "default", "model": "model_1"}
    tracker = DialogueStateTracker("x", domain)
    tracker.update(UserUttered("hi", parse_data["intent"], [], parse_data))
    assert tracker.current_state()["latest_message"] == parse_data


def test_latest_message_after_restart(domain):
    tracker = DialogueStateTracker.from_events("x", [listen(), user("greet"), Restarted()],
                                               domain)
    assert tracker.current_state()["latest_message"] == {"intent": {}, "entities": [],
                                                         "text": None}


def test_latest_event_time_includes_trailing_rewind(domain):
    events = [listen(timestamp=1.0), user("greet", timestamp=2.0),
              UserUtteranceReverted(timestamp=7.5)]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    assert tracker.current_state()["latest_event_time"] == 7.5


# --------------------------------------------------------------------------- verbosity

def mood_tracker(domain, dicts=None):
    return DialogueStateTracker.from_dicts("mysender", dicts or mood_events(), domain)


def test_verbosity_names():
    assert [v.name for v in EventVerbosity] == ["NONE", "APPLIED", "AFTER_RESTART", "ALL"]
    assert [v.value for v in EventVerbosity] == [1, 2, 3, 4]
    assert EventVerbosity.from_name("after_restart") is EventVerbosity.AFTER_RESTART
    assert EventVerbosity.from_name("ALL") is EventVerbosity.ALL
    assert EventVerbosity.from_name("Applied") is EventVerbosity.APPLIED
    assert EventVerbosity.from_name("none") is EventVerbosity.NONE
    with pytest.raises(ValueError):
        EventVerbosity.from_name("some")


def test_verbosity_none_by_default(domain):
    tracker = mood_tracker(domain)
    assert tracker.current_state()["events"] is None
    assert tracker.current_state(EventVerbosity.NONE)["events"] is None


def test_verbosity_all_without_restart_is_the_dump(domain):
    tracker = mood_tracker(domain)
    for verbosity in (EventVerbosity.ALL, EventVerbosity.AFTER_RESTART,
                      EventVerbosity.APPLIED):
        assert tracker.current_state(verbosity)["events"] == mood_events()


def test_verbosity_after_restart(domain):
    dicts = mood_events()
    dicts.insert(3, {"event": "restart", "timestamp": 1000.125})
    tracker = mood_tracker(domain, dicts)
    assert tracker.current_state(EventVerbosity.AFTER_RESTART)["events"] == dicts[4:]


def test_verbosity_all(domain):
    dicts = mood_events()
    dicts.insert(3, {"event": "restart", "timestamp": 1000.125})
    tracker = mood_tracker(domain, dicts)
    assert tracker.current_state(EventVerbosity.ALL)["events"] == dicts


def test_verbosity_after_restart_uses_last_restart_and_keeps_reverted(domain):
    events = [listen(), Restarted(), user("greet"), Restarted(), listen(), user("bye"),
              act("utter_bye"), ActionReverted(), UserUtteranceReverted()]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    expected = [e.as_dict() for e in events[4:]]
    assert tracker.current_state(EventVerbosity.AFTER_RESTART)["events"] == expected
    assert tracker.idx_after_latest_restart() == 4
    assert tracker.events_after_latest_restart() == events[4:]


def test_verbosity_applied(domain):
    dicts = mood_events()
    dicts.insert(1, {"event": "restart", "timestamp": 1000.05})
    dicts.insert(7, {"event": "rewind", "timestamp": 1000.25})
    dicts.insert(8, {"event": "undo", "timestamp": 1000.26})
    tracker = mood_tracker(domain, dicts)
    assert tracker.current_state(EventVerbosity.APPLIED)["events"] == [dicts[2], dicts[9]]
    assert tracker.current_state(EventVerbosity.ALL)["events"] == dicts
    assert tracker.current_state(EventVerbosity.AFTER_RESTART)["events"] == dicts[2:]


def test_worked_example_in_every_verbosity(domain):
    events = worked_example()
    tracker = DialogueStateTracker.from_events("conv1", events, domain)
    applied_indices = [0, 1, 2, 3, 4, 5, 6, 7, 11]
    assert tracker.current_state(EventVerbosity.APPLIED)["events"] == [
        events[i].as_dict() for i in applied_indices]
    assert tracker.current_state(EventVerbosity.ALL)["events"] == [e.as_dict() for e in events]
    assert tracker.current_state(EventVerbosity.AFTER_RESTART)["events"] == [
        e.as_dict() for e in events]
    assert tracker.current_state(EventVerbosity.NONE)["events"] is None


# --------------------------------------------------------------------------- applied events

def test_applied_events_worked_example(domain):
    events = worked_example()
    tracker = DialogueStateTracker.from_events("conv1", events, domain)
    applied = tracker.applied_events()
    assert [id(e) for e in applied] == [id(events[i]) for i in (0, 1, 2, 3, 4, 5, 6, 7, 11)]
    assert tracker.latest_action_name == "utter_bye"
    assert tracker.get_slot("ok") is None
    assert tracker.get_slot("cuisine") == "thai"
    assert tracker.get_slot("name") == "Joe"
    assert tracker.latest_message.intent_name == "inform"


def test_applied_events_drop_everything_before_restart(domain):
    events = [listen(), user("greet"), act("utter_greet"), Restarted(), listen(), user("bye")]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    assert tracker.applied_events() == events[4:]


def test_rewind_without_user_message_clears_history(domain):
    # Q6
    tracker = DialogueStateTracker.from_events("x", [listen(), UserUtteranceReverted()], domain)
    assert tracker.applied_events() == []
    assert tracker.latest_action_name is None
    assert tracker.followup_action == "action_listen"


def test_undo_right_after_user_message_removes_it(domain):
    # Q7
    tracker = DialogueStateTracker.from_events("x", [listen(), user("greet"), ActionReverted()],
                                               domain)
    assert tracker.applied_events() == []
    assert tracker.latest_message.text is None


def test_undo_without_action_clears_history(domain):
    tracker = DialogueStateTracker.from_events(
        "x", [SlotSet("name", "Joe"), ActionReverted()], domain)
    assert tracker.applied_events() == []
    assert tracker.get_slot("name") is None


def test_reminder_user_event_counts_for_rewind(domain):
    events = [listen(), user("greet"), act("utter_greet"), listen(), UserUttered(None),
              act("my_action"), UserUtteranceReverted()]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    assert tracker.applied_events() == events[:3]


def test_double_rewind(domain):
    events = [listen(), user("greet"), act("utter_greet"), listen(), user("bye"),
              act("utter_bye"), listen(), UserUtteranceReverted(), UserUtteranceReverted()]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    assert tracker.applied_events() == []


def test_markers_are_never_applied(domain):
    tracker = DialogueStateTracker.from_events("conv1", worked_example(), domain)
    kinds = {type(e) for e in tracker.applied_events()}
    assert not kinds & {Restarted, ActionReverted, UserUtteranceReverted}


# --------------------------------------------------------------------------- restart / undo / rewind

def four_events():
    return [listen(), user("greet"), act("my_action"), listen()]


def test_restart(domain):
    tracker = DialogueStateTracker.from_events("x", four_events(), domain)
    assert len(tracker.events) == 4
    assert tracker.latest_message.text == "/greet"
    assert len(tracker.past_states()) == 4
    tracker.update(Restarted())
    assert len(tracker.events) == 5
    assert tracker.followup_action == "action_listen"
    assert tracker.latest_message.text is None
    assert tracker.past_states() == [frozenset()]
    rebuilt = DialogueStateTracker.from_dicts(
        "x", tracker.current_state(EventVerbosity.ALL)["events"], domain)
    assert rebuilt.current_state(EventVerbosity.ALL) == tracker.current_state(
        EventVerbosity.ALL)
    assert len(rebuilt.events) == 5


def test_undo(domain):
    tracker = DialogueStateTracker.from_events("x", four_events(), domain)
    assert tracker.latest_action_name == "action_listen"
    tracker.update(ActionReverted())
    assert tracker.latest_action_name == "my_action"
    assert len(tracker.past_states()) == 3
    rebuilt = DialogueStateTracker.from_dicts(
        "x", tracker.current_state(EventVerbosity.ALL)["events"], domain)
    assert rebuilt.current_state(EventVerbosity.ALL) == tracker.current_state(
        EventVerbosity.ALL)
    assert rebuilt.past_states() == tracker.past_states()


def test_rewind(domain):
    events = [listen(), user("greet"), act("my_action_1"), listen(), user("bye"),
              act("my_action_2"), listen()]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    assert len(tracker.past_states()) == 6
    tracker.update(UserUtteranceReverted())
    assert tracker.latest_action_name == "my_action_1"
    assert tracker.latest_message.intent_name == "greet"
    assert len(tracker.past_states()) == 3
    rebuilt = DialogueStateTracker.from_dicts(
        "x", tracker.current_state(EventVerbosity.ALL)["events"], domain)
    assert rebuilt.current_state(EventVerbosity.ALL) == tracker.current_state(
        EventVerbosity.ALL)
    assert rebuilt.past_states() == tracker.past_states()



def test_conversations_in_the_same_state_keep_one_copy_of_it(domain):
    events = [listen(), user("greet"), act("my_action_1"), listen(), user("bye"),
              act("my_action_2"), listen()]
    first = DialogueStateTracker.from_events("a", events, domain)
    second = DialogueStateTracker.from_events("b", events, domain)
    assert first.past_states() == second.past_states()
    assert all(mine is theirs for mine, theirs in zip(first.past_states(),
                                                        second.past_states()))
    # A domain of the same file keeps its own copies: states are shared per domain.
    other = DialogueStateTracker.from_events(
        "c", events, Domain.from_yaml(DOMAIN_YAML, "tracker-test-domain.yml"))
    assert other.past_states() == first.past_states()
    assert all(mine is not theirs for mine, theirs in zip(other.past_states()[1:],
                                                            first.past_states()[1:]))


def test_shared_states_start_over_when_full(domain, monkeypatch):
    import coreactors.dialogue.domain as domain_module
    monkeypatch.setattr(domain_module, "SHARED_STATES", 3)
    states = [frozenset({("intent_{}".format(i), 1.0)}) for i in range(4)]
    kept = [domain.shared_state(s) for s in states[:3]]
    assert kept == states[:3] and all(k is s for k, s in zip(kept, states))
    assert domain.shared_state(frozenset({("intent_0", 1.0)})) is states[0]
    # A fourth distinct state fills the table: it starts over and keeps the newcomer only.
    assert domain.shared_state(states[3]) is states[3]
    again = frozenset({("intent_0", 1.0)})
    assert domain.shared_state(again) is again
    assert domain.shared_state(frozenset({("intent_3", 1.0)})) is states[3]

def test_replay_equals_tracker_of_applied_events(domain):
    tracker = DialogueStateTracker.from_events("conv1", worked_example(), domain)
    clean = DialogueStateTracker.from_events("conv1", tracker.applied_events(), domain)
    assert clean.past_states() == tracker.past_states()
    ours, theirs = tracker.current_state(), clean.current_state()
    for key in ("latest_event_time",):
        ours.pop(key), theirs.pop(key)
    assert ours == theirs


def test_rewind_restores_pause_and_form_state(domain):
    events = [listen(), user("greet"), act("utter_greet"), ConversationPaused(),
              FollowupAction("my_action"), listen(), user("bye"), ConversationResumed(),
              Form("f"), UserUtteranceReverted()]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    assert tracker.paused is True
    assert tracker.active_form == {}
    assert tracker.followup_action == "my_action"


def test_undo_replay_keeps_reset_slots_and_slots(domain):
    events = [SlotSet("name", "Joe"), AllSlotsReset(), SlotSet("cuisine", "thai"),
              act("utter_greet"), SlotSet("ok", "yes"), act("my_action"), ActionReverted()]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    assert tracker.current_slot_values() == {"cuisine": "thai", "location": None,
                                             "name": None, "ok": "yes"}
    assert tracker.latest_action_name == "utter_greet"


# --------------------------------------------------------------------------- pause / followup

def test_pause_and_resume(domain):
    tracker = DialogueStateTracker("x", domain)
    tracker.update(ConversationPaused())
    assert tracker.paused and tracker.current_state()["paused"] is True
    tracker.update(listen())
    tracker.update(user("greet"))
    assert tracker.paused  # messages do not resume a paused conversation
    tracker.update(ConversationResumed())
    assert not tracker.paused and tracker.current_state()["paused"] is False


def test_restart_ends_pause(domain):
    tracker = DialogueStateTracker.from_events("x", [ConversationPaused(), Restarted()], domain)
    assert tracker.paused is False


def test_followup(domain):
    tracker = DialogueStateTracker.from_events("x", [listen(), user("greet")], domain)
    assert tracker.followup_action is None
    tracker.update(FollowupAction("utter_greet"))
    assert tracker.followup_action == "utter_greet"
    tracker.update(act("utter_greet"))
    assert tracker.followup_action is None


# --------------------------------------------------------------------------- forms

def test_form_lifecycle_on_active_form(form_domain):
    tracker = DialogueStateTracker("x", form_domain)
    tracker.update_many([listen(), regex_user("/start_form"), act("some_form"),
                         Form("some_form")])
    assert tracker.active_form == {"name": "some_form", "validate": True, "rejected": False}
    tracker.update_many([listen(), regex_user("/stop"), FormValidation(False)])
    assert tracker.active_form["validate"] is False
    tracker.update(ActionExecutionRejected("some_form", "policy_3_FormPolicy", 1.0))
    assert tracker.active_form == {"name": "some_form", "validate": False, "rejected": True}
    tracker.update(act("utter_ask_continue"))
    assert tracker.active_form == {"name": "some_form", "validate": True, "rejected": True}
    tracker.update_many([listen(), regex_user("/affirm"), act("some_form")])
    assert tracker.active_form == {"name": "some_form", "validate": True, "rejected": False}
    tracker.update(Form(None))
    assert tracker.active_form == {}
    assert tracker.current_state()["active_form"] == {}


def test_requested_slot_is_a_tracker_slot_with_forms(form_domain):
    tracker = DialogueStateTracker("x", form_domain)
    assert "requested_slot" in tracker.current_state()["slots"]
    tracker.update(SlotSet("requested_slot", "cuisine"))
    assert tracker.get_slot("requested_slot") == "cuisine"


# --------------------------------------------------------------------------- input channel

def test_latest_input_channel_is_newest_user_events_channel(domain):
    tracker = DialogueStateTracker("x", domain)
    tracker.update(user("greet", channel="rest"))
    tracker.update(act("utter_greet"))
    assert tracker.latest_input_channel() == "rest"
    assert tracker.current_state()["latest_input_channel"] == "rest"
    tracker.update(user("bye", channel="facebook"))
    assert tracker.latest_input_channel() == "facebook"


def test_latest_input_channel_is_not_last_non_null(domain):
    tracker = DialogueStateTracker.from_events(
        "x", [user("greet", channel="rest"), user("bye", channel=None)], domain)
    assert tracker.latest_input_channel() is None


def test_latest_input_channel_reads_reverted_messages(domain):
    events = [listen(), user("greet", channel="rest"), act("utter_greet"), listen(),
              user("bye", channel="slack"), UserUtteranceReverted()]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    assert tracker.latest_message.intent_name == "greet"
    assert tracker.latest_input_channel() == "slack"


def test_latest_input_channel_reads_events_before_restart(domain):
    tracker = DialogueStateTracker.from_events(
        "x", [user("greet", channel="rest"), Restarted(), listen()], domain)
    assert tracker.latest_input_channel() == "rest"


# --------------------------------------------------------------------------- time travel

def test_travel_back_in_time(domain):
    events = [listen(timestamp=1.0), user("greet", timestamp=2.0),
              act("my_action", timestamp=3.0), listen(timestamp=4.0)]
    tracker = DialogueStateTracker.from_events("conv7", events, domain)
    past = tracker.travel_back_in_time(2.0)
    assert len(past.events) == 2
    assert past.latest_action_name == "action_listen"
    assert len(past.past_states()) == 2
    assert past.latest_message.intent_name == "greet"
    # Deliberate difference: the real sender id is kept.
    assert past.sender_id == "conv7"
    assert past.current_state()["sender_id"] == "conv7"
    assert past.export_stories().splitlines()[0] == "## conv7"
    assert len(tracker.events) == 4


def test_travel_back_in_time_stops_at_first_later_event(domain):
    tracker = mood_tracker(domain)
    # The first event has the latest but one timestamp: nothing before 1000.31 survives.
    assert tracker.travel_back_in_time(1000.30).events == []
    assert len(tracker.travel_back_in_time(1000.31).events) == 3
    assert len(tracker.travel_back_in_time(1000.32).events) == 6
    assert len(tracker.travel_back_in_time(1000.33).events) == 7


def test_travel_back_before_everything(domain):
    tracker = DialogueStateTracker.from_events("x", [listen(timestamp=5.0)], domain)
    past = tracker.travel_back_in_time(1.0)
    assert past.events == []
    assert past.followup_action == "action_listen"


def test_copy_is_independent_and_keeps_sender(domain):
    tracker = DialogueStateTracker.from_events("conv1", worked_example(), domain)
    clone = tracker.copy()
    assert clone.sender_id == "conv1"
    assert clone == tracker
    assert clone.current_state(EventVerbosity.ALL) == tracker.current_state(EventVerbosity.ALL)
    clone.update(SlotSet("name", "Ann"))
    assert tracker.get_slot("name") == "Joe"
    assert len(tracker.events) == len(worked_example())


# --------------------------------------------------------------------------- rebuilding

def test_from_dicts_equals_incremental_build(domain):
    events = worked_example() + [ConversationPaused(), FollowupAction("utter_bye"),
                                 ReminderScheduled("my_action", __import__("datetime")
                                                   .datetime(2030, 1, 1), "r"),
                                 AgentUttered("human"), StoryExported()]
    incremental = DialogueStateTracker("conv1", domain)
    for event in events:
        incremental.update(event)
    dicts = json.loads(json.dumps(incremental.current_state(EventVerbosity.ALL)["events"]))
    rebuilt = DialogueStateTracker.from_dicts("conv1", dicts, domain)
    assert rebuilt == incremental
    for verbosity in EventVerbosity:
        assert rebuilt.current_state(verbosity) == incremental.current_state(verbosity)
    assert rebuilt.past_states() == incremental.past_states()
    assert rebuilt.training_examples() == incremental.training_examples()
    assert rebuilt.export_stories() == incremental.export_stories()


def test_from_dicts_with_form_conversation(form_domain):
    incremental = DialogueStateTracker.from_events("f", form_rejected_path(), form_domain)
    rebuilt = DialogueStateTracker.from_dicts(
        "f", incremental.current_state(EventVerbosity.ALL)["events"], form_domain)
    assert rebuilt.current_state(EventVerbosity.ALL) == incremental.current_state(
        EventVerbosity.ALL)
    assert rebuilt.past_states() == incremental.past_states()


def test_from_dicts_fails_before_changing_anything(domain):
    dicts = [listen().as_dict(), {"event": "slot", "name": "name", "value": "Joe"},
             {"event": "no_such_event"}]
    with pytest.raises(InvalidEvent, match="Event 2"):
        DialogueStateTracker.from_dicts("x", dicts, domain)


def test_from_dicts_does_not_add_a_listen(domain):
    tracker = DialogueStateTracker.from_dicts("x", [{"event": "slot", "name": "name",
                                                     "value": "Joe"}], domain)
    assert [e.type_name for e in tracker.events] == ["slot"]
    assert tracker.followup_action == "action_listen"


def test_tracker_equality(domain):
    one = DialogueStateTracker.from_events("a", four_events(), domain)
    assert one == DialogueStateTracker.from_events("a", four_events(), domain)
    assert one != DialogueStateTracker.from_events("b", four_events(), domain)
    assert one != DialogueStateTracker.from_events("a", four_events()[:3], domain)
    assert one != "a"


def test_read_moodbot_style_dump(domain):
    tracker = mood_tracker(domain)
    assert len(tracker.events) == 7
    assert tracker.latest_action_name == "action_listen"
    assert tracker.paused is False
    assert tracker.sender_id == "mysender"
    assert tracker.events[-1].timestamp == 1000.33
    state = tracker.current_state(EventVerbosity.AFTER_RESTART)
    assert state["events"] == mood_events()
    assert state["latest_message"] == mood_events()[4]["parse_data"]
    assert state["latest_event_time"] == 1000.33
    assert state["followup_action"] is None


def _load_fixture(relative):
    path = os.path.join(FIXTURES, relative)
    if not os.path.exists(path):
        pytest.skip("shared fixture {} is not available (no shared data folder)".format(path))
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_moodbot_fixture_dump_round_trips():
    dump = _load_fixture("test_trackers/tracker_moodbot.json")
    domain = Domain.from_yaml("slots:\n  name:\n    type: text\n")
    tracker = DialogueStateTracker.from_dicts(dump["sender_id"], dump["events"], domain)
    assert len(tracker.events) == 7
    assert tracker.latest_action_name == "action_listen"
    assert tracker.paused is False
    assert tracker.sender_id == "mysender"
    assert tracker.events[-1].timestamp == 1517821726.211042
    assert tracker.current_state(EventVerbosity.AFTER_RESTART) == dump


def test_moodbot_fixture_verbosities():
    dump = _load_fixture("test_trackers/tracker_moodbot.json")
    domain = Domain.from_yaml("slots:\n  name:\n    type: text\n")
    events = list(dump["events"])
    with_restart = events[:3] + [Restarted(timestamp=1517821726.2).as_dict()] + events[3:]
    tracker = DialogueStateTracker.from_dicts("mysender", with_restart, domain)
    assert tracker.current_state(EventVerbosity.AFTER_RESTART)["events"] == with_restart[4:]
    assert tracker.current_state(EventVerbosity.ALL)["events"] == with_restart
    plain = DialogueStateTracker.from_dicts("mysender", events, domain)
    assert plain.current_state(EventVerbosity.NONE)["events"] is None
    applied = list(events)
    applied.insert(1, {"event": "restart", "timestamp": 1517821726.2})
    applied.insert(7, {"event": "rewind", "timestamp": 1517821726.21})
    applied.insert(8, {"event": "undo", "timestamp": 1517821726.21})
    tracker = DialogueStateTracker.from_dicts("mysender", applied, domain)
    assert tracker.current_state(EventVerbosity.APPLIED)["events"] == [applied[2], applied[9]]


# --------------------------------------------------------------------------- queries

def test_entity_values(domain):
    tracker = DialogueStateTracker("x", domain)
    assert list(tracker.get_latest_entity_values("entity_name")) == []
    tracker.update(UserUttered("/greet", {"name": "greet", "confidence": 1.0},
                               [{"start": 1, "end": 5, "value": "greet",
                                 "entity": "entity_name", "extractor": "manual"}]))
    assert list(tracker.get_latest_entity_values("entity_name")) == ["greet"]
    assert list(tracker.get_latest_entity_values("unknown")) == []


def test_get_slot_unknown(domain):
    assert DialogueStateTracker("x", domain).get_slot("nope") is None


def test_get_last_event_for_and_last_executed_action(domain):
    events = [listen(), user("greet"), act("utter_greet"), act("my_action"), listen(),
              user("bye"), act("utter_bye"), ActionReverted(), act("my_action_2"), listen()]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    assert tracker.get_last_event_for(UserUttered).intent_name == "bye"
    assert tracker.get_last_event_for(ActionExecuted).action_name == "action_listen"
    assert tracker.get_last_event_for(ActionExecuted, ["action_listen"]).action_name == \
        "my_action_2"
    assert tracker.get_last_event_for(ActionExecuted, ["action_listen"], skip=1).action_name == \
        "my_action"
    assert tracker.get_last_event_for(Restarted) is None
    assert tracker.last_executed_action_has("my_action_2")
    assert not tracker.last_executed_action_has("utter_bye")  # undone
    assert tracker.last_executed_action_has("my_action", skip=1)


def test_story_strings_of_a_conversation(domain):
    events = [listen(), user("greet"), act("utter_greet"), BotUttered("hey there!"), listen(),
              user("greet"), listen()]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    assert [e.as_story_string() for e in tracker.events] == [
        "action_listen", "greet", "utter_greet", None, "action_listen", "greet",
        "action_listen"]


# --------------------------------------------------------------------------- story export

def test_export_stories_example(domain):
    tracker = DialogueStateTracker.from_events("conv1", worked_example(), domain)
    assert tracker.export_stories().splitlines() == [
        "## conv1",
        '* greet{"name": "Joe"}',
        '    - slot{"name": "Joe"}',
        "    - utter_greet",
        '* inform{"cuisine": "thai"}',
        '    - slot{"cuisine": "thai"}',
        "    - utter_bye",
    ]


def test_export_stories_e2e(domain):
    events = [listen(), regex_user("/greet"), act("utter_greet"), BotUttered("hi"), listen(),
              regex_user("/bye"), listen()]
    tracker = DialogueStateTracker.from_events("test_tracker_dump_e2e_story", events, domain)
    assert [line for line in tracker.export_stories(e2e=True).splitlines() if line.strip()] == [
        "## test_tracker_dump_e2e_story", "* greet: /greet", "    - utter_greet",
        "* bye: /bye"]


def test_export_stories_e2e_with_regex_entities(domain):
    tracker = DialogueStateTracker.from_events(
        "x", [listen(), regex_user('/greet{"name": "Joe"}'), act("utter_greet")], domain)
    assert tracker.export_stories(e2e=True).splitlines()[1] == \
        '* greet: /greet[{"name": "Joe"}](name:Joe)'
    assert tracker.export_stories().splitlines()[1] == '* greet{"name": "Joe"}'


def test_export_leaves_out_listen_bot_agent_and_form_bookkeeping(form_domain):
    events = [listen(), user("greet"), BotUttered("hi"), AgentUttered("human"),
              FormValidation(False), ActionExecutionRejected("some_form"), act("utter_greet"),
              listen()]
    tracker = DialogueStateTracker.from_events("x", events, form_domain)
    assert tracker.export_stories().splitlines() == ["## x", "* greet", "    - utter_greet"]


def test_export_writes_event_lines(domain):
    events = [listen(), user("greet"), FollowupAction("utter_greet"), act("utter_greet"),
              ConversationPaused(), ConversationResumed(), AllSlotsReset(), StoryExported(),
              Form("some_form"), Form(None),
              ReminderScheduled("my_action", __import__("datetime").datetime(2030, 1, 2, 3, 4),
                                "rem", False)]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    assert tracker.export_stories().splitlines() == [
        "## x", "* greet", '    - followup{"name": "utter_greet"}', "    - utter_greet",
        "    - pause", "    - resume", "    - reset_slots", "    - export",
        '    - form{"name": "some_form"}', '    - form{"name": null}',
        '    - reminder{"action": "my_action", "date_time": "2030-01-02T03:04:00", '
        '"name": "rem", "kill_on_user_msg": false}',
    ]


def test_export_only_after_restart_and_without_reverted(domain):
    events = [listen(), user("bye"), act("utter_bye"), Restarted(), listen(), user("greet"),
              act("utter_greet"), act("my_action"), ActionReverted(), listen(), user("bye"),
              UserUtteranceReverted()]
    tracker = DialogueStateTracker.from_events("x", events, domain)
    assert tracker.export_stories().splitlines() == ["## x", "* greet", "    - utter_greet"]


def test_export_reminder_user_event_without_intent(domain):
    tracker = DialogueStateTracker.from_events("x", [UserUttered(None), act("my_action")],
                                               domain)
    assert tracker.export_stories().splitlines() == ["## x", "* None", "    - my_action"]


def test_export_empty_tracker(domain):
    assert DialogueStateTracker("x", domain).export_stories().splitlines() == ["## x"]


def test_export_form_happy_path_prefixes_form_turns(form_domain):
    tracker = DialogueStateTracker.from_events("form", form_happy_path(), form_domain)
    assert tracker.export_stories().splitlines() == [
        "## form",
        "* start_form",
        "    - some_form",
        '    - form{"name": "some_form"}',
        '    - slot{"requested_slot": "cuisine"}',
        '* form: inform{"cuisine": "thai"}',
        "    - form: some_form",
        '    - slot{"cuisine": "thai"}',
        '    - slot{"requested_slot": "location"}',
        '* form: inform{"location": "paris"}',
        "    - form: some_form",
        '    - slot{"location": "paris"}',
        '    - form{"name": null}',
        '    - slot{"requested_slot": null}',
    ]


def test_export_form_happy_path_e2e(form_domain):
    lines = DialogueStateTracker.from_events(
        "form", form_happy_path(), form_domain).export_stories(e2e=True).splitlines()
    assert lines[1] == "* start_form: /start_form"
    assert lines[5] == '* form: inform: /inform[{"cuisine": "thai"}](cuisine:thai)'
    assert lines[6] == "    - form: some_form"
    assert lines[9] == '* form: inform: /inform[{"location": "paris"}](location:paris)'


def test_export_form_rejected_turn_has_no_prefix(form_domain):
    tracker = DialogueStateTracker.from_events("form", form_rejected_path(), form_domain)
    assert tracker.export_stories().splitlines() == [
        "## form",
        "* start_form",
        "    - some_form",
        '    - form{"name": "some_form"}',
        '    - slot{"requested_slot": "cuisine"}',
        "* stop",
        "    - utter_ask_continue",
        "* deny",
        "    - action_deactivate_form",
        '    - form{"name": null}',
        '    - slot{"requested_slot": null}',
    ]


def test_export_form_rejected_then_resumed(form_domain):
    events = form_rejected_path()[:10] + [regex_user("/affirm"), act("some_form"),
                                          SlotSet("cuisine", "thai"), listen(),
                                          regex_user('/inform{"location": "rome"}'),
                                          act("some_form")]
    lines = DialogueStateTracker.from_events("f", events, form_domain).export_stories() \
        .splitlines()
    # After the rejection the user agrees to continue: that turn is not form-handled ...
    assert "* affirm" in lines
    assert "    - some_form" in lines[lines.index("* affirm"):]
    # ... the next answer is.
    assert '* form: inform{"location": "rome"}' in lines
    assert lines[-1] == "    - form: some_form"


# --------------------------------------------------------------------------- past states

def test_past_states_worked_example(domain):
    tracker = DialogueStateTracker.from_events("conv1", worked_example(), domain)
    assert state_names(tracker) == [
        [],
        ["entity_name", "intent_greet", "prev_action_listen", "slot_name_0"],
        ["entity_name", "intent_greet", "prev_utter_greet", "slot_name_0"],
        ["intent_inform", "prev_action_listen", "slot_cuisine_0", "slot_name_0"],
        ["intent_inform", "prev_utter_bye", "slot_cuisine_0", "slot_name_0"],
    ]
    for state in tracker.past_states():
        assert all(value == 1.0 for _, value in state)


def test_past_states_fresh_tracker(domain):
    assert DialogueStateTracker("x", domain).past_states() == [frozenset()]


def test_past_states_count_is_actions_plus_one(domain):
    tracker = DialogueStateTracker.from_events("x", four_events(), domain)
    assert len(tracker.past_states()) == 4
    tracker.update(user("bye"))
    assert len(tracker.past_states()) == 4
    tracker.update(act("utter_bye"))
    assert len(tracker.past_states()) == 5


def test_past_states_are_binary_on_top_intent(domain):
    tracker = mood_tracker(domain)
    final = dict(tracker.past_states()[-1])
    assert final == {"intent_mood_great": 1.0, "prev_action_listen": 1.0}


def test_past_states_ignore_unknown_actions(domain):
    tracker = DialogueStateTracker.from_events("x", [listen(), user("greet"),
                                                     act("not_in_domain")], domain)
    assert names(tracker.past_states()[-1]) == ["intent_greet"]


def test_past_states_form_happy_path_omits_form_turns(form_domain):
    tracker = DialogueStateTracker.from_events("form", form_happy_path(), form_domain)
    assert state_names(tracker) == [
        [],
        ["intent_start_form", "prev_action_listen"],
        ["intent_start_form", "prev_some_form", "slot_cuisine_0", "slot_location_0"],
        ["intent_start_form", "prev_action_listen", "slot_cuisine_0", "slot_location_0"],
    ]


def test_past_states_of_happy_path_equal_its_story(form_domain):
    """The form-handled turns leave no trace: the states match the story without them."""
    story = [listen(), regex_user("/start_form"), act("some_form"), Form("some_form"),
             SlotSet("requested_slot", "cuisine"), SlotSet("cuisine", "thai"),
             SlotSet("requested_slot", "location"), SlotSet("location", "paris"), Form(None),
             SlotSet("requested_slot", None), listen()]
    from_story = DialogueStateTracker.from_events("s", story, form_domain)
    from_conversation = DialogueStateTracker.from_events("c", form_happy_path(), form_domain)
    assert from_conversation.past_states() == from_story.past_states()


def test_past_states_during_a_form_turn(form_domain):
    events = form_happy_path()
    # After the user answered the form's question, the open turn is left to the form.
    tracker = DialogueStateTracker.from_events("f", events[:7], form_domain)
    assert state_names(tracker) == [[], ["intent_start_form", "prev_action_listen"]]
    # After the form handled it, still nothing new.
    tracker = DialogueStateTracker.from_events("f", events[:11], form_domain)
    assert state_names(tracker) == [[], ["intent_start_form", "prev_action_listen"]]


def test_past_states_form_rejected_turn_is_included(form_domain):
    tracker = DialogueStateTracker.from_events("f", form_rejected_path(), form_domain)
    assert state_names(tracker) == [
        [],
        ["intent_start_form", "prev_action_listen"],
        ["active_form_some_form", "intent_start_form", "prev_some_form"],
        ["active_form_some_form", "intent_stop", "prev_action_listen"],
        ["active_form_some_form", "intent_stop", "prev_utter_ask_continue"],
        ["active_form_some_form", "intent_deny", "prev_action_listen"],
        ["intent_start_form", "prev_action_deactivate_form"],
        ["intent_start_form", "prev_action_listen"],
    ]


def test_past_states_right_after_rejection(form_domain):
    tracker = DialogueStateTracker.from_events("f", form_rejected_path()[:8], form_domain)
    assert state_names(tracker)[-2:] == [
        ["active_form_some_form", "intent_start_form", "prev_some_form"],
        ["active_form_some_form", "intent_stop", "prev_action_listen"],
    ]


def test_past_states_rejected_form_run_again_after_listen(form_domain):
    # After a rejection the bot listens and then runs the form again: the turn is not a
    # form-handled one (the form was rejected), so its states are kept.
    events = [listen(), regex_user("/start_form"), act("some_form"), Form("some_form"),
              listen(), regex_user("/stop"), ActionExecutionRejected("some_form"), listen(),
              regex_user("/affirm"), act("some_form")]
    tracker = DialogueStateTracker.from_events("f", events, form_domain)
    assert state_names(tracker) == [
        [],
        ["intent_start_form", "prev_action_listen"],
        ["active_form_some_form", "intent_start_form", "prev_some_form"],
        ["active_form_some_form", "intent_stop", "prev_action_listen"],
        ["active_form_some_form", "intent_affirm", "prev_action_listen"],
    ]
    # The form ran again and is active: the new turn is the form's to decide, so the current
    # state is not shown.
    assert tracker.active_form["rejected"] is False


def test_form_event_features_the_message_before_the_form(form_domain):
    events = [listen(), regex_user("/start_form"), act("some_form"), Form("some_form")]
    tracker = DialogueStateTracker.from_events("f", events, form_domain)
    tracker.update_many([listen(), regex_user("/stop"), act("utter_ask_continue")])
    # An interruption: the held listen state and this turn are both emitted, and the
    # current state follows them.
    assert state_names(tracker)[-3:] == [
        ["active_form_some_form", "intent_start_form", "prev_some_form"],
        ["active_form_some_form", "intent_stop", "prev_action_listen"],
        ["active_form_some_form", "intent_stop", "prev_utter_ask_continue"],
    ]


def _form_events(name):
    return {"worked": worked_example(), "happy": form_happy_path(),
            "rejected": form_rejected_path(), "happy_open": form_happy_path()[:7],
            "just_rejected": form_rejected_path()[:8]}[name]


@pytest.mark.parametrize("events_name", ["worked", "happy", "rejected", "happy_open",
                                         "just_rejected"])
def test_last_states_match_past_states(events_name, form_domain):
    events = _form_events(events_name)
    tracker = DialogueStateTracker.from_events("x", events, form_domain)
    past = tracker.past_states()
    for n in range(0, len(past) + 3):
        expected = past[-n:] if n > 0 else []
        assert tracker.last_states(n) == expected, n


@pytest.mark.parametrize("events_name", ["worked", "happy", "rejected", "happy_open",
                                         "just_rejected"])
def test_last_windows_are_padded_past_states_event_after_event(events_name, form_domain):
    events = _form_events(events_name)
    tracker = DialogueStateTracker("x", form_domain)
    for event in events:
        tracker.update(event)
        past = tracker.past_states()
        for n in (0, 1, 3, 5, len(past) + 2):
            expected = tuple([None] * (n - len(past)) + past[-n:]) if n > 0 else ()
            assert tracker.last_window(n) == expected, (event, n)
            assert tracker.last_window(n) is tracker.last_window(n)  # remembered


def test_states_read_between_events_never_go_stale(domain, form_domain):
    """A tracker whose states are read after every event (as predictions do) records the same
    history as one nobody reads, rewinds, undos and restarts included."""
    conversations = [
        (domain, worked_example()),
        (domain, [listen(), user("greet"), act("my_action_1"), listen(), user("bye"),
                  act("my_action_2"), listen(), UserUtteranceReverted(), act("utter_greet"),
                  listen()]),
        (domain, [listen(), user("greet"), act("utter_greet"), SlotSet("name", "Joe"),
                  act("my_action"), ActionReverted(), act("utter_greet"), listen()]),
        (domain, [listen(), user("greet"), act("utter_greet"), Restarted(), listen(),
                  user("bye"), act("utter_greet")]),
        (form_domain, form_happy_path()), (form_domain, form_rejected_path()),
    ]
    for d, events in conversations:
        read, unread = DialogueStateTracker("x", d), DialogueStateTracker("x", d)
        for event in events:
            read.update(event)
            unread.update(event)
            read.past_states()
            read.last_window(3)
        assert read.training_examples() == unread.training_examples()
        assert read.past_states() == unread.past_states()
        assert read.last_window(3) == \
            DialogueStateTracker.from_events("x", events, d).last_window(3)


def test_a_domain_switch_forgets_remembered_states(domain):
    tracker = DialogueStateTracker.from_events("conv1", worked_example()[:3], domain)
    before = tracker.last_window(3)
    other = Domain.from_yaml(DOMAIN_YAML.replace("  - greet\n", "  - greet\n  - hello\n", 1))
    switched = tracker.switch_domain(other)
    assert switched is tracker  # no replay: nothing mentions "hello"
    replayed = DialogueStateTracker.from_events("conv1", worked_example()[:3], other)
    assert switched.last_window(3) == replayed.last_window(3)
    assert switched.last_window(3) is not before


def test_training_examples_label_each_recorded_state(domain):
    tracker = DialogueStateTracker.from_events("conv1", worked_example(), domain)
    states, actions = tracker.training_examples()
    assert states == tracker.past_states()[:-1]
    assert [name for name, _ in actions] == ["action_listen", "utter_greet", "action_listen",
                                             "utter_bye"]
    assert all(flag for _, flag in actions)


# --------------------------------------------------------------------------- with_domain

def test_with_domain(domain):
    tracker = DialogueStateTracker.from_events(
        "conv1", [listen(), user("greet"), SlotSet("name", "Joe"), SlotSet("ok", "yes"),
                  act("utter_greet")], domain)
    other = Domain.from_yaml("""
intents: [greet]
slots:
  name: {type: text}
  mood: {type: categorical, values: [happy, sad], initial_value: happy}
actions: [utter_greet]
""")
    moved = tracker.with_domain(other)
    assert moved.domain is other
    assert moved.sender_id == "conv1"
    assert moved.events == tracker.events
    assert moved.current_slot_values() == {"mood": "happy", "name": "Joe"}
    assert moved.latest_action_name == "utter_greet"
    assert names(moved.past_states()[-1]) == ["intent_greet", "prev_utter_greet",
                                              "slot_mood_0", "slot_name_0"]
    # The original is unchanged.
    assert tracker.current_slot_values()["ok"] == "yes"
    assert tracker.domain is domain


def test_switch_domain_skips_the_replay_when_only_templates_differ(domain):
    tracker = DialogueStateTracker.from_events(
        "conv1", [listen(), user("greet"), SlotSet("name", "Joe"), act("utter_greet")], domain)
    import yaml
    data = yaml.safe_load(domain.as_yaml())
    data["templates"] = {"utter_greet": [{"text": "hello again"}]}
    retrained = Domain.from_yaml(yaml.safe_dump(data))
    assert retrained.templates != domain.templates
    switched = tracker.switch_domain(retrained)
    assert switched is tracker and switched.domain is retrained
    assert switched.current_slot_values()["name"] == "Joe"


def test_switch_domain_rereads_when_the_slots_differ(domain):
    tracker = DialogueStateTracker.from_events(
        "conv1", [listen(), user("greet"), SlotSet("name", "Joe")], domain)
    other = Domain.from_yaml("""
intents: [greet]
slots:
  name: {type: text}
  mood: {type: categorical, values: [happy, sad], initial_value: happy}
""")
    switched = tracker.switch_domain(other)
    assert switched is not tracker and switched.domain is other
    assert switched.current_slot_values() == {"mood": "happy", "name": "Joe"}
    assert tracker.domain is domain


# A conversation that names the slot "name", the actions utter_greet and action_custom and
# the intents greet and inform (with an entity).
SWITCH_EVENTS = [listen(), user("greet"), act("utter_greet"), listen(),
                 user("inform", {"cuisine": "thai"}), SlotSet("name", "Joe"),
                 act("action_custom"), listen()]


def _variant(domain, edit):
    import yaml
    data = yaml.safe_load(domain.as_yaml())
    edit(data)
    return Domain.from_yaml(yaml.safe_dump(data))


def _add_slot(name, **spec):
    return lambda d: d["slots"].update({name: dict({"type": "rasa_core.slots.TextSlot"}, **spec)})


def _drop_slot(name):
    return lambda d: d["slots"].pop(name)


def _add_action(name):
    return lambda d: d["actions"].append(name)


def _drop_action(name):
    return lambda d: d["actions"].remove(name)


def _intent_entities(name, use):
    def edit(d):
        d["intents"] = [{name: {"use_entities": use}} if name in item else item
                        for item in d["intents"]]
    return edit


@pytest.mark.parametrize("edit, replays", [
    (lambda d: None, False),
    (lambda d: d["config"].update({"store_entities_as_slots": False}), False),
    (_add_slot("marker", type="rasa_core.slots.UnfeaturizedSlot"), False),
    (_add_slot("unset_text"), False),                       # featurizes to 0 while unset
    (_add_slot("preset", initial_value="x"), True),         # a feature in every state
    (_add_slot("name2", initial_value=None), False),
    (_drop_slot("ok"), False),                               # never set: nothing to replay
    (_drop_slot("name"), True),                              # set by an event
    (lambda d: d["slots"].update({"name": {"type": "rasa_core.slots.BooleanSlot"}}), True),
    (lambda d: d["slots"].update({"ok": {"type": "rasa_core.slots.BooleanSlot"}}), False),
    (_add_action("utter_new"), False),
    (_drop_action("utter_bye"), False),
    (_drop_action("utter_greet"), True),                     # its prev_ feature goes
    (_intent_entities("inform", True), True),                # its entity becomes a feature
    (_intent_entities("greet", False), True),                # named: replayed to be sure
    (_intent_entities("bye", True), False),                  # not named
])
def test_switch_domain_reads_like_a_full_replay(domain, edit, replays):
    other = _variant(domain, edit)
    tracker = DialogueStateTracker.from_events("conv1", list(SWITCH_EVENTS), domain)
    expected = tracker.with_domain(other)
    switched = tracker.switch_domain(other)
    assert (switched is not tracker) == replays
    assert switched.domain is other
    assert switched.current_state(EventVerbosity.ALL) == expected.current_state(
        EventVerbosity.ALL)
    assert list(switched.current_slot_values()) == list(expected.current_slot_values())
    assert switched.past_states() == expected.past_states()
    assert switched.training_examples() == expected.training_examples()
    # And it goes on as a replayed tracker would.
    for t in (switched, expected):
        t.update_many([user("bye"), SlotSet("ok", "yes"), act("utter_bye")])
    assert switched.past_states() == expected.past_states()
    assert switched.current_slot_values() == expected.current_slot_values()


def test_switch_domain_there_and_back_keeps_slot_values(domain):
    other = _variant(domain, _add_slot("marker", type="rasa_core.slots.UnfeaturizedSlot"))
    tracker = DialogueStateTracker.from_events("conv1", list(SWITCH_EVENTS), domain)
    assert tracker.switch_domain(other) is tracker
    assert "marker" in tracker.current_slot_values()
    assert tracker.switch_domain(domain) is tracker
    assert tracker.current_slot_values() == DialogueStateTracker.from_events(
        "conv1", list(SWITCH_EVENTS), domain).current_slot_values()
    # Once an event names the slot the other domain adds, switching there replays.
    tracker.update(SlotSet("marker", "seen"))
    moved = tracker.switch_domain(other)
    assert moved is not tracker and moved.get_slot("marker") == "seen"


def test_reading_changes_are_computed_once_per_pair_of_domains(domain):
    other = _variant(domain, _add_action("utter_new"))
    first = domain.reading_changes(other)
    assert first == frozenset({("action", "utter_new")})
    assert domain.reading_changes(other) is first
    assert other.reading_changes(domain) == first

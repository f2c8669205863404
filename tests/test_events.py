"""Tests for coreactors.dialogue.events: wire form, story lines, equality and tracker effects.

The expected behaviour is the Rasa Core 0.12 event contract (see the semantics note, section 1),
with our deliberate differences: malformed events raise ``InvalidEvent`` (a ValueError) with a
clear message, a ``user`` event without ``parse_data`` is accepted, and ``export`` never writes
files.
"""

import copy
import datetime
import json

import pytest

from coreactors.dialogue import events as events_module
from coreactors.dialogue.domain import Domain
from coreactors.dialogue.events import (
    ActionExecuted, ActionExecutionRejected, ActionReverted, AgentUttered, AllSlotsReset,
    BotUttered, ConversationPaused, ConversationResumed, Event, FollowupAction, Form,
    FormValidation, InvalidEvent, ReminderScheduled, Restarted, SlotSet, StoryExported,
    UserUttered, UserUtteranceReverted, event_from_dict, events_as_dicts, events_from_dicts)
from coreactors.dialogue.tracker import DialogueStateTracker

# --------------------------------------------------------------------------- helpers

DOMAIN_YAML = """
intents:
  - greet
  - inform
entities:
  - name
slots:
  name:
    type: text
  mood:
    type: text
    initial_value: happy
actions:
  - utter_greet
  - my_action
forms:
  - some_form
"""


@pytest.fixture
def domain():
    return Domain.from_yaml(DOMAIN_YAML, "events-test-domain.yml")


@pytest.fixture
def tracker(domain):
    return DialogueStateTracker("sender-1", domain)


GREET_PARSE = {
    "text": '/greet{"name": "Joe"}',
    "intent": {"name": "greet", "confidence": 1.0},
    "intent_ranking": [{"name": "greet", "confidence": 1.0}],
    "entities": [{"entity": "name", "start": 6, "end": 21, "value": "Joe"}],
}

REMINDER_TIME = datetime.datetime(2018, 9, 3, 11, 41, 10, 128172)
REMINDER_TIME_TZ = datetime.datetime(2018, 9, 3, 11, 41, 10, 128172,
                                     tzinfo=datetime.timezone(datetime.timedelta(hours=-5)))


def all_event_examples():
    """One (or more) instance of every event type, each with an explicit timestamp."""
    return [
        UserUttered('/greet{"name": "Joe"}', GREET_PARSE["intent"], GREET_PARSE["entities"],
                    GREET_PARSE, timestamp=100.5, input_channel="rest"),
        UserUttered("hello", {"name": "greet", "confidence": 0.9}, [], timestamp=101.0),
        BotUttered("Hey!", {"elements": None, "buttons": [{"title": "a", "payload": "/a"}],
                            "attachment": None}, timestamp=102.0),
        BotUttered("plain", timestamp=102.5),
        AgentUttered("from a human", {"x": 1}, timestamp=103.0),
        SlotSet("name", "Joe", timestamp=104.0),
        SlotSet("name", [1, "2", None, {"a": 1}], timestamp=104.5),
        Restarted(timestamp=105.0),
        UserUtteranceReverted(timestamp=106.0),
        ActionReverted(timestamp=107.0),
        AllSlotsReset(timestamp=108.0),
        ReminderScheduled("my_action", REMINDER_TIME, name="my_reminder",
                          kill_on_user_message=True, timestamp=109.0),
        ReminderScheduled("my_action", REMINDER_TIME_TZ, name="tz_reminder",
                          kill_on_user_message=False, timestamp=109.5),
        StoryExported(timestamp=110.0),
        FollowupAction("my_action", timestamp=111.0),
        ConversationPaused(timestamp=112.0),
        ConversationResumed(timestamp=113.0),
        ActionExecuted("my_action", "policy_1_KerasPolicy", 0.8, timestamp=114.0),
        ActionExecuted("action_listen", timestamp=114.5),
        Form("some_form", timestamp=115.0),
        Form(None, timestamp=115.5),
        FormValidation(False, timestamp=116.0),
        FormValidation(True, timestamp=116.5),
        ActionExecutionRejected("some_form", "policy_3_FormPolicy", 1.0, timestamp=117.0),
        ActionExecutionRejected("some_form", timestamp=117.5),
    ]


def example_id(event):
    return "{}-{}".format(event.type_name, event.timestamp)


# --------------------------------------------------------------------------- type names

def test_every_event_type_is_registered_with_its_wire_name():
    assert {name: cls.__name__ for name, cls in events_module.EVENT_TYPES.items()} == {
        "user": "UserUttered", "bot": "BotUttered", "agent": "AgentUttered",
        "slot": "SlotSet", "restart": "Restarted", "rewind": "UserUtteranceReverted",
        "undo": "ActionReverted", "reset_slots": "AllSlotsReset",
        "reminder": "ReminderScheduled", "export": "StoryExported", "followup": "FollowupAction",
        "pause": "ConversationPaused", "resume": "ConversationResumed",
        "action": "ActionExecuted", "form": "Form", "form_validation": "FormValidation",
        "action_execution_rejected": "ActionExecutionRejected",
    }


def test_examples_cover_every_event_type():
    assert {e.type_name for e in all_event_examples()} == set(events_module.EVENT_TYPES)


# --------------------------------------------------------------------------- as_dict shapes

@pytest.mark.parametrize("event, expected", [
    (UserUttered("hi", {"name": "greet", "confidence": 0.9}, [], timestamp=1.5,
                 input_channel="rest"),
     {"event": "user", "timestamp": 1.5, "text": "hi",
      "parse_data": {"intent": {"name": "greet", "confidence": 0.9}, "entities": [],
                     "text": "hi"},
      "input_channel": "rest"}),
    (BotUttered("Hey!", {"elements": None, "buttons": None, "attachment": None},
                timestamp=1.5),
     {"event": "bot", "timestamp": 1.5, "text": "Hey!",
      "data": {"elements": None, "buttons": None, "attachment": None}}),
    (AgentUttered("hi", None, timestamp=1.5),
     {"event": "agent", "timestamp": 1.5, "text": "hi", "data": None}),
    (SlotSet("cuisine", "thai", timestamp=1.5),
     {"event": "slot", "timestamp": 1.5, "name": "cuisine", "value": "thai"}),
    (Restarted(timestamp=1.5), {"event": "restart", "timestamp": 1.5}),
    (UserUtteranceReverted(timestamp=1.5), {"event": "rewind", "timestamp": 1.5}),
    (ActionReverted(timestamp=1.5), {"event": "undo", "timestamp": 1.5}),
    (AllSlotsReset(timestamp=1.5), {"event": "reset_slots", "timestamp": 1.5}),
    (ReminderScheduled("my_action", REMINDER_TIME, "my_reminder", True, timestamp=1.5),
     {"event": "reminder", "timestamp": 1.5, "action": "my_action",
      "date_time": "2018-09-03T11:41:10.128172", "name": "my_reminder",
      "kill_on_user_msg": True}),
    (StoryExported(timestamp=1.5), {"event": "export", "timestamp": 1.5}),
    (FollowupAction("my_action", timestamp=1.5),
     {"event": "followup", "timestamp": 1.5, "name": "my_action"}),
    (ConversationPaused(timestamp=1.5), {"event": "pause", "timestamp": 1.5}),
    (ConversationResumed(timestamp=1.5), {"event": "resume", "timestamp": 1.5}),
    (ActionExecuted("utter_greet", "policy_1_MemoizationPolicy", 1.0, timestamp=1.5),
     {"event": "action", "timestamp": 1.5, "name": "utter_greet",
      "policy": "policy_1_MemoizationPolicy", "confidence": 1.0}),
    (ActionExecuted("action_listen", timestamp=1.5),
     {"event": "action", "timestamp": 1.5, "name": "action_listen", "policy": None,
      "confidence": None}),
    (Form("restaurant_form", timestamp=1.5),
     {"event": "form", "timestamp": 1.5, "name": "restaurant_form"}),
    (Form(None, timestamp=1.5), {"event": "form", "timestamp": 1.5, "name": None}),
    (FormValidation(False, timestamp=1.5),
     {"event": "form_validation", "timestamp": 1.5, "validate": False}),
    (ActionExecutionRejected("restaurant_form", "policy_3_FormPolicy", 1.0, timestamp=1.5),
     {"event": "action_execution_rejected", "timestamp": 1.5, "name": "restaurant_form",
      "policy": "policy_3_FormPolicy", "confidence": 1.0}),
], ids=lambda x: x.type_name if isinstance(x, Event) else "")
def test_as_dict_has_exactly_the_rasa_keys(event, expected):
    assert event.as_dict() == expected
    # Key order follows Rasa: "event" and "timestamp" first.
    assert list(event.as_dict())[:2] == ["event", "timestamp"]


def test_user_as_dict_does_not_serialise_message_id():
    event = UserUttered("hi", {"name": "greet"}, [], message_id="abc", timestamp=3.0)
    assert "message_id" not in event.as_dict()


def test_export_as_dict_has_no_path():
    assert StoryExported(timestamp=2.0).as_dict() == {"event": "export", "timestamp": 2.0}


def test_user_keeps_extra_parse_data_keys_verbatim():
    parse_data = {"intent": {"name": "greet", "confidence": 0.7}, "entities": [],
                  "text": "hi", "project": "default", "model": "m1",
                  "intent_ranking": [{"name": "greet", "confidence": 0.7}]}
    event = event_from_dict({"event": "user", "text": "hi", "parse_data": parse_data})
    assert event.parse_data == parse_data
    assert event.as_dict()["parse_data"] == parse_data


# --------------------------------------------------------------------------- round trip

@pytest.mark.parametrize("event", all_event_examples(), ids=example_id)
def test_json_round_trip_is_exact(event):
    as_dict = event.as_dict()
    recovered = event_from_dict(as_dict)
    assert type(recovered) is type(event)
    assert recovered.as_dict() == as_dict
    assert recovered == event
    assert hash(recovered) == hash(event)


@pytest.mark.parametrize("event", all_event_examples(), ids=example_id)
def test_round_trip_through_json_text(event):
    wire = json.dumps(event.as_dict())
    recovered = event_from_dict(json.loads(wire))
    assert json.dumps(recovered.as_dict()) == wire
    assert recovered == event


@pytest.mark.parametrize("event", all_event_examples(), ids=example_id)
def test_round_trip_keeps_the_timestamp(event):
    assert event_from_dict(event.as_dict()).timestamp == event.timestamp


def test_round_trip_of_a_list():
    examples = all_event_examples()
    dicts = events_as_dicts(examples)
    recovered = events_from_dicts(dicts)
    assert [e.as_dict() for e in recovered] == dicts
    assert recovered == examples


def test_reminder_round_trip_keeps_timezone_and_fields():
    event = ReminderScheduled("my_action", REMINDER_TIME_TZ, name="r", kill_on_user_message=False)
    recovered = event_from_dict(event.as_dict())
    assert recovered.trigger_date_time == REMINDER_TIME_TZ
    assert recovered.trigger_date_time.utcoffset() == datetime.timedelta(hours=-5)
    assert recovered.action_name == "my_action"
    assert recovered.name == "r"
    assert recovered.kill_on_user_message is False


def test_action_round_trip_keeps_policy_and_confidence():
    recovered = event_from_dict(ActionExecuted("a", "policy_0_X", 0.25, timestamp=9.0).as_dict())
    assert (recovered.action_name, recovered.policy, recovered.confidence) == (
        "a", "policy_0_X", 0.25)


def test_rejected_round_trip_keeps_policy_and_confidence():
    original = ActionExecutionRejected("f", "policy_3_FormPolicy", 0.5, timestamp=9.0)
    recovered = event_from_dict(original.as_dict())
    assert (recovered.action_name, recovered.policy, recovered.confidence) == (
        "f", "policy_3_FormPolicy", 0.5)


# --------------------------------------------------------------------------- equality and hash

# (event, a different event of the same type) as in Rasa's own event tests
EQUALITY_PAIRS = [
    (UserUttered("/greet", {"name": "greet", "confidence": 1.0}, []),
     UserUttered("/goodbye", {"name": "goodbye", "confidence": 1.0}, [])),
    (SlotSet("my_slot", "value"), SlotSet("my__other_slot", "value")),
    (SlotSet("my_slot", "value"), SlotSet("my_slot", "other value")),
    (Restarted(), None),
    (AllSlotsReset(), None),
    (ConversationPaused(), None),
    (ConversationResumed(), None),
    (StoryExported(), None),
    (ActionReverted(), None),
    (UserUtteranceReverted(), None),
    (ActionExecuted("my_action"), ActionExecuted("my_other_action")),
    (FollowupAction("my_action"), FollowupAction("my_other_action")),
    (BotUttered("my_text", {"my_data": 1}), BotUttered("my_other_test", {"my_other_data": 1})),
    (AgentUttered("my_text", "my_data"), AgentUttered("my_other_test", "my_other_data")),
    (ReminderScheduled("my_action", datetime.datetime.now()),
     ReminderScheduled("my_other_action", datetime.datetime.now())),
    (Form("my_form"), Form("other_form")),
    (Form("my_form"), Form(None)),
    (FormValidation(True), None),
    (ActionExecutionRejected("my_form"), ActionExecutionRejected("other_form")),
]


@pytest.mark.parametrize("one, other", EQUALITY_PAIRS,
                         ids=lambda x: x.type_name if isinstance(x, Event) else "none")
def test_equality_hash_and_repr_contract(one, other):
    assert one == copy.deepcopy(one)
    assert not one != copy.deepcopy(one)
    assert hash(one) == hash(copy.deepcopy(one))
    assert one != 42
    assert one != "x"
    assert one is not None and one != None  # noqa: E711
    if other is not None:
        assert one != other
        assert other != one
        assert hash(one) != hash(other)
    assert "object at 0x" not in str(one)
    assert "object at 0x" not in repr(one)


def test_simple_events_equal_any_event_of_their_class():
    for cls in (Restarted, UserUtteranceReverted, ActionReverted, AllSlotsReset,
                StoryExported, ConversationPaused, ConversationResumed):
        assert cls(timestamp=1.0) == cls(timestamp=2.0)
        assert hash(cls(timestamp=1.0)) == hash(cls(timestamp=2.0))
    assert FormValidation(True) == FormValidation(False)


def test_different_classes_are_never_equal():
    assert Restarted() != ConversationPaused()
    assert ConversationPaused() != ConversationResumed()
    assert UserUtteranceReverted() != ActionReverted()
    assert ActionExecuted("some_form") != ActionExecutionRejected("some_form")
    assert ActionExecuted("my_action") != FollowupAction("my_action")


def test_action_events_compare_by_name_only():
    assert ActionExecuted("a", "policy_1", 0.3, timestamp=1.0) == ActionExecuted("a", "p2", 1.0)
    assert hash(ActionExecuted("a", "policy_1", 0.3)) == hash(ActionExecuted("a"))


def test_reminders_compare_by_name_only():
    one = ReminderScheduled("a", REMINDER_TIME, name="same")
    two = ReminderScheduled("b", REMINDER_TIME_TZ, name="same", kill_on_user_message=False)
    assert one == two
    assert hash(one) == hash(two)
    assert ReminderScheduled("a", REMINDER_TIME) != ReminderScheduled("a", REMINDER_TIME)


def test_user_equality_includes_parse_data():
    base = UserUttered("hi", {"name": "greet", "confidence": 1.0}, [])
    assert base == UserUttered("hi", {"name": "greet", "confidence": 1.0}, [])
    assert base != UserUttered("hi", {"name": "greet", "confidence": 0.5}, [])
    assert base != UserUttered("hi", {"name": "greet", "confidence": 1.0},
                               [{"entity": "name", "value": "x"}])
    with_extra = UserUttered("hi", {"name": "greet", "confidence": 1.0}, [],
                             {"intent": {"name": "greet", "confidence": 1.0}, "entities": [],
                              "text": "hi", "model": "m"})
    assert base != with_extra


def test_events_with_unhashable_data_are_hashable():
    assert hash(BotUttered("t", {"buttons": [{"title": "a"}]})) == hash(
        BotUttered("t", {"buttons": [{"title": "a"}]}))
    assert hash(SlotSet("s", {"a": [1, 2]})) == hash(SlotSet("s", {"a": [1, 2]}))
    assert len({SlotSet("s", [1]), SlotSet("s", [1]), SlotSet("s", [2])}) == 2


def test_repr_names_the_class_and_fields():
    text = repr(SlotSet("cuisine", "thai"))
    assert "SlotSet" in text and "cuisine" in text and "thai" in text
    assert "ActionExecuted" in repr(ActionExecuted("utter_greet"))
    assert "utter_greet" in repr(ActionExecuted("utter_greet"))


# --------------------------------------------------------------------------- timestamps

def test_timestamp_defaults_to_now(monkeypatch):
    monkeypatch.setattr(events_module.time, "time", lambda: 1234.5)
    assert SlotSet("a", 1).timestamp == 1234.5
    assert Restarted().timestamp == 1234.5
    assert event_from_dict({"event": "restart"}).timestamp == 1234.5


def test_falsy_timestamp_means_now(monkeypatch):
    monkeypatch.setattr(events_module.time, "time", lambda: 99.0)
    assert SlotSet("a", 1, timestamp=0).timestamp == 99.0
    assert event_from_dict({"event": "pause", "timestamp": 0}).timestamp == 99.0


def test_integer_timestamps_are_read_as_numbers():
    event = event_from_dict({"event": "slot", "name": "a", "value": 1, "timestamp": 15})
    assert event.timestamp == 15
    assert isinstance(event.timestamp, float)


# --------------------------------------------------------------------------- parsing (E3-E16)

def test_parse_slot():
    event = event_from_dict({"event": "slot", "name": "departure_airport", "value": "BER"})
    assert event == SlotSet("departure_airport", "BER")
    assert (event.key, event.value) == ("departure_airport", "BER")


def test_parse_slot_without_value_sets_none():
    event = event_from_dict({"event": "slot", "name": "location"})
    assert isinstance(event, SlotSet) and event.value is None


@pytest.mark.parametrize("type_name, cls", [
    ("restart", Restarted), ("reset_slots", AllSlotsReset), ("rewind", UserUtteranceReverted),
    ("undo", ActionReverted), ("export", StoryExported), ("pause", ConversationPaused),
    ("resume", ConversationResumed),
])
def test_parse_events_without_fields(type_name, cls):
    event = event_from_dict({"event": type_name})
    assert type(event) is cls
    assert event.type_name == type_name


def test_parse_user():
    parse_data = {"intent": {"name": "greet", "confidence": 0.9}, "entities": []}
    event = event_from_dict({"event": "user", "text": "Hey", "parse_data": parse_data})
    assert isinstance(event, UserUttered)
    assert event.text == "Hey"
    assert event.intent == {"name": "greet", "confidence": 0.9}
    assert event.intent_name == "greet"
    assert event.entities == []
    assert event.parse_data == parse_data
    assert event.input_channel is None
    assert event == UserUttered("Hey", {"name": "greet", "confidence": 0.9}, [], parse_data)


def test_parse_user_takes_intent_and_entities_from_parse_data():
    event = event_from_dict({"event": "user", "text": '/greet{"name": "Joe"}',
                             "parse_data": GREET_PARSE, "input_channel": "rest"})
    assert event.intent == GREET_PARSE["intent"]
    assert event.entities == GREET_PARSE["entities"]
    assert event.input_channel == "rest"


def test_parse_user_without_parse_data_has_no_intent():
    # Deliberate difference: Rasa raised a TypeError here.
    event = event_from_dict({"event": "user", "text": "hi"})
    assert isinstance(event, UserUttered)
    assert event.text == "hi"
    assert event.intent == {}
    assert event.intent_name is None
    assert event.entities == []
    assert event.parse_data == {"intent": {}, "entities": [], "text": "hi"}
    assert event.as_story_string() == "hi"


def test_parse_user_with_null_parse_data_and_no_text():
    event = event_from_dict({"event": "user", "text": None, "parse_data": None})
    assert event.text is None
    assert event.intent == {}
    assert event.as_story_string() == "None"


def test_parse_user_with_parse_data_missing_intent_or_entities():
    event = event_from_dict({"event": "user", "text": "x", "parse_data": {"text": "x"}})
    assert event.intent == {} and event.entities == []
    event = event_from_dict({"event": "user", "text": "x",
                             "parse_data": {"intent": {"name": "a"}}})
    assert event.intent_name == "a" and event.entities == []


def test_parse_bot():
    event = event_from_dict({"event": "bot", "text": "Hey there!", "data": {}})
    assert event == BotUttered("Hey there!", {})
    assert event.text == "Hey there!" and event.data == {}


def test_parse_bot_without_fields():
    event = event_from_dict({"event": "bot"})
    assert isinstance(event, BotUttered)
    assert event.text is None and event.data is None


def test_parse_reminder():
    event = event_from_dict({"event": "reminder", "action": "my_action",
                             "date_time": "2018-09-03T11:41:10.128172", "name": "my_reminder",
                             "kill_on_user_msg": True})
    assert isinstance(event, ReminderScheduled)
    assert event.action_name == "my_action"
    assert event.trigger_date_time == REMINDER_TIME
    assert event.name == "my_reminder"
    assert event.kill_on_user_message is True


def test_parse_reminder_defaults():
    raw = {"event": "reminder", "action": "a", "date_time": "2018-09-03T11:41:10"}
    first, second = event_from_dict(raw), event_from_dict(raw)
    assert first.kill_on_user_message is True
    # The name defaults to a fresh uuid, so two such reminders are different reminders.
    assert first.name and second.name and first.name != second.name
    assert first != second


def test_parse_reminder_with_utc_z_suffix():
    event = event_from_dict({"event": "reminder", "action": "a",
                             "date_time": "2018-09-03T11:41:10Z", "name": "n"})
    assert event.trigger_date_time == datetime.datetime(2018, 9, 3, 11, 41, 10,
                                                        tzinfo=datetime.timezone.utc)


def test_parse_followup():
    event = event_from_dict({"event": "followup", "name": "my_action"})
    assert event == FollowupAction("my_action")
    assert event.action_name == "my_action"


def test_parse_action():
    event = event_from_dict({"event": "action", "name": "my_action"})
    assert event == ActionExecuted("my_action")
    assert event.action_name == "my_action"
    assert event.policy is None and event.confidence is None


def test_parse_action_with_integer_confidence():
    event = event_from_dict({"event": "action", "name": "a", "policy": "p", "confidence": 1})
    assert event.confidence == 1


def test_parse_agent():
    event = event_from_dict({"event": "agent", "text": "Hey, how are you?"})
    assert event == AgentUttered("Hey, how are you?")
    assert event.data is None


def test_parse_form():
    assert event_from_dict({"event": "form", "name": "f"}) == Form("f")
    assert event_from_dict({"event": "form", "name": None}) == Form(None)
    assert event_from_dict({"event": "form"}).name is None


def test_parse_form_validation():
    event = event_from_dict({"event": "form_validation", "validate": False})
    assert isinstance(event, FormValidation) and event.validate is False
    assert event_from_dict({"event": "form_validation", "validate": True}).validate is True


def test_parse_action_execution_rejected():
    event = event_from_dict({"event": "action_execution_rejected", "name": "restaurant_form",
                             "policy": "policy_3_FormPolicy", "confidence": 1.0})
    assert event == ActionExecutionRejected("restaurant_form", "policy_3_FormPolicy", 1.0)
    event = event_from_dict({"event": "action_execution_rejected", "name": "f"})
    assert event.policy is None and event.confidence is None


def test_parse_export_with_timestamp_works():
    # Rasa's Q3: a timestamped export crashed when applied; ours is harmless.
    event = event_from_dict({"event": "export", "timestamp": 5.0})
    assert isinstance(event, StoryExported)
    assert event.timestamp == 5.0


def test_extra_keys_are_ignored():
    event = event_from_dict({"event": "slot", "name": "a", "value": 1, "timestamp": 3.0,
                             "extra": "ignored", "sender_id": "x"})
    assert event.as_dict() == {"event": "slot", "timestamp": 3.0, "name": "a", "value": 1}
    event = event_from_dict({"event": "restart", "whatever": [1, 2]})
    assert isinstance(event, Restarted)


# --------------------------------------------------------------------------- parsing errors

def assert_invalid(raw, *fragments):
    with pytest.raises(InvalidEvent) as info:
        event_from_dict(raw)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_invalid_event_is_a_value_error():
    assert issubclass(InvalidEvent, ValueError)


@pytest.mark.parametrize("name", ["topic", "blah", "cancel_reminder", "USER", ""])
def test_unknown_event_type(name):
    message = assert_invalid({"event": name}, "Unknown event", "'{}'".format(name))
    # The message lists the known names so the client can fix the request.
    assert "slot" in message and "action" in message


@pytest.mark.parametrize("raw", [None, [], "slot", 5, ["event", "slot"]])
def test_event_must_be_an_object(raw):
    assert_invalid(raw, "JSON object")


@pytest.mark.parametrize("raw", [{}, {"name": "a"}, {"event": None}, {"event": 5},
                                 {"event": ["slot"]}])
def test_event_needs_a_type_name(raw):
    assert_invalid(raw, "'event'")


@pytest.mark.parametrize("raw, fragments", [
    ({"event": "slot"}, ("slot", "'name'")),
    ({"event": "slot", "name": None, "value": 1}, ("slot", "'name'")),
    ({"event": "followup"}, ("followup", "'name'")),
    ({"event": "action"}, ("action", "'name'")),
    ({"event": "action", "name": None}, ("action", "'name'")),
    ({"event": "action_execution_rejected"}, ("action_execution_rejected", "'name'")),
    ({"event": "reminder", "date_time": "2018-09-03T11:41:10"}, ("reminder", "'action'")),
    ({"event": "reminder", "action": "a"}, ("reminder", "'date_time'")),
    ({"event": "form_validation"}, ("form_validation", "'validate'")),
])
def test_missing_required_field(raw, fragments):
    assert_invalid(raw, *fragments)


@pytest.mark.parametrize("raw, fragments", [
    ({"event": "slot", "name": 5, "value": 1}, ("'name'", "slot")),
    ({"event": "slot", "name": ["a"]}, ("'name'", "slot")),
    ({"event": "followup", "name": 3}, ("'name'", "followup")),
    ({"event": "action", "name": {"a": 1}}, ("'name'", "action")),
    ({"event": "action", "name": "a", "policy": 3}, ("'policy'", "action")),
    ({"event": "action", "name": "a", "confidence": "high"}, ("'confidence'", "action")),
    ({"event": "action", "name": "a", "confidence": True}, ("'confidence'", "action")),
    ({"event": "action_execution_rejected", "name": 1}, ("'name'",)),
    ({"event": "form", "name": 3}, ("'name'", "form")),
    ({"event": "form", "name": ["f"]}, ("'name'", "form")),
    ({"event": "form_validation", "validate": "false"}, ("'validate'", "form_validation")),
    ({"event": "form_validation", "validate": 0}, ("'validate'", "form_validation")),
    ({"event": "reminder", "action": 1, "date_time": "2018-09-03T11:41:10"}, ("'action'",)),
    ({"event": "reminder", "action": "a", "date_time": 1535975000}, ("'date_time'",)),
    ({"event": "reminder", "action": "a", "date_time": "tomorrow"}, ("'date_time'", "tomorrow")),
    ({"event": "reminder", "action": "a", "date_time": "2018-09-03T11:41:10", "name": 5},
     ("'name'",)),
    ({"event": "reminder", "action": "a", "date_time": "2018-09-03T11:41:10",
      "kill_on_user_msg": "yes"}, ("'kill_on_user_msg'",)),
    ({"event": "user", "text": 5}, ("'text'", "user")),
    ({"event": "user", "text": "hi", "parse_data": "greet"}, ("'parse_data'", "user")),
    ({"event": "user", "text": "hi", "parse_data": ["greet"]}, ("'parse_data'", "user")),
    ({"event": "user", "text": "hi", "parse_data": {"intent": "greet", "entities": []}},
     ("intent",)),
    ({"event": "user", "text": "hi", "parse_data": {"intent": {}, "entities": {"a": 1}}},
     ("entities",)),
    ({"event": "user", "text": "hi", "parse_data": {"intent": {}, "entities": ["a"]}},
     ("entities",)),
    ({"event": "user", "text": "hi", "input_channel": 7}, ("'input_channel'",)),
    ({"event": "bot", "text": 5}, ("'text'", "bot")),
    ({"event": "bot", "text": {"a": 1}}, ("'text'", "bot")),
    ({"event": "restart", "timestamp": "yesterday"}, ("'timestamp'", "restart")),
    ({"event": "slot", "name": "a", "timestamp": True}, ("'timestamp'",)),
    ({"event": "action", "name": "a", "timestamp": [1]}, ("'timestamp'",)),
])
def test_wrong_field_type(raw, fragments):
    assert_invalid(raw, *fragments)


@pytest.mark.parametrize("raw", [
    {"event": "action_execution_rejected", "name": "f", "policy": 3},
    {"event": "action_execution_rejected", "name": "f", "confidence": "high"},
])
def test_rejected_event_checks_policy_and_confidence_types(raw):
    with pytest.raises(InvalidEvent):
        event_from_dict(raw)


def test_agent_event_checks_text_type():
    with pytest.raises(InvalidEvent):
        event_from_dict({"event": "agent", "text": 5})


# --------------------------------------------------------------------------- lists

def test_events_from_dicts_reads_every_item():
    dicts = [{"event": "action", "name": "action_listen"},
             {"event": "user", "text": "hi", "parse_data": {"intent": {"name": "greet"},
                                                           "entities": []}},
             {"event": "slot", "name": "name", "value": "Joe"}]
    events = events_from_dicts(dicts)
    assert [type(e) for e in events] == [ActionExecuted, UserUttered, SlotSet]


def test_events_from_dicts_of_empty_list():
    assert events_from_dicts([]) == []


def test_events_from_dicts_fails_whole_list_with_index():
    dicts = [{"event": "action", "name": "action_listen"},
             {"event": "slot", "name": "a", "value": 1},
             {"event": "nonsense"},
             {"event": "restart"}]
    with pytest.raises(InvalidEvent) as info:
        events_from_dicts(dicts)
    message = str(info.value)
    assert "Event 2" in message
    assert "nonsense" in message


def test_events_from_dicts_index_of_first_bad_item_and_field():
    dicts = [{"event": "restart"}, {"event": "slot"}, {"event": "bogus"}]
    with pytest.raises(InvalidEvent) as info:
        events_from_dicts(dicts)
    assert "Event 1" in str(info.value)
    assert "'name'" in str(info.value)


def test_events_from_dicts_item_that_is_not_an_object():
    with pytest.raises(InvalidEvent, match="Event 0"):
        events_from_dicts(["restart"])


@pytest.mark.parametrize("raw", [None, {"event": "restart"}, "restart", 3])
def test_events_from_dicts_needs_a_list(raw):
    with pytest.raises(InvalidEvent, match="list"):
        events_from_dicts(raw)


# --------------------------------------------------------------------------- story strings

@pytest.mark.parametrize("event, expected", [
    (UserUttered("/greet", {"name": "greet", "confidence": 1.0}, []), "greet"),
    (UserUttered('/greet{"name": "Joe"}', GREET_PARSE["intent"], GREET_PARSE["entities"]),
     'greet{"name": "Joe"}'),
    (UserUttered("x", {"name": "inform"},
                 [{"entity": "city", "value": "Berlin"}, {"entity": "cuisine", "value": 3}]),
     'inform{"city": "Berlin", "cuisine": 3}'),
    (UserUttered("x", {"name": "inform"},
                 [{"entity": "city", "value": "Berlin"}, {"entity": "city", "value": "Paris"}]),
     'inform{"city": "Paris"}'),
    (UserUttered("free text", {}, []), "free text"),
    (UserUttered(None), "None"),
    (BotUttered("hi"), None),
    (AgentUttered("hi"), None),
    (SlotSet("name", "Joe"), 'slot{"name": "Joe"}'),
    (SlotSet("name", None), 'slot{"name": null}'),
    (SlotSet("n", [1, True]), 'slot{"n": [1, true]}'),
    (Restarted(), "restart"),
    (UserUtteranceReverted(), "rewind"),
    (ActionReverted(), "undo"),
    (AllSlotsReset(), "reset_slots"),
    (ReminderScheduled("my_action", REMINDER_TIME, "my_reminder", True),
     'reminder{"action": "my_action", "date_time": "2018-09-03T11:41:10.128172", '
     '"name": "my_reminder", "kill_on_user_msg": true}'),
    (StoryExported(), "export"),
    (FollowupAction("my_action"), 'followup{"name": "my_action"}'),
    (ConversationPaused(), "pause"),
    (ConversationResumed(), "resume"),
    (ActionExecuted("utter_greet", "policy_1", 0.5), "utter_greet"),
    (ActionExecuted("action_listen"), "action_listen"),
    (Form("restaurant_form"), 'form{"name": "restaurant_form"}'),
    (Form(None), 'form{"name": null}'),
    (FormValidation(False), None),
    (ActionExecutionRejected("restaurant_form"), None),
], ids=lambda x: x.type_name if isinstance(x, Event) else "")
def test_story_string(event, expected):
    assert event.as_story_string() == expected


def test_user_story_string_end_to_end():
    plain = UserUttered("/greet", {"name": "greet", "confidence": 1.0}, [])
    assert plain.as_story_string(e2e=True) == "greet: /greet"
    entity = UserUttered("I live in NYC now", {"name": "inform"},
                         [{"entity": "city", "start": 10, "end": 13, "value": "New York"},
                          {"entity": "time", "start": 14, "end": 17, "value": "now"}])
    assert entity.as_story_string(e2e=True) == "inform: I live in [NYC](city:New York) [now](time)"
    regex = UserUttered(GREET_PARSE["text"], GREET_PARSE["intent"], GREET_PARSE["entities"],
                        GREET_PARSE)
    assert regex.as_story_string(e2e=True) == 'greet: /greet[{"name": "Joe"}](name:Joe)'


def test_user_story_string_without_intent_is_text_even_in_e2e():
    assert UserUttered("just text").as_story_string(e2e=True) == "just text"


# --------------------------------------------------------------------------- tracker effects

def test_user_effect(tracker):
    event = UserUttered('/greet{"name": "Joe"}', GREET_PARSE["intent"], GREET_PARSE["entities"],
                        GREET_PARSE, input_channel="rest")
    assert tracker.followup_action == "action_listen"
    tracker.update(event)
    assert tracker.events == [event]
    assert tracker.latest_message is event
    assert tracker.followup_action is None
    # Slots are not filled from entities by the event itself (the processor does that).
    assert tracker.get_slot("name") is None
    assert tracker.current_state()["latest_message"] == GREET_PARSE


def test_user_without_parse_data_applies(tracker):
    tracker.update(event_from_dict({"event": "user", "text": "hi"}))
    assert tracker.latest_message.text == "hi"
    assert tracker.current_state()["latest_message"] == {"intent": {}, "entities": [],
                                                         "text": "hi"}


def test_bot_effect(tracker):
    before = tracker.current_state()
    event = BotUttered("Hey", {"buttons": None})
    tracker.update(event)
    assert tracker.latest_bot_utterance is event
    after = tracker.current_state()
    assert after.pop("latest_event_time") == event.timestamp
    before.pop("latest_event_time")
    assert after == before


def test_agent_effect_changes_nothing(tracker):
    before = tracker.current_state()
    tracker.update(AgentUttered("hello from a human"))
    after = tracker.current_state()
    assert len(tracker.events) == 1
    after.pop("latest_event_time")
    before.pop("latest_event_time")
    assert after == before


def test_slot_effect(tracker):
    tracker.update(SlotSet("name", "Joe"))
    assert tracker.get_slot("name") == "Joe"
    assert tracker.current_state()["slots"] == {"mood": "happy", "name": "Joe",
                                                "requested_slot": None}
    tracker.update(SlotSet("name", None))
    assert tracker.get_slot("name") is None


def test_unknown_slot_is_kept_in_history_only(tracker):
    event = SlotSet("no_such_slot", 1)
    tracker.update(event)
    assert tracker.events == [event]
    assert tracker.get_slot("no_such_slot") is None
    assert "no_such_slot" not in tracker.current_state()["slots"]


def test_restart_effect(tracker):
    tracker.update_many([ActionExecuted("action_listen"),
                         UserUttered("/greet", {"name": "greet"}, []),
                         SlotSet("name", "Joe"), SlotSet("mood", "sad"),
                         ActionExecuted("my_action"), ConversationPaused(),
                         Form("some_form"), BotUttered("hi")])
    assert tracker.followup_action is None
    tracker.update(Restarted())
    assert len(tracker.events) == 9
    assert tracker.get_slot("name") is None
    assert tracker.get_slot("mood") == "happy"
    assert tracker.paused is False
    assert tracker.latest_action_name is None
    assert tracker.latest_message.text is None
    assert tracker.latest_bot_utterance.text is None
    assert tracker.active_form == {}
    assert tracker.followup_action == "action_listen"


def test_rewind_effect(tracker):
    tracker.update_many([ActionExecuted("action_listen"),
                         UserUttered("/greet", {"name": "greet"}, []),
                         ActionExecuted("utter_greet"), ActionExecuted("action_listen"),
                         UserUttered("/inform", {"name": "inform"}, []),
                         SlotSet("name", "Joe")])
    tracker.update(UserUtteranceReverted())
    assert tracker.latest_message.text == "/greet"
    assert tracker.latest_action_name == "utter_greet"
    assert tracker.get_slot("name") is None


def test_undo_effect(tracker):
    tracker.update_many([ActionExecuted("action_listen"),
                         UserUttered("/greet", {"name": "greet"}, []),
                         ActionExecuted("utter_greet"), SlotSet("name", "Joe"),
                         ActionExecuted("my_action"), SlotSet("mood", "sad")])
    tracker.update(ActionReverted())
    assert tracker.latest_action_name == "utter_greet"
    assert tracker.get_slot("name") == "Joe"
    assert tracker.get_slot("mood") == "happy"


def test_reset_slots_effect(tracker):
    tracker.update_many([SlotSet("name", "Joe"), SlotSet("mood", "sad"),
                         ActionExecuted("my_action"), ConversationPaused()])
    tracker.update(AllSlotsReset())
    assert tracker.current_slot_values() == {"mood": "happy", "name": None,
                                             "requested_slot": None}
    # Nothing else changes.
    assert tracker.paused is True
    assert tracker.latest_action_name == "my_action"


def test_reminder_changes_nothing(tracker):
    before = tracker.current_state()
    tracker.update(ReminderScheduled("my_action", REMINDER_TIME, "r"))
    after = tracker.current_state()
    after.pop("latest_event_time")
    before.pop("latest_event_time")
    assert after == before


def test_export_never_writes_files(tracker, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker.update_many([ActionExecuted("action_listen"),
                         UserUttered("/greet", {"name": "greet"}, [])])
    tracker.update(event_from_dict({"event": "export", "timestamp": 5.0}))
    tracker.update(StoryExported())
    tracker.update(ActionReverted())  # replays the export events
    assert list(tmp_path.iterdir()) == []


def test_followup_effect(tracker):
    tracker.update(ActionExecuted("action_listen"))
    assert tracker.followup_action is None
    tracker.update(FollowupAction("my_action"))
    assert tracker.followup_action == "my_action"
    assert tracker.current_state()["followup_action"] == "my_action"
    tracker.update(ActionExecuted("my_action"))
    assert tracker.followup_action is None


def test_followup_cleared_by_user_message(tracker):
    tracker.update(FollowupAction("my_action"))
    tracker.update(UserUttered("hi"))
    assert tracker.followup_action is None


def test_pause_and_resume_effect(tracker):
    tracker.update(ConversationPaused())
    assert tracker.paused is True
    assert tracker.current_state()["paused"] is True
    tracker.update(ConversationResumed())
    assert tracker.paused is False
    assert tracker.current_state()["paused"] is False


def test_action_effect(tracker):
    tracker.update(FollowupAction("x"))
    tracker.update(ActionExecuted("utter_greet", "p", 0.5))
    assert tracker.latest_action_name == "utter_greet"
    assert tracker.followup_action is None


def test_form_effects(tracker):
    tracker.update(Form("some_form"))
    assert tracker.active_form == {"name": "some_form", "validate": True, "rejected": False}
    tracker.update(FormValidation(False))
    assert tracker.active_form["validate"] is False
    tracker.update(ActionExecutionRejected("other_form"))
    assert tracker.active_form["rejected"] is False
    tracker.update(ActionExecutionRejected("some_form"))
    assert tracker.active_form == {"name": "some_form", "validate": False, "rejected": True}
    # Any action while the form is active turns validation back on ...
    tracker.update(ActionExecuted("utter_greet"))
    assert tracker.active_form == {"name": "some_form", "validate": True, "rejected": True}
    # ... and running the form itself clears the rejection.
    tracker.update(ActionExecuted("some_form"))
    assert tracker.active_form == {"name": "some_form", "validate": True, "rejected": False}
    assert tracker.current_state()["active_form"] == tracker.active_form
    tracker.update(Form(None))
    assert tracker.active_form == {}


def test_form_validation_without_active_form(tracker):
    # Rasa's Q4: a dict with no name.
    tracker.update(FormValidation(False))
    assert tracker.active_form == {"validate": False}
    tracker.update(ActionExecuted("utter_greet"))
    assert tracker.active_form == {"validate": False}


def test_rejection_without_active_form_changes_nothing(tracker):
    tracker.update(ActionExecutionRejected("some_form"))
    assert tracker.active_form == {}


def test_current_state_active_form_is_a_copy(tracker):
    tracker.update(Form("some_form"))
    state = tracker.current_state()
    state["active_form"]["name"] = "changed"
    assert tracker.active_form["name"] == "some_form"


def test_update_rejects_non_events(tracker):
    with pytest.raises(TypeError):
        tracker.update({"event": "restart"})
    assert tracker.events == []

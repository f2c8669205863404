"""Tests for the message processor, the actions (default, utter, remote) and the dispatcher
(Rasa Core test_actions AC1-AC12 and the processor semantics of the references, section 7)."""

import datetime
import logging
import time

import pytest

import coreactors
from coreactors.actions.action import (
    ActionDeactivateForm, ActionDefaultAskAffirmation, ActionDefaultAskRephrase,
    ActionDefaultFallback, ActionExecutionRejection, ActionListen, ActionRestart,
    ActionRevertFallbackEvents, UtterAction, action_for_name)
from coreactors.actions.dispatcher import Dispatcher
from coreactors.actions.remote import ActionFailed, RemoteAction
from coreactors.dialogue.domain import Domain, UnknownAction
from coreactors.dialogue.events import (
    ActionExecuted, ActionExecutionRejected, BotUttered, ConversationPaused, Form,
    ReminderScheduled, Restarted, SlotSet, UserUttered, UserUtteranceReverted)
from coreactors.dialogue.stories import read_stories
from coreactors.dialogue.templates import TemplatedNaturalLanguageGenerator
from coreactors.dialogue.tracker import DialogueStateTracker, EventVerbosity
from coreactors.model import Model
from coreactors.nlu.interpreter import NaturalLanguageInterpreter
from coreactors.policies.ensemble import PolicyEnsemble
from coreactors.policies.fallback import TwoStageFallbackPolicy
from coreactors.policies.memoization import MemoizationPolicy
from coreactors.policies.policy import Policy
from coreactors.processor import MessageProcessor, UserMessage
from coreactors.training.generator import generate_trackers

DOMAIN_YAML = """
intents:
  - greet
  - goodbye
  - look
  - remote
  - deny
  - out_of_scope
  - restart
entities:
  - name
slots:
  name:
    type: text
templates:
  utter_greet:
    - text: "hey there {name}!"
      buttons:
        - title: great
          payload: /greet
  utter_goodbye:
    - "bye\\n\\nsee you"
  utter_image:
    - text: "look"
      image: "https://example.com/img.png"
  utter_default:
    - "default message"
  utter_restart:
    - "restarted"
  utter_ask_rephrase:
    - "say again?"
  utter_order:
    - text: "one {size} coffee"
      buttons:
        - title: ok
          payload: /ok
actions:
  - utter_greet
  - utter_goodbye
  - utter_image
  - utter_default
  - utter_missing
  - action_custom
"""

STORIES = """
## greet
* greet
    - utter_greet

## greet with name
* greet{"name": "Ann"}
    - utter_greet

## goodbye
* goodbye
    - utter_goodbye

## look
* look
    - utter_image

## remote
* remote
    - action_custom
"""


@pytest.fixture(scope="module")
def domain():
    return Domain.from_yaml(DOMAIN_YAML)


@pytest.fixture(scope="module")
def memo_ensemble(domain):
    policy = MemoizationPolicy(max_history=3)
    ensemble = PolicyEnsemble([policy])
    ensemble.train(generate_trackers(read_stories(STORIES), domain, augmentation_factor=0),
                   domain)
    return ensemble


class FixedInterpreter(NaturalLanguageInterpreter):
    def __init__(self, intent="goodbye", confidence=0.8):
        self.intent = intent
        self.confidence = confidence
        self.seen = []

    def parse(self, text):
        self.seen.append(text)
        return {"text": text, "intent": {"name": self.intent, "confidence": self.confidence},
                "intent_ranking": [], "entities": []}


class RecordingClient:
    """An injected action-server client: records payloads, answers from a list."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.payloads = []

    def __call__(self, payload):
        self.payloads.append(payload)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class AlwaysPolicy(Policy):
    uses_featurizer = False

    def __init__(self, action, featurizer=None, priority=None):
        super().__init__(None, priority)
        self.action = action

    def standard_featurizer(self):
        return None

    def predict_action_probabilities(self, tracker, domain):
        result = [0.0] * domain.num_actions
        result[domain.index_for_action(self.action)] = 1.0
        return result


def processor_for(domain, ensemble, client=None, interpreter=None, **kwargs):
    return MessageProcessor(Model(domain, ensemble, interpreter), action_client=client,
                            **kwargs)


@pytest.fixture
def processor(domain, memo_ensemble):
    return processor_for(domain, memo_ensemble)


def new_tracker(domain, sender="u1"):
    tracker = DialogueStateTracker(sender, domain)
    tracker.update(ActionExecuted("action_listen"))
    return tracker


def summary(events):
    """Events as (type, main value) pairs."""
    result = []
    for e in events:
        if isinstance(e, ActionExecuted):
            result.append(("action", e.action_name))
        elif isinstance(e, UserUttered):
            result.append(("user", e.intent.get("name")))
        elif isinstance(e, BotUttered):
            result.append(("bot", e.text))
        elif isinstance(e, SlotSet):
            result.append(("slot", e.key if hasattr(e, "key") else e.as_dict()["name"],
                           e.value))
        else:
            result.append((e.type_name,))
    return result


# --------------------------------------------------------------------------- handle_message

def test_handle_message_runs_actions_until_listen(domain, processor):
    tracker = new_tracker(domain)
    result = processor.handle_message(tracker, UserMessage('/greet{"name": "Ann"}', "u1"))
    assert summary(tracker.events) == [
        ("action", "action_listen"), ("user", "greet"), ("slot", "name", "Ann"),
        ("action", "utter_greet"), ("bot", "hey there Ann!"), ("action", "action_listen")]
    greet_action = tracker.events[3]
    assert greet_action.policy == "policy_0_MemoizationPolicy"
    assert greet_action.confidence == 1.0
    bot = tracker.events[4]
    assert bot.data == {"elements": None, "buttons": [{"title": "great", "payload": "/greet"}],
                        "attachment": None}
    assert result.messages == [{"recipient_id": "u1", "text": "hey there Ann!",
                                "buttons": [{"title": "great", "payload": "/greet"}]}]
    assert result.reminders == []
    assert tracker.get_slot("name") == "Ann"


def test_user_event_fields(domain, processor):
    tracker = new_tracker(domain)
    processor.handle_message(tracker, UserMessage("/greet", "u1", input_channel="rest",
                                                  message_id="m1"))
    user = tracker.events[1]
    assert user.text == "/greet"
    assert user.intent == {"name": "greet", "confidence": 1.0}
    assert user.input_channel == "rest"
    assert user.message_id == "m1"
    assert user.parse_data["text"] == "/greet"


def test_text_split_on_blank_lines_and_image(domain, processor):
    tracker = new_tracker(domain, "u2")
    result = processor.handle_message(tracker, UserMessage("/goodbye", "u2"))
    assert result.messages == [{"recipient_id": "u2", "text": "bye"},
                               {"recipient_id": "u2", "text": "see you"}]
    # one bot event for the whole text
    bots = [e for e in tracker.events if isinstance(e, BotUttered)]
    assert [b.text for b in bots] == ["bye\n\nsee you"]
    tracker = new_tracker(domain, "u2")
    result = processor.handle_message(tracker, UserMessage("/look", "u2"))
    assert result.messages == [{"recipient_id": "u2", "text": "look"},
                               {"recipient_id": "u2", "image": "https://example.com/img.png"}]
    bot = [e for e in tracker.events if isinstance(e, BotUttered)][-1]
    assert bot.data == {"elements": None, "buttons": None,
                        "attachment": "https://example.com/img.png"}


def test_listener_gets_each_message(domain, processor):
    seen = []
    tracker = new_tracker(domain)
    result = processor.handle_message(tracker, UserMessage("/goodbye", "u1"), listener=seen.append)
    assert seen == result.messages and len(seen) == 2


def test_parse_data_given_is_used_as_is(domain, processor):
    tracker = new_tracker(domain)
    parse_data = {"text": "hello", "intent": {"name": "greet", "confidence": 0.7},
                  "entities": [{"entity": "name", "value": "Bo", "start": 0, "end": 1}]}
    processor.handle_message(tracker, UserMessage("hello", "u1", parse_data=parse_data))
    assert tracker.events[1].parse_data is parse_data
    assert tracker.get_slot("name") == "Bo"


def test_interpreter_for_text_and_regex_for_slash(domain, memo_ensemble):
    interpreter = FixedInterpreter("goodbye")
    processor = processor_for(domain, memo_ensemble, interpreter=interpreter)
    tracker = new_tracker(domain)
    processor.handle_message(tracker, UserMessage("see you later", "u1"))
    assert interpreter.seen == ["see you later"]
    assert tracker.events[1].intent == {"name": "goodbye", "confidence": 0.8}
    processor.handle_message(tracker, UserMessage("/greet", "u1"))
    assert interpreter.seen == ["see you later"]
    assert tracker.latest_message.intent["name"] == "greet"


def test_log_message_predicts_nothing(domain, processor):
    tracker = new_tracker(domain)
    processor.log_message(tracker, UserMessage('/greet{"name": "Ann"}', "u1"))
    assert summary(tracker.events) == [("action", "action_listen"), ("user", "greet"),
                                       ("slot", "name", "Ann")]


def test_user_message_sender_defaults():
    assert UserMessage("hi").sender_id == "default"
    assert UserMessage("hi", "").sender_id == "default"
    assert UserMessage("hi", 1234).sender_id == "1234"


def test_circuit_breaker_stops_after_ten_predictions(domain):
    processor = processor_for(domain, PolicyEnsemble([AlwaysPolicy("utter_default")]))
    tracker = new_tracker(domain)
    result = processor.handle_message(tracker, UserMessage("/greet", "u1"))
    actions = [e.action_name for e in tracker.events[2:] if isinstance(e, ActionExecuted)]
    assert actions == ["utter_default"] * 10
    assert not isinstance(tracker.events[-1], ActionExecuted) or \
        tracker.events[-1].action_name != "action_listen"
    assert len(result.messages) == 10
    smaller = processor_for(domain, PolicyEnsemble([AlwaysPolicy("utter_default")]),
                            max_number_of_predictions=3)
    tracker = new_tracker(domain)
    smaller.handle_message(tracker, UserMessage("/greet", "u1"))
    assert sum(isinstance(e, ActionExecuted) for e in tracker.events) == 1 + 3


def test_the_loop_logs_named_fields(domain, memo_ensemble, caplog):
    # Structured logs: the server's bridge hands these fields on, so they must be there.
    with caplog.at_level(logging.WARNING, logger="coreactors.processor"):
        processor_for(domain, PolicyEnsemble([AlwaysPolicy("utter_default")]),
                      max_number_of_predictions=2).handle_message(
            new_tracker(domain, "ann"), UserMessage("/greet", "ann"))
        processor = processor_for(domain, memo_ensemble)
        processor.action_for_name = lambda name: RemoteAction(name, None)
        processor.handle_message(new_tracker(domain, "bob"), UserMessage("/remote", "bob"))
    tripped, failed = [r for r in caplog.records if r.name == "coreactors.processor"][:2]
    assert tripped.msg.fields == {"sender_id": "ann", "count": 2}
    assert tripped.getMessage() == ("Circuit breaker tripped in conversation 'ann': stopped "
                                    "after 2 actions without listening.")
    assert failed.levelno == logging.ERROR
    assert failed.msg.fields["action"] == "action_custom"
    assert failed.msg.fields["sender_id"] == "bob"
    assert "endpoint" in failed.msg.fields["error"]
    assert failed.getMessage().startswith(
        "Encountered an exception while running action 'action_custom' in conversation 'bob': ")


def test_followup_action_is_predicted_next_without_policy(domain, memo_ensemble):
    client = RecordingClient((200, {"events": [{"event": "followup",
                                                "name": "utter_goodbye"}]}))
    processor = processor_for(domain, memo_ensemble, client)
    tracker = new_tracker(domain)
    processor.handle_message(tracker, UserMessage("/remote", "u1"))
    names = [(e.action_name, e.policy) for e in tracker.events
             if isinstance(e, ActionExecuted)]
    assert names[1] == ("action_custom", "policy_0_MemoizationPolicy")
    assert names[2] == ("utter_goodbye", None)
    assert [n for n, _ in names] == ["action_listen", "action_custom", "utter_goodbye",
                                     "action_listen"]
    followed = [e for e in tracker.events if isinstance(e, ActionExecuted)
                and e.action_name == "utter_goodbye"][0]
    assert followed.confidence == 1.0


def test_a_followup_to_an_unknown_action_is_ignored_and_prediction_goes_on(domain,
                                                                          memo_ensemble):
    client = RecordingClient((200, {"events": [{"event": "followup",
                                                "name": "no_such_action"}]}))
    processor = processor_for(domain, memo_ensemble, client)
    tracker = new_tracker(domain)
    processor.handle_message(tracker, UserMessage("/remote", "u1"))
    names = [e.action_name for e in tracker.events if isinstance(e, ActionExecuted)]
    assert "no_such_action" not in names
    assert names[-1] == "action_listen"
    assert tracker.followup_action is None


def test_paused_conversation_logs_but_does_not_act(domain, processor):
    tracker = new_tracker(domain)
    tracker.update(ConversationPaused())
    result = processor.handle_message(tracker, UserMessage('/greet{"name": "Ann"}', "u1"))
    assert result.messages == []
    assert summary(tracker.events[-2:]) == [("user", "greet"), ("slot", "name", "Ann")]
    assert tracker.paused
    # the restart intent still works
    result = processor.handle_message(tracker, UserMessage("/restart", "u1"))
    assert summary(tracker.events[-5:]) == [
        ("user", "restart"), ("action", "action_restart"), ("restart",), ("bot", "restarted"),
        ("action", "action_listen")]
    assert not tracker.paused
    assert result.messages == [{"recipient_id": "u1", "text": "restarted"}]


def test_restart_intent_restarts_then_listens(domain, processor):
    tracker = new_tracker(domain)
    processor.handle_message(tracker, UserMessage('/greet{"name": "Ann"}', "u1"))
    processor.handle_message(tracker, UserMessage("/restart", "u1"))
    restart_action = [e for e in tracker.events if isinstance(e, ActionExecuted)
                      and e.action_name == "action_restart"][0]
    assert restart_action.policy is None and restart_action.confidence == 1.0
    assert isinstance(tracker.events[-3], Restarted)
    last = tracker.events[-1]
    assert isinstance(last, ActionExecuted) and last.action_name == "action_listen"
    assert last.policy is None
    assert tracker.get_slot("name") is None
    assert tracker.latest_message.text is None


def test_failing_action_loses_its_events_but_is_logged(domain, memo_ensemble):
    client = RecordingClient(ConnectionError("refused"))
    processor = processor_for(domain, memo_ensemble, client)
    tracker = new_tracker(domain)
    result = processor.handle_message(tracker, UserMessage("/remote", "u1"))
    assert summary(tracker.events) == [
        ("action", "action_listen"), ("user", "remote"), ("action", "action_custom"),
        ("action", "action_listen")]
    assert result.messages == []
    assert len(client.payloads) == 1


def test_failing_action_keeps_messages_sent_before_the_failure(domain, memo_ensemble):
    processor = processor_for(domain, memo_ensemble)

    class Boom(UtterAction):
        def run(self, dispatcher, tracker, domain):
            dispatcher.utter_message("partial")
            raise RuntimeError("boom")

    original = processor.action_for_name
    processor.action_for_name = lambda name: Boom(name) if name == "action_custom" else \
        original(name)
    tracker = new_tracker(domain)
    result = processor.handle_message(tracker, UserMessage("/remote", "u1"))
    assert summary(tracker.events[2:]) == [("action", "action_custom"), ("bot", "partial"),
                                           ("action", "action_listen")]
    assert result.messages == [{"recipient_id": "u1", "text": "partial"}]


def test_execute_action_runs_exactly_one_action(domain, processor):
    tracker = new_tracker(domain)
    tracker.update(SlotSet("name", "Zoe"))
    result = processor.execute_action(tracker, "utter_greet", policy="manual", confidence=0.5)
    assert summary(tracker.events) == [("action", "action_listen"), ("slot", "name", "Zoe"),
                                       ("action", "utter_greet"), ("bot", "hey there Zoe!")]
    assert tracker.events[2].policy == "manual" and tracker.events[2].confidence == 0.5
    assert result.messages[0]["text"] == "hey there Zoe!"
    with pytest.raises(UnknownAction):
        processor.execute_action(tracker, "no_such_action")


def test_predict_next(domain, processor):
    tracker = new_tracker(domain)
    processor.log_message(tracker, UserMessage("/greet", "u1"))
    before = len(tracker.events)
    prediction = processor.predict_next(tracker)
    assert len(tracker.events) == before                 # nothing runs
    assert [s["action"] for s in prediction["scores"]] == domain.action_names
    scores = {s["action"]: s["score"] for s in prediction["scores"]}
    assert scores["utter_greet"] == 1.0
    assert sum(scores.values()) == pytest.approx(1.0)
    assert prediction["policy"] == "policy_0_MemoizationPolicy"
    assert prediction["confidence"] == 1.0
    assert prediction["tracker"] == tracker.current_state(EventVerbosity.AFTER_RESTART)
    assert prediction["tracker"]["events"] is not None


def test_predict_next_on_a_new_tracker_is_the_followup_listen(domain, processor):
    tracker = DialogueStateTracker("fresh", domain)
    prediction = processor.predict_next(tracker)
    assert prediction["policy"] is None
    assert prediction["scores"][0] == {"action": "action_listen", "score": 1.0}
    assert prediction["confidence"] == 1.0


def test_reminders_are_returned(domain, memo_ensemble):
    reminder = {"event": "reminder", "action": "utter_greet",
                "date_time": "2030-01-01T10:00:00", "name": "r1", "kill_on_user_msg": False}
    processor = processor_for(domain, memo_ensemble, RecordingClient((200, {"events": [
        reminder]})))
    tracker = new_tracker(domain)
    result = processor.handle_message(tracker, UserMessage("/remote", "u1"))
    (scheduled,) = result.reminders
    assert isinstance(scheduled, ReminderScheduled)
    assert scheduled.name == "r1" and scheduled.action_name == "utter_greet"
    assert scheduled.trigger_date_time == datetime.datetime(2030, 1, 1, 10, 0, 0)
    assert scheduled in tracker.events


def test_rejected_action_is_masked_and_not_logged_as_executed(domain, memo_ensemble):
    client = RecordingClient((400, {"action_name": "action_custom", "error": "nope"}))
    processor = processor_for(domain, memo_ensemble, client)
    tracker = new_tracker(domain)
    result = processor.handle_message(tracker, UserMessage("/remote", "u1"))
    assert summary(tracker.events) == [
        ("action", "action_listen"), ("user", "remote"), ("action_execution_rejected",),
        ("action", "action_listen")]
    rejected = tracker.events[2]
    assert isinstance(rejected, ActionExecutionRejected)
    assert rejected.action_name == "action_custom"
    assert rejected.policy == "policy_0_MemoizationPolicy" and rejected.confidence == 1.0
    assert len(client.payloads) == 1
    assert result.messages == []


# --------------------------------------------------------------------------- remote actions

def collecting(domain, sender="my-sender"):
    return Dispatcher(sender, TemplatedNaturalLanguageGenerator(domain.templates))


def test_remote_request_payload(domain):
    client = RecordingClient((200, {"events": [], "responses": []}))
    tracker = new_tracker(domain, "default")
    tracker.update(UserUttered("/greet", {"name": "greet", "confidence": 1.0}))
    tracker.update(Restarted())
    tracker.update(ActionExecuted("action_listen"))
    events = RemoteAction("action_custom", client).run(collecting(domain), tracker, domain)
    assert events == []
    (payload,) = client.payloads
    assert set(payload) == {"next_action", "sender_id", "tracker", "domain", "version"}
    assert payload["next_action"] == "action_custom"
    assert payload["sender_id"] == "default"
    assert payload["version"] == coreactors.RASA_CORE_VERSION
    assert payload["domain"] == domain.as_dict()
    assert payload["tracker"] == tracker.current_state(EventVerbosity.ALL)
    # all events, including those before the restart
    assert len(payload["tracker"]["events"]) == 4
    assert payload["tracker"]["slots"] == {"name": None}


def test_remote_response_events_and_responses(domain):
    client = RecordingClient((200, {
        "events": [{"event": "slot", "name": "name", "value": "rasa"}],
        "responses": [{"text": "test text", "buttons": [{"title": "cheap", "payload": "cheap"}]},
                      {"template": "utter_greet"}]}))
    dispatcher = collecting(domain)
    tracker = new_tracker(domain, "default")
    events = RemoteAction("action_custom", client).run(dispatcher, tracker, domain)
    assert events == [SlotSet("name", "rasa")]
    # AC7: the template is rendered before the returned events apply
    assert dispatcher.messages == [
        {"recipient_id": "my-sender", "text": "test text",
         "buttons": [{"title": "cheap", "payload": "cheap"}]},
        {"recipient_id": "my-sender", "text": "hey there None!",
         "buttons": [{"title": "great", "payload": "/greet"}]}]


def test_remote_template_with_kwargs_and_appended_buttons(domain):
    client = RecordingClient((200, {"responses": [
        {"template": "utter_order", "size": "large",
         "buttons": [{"title": "more", "payload": "/more"}]},
        {"template": "utter_no_such_template"},
        {"image": "https://example.com/x.png"}]}))
    dispatcher = collecting(domain)
    RemoteAction("action_custom", client).run(dispatcher, new_tracker(domain), domain)
    first = dispatcher.messages[0]
    assert first["text"] == "one large coffee"
    assert first["buttons"] == [{"title": "ok", "payload": "/ok"},
                                {"title": "more", "payload": "/more"}]
    # the unknown template is skipped
    assert dispatcher.messages[1:] == [{"recipient_id": "my-sender",
                                        "image": "https://example.com/x.png"}]
    assert len(dispatcher.take_bot_events()) == 2


def test_remote_template_kwarg_called_name(domain):
    client = RecordingClient((200, {"responses": [{"template": "utter_greet", "name": "Ada"}]}))
    dispatcher = collecting(domain)
    RemoteAction("action_custom", client).run(dispatcher, new_tracker(domain), domain)
    assert dispatcher.messages[0]["text"] == "hey there Ada!"


def test_remote_events_get_fresh_timestamps_in_the_processor(domain, memo_ensemble):
    client = RecordingClient((200, {"events": [
        {"event": "slot", "name": "name", "value": "x", "timestamp": 1.0},
        {"event": "slot", "name": "name", "value": "y", "timestamp": 2.0}]}))
    processor = processor_for(domain, memo_ensemble, client)
    tracker = new_tracker(domain)
    started = time.time()
    processor.handle_message(tracker, UserMessage("/remote", "u1"))
    slots = [e for e in tracker.events if isinstance(e, SlotSet)]
    assert [s.value for s in slots] == ["x", "y"]
    action = [e for e in tracker.events if isinstance(e, ActionExecuted)
              and e.action_name == "action_custom"][0]
    assert all(s.timestamp >= started for s in slots)
    assert action.timestamp <= slots[0].timestamp <= slots[1].timestamp
    assert tracker.get_slot("name") == "y"


def test_remote_400_with_action_name_is_a_rejection(domain):
    client = RecordingClient((400, {"action_name": "action_custom"}))
    with pytest.raises(ActionExecutionRejection) as info:
        RemoteAction("action_custom", client).run(collecting(domain), new_tracker(domain),
                                                  domain)
    assert "Custom action 'action_custom' rejected to run" in str(info.value)
    assert info.value.action_name == "action_custom"
    client = RecordingClient((400, {"action_name": "action_custom", "error": "bad slot"}))
    with pytest.raises(ActionExecutionRejection) as info:
        RemoteAction("action_custom", client).run(collecting(domain), new_tracker(domain),
                                                  domain)
    assert "bad slot" in str(info.value)


@pytest.mark.parametrize("answer", [
    (500, None),
    (404, {"error": "x"}),
    (400, {"error": "no action name"}),
    ConnectionError("refused"),
    TimeoutError("slow"),
    (200, {"events": [{"event": "no_such_event"}]}),
    (200, ["not", "an", "object"]),
    (200, {"events": "not a list"}),
])
def test_remote_failures(domain, answer):
    client = RecordingClient(answer)
    with pytest.raises(ActionFailed) as info:
        RemoteAction("action_custom", client).run(collecting(domain), new_tracker(domain),
                                                  domain)
    assert not isinstance(info.value, ActionExecutionRejection)
    if not isinstance(answer, Exception) and answer[0] != 200:
        assert "Failed to execute custom action" in str(info.value)


def test_remote_without_client_mentions_the_endpoint(domain):
    with pytest.raises(ActionFailed) as info:
        RemoteAction("action_custom", None).run(collecting(domain), new_tracker(domain), domain)
    assert "endpoint" in str(info.value)
    assert "action_custom" in str(info.value)


def test_remote_events_without_type_are_skipped(domain):
    client = RecordingClient((200, {"events": [{"name": "x"},
                                               {"event": "slot", "name": "name", "value": 1}]}))
    events = RemoteAction("action_custom", client).run(collecting(domain), new_tracker(domain),
                                                       domain)
    assert events == [SlotSet("name", 1)]


def test_remote_messages_sent_before_a_bad_event_are_kept(domain, memo_ensemble):
    client = RecordingClient((200, {"responses": [{"text": "sent first"}],
                                    "events": [{"event": "no_such_event"}]}))
    processor = processor_for(domain, memo_ensemble, client)
    tracker = new_tracker(domain)
    result = processor.handle_message(tracker, UserMessage("/remote", "u1"))
    assert result.messages == [{"recipient_id": "u1", "text": "sent first"}]


# --------------------------------------------------------------------------- actions

def test_action_for_name(domain):
    assert isinstance(action_for_name("action_listen", domain), ActionListen)
    assert isinstance(action_for_name("action_restart", domain), ActionRestart)
    assert isinstance(action_for_name("utter_greet", domain), UtterAction)
    remote = action_for_name("action_custom", domain)
    assert isinstance(remote, RemoteAction) and remote.client is None
    made = []
    action_for_name("action_custom", domain, lambda n: made.append(n) or RemoteAction(n, None))
    assert made == ["action_custom"]
    with pytest.raises(UnknownAction):
        action_for_name("not_in_domain", domain)
    assert repr(UtterAction("my_action_name")) == "UtterAction('my_action_name')"


def test_default_action_listed_by_the_user_is_remote():
    custom = Domain.from_yaml("intents: [greet]\nactions: [action_default_fallback]\n")
    assert isinstance(action_for_name("action_default_fallback", custom), RemoteAction)
    assert custom.index_for_action("action_default_fallback") == 2


def test_action_listen_returns_nothing(domain):
    assert ActionListen().run(collecting(domain), new_tracker(domain), domain) == []


def test_action_restart(domain):
    # AC1
    dispatcher = collecting(domain)
    events = ActionRestart().run(dispatcher, DialogueStateTracker("default", domain), domain)
    assert events == [Restarted()]
    assert dispatcher.messages == [{"recipient_id": "my-sender", "text": "restarted"}]
    silent = Domain.from_yaml("intents: [greet]\n")
    dispatcher = collecting(silent)
    assert ActionRestart().run(dispatcher, DialogueStateTracker("d", silent), silent) == [
        Restarted()]
    assert dispatcher.messages == []


def test_action_default_fallback(domain):
    # AC12
    dispatcher = collecting(domain)
    events = ActionDefaultFallback().run(dispatcher, DialogueStateTracker("default", domain),
                                         domain)
    assert events == [UserUtteranceReverted()]
    assert dispatcher.messages == [{"recipient_id": "my-sender", "text": "default message"}]
    assert [e.as_dict()["event"] for e in events] == ["rewind"]


def test_action_deactivate_form(domain):
    events = ActionDeactivateForm().run(collecting(domain), new_tracker(domain), domain)
    assert len(events) == 2
    assert isinstance(events[0], Form) and events[0].name is None
    assert events[1] == SlotSet("requested_slot", None)


def test_action_ask_affirmation(domain):
    tracker = new_tracker(domain)
    tracker.update(UserUttered("hm", {"name": "greet", "confidence": 0.2}))
    dispatcher = collecting(domain)
    assert ActionDefaultAskAffirmation().run(dispatcher, tracker, domain) == []
    assert dispatcher.messages == [{
        "recipient_id": "my-sender", "text": "Did you mean 'greet'?",
        "buttons": [{"title": "Yes", "payload": "/greet"},
                    {"title": "No", "payload": "/out_of_scope"}]}]


def test_action_ask_rephrase(domain):
    dispatcher = collecting(domain)
    assert ActionDefaultAskRephrase().run(dispatcher, new_tracker(domain), domain) == []
    assert dispatcher.messages == [{"recipient_id": "my-sender", "text": "say again?"}]


def test_utter_action_with_missing_template_sends_nothing_but_is_logged(domain, processor):
    tracker = new_tracker(domain)
    result = processor.execute_action(tracker, "utter_missing")
    assert result.messages == []
    assert summary(tracker.events[1:]) == [("action", "utter_missing")]


def fallback_tracker(domain, *events):
    tracker = new_tracker(domain)
    for event in events:
        tracker.update(event)
    return tracker


def low(intent, confidence=0.2):
    return UserUttered("/" + intent, {"name": intent, "confidence": confidence})


def test_revert_fallback_events_after_affirmation(domain):
    tracker = fallback_tracker(
        domain, low("greet"), ActionExecuted("action_default_ask_affirmation"),
        ActionExecuted("action_listen"), low("greet", 1.0))
    events = ActionRevertFallbackEvents().run(collecting(domain), tracker, domain)
    assert [e.type_name for e in events] == ["rewind", "rewind", "action", "user"]
    assert events[2].action_name == "action_listen"
    assert events[3].intent == {"name": "greet", "confidence": 1.0}
    assert events[3].parse_data["intent"]["confidence"] == 1.0
    for event in events:
        tracker.update(event)
    assert [e.as_story_string() for e in tracker.applied_events()] == [
        "action_listen", "greet"]


def test_revert_fallback_events_after_rephrase(domain):
    tracker = fallback_tracker(
        domain, low("greet"), ActionExecuted("action_default_ask_affirmation"),
        ActionExecuted("action_listen"), low("deny", 1.0),
        ActionExecuted("action_default_ask_rephrase"), ActionExecuted("action_listen"),
        low("goodbye", 0.9))
    events = ActionRevertFallbackEvents().run(collecting(domain), tracker, domain)
    assert [e.type_name for e in events] == ["rewind", "rewind", "rewind", "action", "user"]
    for event in events:
        tracker.update(event)
    assert [e.as_story_string() for e in tracker.applied_events()] == [
        "action_listen", "goodbye"]


def test_revert_fallback_events_after_rephrase_then_affirmation(domain):
    tracker = fallback_tracker(
        domain, low("greet"), ActionExecuted("action_default_ask_affirmation"),
        ActionExecuted("action_listen"), low("deny", 1.0),
        ActionExecuted("action_default_ask_rephrase"), ActionExecuted("action_listen"),
        low("goodbye", 0.1), ActionExecuted("action_default_ask_affirmation"),
        ActionExecuted("action_listen"), low("goodbye", 1.0))
    events = ActionRevertFallbackEvents().run(collecting(domain), tracker, domain)
    assert [e.type_name for e in events] == ["rewind", "rewind", "action", "rewind", "rewind",
                                             "rewind", "action", "user"]
    for event in events:
        tracker.update(event)
    assert [e.as_story_string() for e in tracker.applied_events()] == [
        "action_listen", "goodbye"]


def test_revert_fallback_events_otherwise_nothing(domain):
    tracker = fallback_tracker(domain, low("greet"), ActionExecuted("utter_greet"))
    assert ActionRevertFallbackEvents().run(collecting(domain), tracker, domain) == []


def test_two_stage_fallback_flow_through_the_processor(domain, memo_ensemble):
    memo = memo_ensemble.policies[0]
    ensemble = PolicyEnsemble([memo, TwoStageFallbackPolicy(deny_suggestion_intent_name="deny")])
    processor = processor_for(domain, ensemble)
    tracker = new_tracker(domain, "fb")
    result = processor.handle_message(tracker, UserMessage("/greet@0.2", "fb"))
    assert result.messages[0]["text"] == "Did you mean 'greet'?"
    assert tracker.events[-1].action_name == "action_listen"
    result = processor.handle_message(tracker, UserMessage("/greet", "fb"))
    assert result.messages[0]["text"] == "hey there None!"
    assert tracker.export_stories() == "## fb\n* greet\n    - utter_greet\n"


# --------------------------------------------------------------------------- dispatcher

def test_dispatcher_message_kinds(domain):
    dispatcher = collecting(domain, "me")
    dispatcher.utter_message("one\n\ntwo")
    dispatcher.utter_button_message("pick", [{"title": "a", "payload": "/a"}])
    dispatcher.utter_response({"text": "els", "elements": [
        {"title": "T", "subtitle": "S", "buttons": [{"title": "b", "payload": "/b"}]}]})
    dispatcher.utter_response({"text": "file", "attachment": "https://example.com/f.pdf"})
    assert dispatcher.messages == [
        {"recipient_id": "me", "text": "one"},
        {"recipient_id": "me", "text": "two"},
        {"recipient_id": "me", "text": "pick", "buttons": [{"title": "a", "payload": "/a"}]},
        {"recipient_id": "me", "text": "T : S", "buttons": [{"title": "b", "payload": "/b"}]},
        {"recipient_id": "me", "text": "file"},
        {"recipient_id": "me", "attachment": "https://example.com/f.pdf"},
    ]
    bots = dispatcher.take_bot_events()
    assert [b.text for b in bots] == ["one\n\ntwo", "pick", "els", "file"]
    assert bots[0].data == {"elements": None, "buttons": None, "attachment": None}
    assert bots[1].data["buttons"] == [{"title": "a", "payload": "/a"}]
    assert dispatcher.take_bot_events() == []
    assert dispatcher.utter_template("utter_nope", {}) is False


# --------------------------------------------------------------------------- more of the loop

def test_action_returning_pause_stops_the_loop(domain, memo_ensemble):
    processor = processor_for(domain, memo_ensemble,
                              RecordingClient((200, {"events": [{"event": "pause"}]})))
    tracker = new_tracker(domain)
    processor.handle_message(tracker, UserMessage("/remote", "u1"))
    assert summary(tracker.events) == [("action", "action_listen"), ("user", "remote"),
                                       ("action", "action_custom"), ("pause",)]
    assert tracker.paused


def test_remote_request_payload_of_a_fresh_tracker(domain):
    # AC6: the exact tracker JSON of a new conversation
    client = RecordingClient((200, {"events": [], "responses": []}))
    RemoteAction("my_action", client).run(collecting(domain),
                                          DialogueStateTracker("default", domain), domain)
    (payload,) = client.payloads
    assert payload["tracker"] == {
        "sender_id": "default", "slots": {"name": None},
        "latest_message": {"text": None, "intent": {}, "entities": []},
        "latest_event_time": None, "followup_action": "action_listen", "paused": False,
        "events": [], "latest_input_channel": None, "active_form": {},
        "latest_action_name": None}
    assert payload["next_action"] == "my_action"


def test_nlu_fallback_through_the_processor(domain, memo_ensemble):
    from coreactors.policies.fallback import FallbackPolicy
    ensemble = PolicyEnsemble([memo_ensemble.policies[0], FallbackPolicy()])
    processor = processor_for(domain, ensemble)
    tracker = new_tracker(domain)
    result = processor.handle_message(tracker, UserMessage("/greet@0.1", "u1"))
    assert result.messages == [{"recipient_id": "u1", "text": "default message"}]
    assert summary(tracker.events) == [
        ("action", "action_listen"), ("user", "greet"), ("action", "action_default_fallback"),
        ("rewind",), ("bot", "default message"), ("action", "action_listen")]
    assert tracker.events[2].policy == "policy_1_FallbackPolicy"
    # the unclear message is gone from the conversation; a clear one works as usual
    result = processor.handle_message(tracker, UserMessage("/greet", "u1"))
    assert result.messages[0]["text"] == "hey there None!"
    assert tracker.export_stories() == "## u1\n* greet\n    - utter_greet\n"


FORM_DOMAIN_YAML = """
intents: [greet, default, goodbye, start_form, stop, affirm, deny, inform]
actions: [utter_default, utter_greet, utter_goodbye, utter_ask_continue]
forms: [some_form]
"""

FORM_STORIES = """
## happy
* start_form
    - some_form
    - form{"name": "some_form"}
* form: inform
    - form: some_form
    - form{"name": null}
* default
    - utter_default

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


def test_form_unhappy_path_through_the_processor():
    from coreactors.policies.form import FormPolicy
    domain = Domain.from_yaml(FORM_DOMAIN_YAML)
    ensemble = PolicyEnsemble([MemoizationPolicy(max_history=3), FormPolicy()])
    ensemble.train(generate_trackers(read_stories(FORM_STORIES), domain,
                                     augmentation_factor=0), domain)
    payloads = []

    def form_server(payload):
        # behaves like the SDK's FormAction: validates only right after the user spoke
        payloads.append(payload)
        state = payload["tracker"]
        form = state["active_form"]
        intent = state["latest_message"]["intent"].get("name")
        if not form:
            return 200, {"events": [{"event": "form", "name": "some_form"}]}
        validating = state["latest_action_name"] == "action_listen" and form.get("validate")
        if validating and intent != "inform":
            return 400, {"action_name": "some_form", "error": "cannot use this"}
        return 200, {"events": [{"event": "form", "name": None}]}

    processor = processor_for(domain, ensemble, form_server)
    tracker = new_tracker(domain)
    processor.handle_message(tracker, UserMessage("/start_form", "u1"))
    assert tracker.active_form["name"] == "some_form"
    assert tracker.events[-1].policy == "policy_1_FormPolicy"      # listen after the form
    processor.handle_message(tracker, UserMessage("/stop", "u1"))
    assert summary(tracker.events[-5:]) == [
        ("user", "stop"), ("action_execution_rejected",), ("form_validation",),
        ("action", "utter_ask_continue"), ("action", "action_listen")]
    assert tracker.active_form["rejected"] is True
    processor.handle_message(tracker, UserMessage("/affirm", "u1"))
    # the form ran again without validating the "affirm"
    assert payloads[-1]["tracker"]["active_form"] == {"name": "some_form", "validate": False,
                                                      "rejected": True}
    assert payloads[-1]["tracker"]["latest_action_name"] == "action_listen"
    assert tracker.active_form == {}
    actions = [e.action_name for e in tracker.events if isinstance(e, ActionExecuted)]
    assert actions == ["action_listen", "some_form", "action_listen", "utter_ask_continue",
                       "action_listen", "some_form", "action_listen"]

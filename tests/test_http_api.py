"""Unit tests of the HTTP layer (coreactors.http) against a fake IConversations.

The app runs in a real Twisted ``Site`` in memory (``treq.testing.StubTreq``); the fake below
answers synchronously with ``defer.succeed``/``defer.fail`` and records every call, using the
real tracker and domain classes so the answers have the shapes of the real server. Expected
key sets and status codes come from the Rasa Core 0.12.4 transcript
(``/work/shared/reference/rasa-core-0.12.4-transcript.md``, request numbers in comments);
where the original answered HTML, a 500 for bad input or a 404 for a bad parameter, we expect
the JSON error body with the right 4xx.
"""

import base64
import json
from typing import Any, Dict, List, NamedTuple, Optional
from urllib.parse import parse_qs, urlparse

import pytest
import treq
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.logger import Logger, formatEvent
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from zope.interface import implementer
from zope.interface.verify import verifyObject

from coreactors import RASA_CORE_VERSION, __version__
from coreactors.actors.interface import (
    ConversationError, IConversations, NoModelLoaded, StoreUnavailable)
from coreactors.dialogue.domain import Domain
from coreactors.dialogue.events import (
    ActionExecuted, BotUttered, InvalidEvent, UserUttered, events_from_dicts)
from coreactors.dialogue.tracker import DialogueStateTracker, EventVerbosity
from coreactors.http.app import CoreApp
from coreactors.http.channels import (
    CallbackInput, RestInput, channels_from_credentials)
from coreactors.http.errors import error_body, write_error
from coreactors.nlu.interpreter import RegexInterpreter

BASE = "http://core.test"

DOMAIN_YAML = """
intents:
  - hello
  - farewell
  - feel_good
entities:
  - name
slots:
  name:
    type: text
templates:
  utter_hello:
    - text: "Hi {name}, nice to see you."
  utter_farewell:
    - text: "See you."
actions:
  - utter_hello
  - utter_farewell
"""

# Key sets of the original server's answers (transcript requests 3, 5, 12, 13, 44, 49, 11).
TRACKER_KEYS = {"active_form", "events", "followup_action", "latest_action_name",
                "latest_event_time", "latest_input_channel", "latest_message", "paused",
                "sender_id", "slots"}
STATUS_KEYS = {"is_ready", "model_fingerprint"}
PREDICT_KEYS = {"confidence", "policy", "scores", "tracker"}
EXECUTE_KEYS = {"messages", "tracker"}
PREDICT_EVENTS_KEYS = {"policy", "scores", "tracker"}
EVALUATE_KEYS = {"accuracy", "actions", "f1", "in_training_data_fraction",
                 "is_end_to_end_evaluation", "precision", "report"}
ERROR_KEYS = {"code", "details", "help", "message", "reason", "status", "version"}


# --------------------------------------------------------------------------- the fake


@implementer(IConversations)
class FakeConversations:
    """An in-memory, synchronous stand-in for the supervisor. ``failure`` (when set) makes
    every call fail with it; ``turn`` (when set) is the Deferred ``handle_message`` returns, so
    a test can call the listener itself and fire the turn later."""

    def __init__(self) -> None:
        self._domain = Domain.from_yaml(DOMAIN_YAML)
        self.trackers: Dict[str, DialogueStateTracker] = {}
        self.calls: List[tuple] = []
        self.is_ready = True
        self.fingerprint = "fp-0123"
        self.failure: Optional[Exception] = None
        self.turn: Optional[defer.Deferred] = None
        self.listener = None
        self.interpreter = RegexInterpreter()

    # helpers
    def _get(self, sender_id: str) -> DialogueStateTracker:
        if sender_id not in self.trackers:
            tracker = DialogueStateTracker(sender_id, self._domain)
            tracker.update(ActionExecuted("action_listen"))
            self.trackers[sender_id] = tracker
        return self.trackers[sender_id]

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name,) + args)

    def called(self, name: str) -> List[tuple]:
        return [c[1:] for c in self.calls if c[0] == name]

    def _scores(self) -> List[Dict[str, Any]]:
        return [{"action": a, "score": 1.0 if a == "utter_hello" else 0.0}
                for a in self._domain.action_names]

    # IConversations
    def domain(self) -> Domain:
        self._call("domain")
        if self.failure is not None:
            raise self.failure
        return self._domain

    def handle_message(self, sender_id, text, input_channel=None, listener=None):
        self._call("handle_message", sender_id, text, input_channel)
        self.listener = listener
        if self.failure is not None:
            return defer.fail(self.failure)
        if self.turn is not None:
            return self.turn
        tracker = self._get(sender_id)
        parse = self.interpreter.parse(text)
        tracker.update(UserUttered(text, parse["intent"], parse["entities"], parse,
                                   input_channel=input_channel))
        messages = [{"recipient_id": sender_id, "text": "You said: " + text},
                    {"recipient_id": sender_id, "text": "Anything else?"}]
        for message in messages:
            tracker.update(BotUttered(message["text"]))
            if listener is not None:
                listener(message)
        return defer.succeed(messages)

    def log_message(self, sender_id, text, parse_data, verbosity):
        self._call("log_message", sender_id, text, parse_data, verbosity)
        if self.failure is not None:
            return defer.fail(self.failure)
        tracker = self._get(sender_id)
        parse = parse_data or self.interpreter.parse(text)
        tracker.update(UserUttered(text, parse.get("intent"), parse.get("entities"), parse))
        return defer.succeed(tracker.current_state(verbosity))

    def tracker(self, sender_id, verbosity, until=None):
        self._call("tracker", sender_id, verbosity, until)
        if self.failure is not None:
            return defer.fail(self.failure)
        tracker = self._get(sender_id)
        if until is not None:
            tracker = tracker.travel_back_in_time(until)
        return defer.succeed(tracker.current_state(verbosity))

    def story(self, sender_id, until=None):
        self._call("story", sender_id, until)
        if self.failure is not None:
            return defer.fail(self.failure)
        return defer.succeed(self._get(sender_id).export_stories(e2e=True))

    def append_events(self, sender_id, events, verbosity):
        self._call("append_events", sender_id, events, verbosity)
        if self.failure is not None:
            return defer.fail(self.failure)
        try:
            parsed = events_from_dicts(events)
        except InvalidEvent as e:
            return defer.fail(ConversationError(str(e), 400, "InvalidEvent"))
        tracker = self._get(sender_id)
        tracker.update_many(parsed)
        return defer.succeed(tracker.current_state(verbosity))

    def replace_events(self, sender_id, events, verbosity):
        self._call("replace_events", sender_id, events, verbosity)
        if self.failure is not None:
            return defer.fail(self.failure)
        tracker = DialogueStateTracker.from_dicts(sender_id, events, self._domain)
        self.trackers[sender_id] = tracker
        return defer.succeed(tracker.current_state(verbosity))

    def predict(self, sender_id):
        self._call("predict", sender_id)
        if self.failure is not None:
            return defer.fail(self.failure)
        return defer.succeed({
            "scores": self._scores(), "policy": "policy_0_MemoizationPolicy", "confidence": 1.0,
            "tracker": self._get(sender_id).current_state(EventVerbosity.AFTER_RESTART)})

    def execute(self, sender_id, action, policy, confidence, verbosity):
        self._call("execute", sender_id, action, policy, confidence, verbosity)
        if self.failure is not None:
            return defer.fail(self.failure)
        tracker = self._get(sender_id)
        tracker.update(ActionExecuted(action, policy, confidence))
        messages = [{"recipient_id": sender_id, "text": "Hi None, nice to see you."}]
        return defer.succeed({"tracker": tracker.current_state(verbosity),
                              "messages": messages})

    def conversation_ids(self):
        self._call("conversation_ids")
        if self.failure is not None:
            return defer.fail(self.failure)
        return defer.succeed(sorted(self.trackers))

    def predict_for_events(self, events):
        self._call("predict_for_events", events)
        if self.failure is not None:
            return defer.fail(self.failure)
        tracker = DialogueStateTracker.from_dicts("default", events, self._domain)
        return defer.succeed({"scores": self._scores(), "policy": "policy_0_MemoizationPolicy",
                              "tracker": tracker.current_state(EventVerbosity.AFTER_RESTART)})

    def evaluate(self, stories, e2e):
        self._call("evaluate", stories, e2e)
        if self.failure is not None:
            return defer.fail(self.failure)
        return defer.succeed({"report": "", "precision": 1.0, "f1": 1.0, "accuracy": 1.0,
                              "actions": [], "in_training_data_fraction": 1.0,
                              "is_end_to_end_evaluation": e2e})

    def finetune(self, events):
        self._call("finetune", events)
        if self.failure is not None:
            return defer.fail(self.failure)
        return defer.succeed(None)

    def parse(self, text):
        self._call("parse", text)
        if self.failure is not None:
            return defer.fail(self.failure)
        return defer.succeed(self.interpreter.parse(text))


# --------------------------------------------------------------------------- harness


class Answer(NamedTuple):
    code: int
    headers: Headers
    body: bytes
    length: Any

    def header(self, name: str) -> Optional[str]:
        values = self.headers.getRawHeaders(name.encode("ascii"))
        return values[0].decode("utf-8") if values else None

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


def call(stub: StubTreq, method: str, path: str, **kwargs: Any) -> Answer:
    """One request through the in-memory Site, answered synchronously."""
    results: List[Any] = []
    d = stub.request(method, BASE + path, **kwargs)

    def got(response: Any) -> defer.Deferred:
        return stub.content(response).addCallback(
            lambda body: results.append(Answer(response.code, response.headers, body,
                                               response.length)))
    d.addCallback(got)
    d.addErrback(results.append)
    stub.flush()
    assert len(results) == 1, "no answer (the request is still pending)"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def assert_error(answer: Answer, code: int, reason: Optional[str] = None,
                 parameter: Optional[str] = None) -> Dict[str, Any]:
    assert answer.code == code, answer.body
    assert answer.header("Content-Type") == "application/json"
    body = answer.json
    assert set(body) == ERROR_KEYS
    assert body["status"] == "failure"
    assert body["code"] == code
    assert body["version"] == RASA_CORE_VERSION
    assert body["help"] is None
    assert isinstance(body["message"], str) and body["message"]
    if reason is not None:
        assert body["reason"] == reason
    if parameter is not None:
        assert body["details"]["parameter"] == parameter
    return body


def assert_json(answer: Answer, code: int = 200) -> Any:
    assert answer.code == code, answer.body
    assert answer.header("Content-Type") == "application/json"
    # An explicit Content-Length, not chunked transfer encoding.
    assert answer.length == len(answer.body)
    return answer.json


class Captured:
    """A twisted.logger observer that keeps the events."""

    def __init__(self) -> None:
        self.events: List[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    def texts(self) -> List[str]:
        return [formatEvent(e) for e in self.events]

    def failures(self) -> List[Failure]:
        return [e["log_failure"] for e in self.events if "log_failure" in e]


@pytest.fixture
def fake() -> FakeConversations:
    return FakeConversations()


def make(fake: FakeConversations, **kwargs: Any) -> StubTreq:
    return StubTreq(CoreApp(fake, **kwargs).resource())


@pytest.fixture
def stub(fake: FakeConversations) -> StubTreq:
    return make(fake)


def test_the_fake_provides_the_interface(fake):
    assert verifyObject(IConversations, fake)


# --------------------------------------------------------------------------- status routes


def test_hello(stub):
    answer = call(stub, "GET", "/")  # transcript 1
    assert answer.code == 200
    assert answer.body == b"hello from Rasa Core: 0.12.4"
    assert answer.header("Content-Type").startswith("text/plain")
    assert answer.length == len(answer.body)


def test_version(stub):
    body = assert_json(call(stub, "GET", "/version"))  # transcript 2
    assert body == {"version": "0.12.4", "minimum_compatible_version": "0.12.0",
                    "coreactors": __version__}


def test_status(fake, stub):
    body = assert_json(call(stub, "GET", "/status"))  # transcript 3
    assert set(body) == STATUS_KEYS
    assert body == {"model_fingerprint": "fp-0123", "is_ready": True}
    fake.is_ready, fake.fingerprint = False, None
    assert assert_json(call(stub, "GET", "/status")) == {"model_fingerprint": None,
                                                          "is_ready": False}


def test_head_of_a_get_route(stub):
    answer = call(stub, "HEAD", "/version")
    assert answer.code == 200
    assert answer.body == b""


# --------------------------------------------------------------------------- conversations


def test_list_conversations(stub):
    assert assert_json(call(stub, "GET", "/conversations")) == []  # transcript 4
    call(stub, "GET", "/conversations/default/tracker")
    assert assert_json(call(stub, "GET", "/conversations")) == ["default"]  # transcript 6


def test_tracker_default_verbosity_and_shape(fake, stub):
    body = assert_json(call(stub, "GET", "/conversations/default/tracker"))  # transcript 5
    assert set(body) == TRACKER_KEYS
    assert body["sender_id"] == "default"
    assert [e["event"] for e in body["events"]] == ["action"]
    assert fake.called("tracker") == [("default", EventVerbosity.AFTER_RESTART, None)]


@pytest.mark.parametrize("query, expected", [
    ("include_events=ALL", EventVerbosity.ALL),
    ("include_events=all", EventVerbosity.ALL),
    ("include_events=Applied", EventVerbosity.APPLIED),
    ("include_events=after_restart", EventVerbosity.AFTER_RESTART),
    ("include_events=NONE", EventVerbosity.NONE),
    ("events=false", EventVerbosity.NONE),
    ("events=true", EventVerbosity.AFTER_RESTART),
    ("ignore_restarts=true", EventVerbosity.ALL),
    ("ignore_restarts=false", EventVerbosity.AFTER_RESTART),
    ("ignore_restarts=true&events=false", EventVerbosity.NONE),
    ("events=false&include_events=ALL", EventVerbosity.ALL),
    ("ignore_restarts=true&include_events=applied", EventVerbosity.APPLIED),
])
def test_tracker_verbosity_parameters(fake, stub, query, expected):
    assert_json(call(stub, "GET", "/conversations/c1/tracker?" + query))
    assert fake.called("tracker") == [("c1", expected, None)]


def test_tracker_with_no_events_has_null_events(stub):
    body = assert_json(call(stub, "GET", "/conversations/c1/tracker?include_events=NONE"))
    assert body["events"] is None  # transcript 16


def test_bad_include_events_is_400(fake, stub):
    # transcript 17: Rasa answered 404; a bad parameter is a 400 here.
    body = assert_error(call(stub, "GET", "/conversations/c1/tracker?include_events=bogus"),
                        400, "InvalidParameter", "include_events")
    assert body["details"]["in"] == "query"
    assert "ALL" in body["message"]
    assert fake.called("tracker") == []


@pytest.mark.parametrize("path", [
    "/conversations/c1/messages?include_events=some",
    "/conversations/c1/tracker/events?include_events=some",
    "/conversations/c1/execute?include_events=some",
])
def test_bad_include_events_on_post_routes(stub, path):
    assert_error(call(stub, "POST", path, json={"text": "/hello", "sender": "user",
                                                "name": "utter_hello", "event": "pause"}),
                 400, "InvalidParameter", "include_events")


@pytest.mark.parametrize("query", ["events=maybe", "ignore_restarts=perhaps"])
def test_bad_legacy_boolean_is_400(stub, query):
    assert_error(call(stub, "GET", "/conversations/c1/tracker?" + query), 400,
                 "InvalidParameter")


def test_tracker_until(fake, stub):
    assert_json(call(stub, "GET", "/conversations/c1/tracker?until=1795717711.5"))
    assert fake.called("tracker") == [("c1", EventVerbosity.AFTER_RESTART, 1795717711.5)]


@pytest.mark.parametrize("value", ["yesterday", "nan", "1.2.3"])
def test_bad_until_is_400(fake, stub, value):
    assert_error(call(stub, "GET", "/conversations/c1/tracker?until=" + value), 400,
                 "InvalidParameter", "until")
    assert_error(call(stub, "GET", "/conversations/c1/story?until=" + value), 400,
                 "InvalidParameter", "until")
    assert fake.called("tracker") == [] and fake.called("story") == []


# --------------------------------------------------------------------------- tracker events


def test_post_one_event(fake, stub):
    event = {"event": "slot", "name": "name", "value": "Bob"}
    body = assert_json(call(stub, "POST", "/conversations/default/tracker/events",
                            json=event))  # transcript 7
    assert set(body) == TRACKER_KEYS
    assert body["slots"] == {"name": "Bob"}
    assert fake.called("append_events") == [("default", [event],
                                             EventVerbosity.AFTER_RESTART)]


def test_post_a_list_of_events(fake, stub):
    events = [{"event": "slot", "name": "name", "value": "Ann"}, {"event": "pause"}]
    body = assert_json(call(stub, "POST",
                            "/conversations/c2/tracker/events?include_events=ALL",
                            json=events))
    assert body["slots"] == {"name": "Ann"} and body["paused"] is True
    assert fake.called("append_events") == [("c2", events, EventVerbosity.ALL)]


def test_json_bodies_sent_as_form_data_are_read(fake, stub):
    # curl -d sends "application/x-www-form-urlencoded"; the body is still JSON.
    answer = call(stub, "POST", "/conversations/f1/tracker/events",
                  data=b'{"event": "slot", "name": "name", "value": "a=b&c"}',
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert assert_json(answer)["slots"] == {"name": "a=b&c"}


def test_post_an_empty_list_of_events(fake, stub):
    assert_json(call(stub, "POST", "/conversations/c2/tracker/events", json=[]))
    assert fake.called("append_events") == [("c2", [], EventVerbosity.AFTER_RESTART)]


def test_unknown_event_is_the_actors_400(stub):
    # transcript 8: Rasa answered an HTML 500.
    assert_error(call(stub, "POST", "/conversations/c1/tracker/events",
                      json={"event": "nonsense"}), 400, "InvalidEvent")


@pytest.mark.parametrize("data, reason", [
    (b"not json", "BadRequest"),  # transcript 9 (an HTML 400 there)
    (b"", "BadRequest"),
    (b"\xff\xfe{}", "BadRequest"),
    (b'"a string"', "BadRequest"),
    (b"42", "BadRequest"),
    (b"null", "BadRequest"),
    (b'[{"event": "pause"}, 3]', "InvalidParameter"),
    (b'{"name": "no event type"}', "InvalidParameter"),
    (b'[{"event": 7}]', "InvalidParameter"),
])
def test_post_events_bad_bodies(fake, stub, data, reason):
    assert_error(call(stub, "POST", "/conversations/c1/tracker/events", data=data), 400,
                 reason)
    assert fake.called("append_events") == []


def test_put_replaces_events(fake, stub):
    events = [{"event": "action", "name": "action_listen"},
              {"event": "user", "text": "/hello",
               "parse_data": {"intent": {"name": "hello", "confidence": 1.0},
                              "entities": []}}]
    body = assert_json(call(stub, "PUT", "/conversations/p1/tracker/events",
                            json=events))  # transcript 43
    assert set(body) == TRACKER_KEYS
    assert [e["event"] for e in body["events"]] == ["action", "user"]
    assert fake.called("replace_events") == [("p1", events, EventVerbosity.AFTER_RESTART)]


@pytest.mark.parametrize("data", [b'{"event": "pause"}', b"nope", b'["pause"]'])
def test_put_needs_a_list_of_event_objects(fake, stub, data):
    assert_error(call(stub, "PUT", "/conversations/p1/tracker/events", data=data), 400)
    assert fake.called("replace_events") == []


# --------------------------------------------------------------------------- messages


def test_log_message(fake, stub):
    body = assert_json(call(stub, "POST", "/conversations/default/messages",
                            json={"text": "/hello", "sender": "user"}))  # transcript 10
    assert set(body) == TRACKER_KEYS
    assert body["latest_message"]["intent"]["name"] == "hello"
    assert fake.called("log_message") == [("default", "/hello", None,
                                          EventVerbosity.AFTER_RESTART)]


def test_log_message_with_message_key_and_parse_data(fake, stub):
    parse_data = {"text": "howdy", "intent": {"name": "hello", "confidence": 0.9},
                  "entities": []}
    assert_json(call(stub, "POST", "/conversations/m1/messages?include_events=NONE",
                     json={"message": "howdy", "sender": "user", "parse_data": parse_data}))
    assert fake.called("log_message") == [("m1", "howdy", parse_data, EventVerbosity.NONE)]


def test_log_message_from_the_bot_is_refused(fake, stub):
    # transcript 11: the same error body, but 400 instead of 500.
    body = assert_error(call(stub, "POST", "/conversations/default/messages",
                             json={"text": "hi", "sender": "bot"}),
                        400, "NotSupported", "sender")
    assert body["details"] == {"in": "body", "parameter": "sender"}
    assert fake.called("log_message") == []


@pytest.mark.parametrize("payload, parameter", [
    ({"sender": "user"}, "text"),
    ({"text": 5, "sender": "user"}, "text"),
    ({"text": "hi"}, "sender"),
    ({"text": "hi", "sender": "user", "parse_data": "greet"}, "parse_data"),
])
def test_log_message_missing_or_wrong_fields(fake, stub, payload, parameter):
    assert_error(call(stub, "POST", "/conversations/m1/messages", json=payload), 400,
                 "InvalidParameter", parameter)
    assert fake.called("log_message") == []


def test_log_message_needs_an_object(stub):
    assert_error(call(stub, "POST", "/conversations/m1/messages", json=["hi"]), 400,
                 "BadRequest")


# --------------------------------------------------------------------------- predict, execute


def test_predict_in_a_conversation(fake, stub):
    body = assert_json(call(stub, "POST", "/conversations/c1/predict"))  # transcript 19
    assert set(body) == PREDICT_KEYS
    assert set(body["tracker"]) == TRACKER_KEYS
    assert {"action", "score"} == set(body["scores"][0])
    assert fake.called("predict") == [("c1",)]


def test_execute(fake, stub):
    body = assert_json(call(stub, "POST", "/conversations/c1/execute",
                            json={"name": "utter_hello"}))  # transcript 13
    assert set(body) == EXECUTE_KEYS
    assert set(body["tracker"]) == TRACKER_KEYS
    assert body["messages"][0]["recipient_id"] == "c1"
    assert fake.called("execute") == [("c1", "utter_hello", None, None,
                                      EventVerbosity.AFTER_RESTART)]


def test_execute_with_action_key_policy_and_confidence(fake, stub):
    assert_json(call(stub, "POST", "/conversations/c1/execute?include_events=ALL",
                     json={"action": "utter_hello", "policy": "policy_0_MemoizationPolicy",
                           "confidence": 1}))  # transcript 20
    assert fake.called("execute") == [("c1", "utter_hello", "policy_0_MemoizationPolicy",
                                      1.0, EventVerbosity.ALL)]


@pytest.mark.parametrize("payload, parameter", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": ["utter_hello"]}, "name"),
    ({"name": "utter_hello", "policy": 3}, "policy"),
    ({"name": "utter_hello", "confidence": "high"}, "confidence"),
    ({"name": "utter_hello", "confidence": True}, "confidence"),
])
def test_execute_bad_bodies(fake, stub, payload, parameter):
    assert_error(call(stub, "POST", "/conversations/c1/execute", json=payload), 400,
                 "InvalidParameter", parameter)
    assert fake.called("execute") == []


def test_execute_unknown_action_error_passes_through(fake, stub):
    fake.failure = ConversationError("Cannot access action 'utter_nope'.", 400,
                                     "UnknownAction")
    body = assert_error(call(stub, "POST", "/conversations/c1/execute",
                             json={"name": "utter_nope"}), 400, "UnknownAction")
    assert body["message"] == "Cannot access action 'utter_nope'."  # transcript 14 (500 there)


# --------------------------------------------------------------------------- respond, story


def test_respond_get(fake, stub):
    body = assert_json(call(stub, "GET", "/conversations/r1/respond?q=/hello"))  # transcript 40
    assert body == [{"recipient_id": "r1", "text": "You said: /hello"},
                    {"recipient_id": "r1", "text": "Anything else?"}]
    assert_json(call(stub, "GET", "/conversations/r1/respond?query=/farewell"))
    assert fake.called("handle_message") == [("r1", "/hello", None), ("r1", "/farewell", None)]


def test_respond_post(fake, stub):
    body = assert_json(call(stub, "POST", "/conversations/r1/respond",
                            json={"query": "/feel_good"}))  # transcript 41
    assert body[0] == {"recipient_id": "r1", "text": "You said: /feel_good"}
    assert fake.called("handle_message") == [("r1", "/feel_good", None)]


def test_respond_without_query(fake, stub):
    body = assert_error(call(stub, "POST", "/conversations/r1/respond", json={}),
                        400, "InvalidParameter", "query")  # transcript 42
    assert body["details"] == {"in": "query", "parameter": "query"}
    assert_error(call(stub, "GET", "/conversations/r1/respond"), 400, "InvalidParameter")
    assert_error(call(stub, "POST", "/conversations/r1/respond", json={"query": 1}), 400)
    assert fake.called("handle_message") == []


def test_story(fake, stub):
    call(stub, "POST", "/conversations/s1/messages", json={"text": "/hello", "sender": "user"})
    answer = call(stub, "GET", "/conversations/s1/story")  # transcript 23
    assert answer.code == 200
    assert answer.header("Content-Type").startswith("text/plain")
    assert answer.length == len(answer.body)
    text = answer.body.decode("utf-8")
    assert text.startswith("## s1")
    assert "* hello: /hello" in text
    call(stub, "GET", "/conversations/s1/story?until=12.5")
    assert fake.called("story") == [("s1", None), ("s1", 12.5)]


# --------------------------------------------------------------------------- model routes


EVENTS = [{"event": "action", "name": "action_listen"},
          {"event": "user", "text": "/hello",
           "parse_data": {"intent": {"name": "hello", "confidence": 1.0}, "entities": []}}]


def test_predict_for_events(fake, stub):
    body = assert_json(call(stub, "POST", "/predict", json=EVENTS))  # transcript 44
    assert set(body) == PREDICT_EVENTS_KEYS
    assert body["tracker"]["sender_id"] == "default"
    assert fake.called("predict_for_events") == [(EVENTS,)]


@pytest.mark.parametrize("path", ["/predict", "/finetune"])
def test_event_list_routes_refuse_objects(fake, stub, path):
    assert_error(call(stub, "POST", path, json={"event": "pause"}), 400, "BadRequest")
    assert_error(call(stub, "POST", path, data=b"[1, 2]"), 400, "InvalidParameter")
    assert fake.calls == []


def test_evaluate(fake, stub):
    stories = "## one\n* hello\n    - utter_hello\n"
    body = assert_json(call(stub, "POST", "/evaluate", data=stories.encode("utf-8"),
                            headers={"Content-Type": "text/markdown"}))  # transcript 49
    assert set(body) == EVALUATE_KEYS
    assert_json(call(stub, "POST", "/evaluate?e2e=true", data=stories.encode("utf-8")))
    assert fake.called("evaluate") == [(stories, False), (stories, True)]


def test_evaluate_bad_input(fake, stub):
    assert_error(call(stub, "POST", "/evaluate?e2e=sometimes", data=b"## s\n"), 400,
                 "InvalidParameter", "e2e")
    assert_error(call(stub, "POST", "/evaluate", data=b""), 400, "InvalidParameter")
    assert_error(call(stub, "POST", "/evaluate", data=b"## \xff"), 400, "BadRequest")
    assert fake.called("evaluate") == []


def test_evaluate_failure_from_the_actors(fake, stub):
    fake.failure = ConversationError("Evaluation could not be created. Error: line 2",
                                     400, "FailedEvaluation")
    assert_error(call(stub, "POST", "/evaluate?e2e=true", data=b"## s\n* greet\n"), 400,
                 "FailedEvaluation")  # transcript 50


def test_parse_answers_the_interpreters_parse(fake, stub):
    body = assert_json(call(stub, "POST", "/parse", json={"q": "/greet{\"name\": \"Ann\"}"}))
    assert body["intent"] == {"name": "greet", "confidence": 1.0}
    assert body["entities"][0]["value"] == "Ann"
    assert fake.called("parse") == [("/greet{\"name\": \"Ann\"}",)]
    assert fake.trackers == {}  # no conversation was touched


@pytest.mark.parametrize("payload, parameter", [
    ({}, "q"), ({"q": 3}, "q"), ({"q": None}, "q"), ({"text": ["a"]}, "text")])
def test_parse_needs_q_as_a_string(fake, stub, payload, parameter):
    assert_error(call(stub, "POST", "/parse", json=payload), 400, parameter=parameter)
    assert fake.called("parse") == []


def test_parse_refuses_a_body_that_is_not_an_object(fake, stub):
    assert_error(call(stub, "POST", "/parse", json=["hello"]), 400)
    assert fake.called("parse") == []


def test_finetune(fake, stub):
    answer = call(stub, "POST", "/finetune", json=EVENTS)
    assert answer.code == 204
    assert answer.body == b""
    assert fake.called("finetune") == [(EVENTS,)]


# --------------------------------------------------------------------------- domain


@pytest.mark.parametrize("accept", [None, "", "*/*", "application/json",
                                    "application/json; charset=utf-8",
                                    "text/html, */*;q=0.1",
                                    "application/x-yml;q=0.5, application/json"])
def test_domain_as_json(fake, stub, accept):
    headers = {} if accept is None else {"Accept": accept}
    body = assert_json(call(stub, "GET", "/domain", headers=headers))  # transcript 25
    assert body == fake._domain.as_dict()
    assert set(body) == {"actions", "config", "entities", "forms", "intents", "slots",
                         "templates"}


@pytest.mark.parametrize("accept", ["application/x-yml", "application/yaml",
                                    "application/json;q=0.2, application/x-yml"])
def test_domain_as_yaml(fake, stub, accept):
    answer = call(stub, "GET", "/domain", headers={"Accept": accept})  # transcript 26
    assert answer.code == 200
    assert answer.header("Content-Type") == "application/x-yml"
    assert answer.body.startswith(b"%YAML 1.1\n---\n")
    assert answer.body.decode("utf-8") == fake._domain.as_yaml()
    assert answer.length == len(answer.body)


@pytest.mark.parametrize("accept", ["text/html", "text/plain, image/png",
                                    "application/json;q=0"])
def test_domain_other_accept_is_406(stub, accept):
    assert_error(call(stub, "GET", "/domain", headers={"Accept": accept}), 406,
                 "InvalidHeader")


def test_domain_without_a_model(fake, stub):
    fake.failure = NoModelLoaded("No model is loaded.")
    assert_error(call(stub, "GET", "/domain", headers={"Accept": "application/json"}), 503,
                 "NoAgent")


# --------------------------------------------------------------------------- errors


def test_unknown_route_is_404(stub):
    assert_error(call(stub, "GET", "/does-not-exist"), 404, "NotFound")  # transcript 58
    assert_error(call(stub, "POST", "/conversations/c1/nothing"), 404, "NotFound")


def test_wrong_method_is_405(stub):
    answer = call(stub, "GET", "/conversations/default/messages")  # transcript 59
    assert_error(answer, 405, "MethodNotAllowed")
    assert "POST" in answer.header("Allow")
    assert_error(call(stub, "DELETE", "/conversations/default/tracker"), 405)
    assert_error(call(stub, "GET", "/webhooks/rest/webhook"), 405)


@pytest.mark.parametrize("error, code, reason", [
    (StoreUnavailable("The tracker store failed."), 503, "StoreUnavailable"),
    (NoModelLoaded("No model is loaded."), 503, "NoAgent"),
    (ConversationError("Busy.", 409, "Conflict"), 409, "Conflict"),
    (ConversationError("An exception occurred while running the action", 500,
                       "ActionException"), 500, "ActionException"),
])
def test_conversation_errors_keep_their_status(fake, stub, error, code, reason):
    fake.failure = error
    body = assert_error(call(stub, "GET", "/conversations/c1/tracker"), code, reason)
    assert body["message"] == error.message
    assert_error(call(stub, "GET", "/conversations"), code, reason)


def test_unexpected_exception_is_a_logged_500(fake):
    captured = Captured()
    app = CoreApp(fake)
    app.log = Logger(namespace="test", observer=captured)
    stub = StubTreq(app.resource())
    fake.failure = RuntimeError("boom")
    answer = call(stub, "POST", "/conversations/c1/predict")
    body = assert_error(answer, 500, "InternalError")
    assert "boom" not in body["message"]
    assert [f.type for f in captured.failures()] == [RuntimeError]
    assert b"<html" not in answer.body.lower()


def test_a_failure_outside_the_routes_is_still_the_error_body(fake):
    app = CoreApp(fake, cors_origins=["*"])
    app.log = Logger(namespace="test", observer=Captured())

    def broken(request):
        raise ValueError("preflight broke")
    app._preflight = broken
    answer = call(StubTreq(app.resource()), "OPTIONS", "/status")
    assert_error(answer, 500, "InternalError")
    assert answer.header("Access-Control-Allow-Origin") == "*"


def test_error_helpers():
    assert error_body(418, "Teapot", "I am a teapot.", {"in": "body"}) == {
        "version": RASA_CORE_VERSION, "status": "failure", "message": "I am a teapot.",
        "reason": "Teapot", "details": {"in": "body"}, "help": None, "code": 418}

    class Request:
        def __init__(self):
            self.code, self.headers = None, {}

        def setResponseCode(self, code):
            self.code = code

        def setHeader(self, name, value):
            self.headers[name] = value

    request = Request()
    body = write_error(request, 400, "BadRequest", "No.")
    assert request.code == 400
    assert request.headers[b"Content-Type"] == b"application/json"
    assert request.headers[b"Content-Length"] == str(len(body)).encode()
    assert json.loads(body)["reason"] == "BadRequest"


# --------------------------------------------------------------------------- body size


def test_body_over_the_limit_is_413(fake):
    stub = make(fake, max_body_bytes=64)
    event = {"event": "slot", "name": "name", "value": "x" * 100}
    assert_error(call(stub, "POST", "/conversations/c1/tracker/events", json=event), 413)
    assert_error(call(stub, "POST", "/evaluate", data=b"## s\n" + b"x" * 100), 413)
    assert_error(call(stub, "POST", "/webhooks/rest/webhook",
                      json={"sender": "u", "message": "y" * 100}), 413)
    assert fake.calls == []


def test_body_at_the_limit_is_accepted(fake):
    data = json.dumps({"event": "slot", "name": "name", "value": "x"}).encode()
    stub = make(fake, max_body_bytes=len(data))
    assert_json(call(stub, "POST", "/conversations/c1/tracker/events", data=data))


# --------------------------------------------------------------------------- sender ids


@pytest.mark.parametrize("encoded, sender_id", [
    ("a%2Fb", "a/b"),
    ("Zo%C3%AB%20Smith", "Zoë Smith"),
    ("100%25", "100%"),
    ("%2Fleading", "/leading"),
    ("tracker%2Fevents", "tracker/events"),
    # Only unreserved characters: passed on without quoting; anything else is quoted.
    ("Az09-_.~", "Az09-_.~"),
    ("%7Etilde", "~tilde"),
    ("a+b", "a+b"),
    ("semi%3Bcolon", "semi;colon"),
    ("q%3Fx%3D1", "q?x=1"),
])
def test_sender_ids_are_decoded_exactly(fake, stub, encoded, sender_id):
    body = assert_json(call(stub, "GET", "/conversations/{}/tracker".format(encoded)))
    assert body["sender_id"] == sender_id
    assert_json(call(stub, "POST", "/conversations/{}/messages".format(encoded),
                     json={"text": "/hello", "sender": "user"}))
    assert_json(call(stub, "POST", "/conversations/{}/tracker/events".format(encoded),
                     json={"event": "pause"}))
    assert fake.called("tracker")[0][0] == sender_id
    assert fake.called("log_message")[0][0] == sender_id
    assert fake.called("append_events")[0][0] == sender_id


def test_sender_id_that_is_not_utf8_is_400(fake, stub):
    assert_error(call(stub, "GET", "/conversations/%FF/tracker"), 400, "InvalidParameter",
                 "sender_id")
    assert fake.calls == []


# --------------------------------------------------------------------------- CORS


CORS_REQUESTS = [("GET", "/version", 200), ("GET", "/nope", 404),
                 ("GET", "/conversations/c1/tracker?include_events=x", 400),
                 ("GET", "/conversations/c1/messages", 405),
                 ("POST", "/webhooks/rest/webhook", 200)]


@pytest.mark.parametrize("method, path, code", CORS_REQUESTS)
def test_cors_star_on_every_answer(fake, method, path, code):
    stub = make(fake, cors_origins=["*"])
    answer = call(stub, method, path, json={"message": "hi"},
                  headers={"Origin": "http://example.com"})
    assert answer.code == code
    assert answer.header("Access-Control-Allow-Origin") == "*"
    assert "Authorization" in answer.header("Access-Control-Allow-Headers")
    assert "PUT" in answer.header("Access-Control-Allow-Methods")


def test_cors_on_a_500(fake):
    stub = make(fake, cors_origins=["*"])
    fake.failure = RuntimeError("boom")
    answer = call(stub, "GET", "/conversations")
    assert answer.code == 500
    assert answer.header("Access-Control-Allow-Origin") == "*"


def test_cors_named_origins(fake):
    stub = make(fake, cors_origins=["http://a.test", "http://b.test"])
    answer = call(stub, "GET", "/status", headers={"Origin": "http://b.test"})
    assert answer.header("Access-Control-Allow-Origin") == "http://b.test"
    assert answer.header("Access-Control-Allow-Credentials") == "true"
    assert answer.header("Vary") == "Origin"
    other = call(stub, "GET", "/status", headers={"Origin": "http://evil.test"})
    assert other.code == 200
    assert other.header("Access-Control-Allow-Origin") is None
    assert call(stub, "GET", "/status").header("Access-Control-Allow-Origin") is None


def test_no_cors_headers_without_configured_origins(stub):
    answer = call(stub, "GET", "/version", headers={"Origin": "http://a.test"})
    assert answer.header("Access-Control-Allow-Origin") is None


@pytest.mark.parametrize("path, allowed", [
    ("/conversations/default/tracker", "GET"),  # transcript 55
    ("/conversations/default/tracker/events", "PUT"),
    ("/conversations/default/messages", "POST"),
    ("/domain", "GET"),
    ("/", "GET"),
    ("/webhooks/rest/webhook", "POST"),
])
def test_options_preflight(fake, path, allowed):
    refusals = []
    stub = make(fake, cors_origins=["http://a.test"],
                authorize=lambda request, sender: refusals.append(sender) or
                (401, "NotAuthenticated", "No."))
    answer = call(stub, "OPTIONS", path, headers={
        "Origin": "http://a.test", "Access-Control-Request-Method": allowed})
    assert answer.code == 200
    assert answer.body == b""
    assert allowed in answer.header("Allow")
    assert answer.header("Access-Control-Allow-Origin") == "http://a.test"
    assert answer.header("Access-Control-Allow-Methods") == "GET, POST, PUT, OPTIONS"
    assert answer.header("Access-Control-Allow-Headers") == "Content-Type, Authorization"
    assert refusals == [] and fake.calls == []


def test_options_on_an_unknown_path_is_404(fake):
    stub = make(fake, cors_origins=["*"])
    answer = call(stub, "OPTIONS", "/nope")
    assert_error(answer, 404, "NotFound")
    assert answer.header("Access-Control-Allow-Origin") == "*"


# --------------------------------------------------------------------------- enable_api


@pytest.mark.parametrize("method, path", [
    ("GET", "/version"), ("GET", "/status"), ("GET", "/conversations"),
    ("GET", "/conversations/c1/tracker"), ("POST", "/conversations/c1/messages"),
    ("GET", "/conversations/c1/messages"), ("POST", "/predict"), ("GET", "/domain"),
    ("OPTIONS", "/status"), ("PUT", "/conversations/c1/tracker/events"),
])
def test_without_the_api_only_channels_and_hello_exist(fake, method, path):
    stub = make(fake, enable_api=False)
    assert_error(call(stub, method, path, json={"text": "hi", "sender": "user"}), 404,
                 "NotFound")
    assert fake.calls == []


def test_without_the_api_hello_and_channels_work(fake):
    stub = make(fake, enable_api=False)
    assert call(stub, "GET", "/").code == 200
    assert assert_json(call(stub, "GET", "/webhooks/rest/")) == {"status": "ok"}
    assert len(assert_json(call(stub, "POST", "/webhooks/rest/webhook",
                                json={"sender": "u1", "message": "/hello"}))) == 2


# --------------------------------------------------------------------------- authorize


class Gate:
    """An authorize hook that records its calls and refuses everyone but ``allowed``."""

    def __init__(self, allowed: Optional[str] = None) -> None:
        self.calls: List[tuple] = []
        self.allowed = allowed

    def __call__(self, request, sender_id):
        self.calls.append((request.path.decode(), sender_id))
        if request.args.get(b"token") == [b"s3cret"]:
            return None
        if self.allowed is not None and sender_id == self.allowed:
            return None
        if request.getHeader(b"authorization"):
            return (403, "NotAuthorized", "User has insufficient permissions.")
        return (401, "NotAuthenticated", "User is not authenticated.")


def test_authorize_refusals_are_answered(fake):
    gate = Gate()
    stub = make(fake, authorize=gate)
    body = assert_error(call(stub, "GET", "/status"), 401, "NotAuthenticated")  # transcript 62
    assert body["message"] == "User is not authenticated."
    assert_error(call(stub, "POST", "/conversations/default/messages",
                      json={"text": "/hello", "sender": "user"}), 401)  # transcript 66
    assert_error(call(stub, "GET", "/conversations/bob/tracker",
                      headers={"Authorization": "Bearer x"}), 403, "NotAuthorized")  # 71
    assert fake.calls == []
    assert_json(call(stub, "GET", "/status?token=s3cret"))  # transcript 64
    assert gate.calls == [("/status", None), ("/conversations/default/messages", "default"),
                          ("/conversations/bob/tracker", "bob"), ("/status", None)]


def test_authorize_gets_the_decoded_sender_id(fake):
    gate = Gate(allowed="alice/home")
    stub = make(fake, authorize=gate)
    assert_json(call(stub, "GET", "/conversations/alice%2Fhome/tracker"))  # transcript 70
    assert_error(call(stub, "GET", "/conversations/bob/tracker"), 401)
    assert gate.calls[0][1] == "alice/home"
    assert gate.calls[1][1] == "bob"
    assert fake.called("tracker") == [("alice/home", EventVerbosity.AFTER_RESTART, None)]


@pytest.mark.parametrize("method, path", [
    ("GET", "/conversations"), ("POST", "/predict"), ("POST", "/evaluate"),
    ("POST", "/finetune"), ("GET", "/domain"), ("PUT", "/conversations/x/tracker/events"),
    ("GET", "/conversations/x/story"), ("GET", "/conversations/x/respond"),
    ("POST", "/conversations/x/execute"), ("POST", "/conversations/x/predict"),
    ("POST", "/parse"),
])
def test_authorize_guards_every_api_route(fake, method, path):
    gate = Gate()
    stub = make(fake, authorize=gate)
    assert_error(call(stub, method, path, json=[]), 401, "NotAuthenticated")
    expected_sender = "x" if path.startswith("/conversations/x") else None
    assert gate.calls == [(path, expected_sender)]
    assert fake.calls == []


def test_authorize_is_not_asked_for_hello_version_and_channels(fake):
    gate = Gate()
    stub = make(fake, authorize=gate)
    assert call(stub, "GET", "/").code == 200  # transcript 60
    assert_json(call(stub, "GET", "/version"))  # transcript 61
    assert_json(call(stub, "GET", "/webhooks/rest/"))
    assert_json(call(stub, "POST", "/webhooks/rest/webhook",
                     json={"sender": "t1", "message": "/hello"}))  # transcript 67
    assert gate.calls == []


def test_authorize_may_answer_with_a_deferred(fake):
    stub = make(fake, authorize=lambda request, sender: defer.succeed(
        (401, "NotAuthenticated", "Later no.")))
    assert assert_error(call(stub, "GET", "/status"), 401)["message"] == "Later no."


def test_authorize_that_crashes_is_a_500(fake):
    def broken(request, sender):
        raise KeyError("config")
    app = CoreApp(fake, authorize=broken)
    app.log = Logger(namespace="test", observer=Captured())
    assert_error(call(StubTreq(app.resource()), "GET", "/status"), 500)


# --------------------------------------------------------------------------- REST channel


def test_rest_health(stub):
    assert assert_json(call(stub, "GET", "/webhooks/rest/")) == {"status": "ok"}  # 27
    # Without the trailing slash werkzeug redirects; treq follows it.
    assert assert_json(call(stub, "GET", "/webhooks/rest")) == {"status": "ok"}


def test_rest_webhook(fake, stub):
    body = assert_json(call(stub, "POST", "/webhooks/rest/webhook",
                            json={"sender": "u1", "message": "/hello"}))  # transcript 28
    assert body == [{"recipient_id": "u1", "text": "You said: /hello"},
                    {"recipient_id": "u1", "text": "Anything else?"}]
    assert fake.called("handle_message") == [("u1", "/hello", "rest")]
    assert fake.trackers["u1"].current_state(EventVerbosity.ALL)["latest_input_channel"] == \
        "rest"  # transcript 31


def test_rest_webhook_sender_defaults_and_coercion(fake, stub):
    assert_json(call(stub, "POST", "/webhooks/rest/webhook",
                     json={"message": "/farewell"}))  # transcript 39
    assert_json(call(stub, "POST", "/webhooks/rest/webhook",
                     json={"sender": 42, "message": "hi"}))
    assert [c[0] for c in fake.called("handle_message")] == ["default", "42"]


@pytest.mark.parametrize("data, reason, parameter", [
    (b'{"sender": "u1"}', "InvalidParameter", "message"),
    (b'{"sender": "u1", "message": 5}', "InvalidParameter", "message"),
    (b'{"sender": {"id": 1}, "message": "hi"}', "InvalidParameter", "sender"),
    (b"message=hi", "BadRequest", None),
    (b'["hi"]', "BadRequest", None),
])
def test_rest_webhook_bad_bodies(fake, stub, data, reason, parameter):
    assert_error(call(stub, "POST", "/webhooks/rest/webhook", data=data), 400, reason,
                 parameter)
    assert fake.calls == []


def test_rest_webhook_without_a_model_answers_no_messages(fake, stub):
    fake.failure = NoModelLoaded("No model is loaded.")
    assert assert_json(call(stub, "POST", "/webhooks/rest/webhook",
                            json={"sender": "u1", "message": "hi"})) == []


def test_rest_webhook_other_errors_are_error_bodies(fake, stub):
    fake.failure = StoreUnavailable("The tracker store failed.")
    assert_error(call(stub, "POST", "/webhooks/rest/webhook",
                      json={"sender": "u1", "message": "hi"}), 503, "StoreUnavailable")


def test_unknown_channel_is_404(stub):
    assert_error(call(stub, "POST", "/webhooks/facebook/webhook",
                      json={"sender": "u1", "message": "hi"}), 404, "NotFound")
    assert_error(call(stub, "GET", "/webhooks/facebook/"), 404, "NotFound")


def test_rest_stream_writes_each_message_as_it_comes(fake, stub):
    fake.turn = defer.Deferred()
    responses: List[Any] = []
    d = stub.post(BASE + "/webhooks/rest/webhook?stream=true",
                  json={"sender": "u5", "message": "/hello"})
    d.addCallback(responses.append)
    stub.flush()
    assert responses == []  # nothing said yet: the status line waits for the first message
    assert fake.called("handle_message") == [("u5", "/hello", "rest")]

    first = {"recipient_id": "u5", "text": "Hi there."}
    fake.listener(first)
    stub.flush()
    [response] = responses
    assert response.code == 200
    assert response.headers.getRawHeaders(b"Content-Type") == [b"text/event-stream"]
    chunks: List[bytes] = []
    done = treq.collect(response, chunks.append)
    stub.flush()
    assert b"".join(chunks) == json.dumps(first, separators=(",", ":")).encode() + b"\n"

    second = {"recipient_id": "u5", "text": "How are you?",
              "buttons": [{"title": "fine", "payload": "/feel_good"}]}
    fake.listener(second)
    stub.flush()
    lines = b"".join(chunks).splitlines()
    assert [json.loads(line) for line in lines] == [first, second]

    finished: List[Any] = []
    done.addBoth(finished.append)
    assert finished == []
    fake.turn.callback([first, second])
    stub.flush()
    assert finished == [None]


def test_rest_stream_failure_before_any_message_is_an_error_body(fake, stub):
    fake.failure = StoreUnavailable("The tracker store failed.")
    assert_error(call(stub, "POST", "/webhooks/rest/webhook?stream=true",
                      json={"sender": "u5", "message": "/hello"}), 503, "StoreUnavailable")


def test_rest_stream_failing_midway_is_logged_and_ended(fake):
    captured = Captured()
    app = CoreApp(fake)
    app.log = Logger(namespace="test", observer=captured)
    stub = StubTreq(app.resource())
    fake.turn = defer.Deferred()
    results: List[Any] = []
    d = stub.post(BASE + "/webhooks/rest/webhook?stream=true",
                  json={"sender": "u6", "message": "/hello"})
    d.addCallback(lambda response: stub.content(response).addCallback(
        lambda body: results.append((response.code, body))))
    stub.flush()
    fake.listener({"recipient_id": "u6", "text": "first"})
    fake.turn.errback(RuntimeError("the action server vanished"))
    stub.flush()
    assert results == [(200, b'{"recipient_id":"u6","text":"first"}\n')]
    assert [f.type for f in captured.failures()] == [RuntimeError]


def test_rest_stream_of_a_silent_turn(fake, stub):
    fake.turn = defer.succeed([])
    answer = call(stub, "POST", "/webhooks/rest/webhook?stream=1",
                  json={"sender": "u5", "message": "/hello"})
    assert answer.code == 200
    assert answer.header("Content-Type") == "text/event-stream"
    assert answer.body == b""


# --------------------------------------------------------------------------- callback channel


class Recorder(Resource):
    """The callback URL's server: records every request and answers ``code``."""

    isLeaf = True

    def __init__(self, code: int = 200) -> None:
        super().__init__()
        self.code = code
        self.requests: List[Dict[str, Any]] = []

    def render_POST(self, request):
        self.requests.append({
            "path": request.path.decode(),
            "query": parse_qs(urlparse(request.uri.decode()).query),
            "headers": {k.decode().lower(): v[0].decode()
                        for k, v in request.requestHeaders.getAllRawHeaders()},
            "json": json.loads(request.content.read().decode("utf-8")),
        })
        request.setResponseCode(self.code)
        return b"thanks"


def callback_app(fake, recorder, captured=None, **settings):
    outgoing = StubTreq(recorder)
    credentials = {"url": "http://bot.test/hook", **settings}
    channel = CallbackInput.from_credentials(credentials, http_client=outgoing)
    channel.timeout = None
    if captured is not None:
        channel.log = Logger(namespace="test", observer=captured)
    stub = make(fake, channels=[RestInput(), channel])
    return stub, outgoing


def flush_all(*stubs):
    for _ in range(5):
        for s in stubs:
            s.flush()


def test_callback_health(fake):
    stub, _ = callback_app(fake, Recorder())
    assert assert_json(call(stub, "GET", "/webhooks/callback/")) == {"status": "ok"}


def test_callback_posts_every_message_in_order(fake):
    recorder = Recorder()
    stub, outgoing = callback_app(
        fake, recorder, headers={"X-Bot": "coreactors"}, token="tok3n",
        basic_auth={"username": "bot", "password": "pw"})
    answer = call(stub, "POST", "/webhooks/callback/webhook",
                  json={"sender": "cb1", "message": "/hello"})
    assert answer.code == 200
    assert answer.body == b"success"
    assert answer.header("Content-Type").startswith("text/plain")
    flush_all(stub, outgoing)
    assert [r["json"] for r in recorder.requests] == [
        {"recipient_id": "cb1", "text": "You said: /hello"},
        {"recipient_id": "cb1", "text": "Anything else?"}]
    first = recorder.requests[0]
    assert first["path"] == "/hook"
    assert first["query"] == {"token": ["tok3n"]}
    assert first["headers"]["x-bot"] == "coreactors"
    assert first["headers"]["content-type"].startswith("application/json")
    assert first["headers"]["authorization"] == \
        "Basic " + base64.b64encode(b"bot:pw").decode()
    assert fake.called("handle_message") == [("cb1", "/hello", "callback")]


def test_callback_delivers_as_messages_are_produced(fake):
    recorder = Recorder()
    stub, outgoing = callback_app(fake, recorder)
    fake.turn = defer.Deferred()
    responses: List[Any] = []
    stub.post(BASE + "/webhooks/callback/webhook",
              json={"sender": "cb2", "message": "hi"}).addCallback(responses.append)
    flush_all(stub, outgoing)
    fake.listener({"recipient_id": "cb2", "text": "one"})
    flush_all(stub, outgoing)
    assert [r["json"]["text"] for r in recorder.requests] == ["one"]
    assert responses == []  # the turn is still running
    fake.listener({"recipient_id": "cb2", "text": "two"})
    fake.turn.callback([])
    flush_all(stub, outgoing)
    assert [r["json"]["text"] for r in recorder.requests] == ["one", "two"]
    assert [r.code for r in responses] == [200]


def test_callback_url_answering_an_error_is_logged(fake):
    captured = Captured()
    recorder = Recorder(code=500)
    stub, outgoing = callback_app(fake, recorder, captured)
    answer = call(stub, "POST", "/webhooks/callback/webhook",
                  json={"sender": "cb3", "message": "hi"})
    flush_all(stub, outgoing)
    assert answer.body == b"success"
    assert len(recorder.requests) == 2  # the first failure does not stop the second message
    assert any("answered 500" in t for t in captured.texts())


def test_unreachable_callback_url_is_logged_never_fatal(fake):
    captured = Captured()

    class Unreachable:
        def post(self, url, **kwargs):
            return defer.fail(ConnectionRefusedError("no one there"))

    channel = CallbackInput("http://nowhere.test/hook", http_client=Unreachable())
    channel.log = Logger(namespace="test", observer=captured)
    stub = make(fake, channels=[channel])
    answer = call(stub, "POST", "/webhooks/callback/webhook",
                  json={"sender": "cb4", "message": "hi"})
    assert answer.code == 200 and answer.body == b"success"
    assert [f.type for f in captured.failures()] == [ConnectionRefusedError] * 2


def test_callback_without_a_model_still_says_success(fake):
    recorder = Recorder()
    stub, outgoing = callback_app(fake, recorder)
    fake.failure = NoModelLoaded("No model is loaded.")
    answer = call(stub, "POST", "/webhooks/callback/webhook",
                  json={"sender": "cb5", "message": "hi"})
    assert answer.body == b"success"
    assert recorder.requests == []


def test_callback_webhook_bad_body(fake):
    stub, _ = callback_app(fake, Recorder())
    assert_error(call(stub, "POST", "/webhooks/callback/webhook", json={"sender": "x"}), 400,
                 "InvalidParameter", "message")


# --------------------------------------------------------------------------- channel config


def _names(channels):
    return [c.name for c in channels]


def test_channels_from_credentials():
    assert _names(channels_from_credentials(None)) == ["rest"]
    assert _names(channels_from_credentials({})) == ["rest"]
    both = channels_from_credentials({"rest": None,
                                      "callback": {"url": "http://x.test/cb", "token": "t"}})
    assert _names(both) == ["rest", "callback"]
    assert both[1].url == "http://x.test/cb" and both[1].params == {"token": "t"}
    assert _names(channels_from_credentials({"callback": {"url": "http://x.test"}})) == \
        ["callback"]


def test_connector_picks_one_channel():
    credentials = {"callback": {"url": "http://x.test"}, "rest": None}
    assert _names(channels_from_credentials(credentials, "rest")) == ["rest"]
    assert _names(channels_from_credentials(None, "rest")) == ["rest"]
    assert _names(channels_from_credentials(credentials, "callback")) == ["callback"]


@pytest.mark.parametrize("credentials, connector, word", [
    ({"facebook": {"verify": "v"}}, None, "facebook"),
    ({"rest": None, "slack": {"slack_token": "x"}}, None, "slack"),
    (None, "socketio", "socketio"),
    ({"callback": {}}, None, "url"),
    ({"callback": None}, None, "url"),
    ({"callback": {"url": "http://x.test", "basic_auth": {"username": "u"}}}, None,
     "password"),
    (["rest"], None, "mapping"),
])
def test_unsupported_or_broken_channel_config(credentials, connector, word):
    with pytest.raises(ValueError) as error:
        channels_from_credentials(credentials, connector)
    assert word in str(error.value)


def test_two_channels_with_one_name_are_refused(fake):
    with pytest.raises(ValueError):
        CoreApp(fake, channels=[RestInput(), RestInput()])


def test_app_without_channels_has_no_webhooks(fake):
    stub = make(fake, channels=[])
    assert_error(call(stub, "GET", "/webhooks/rest/"), 404)


def serve_versions(site, transport, count, path=b"/version"):
    """Sends ``count`` GET /version requests down one connection of ``site``; checks that
    each was answered with the version. Returns the connection."""
    channel = site.buildProtocol(None)
    channel.makeConnection(transport)
    for _ in range(count):
        channel.dataReceived(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answers = transport.value().split(b"HTTP/1.1 ")[1:]
    assert [a.split(b" ")[0] for a in answers] == [b"200"] * count
    assert all(b'"version"' in a for a in answers)
    return channel


def test_api_site_reads_the_connection_addresses_once_per_connection():
    from twisted.internet.testing import StringTransport

    from coreactors.http.app import make_site

    class CountingTransport(StringTransport):
        host_reads = 0
        peer_reads = 0

        def getHost(self):
            self.host_reads += 1
            return super().getHost()

        def getPeer(self):
            self.peer_reads += 1
            return super().getPeer()

    transport = CountingTransport()
    channel = serve_versions(make_site(CoreApp(FakeConversations()).resource()), transport, 3)
    assert transport.host_reads == 1
    assert transport.peer_reads == 1
    assert channel.getPeer() == transport.getPeer()


@pytest.mark.parametrize("fast", [True, False])
def test_api_channel_is_secure_only_over_tls(fast):
    import socket

    from twisted.internet.interfaces import ISSLTransport
    from twisted.internet.testing import StringTransport
    from zope.interface import directlyProvides

    from coreactors.fastpaths.twisted_web import EagerTransport
    from coreactors.http.app import make_site
    from test_http_transport import BufferedTransport

    class TLSTransport(StringTransport):
        def setTcpNoDelay(self, enabled):
            pass

    site = make_site(CoreApp(FakeConversations()).resource(), fast=fast)
    tls = TLSTransport()
    directlyProvides(tls, ISSLTransport)
    secure = site.buildProtocol(None)
    secure.makeConnection(tls)
    assert secure.isSecure()
    ours, theirs = socket.socketpair()
    try:
        plain = site.buildProtocol(None)
        plain.makeConnection(BufferedTransport(ours))
        assert isinstance(plain.transport, EagerTransport) == fast  # plain TCP: wrapped
        assert not plain.isSecure()
    finally:
        ours.close()
        theirs.close()


class _BodyOnly:
    """Just what read_json reads of a request: its body, and no declared type."""

    def __init__(self, body):
        import io
        self.content = io.BytesIO(body)

    def getHeader(self, name):
        return None


@pytest.mark.parametrize("body, expected", [
    (b"[" * 64 + b"]" * 64, "ok"),                              # as deep as allowed
    (b"[" * 65 + b"]" * 65, "nests deeper than 64"),
    (b'{"a": ' * 40 + b"1" + b"}" * 40, "ok"),
    (b'[{"x": [' * 22 + b"1" + b"]}]" * 22, "nests deeper than 64"),   # 66 levels, mixed
    (b'["' + b"[" * 200 + b'"]', "ok"),                         # brackets in a string are not depth
    (b'{"text": "caf\\u00e9"}', "ok"),                          # escapes of real characters
    (b'{"text": "\\ud800"}', "not valid Unicode"),
    (b'{"text": "\\uD83D\\uDE00"}', "ok"),                      # an escaped surrogate pair
    (b'{"text": "x", "n": {"t": "\\udfff"}}', "not valid Unicode"),
])
def test_read_json_refuses_deep_nesting_and_lone_surrogates_only(body, expected):
    from coreactors.http.errors import HttpError
    from coreactors.http.requests import read_json
    if expected == "ok":
        assert read_json(_BodyOnly(body), 1_000_000, (dict, list)) is not None
    else:
        with pytest.raises(HttpError) as raised:
            read_json(_BodyOnly(body), 1_000_000, (dict, list))
        assert raised.value.status == 400 and expected in raised.value.message

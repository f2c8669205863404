"""Tests for the RegexInterpreter: the ``/intent@confidence{"entity": "value"}`` shorthand
(semantics note, section 6.1; Rasa's interpreter tests I1-I5), and for what the HttpInterpreter
makes of an NLU server's answers (section 6.2)."""

import json
import logging

import pytest

from coreactors.nlu.interpreter import (
    INTENT_MESSAGE_PREFIX, HttpInterpreter, NaturalLanguageInterpreter, RegexInterpreter,
    project_and_model)


@pytest.fixture
def interpreter():
    return RegexInterpreter()


def test_prefix_constant():
    assert INTENT_MESSAGE_PREFIX == "/"


def test_base_interpreter_is_abstract():
    with pytest.raises(NotImplementedError):
        NaturalLanguageInterpreter().parse("hi")
    assert isinstance(RegexInterpreter(), NaturalLanguageInterpreter)


# --------------------------------------------------------------------------- I1-I5

def test_bare_intent(interpreter):
    result = interpreter.parse("/my_intent")
    assert result["text"] == "/my_intent"
    assert result["intent"] == {"name": "my_intent", "confidence": 1.0}
    assert len(result["intent_ranking"]) == 1
    assert result["intent_ranking"][0] == {"name": "my_intent", "confidence": 1.0}
    assert result["entities"] == []


def test_intent_with_entities(interpreter):
    result = interpreter.parse('/my_intent{"foo":"bar"}')
    assert result["intent"] == {"name": "my_intent", "confidence": 1.0}
    assert len(result["entities"]) == 1
    entity = result["entities"][0]
    assert entity["entity"] == "foo"
    assert entity["value"] == "bar"
    assert (entity["start"], entity["end"]) == (10, 23)


def test_intent_with_confidence(interpreter):
    result = interpreter.parse("/my_intent@0.5")
    assert result["intent"] == {"name": "my_intent", "confidence": 0.5}
    assert result["intent_ranking"] == [{"name": "my_intent", "confidence": 0.5}]
    assert result["entities"] == []


def test_intent_with_confidence_and_entities(interpreter):
    result = interpreter.parse('/my_intent@0.5{"foo":"bar"}')
    assert result["intent"] == {"name": "my_intent", "confidence": 0.5}
    assert result["intent_ranking"] == [{"name": "my_intent", "confidence": 0.5}]
    assert [(e["entity"], e["value"]) for e in result["entities"]] == [("foo", "bar")]
    assert (result["entities"][0]["start"], result["entities"][0]["end"]) == (14, 27)


def test_prefix_is_added_to_text(interpreter):
    result = interpreter.parse('mood_greet{"name": "rasa"}')
    assert result["text"] == '/mood_greet{"name": "rasa"}'
    assert result["intent"] == {"name": "mood_greet", "confidence": 1.0}
    assert [(e["entity"], e["value"]) for e in result["entities"]] == [("name", "rasa")]
    # The span is that of the JSON block in the input string (as in Rasa).
    assert (result["entities"][0]["start"], result["entities"][0]["end"]) == (10, 26)


def test_bare_intent_without_prefix(interpreter):
    result = interpreter.parse("greet")
    assert result["text"] == "/greet"
    assert result["intent"] == {"name": "greet", "confidence": 1.0}


# --------------------------------------------------------------------------- exact result

def test_exact_result_and_key_order(interpreter):
    result = interpreter.parse('/greet{"name": "Joe"}')
    assert result == {
        "text": '/greet{"name": "Joe"}',
        "intent": {"name": "greet", "confidence": 1.0},
        "intent_ranking": [{"name": "greet", "confidence": 1.0}],
        "entities": [{"entity": "name", "start": 6, "end": 21, "value": "Joe"}],
    }
    assert list(result) == ["text", "intent", "intent_ranking", "entities"]
    assert list(result["entities"][0]) == ["entity", "start", "end", "value"]
    json.dumps(result)


def test_entity_span_is_the_whole_json_block(interpreter):
    text = '/inform{"cuisine": "thai", "location": "paris"}'
    result = interpreter.parse(text)
    start, end = text.index("{"), len(text)
    assert result["entities"] == [
        {"entity": "cuisine", "start": start, "end": end, "value": "thai"},
        {"entity": "location", "start": start, "end": end, "value": "paris"},
    ]
    assert text[start:end] == '{"cuisine": "thai", "location": "paris"}'


# --------------------------------------------------------------------------- entities

def test_list_valued_entities_give_one_entity_per_element(interpreter):
    result = interpreter.parse('/greet{"name": ["Joe", "Ann"], "city": "Paris"}')
    assert [(e["entity"], e["value"]) for e in result["entities"]] == [
        ("name", "Joe"), ("name", "Ann"), ("city", "Paris")]
    spans = {(e["start"], e["end"]) for e in result["entities"]}
    assert spans == {(6, 47)}


def test_empty_list_value_gives_no_entity(interpreter):
    assert interpreter.parse('/greet{"name": []}')["entities"] == []


def test_non_string_entity_values_are_kept(interpreter):
    result = interpreter.parse('/set{"n": 5, "f": 0.5, "b": true, "none": null, "o": {"a": 1}}')
    assert [(e["entity"], e["value"]) for e in result["entities"]] == [
        ("n", 5), ("f", 0.5), ("b", True), ("none", None), ("o", {"a": 1})]


@pytest.mark.parametrize("text", [
    "/greet{bad json}",
    '/greet{"name": "Joe"',
    '/greet{"a":1}trailing',
    "/greet{'name': 'Joe'}",
])
def test_invalid_json_is_ignored(interpreter, text):
    result = interpreter.parse(text)
    assert result["intent"] == {"name": "greet", "confidence": 1.0}
    assert result["entities"] == []
    assert result["text"] == text


def test_empty_json_object_gives_no_entities(interpreter):
    result = interpreter.parse("/greet{}")
    assert result["intent"]["name"] == "greet"
    assert result["entities"] == []


def test_json_that_is_not_an_object_is_ignored(interpreter):
    # Group 3 starts at "{", so the only way to get a non-object is invalid JSON; a list
    # never starts the block and stays part of the intent name.
    result = interpreter.parse("/greet[1]")
    assert result["entities"] == []
    assert result["intent"]["name"] == "greet[1]"


# --------------------------------------------------------------------------- confidence

def test_confidence_after_json_is_not_read(interpreter):
    # The confidence must come before the JSON; otherwise it becomes part of the JSON, the
    # JSON fails to decode and the message has no entities and confidence 1.0.
    result = interpreter.parse('/inform{"a":"x"}@0.5')
    assert result["intent"] == {"name": "inform", "confidence": 1.0}
    assert result["entities"] == []


@pytest.mark.parametrize("text, confidence", [
    ("/greet@1", 1.0),
    ("/greet@0", 0.0),
    ("/greet@.25", 0.25),
    ("/greet@0.5.5", 0.0),
    ("/greet@.", 0.0),
])
def test_confidence_values(interpreter, text, confidence):
    result = interpreter.parse(text)
    assert result["intent"] == {"name": "greet", "confidence": confidence}
    assert result["intent_ranking"] == [{"name": "greet", "confidence": confidence}]
    assert isinstance(result["intent"]["confidence"], float)


def test_non_numeric_at_suffix_is_ignored(interpreter):
    result = interpreter.parse("/greet@abc")
    assert result["intent"] == {"name": "greet", "confidence": 1.0}


# --------------------------------------------------------------------------- intent names

def test_intent_name_may_contain_spaces(interpreter):
    result = interpreter.parse("/hello there")
    assert result["intent"]["name"] == "hello there"


def test_intent_name_is_stripped(interpreter):
    result = interpreter.parse('/greet {"name": "Joe"}')
    assert result["intent"]["name"] == "greet"
    assert result["entities"][0]["value"] == "Joe"


def test_intent_name_keeps_case(interpreter):
    assert interpreter.parse("/Greet")["intent"]["name"] == "Greet"


def test_empty_message_has_no_intent(interpreter):
    result = interpreter.parse("")
    assert result["intent"]["name"] is None
    assert result["entities"] == []
    assert result["text"] == ""


def test_underscore_is_not_a_prefix(interpreter):
    # The deprecated "_" prefix of 0.11/0.12 is not supported: it is part of the name.
    result = interpreter.parse("_greet")
    assert result["intent"]["name"] == "_greet"
    assert result["text"] == "/_greet"


def test_multiline_json(interpreter):
    result = interpreter.parse('/inform{"a":\n "x"}')
    assert [(e["entity"], e["value"]) for e in result["entities"]] == [("a", "x")]


def test_parse_results_are_independent(interpreter):
    first = interpreter.parse('/greet{"name": "Joe"}')
    first["entities"].append({"entity": "x"})
    first["intent"]["name"] = "changed"
    second = interpreter.parse('/greet{"name": "Joe"}')
    assert second["intent"]["name"] == "greet"
    assert len(second["entities"]) == 1


# --------------------------------------------------------------------------- NLU server protocol

class Recorder:
    """Stands in for the HTTP call only; what the interpreter makes of answers is under test."""

    def __init__(self, answer=None, error=None):
        self.answer = answer
        self.error = error
        self.queries = []

    def __call__(self, params):
        self.queries.append(params)
        if self.error is not None:
            raise self.error
        return self.answer


PARSED = {"text": "hi", "intent": {"name": "greet", "confidence": 0.9},
          "intent_ranking": [{"name": "greet", "confidence": 0.9}],
          "entities": [{"entity": "name", "value": "Ann", "start": 0, "end": 2}],
          "project": "bots", "model": "current"}


def test_http_interpreter_sends_the_rasa_nlu_query_and_returns_the_body():
    client = Recorder((200, PARSED))
    interpreter = HttpInterpreter(client, "bots", "current", "secret")
    assert interpreter.parse("hi") == PARSED
    assert client.queries == [{"q": "hi", "project": "bots", "model": "current",
                               "token": "secret"}]


def test_http_interpreter_leaves_out_what_is_not_configured():
    client = Recorder((200, PARSED))
    HttpInterpreter(client).parse("hi")
    assert client.queries == [{"q": "hi", "project": "default"}]


@pytest.mark.parametrize("client", [
    Recorder(error=ConnectionRefusedError("connection refused")),
    Recorder(error=TimeoutError("timed out")),
    Recorder((500, {"error": "boom"})),
    Recorder((404, {"error": "no project"})),
    Recorder((200, None)),
    Recorder((200, ["not", "a", "parse"])),
    Recorder((200, {"intent": "greet"})),
    Recorder((200, {"intent": {"name": 3}})),
    Recorder((200, {"intent": None, "entities": "x"})),
])
def test_http_interpreter_failures_give_an_empty_parse(client):
    assert HttpInterpreter(client).parse("hello there") == {
        "text": "hello there", "intent": {"name": None, "confidence": 0.0},
        "intent_ranking": [], "entities": []}


def test_http_interpreter_failures_are_logged_with_fields(caplog):
    with caplog.at_level(logging.ERROR, logger="coreactors.nlu.interpreter"):
        HttpInterpreter(Recorder((503, None))).parse("hi")
        HttpInterpreter(Recorder((200, ["x" * 500]))).parse("hi")
    unavailable, odd = caplog.records
    assert unavailable.msg.fields == {"status": 503, "text": "hi"}
    assert unavailable.getMessage() == \
        "The NLU server answered 503; the message 'hi' gets no intent."
    # The answer is shown, cut at 200 characters as before.
    assert odd.getMessage() == "The NLU server's answer is not a parse result: " + \
        repr(["x" * 500])[:200]


def test_bad_shorthand_entities_are_logged_with_fields(interpreter, caplog):
    with caplog.at_level(logging.WARNING, logger="coreactors.markup"):
        assert interpreter.parse('/greet{"a": 1')["entities"] == []
        assert interpreter.parse("/greet@1.2.3")["intent"]["confidence"] == 0.0
    assert [r.msg.fields for r in caplog.records] == [{"entities": '{"a": 1'},
                                                      {"confidence": "@1.2.3"}]


def test_http_interpreter_fills_in_missing_keys():
    client = Recorder((200, {"intent": None}))
    assert HttpInterpreter(client).parse("hm") == {
        "text": "hm", "intent": {"name": None, "confidence": 0.0}, "intent_ranking": [],
        "entities": []}


@pytest.mark.parametrize("argument, expected", [
    (None, ("default", None)), ("", ("default", None)), ("current", ("default", "current")),
    ("bots/current", ("bots", "current")), ("bots/current/", ("bots", "current")),
    ("a/b/c", ("a/b", "c")),
])
def test_project_and_model_from_the_nlu_argument(argument, expected):
    assert project_and_model(argument) == expected

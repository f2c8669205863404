"""Where the log goes: the pure rooms' records reach twisted.logger with their fields, the run's
level applies to coreactors' Twisted-side events, and ``-o FILE --log_format json`` writes one
JSON object per event, with its fields, from a real server."""

import json
import logging
from typing import Any, Dict, List

import pytest
from twisted.logger import LogLevel, Logger, globalLogPublisher

from coreactors import log_observers
from coreactors.log_observers import StdlibBridge, json_line, levelled
from coreactors.logs import Log
from live_server import Server, train_bot


@pytest.fixture
def events():
    seen: List[Dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    yield seen
    globalLogPublisher.removeObserver(seen.append)


@pytest.fixture
def bridged():
    """The coreactors stdlib loggers bridged into twisted.logger, as the server sets them up."""
    root = logging.getLogger("coreactors")
    bridge = StdlibBridge()
    level = root.level
    root.addHandler(bridge)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(bridge)
    root.setLevel(level)


def test_a_pure_room_record_keeps_its_format_and_fields(events, bridged):
    Log("coreactors.processor").warn("Circuit breaker tripped in {sender_id} after {count}",
                                     sender_id="ann", count=10)
    event, = [e for e in events if e.get("log_namespace") == "coreactors.processor"]
    assert event["log_format"] == "Circuit breaker tripped in {sender_id} after {count}"
    assert event["sender_id"] == "ann" and event["count"] == 10
    assert event["log_level"] is LogLevel.warn


def test_a_failure_travels_as_a_failure(events, bridged):
    try:
        raise ValueError("boom")
    except ValueError:
        Log("coreactors.actions.remote").failure("Action {action} failed", action="a")
    event, = [e for e in events if e.get("log_namespace") == "coreactors.actions.remote"]
    assert event["log_failure"].check(ValueError)
    assert "boom" in json_line(event) and json.loads(json_line(event))["action"] == "a"


def test_reserved_field_names_do_not_break_the_bridge(events, bridged):
    Log("coreactors.policies.x").info("took {time} at {level}", time=3, level="high")
    event, = [e for e in events if e.get("log_namespace") == "coreactors.policies.x"]
    line = json.loads(json_line(event))
    assert line["text"] == "took 3 at high" and line["level"] == "info"
    assert line["field_time"] == 3 and line["field_level"] == "high"


def test_plain_stdlib_records_pass_as_text(events, bridged):
    logging.getLogger("coreactors.legacy").warning("%d things", 3)
    event, = [e for e in events if e.get("log_namespace") == "coreactors.legacy"]
    assert json.loads(json_line(event))["text"] == "3 things"


def test_a_json_line_has_time_level_namespace_text_and_fields():
    event = {"log_format": "Now serving {fingerprint}", "fingerprint": "abc",
             "log_level": LogLevel.info, "log_namespace": "coreactors.actors.supervisor",
             "log_time": 0.0, "log_logger": object(), "unjsonable": object()}
    line = json_line(event)
    assert line.endswith("\n") and "\n" not in line[:-1]
    parsed = json.loads(line)
    assert parsed["text"] == "Now serving abc" and parsed["fingerprint"] == "abc"
    assert parsed["level"] == "info" and parsed["time"].startswith("1970-01-01T00:00:00")
    assert parsed["namespace"] == "coreactors.actors.supervisor"
    assert "log_logger" not in parsed and parsed["unjsonable"].startswith("<object")


def test_the_runs_level_applies_to_twisted_side_events(events):
    log = Logger(namespace="coreactors.actors.test", observer=levelled)
    try:
        log_observers._levels.setLogLevelForNamespace("coreactors", LogLevel.warn)
        log.info("quiet")
        log.warn("loud")
        log_observers._levels.setLogLevelForNamespace("coreactors", LogLevel.debug)
        log.debug("verbose")
    finally:
        log_observers._levels.setLogLevelForNamespace("coreactors", LogLevel.info)
    formats = [e["log_format"] for e in events
               if e.get("log_namespace") == "coreactors.actors.test"]
    assert formats == ["loud", "verbose"]


DOMAIN = """
intents: [greet]
templates:
  utter_greet:
    - "hi"
actions: [utter_greet]
"""
STORIES = """
## greet
* greet
    - utter_greet
"""
POLICIES = """
policies:
  - name: MemoizationPolicy
"""


def test_the_server_writes_json_lines_with_fields(tmp_path):
    model = train_bot(tmp_path / "bot", DOMAIN, STORIES, POLICIES)
    log_file = tmp_path / "server.jsonl"
    server = Server(str(tmp_path), ["--enable_api", "-d", model, "-o", str(log_file),
                                    "--log_format", "json"]).start()
    try:
        # A followup to an action the domain does not have: the loop logs an error naming
        # the conversation and the action (and goes on).
        assert server.post("/conversations/ann/tracker/events",
                           [{"event": "followup", "name": "action_nope"}]).status == 200
        assert server.post("/conversations/ann/predict").status == 200
    finally:
        server.stop()
    lines = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    assert lines and all({"time", "level", "namespace", "text"} <= set(line) for line in lines)
    started, = [line for line in lines if "fingerprint" in line]
    assert started["namespace"] == "coreactors.service" and started["level"] == "info"
    assert started["text"] == "coreactors serving model " + started["fingerprint"]
    assert lines[0] == started  # the file starts with it, once
    unknown, = [line for line in lines if line.get("action") == "action_nope"]
    assert unknown["sender_id"] == "ann" and unknown["level"] == "error"
    assert unknown["namespace"] == "coreactors.processor"


def test_a_bad_log_format_is_a_usage_error():
    from twisted.python.usage import UsageError

    from coreactors.tap import Options
    with pytest.raises(UsageError):
        Options().parseOptions(["--log_format", "xml"])

"""Where the log goes: the pure rooms' records reach twisted.logger with their fields, the run's
level applies to coreactors' Twisted-side events, and ``-o FILE --log_format json`` writes one
JSON object per event, with its fields, from a real server."""

import json
import logging
import re
import time
from typing import Any, Dict, List

import pytest
from twisted.logger import LogLevel, Logger

from coreactors import log_observers
from coreactors.log_observers import StdlibBridge, json_line, levelled
from coreactors.logs import Log
from live_server import (
    GREETING_DOMAIN, GREETING_STORIES, MEMOIZATION_POLICIES, Server, train_bot)


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


DOMAIN, STORIES, POLICIES = GREETING_DOMAIN, GREETING_STORIES, MEMOIZATION_POLICIES


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


# --------------------------------------------------------------------------- text, access log


def classic(event: Dict[str, Any]) -> str:
    """What twistd's own text observer (textFileLogObserver) writes for an event."""
    from twisted.logger import formatEventAsClassicLogText, formatTime
    return formatEventAsClassicLogText(event, formatTime=lambda when: formatTime(when))


def sample_events() -> List[Dict[str, Any]]:
    from twisted.python.failure import Failure
    try:
        1 / 0
    except ZeroDivisionError:
        failure = Failure()
    base = {"log_namespace": "coreactors.x", "log_level": LogLevel.info,
            "log_time": 1796681705.75}
    return [
        dict(base, log_format="turn of {sender_id}", sender_id="ann"),
        dict(base, log_format="two\nlines {n}", n=2),
        dict(base, log_format="{line}", line="a ready line", log_level=LogLevel.warn),
        dict(base, log_format="{line}", line="two\nlines"),
        dict(base, log_format="{line}", line="with system", log_system="custom"),
        dict(base, log_format="{line}", line=7),
        dict(base, log_format="boom", log_failure=failure, log_level=LogLevel.error),
        dict(base, log_format="no time", log_time=None),
        {"log_format": "bare"},
    ]


def test_the_text_observer_writes_what_twistds_writes(tmp_path):
    with open(tmp_path / "log.txt", "w") as out:
        observer = log_observers.TextLogObserver(out)
        try:
            for event in sample_events():
                assert observer.text(event) == classic(event)
            # The time of another second is formatted again, not taken from the cache.
            later = dict(sample_events()[0], log_time=1796681790.2)
            assert observer.text(later) == classic(later)
        finally:
            observer.close()


def test_the_text_observer_flushes_warnings_at_once_and_the_rest_soon(tmp_path):
    path = tmp_path / "log.txt"
    with open(path, "w", buffering=1 << 16) as out:
        observer = log_observers.TextLogObserver(out, flush_interval=0.1)
        try:
            info, warn = sample_events()[0], sample_events()[2]
            observer(info)
            assert path.read_text() == ""  # buffered: no write per event
            deadline = time.monotonic() + 5
            while path.read_text() == "" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert path.read_text() == classic(info)
            observer(warn)
            assert path.read_text() == classic(info) + classic(warn)
        finally:
            observer.close()


def test_the_server_root_offers_twistd_its_log_observer():
    from twisted.application import service
    from twisted.logger import ILogObserver

    def observer(event: Dict[str, Any]) -> None:
        pass
    application = service.Application("coreactors")
    root = log_observers.ServerRoot()
    root.log_observer = implementer_of(observer)
    root.setServiceParent(application)
    assert application.getComponent(ILogObserver) is root.log_observer
    assert root.parent is service.IServiceCollection(application)
    # Without an observer, or with one chosen already, twistd's choice stands.
    plain = service.Application("other")
    log_observers.ServerRoot().setServiceParent(plain)
    assert plain.getComponent(ILogObserver, None) is None
    chosen = service.Application("chosen")
    mine = implementer_of(observer)
    chosen.setComponent(ILogObserver, mine)
    another = log_observers.ServerRoot()
    another.log_observer = implementer_of(observer)
    another.setServiceParent(chosen)
    assert chosen.getComponent(ILogObserver) is mine


def implementer_of(function: Any) -> Any:
    from twisted.logger import ILogObserver
    from zope.interface import provider
    return provider(ILogObserver)(lambda event: function(event))


@pytest.mark.parametrize("options, offered", [
    ({"nodaemon": True, "logfile": None}, True),
    ({"nodaemon": True, "logfile": "-"}, True),
    ({"nodaemon": True, "logfile": "twistd.log"}, False),
    ({"nodaemon": True, "syslog": True}, False),
    ({"nodaemon": True, "logger": "my.observer"}, False),
    ({"nodaemon": False}, False),
])
def test_the_observer_is_offered_only_where_twistd_would_write_stdout(options, offered):
    observer = log_observers.twistd_observer(options)
    try:
        assert (observer is not None) == offered
    finally:
        if observer is not None:
            observer.close()
    assert log_observers.twistd_observer(None) is None


def test_the_access_line_is_twisteds_combined_line_with_its_parts(events):
    from twisted.internet.task import Clock
    from twisted.web.http import combinedLogFormatter, datetimeToLogString
    from twisted.web.test.requesthelper import DummyRequest

    from coreactors.http.access_log import AccessLog
    clock = Clock()
    clock.advance(1796681705.9)
    access = AccessLog(clock)
    request = DummyRequest([b"webhook"])
    request.method, request.uri, request.clientproto = b"POST", b"/webhooks/rest/webhook", \
        b"HTTP/1.1"
    request.code, request.sentLength = 200, 156
    request.requestHeaders.setRawHeaders(b"user-agent", [b"curl/7.88.1"])
    access.log(request)
    clock.advance(1.5)  # another second: another date
    access.log(request)
    lines = [e for e in events if e.get("log_namespace") == "coreactors.access"]
    assert [e["line"] for e in lines] == [
        combinedLogFormatter(datetimeToLogString(1796681705), request),
        combinedLogFormatter(datetimeToLogString(1796681707), request)]
    assert lines[0]["log_format"] == log_observers.LINE_FORMAT
    assert (lines[0]["method"], lines[0]["uri"], lines[0]["status"], lines[0]["length"]) == (
        "POST", "/webhooks/rest/webhook", 200, 156)


def test_the_server_logs_each_request_as_an_access_line(tmp_path):
    model = train_bot(tmp_path / "bot", DOMAIN, STORIES, POLICIES)
    server = Server(str(tmp_path), ["--enable_api", "-d", model]).start()
    try:
        assert server.post("/webhooks/rest/webhook", {"sender": "ann", "message": "/greet"}
                           ).status == 200
        deadline = time.monotonic() + 5
        while "webhook" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    line, = [line for line in server.log().splitlines() if "POST /webhooks/rest/webhook" in line]
    assert re.fullmatch(r'\S+ \[coreactors\.access#info\] "127\.0\.0\.1" - - \[[^]]+\] '
                        r'"POST /webhooks/rest/webhook HTTP/1\.1" 200 \d+ "-" "[^"]*"', line)
    assert "Main loop terminated." in server.log()  # what twistd logs last is flushed too

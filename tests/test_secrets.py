"""Secrets and exposure: the API token never reaches a log (the access log's request line and
referrer, the errors that name a request, the ``-o`` file), and the server warns at start when
it serves the API without authentication where other machines may reach it."""

import pytest
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from coreactors.http.access_log import AccessLog
from coreactors.http.auth import exposure_warning
from coreactors.http.redaction import REDACTED, redact
from live_server import (
    GREETING_DOMAIN, GREETING_STORIES, MEMOIZATION_POLICIES, Server, train_bot)

DOMAIN, STORIES, POLICIES = GREETING_DOMAIN, GREETING_STORIES, MEMOIZATION_POLICIES


@pytest.mark.parametrize("text, redacted", [
    ("/status?token=s3cr3t", "/status?token=" + REDACTED),
    ("/c/ann/tracker?include_events=ALL&token=s3cr3t&x=1",
     "/c/ann/tracker?include_events=ALL&token=" + REDACTED + "&x=1"),
    ("/a?TOKEN=abc;access_token=def#frag", "/a?TOKEN=" + REDACTED + ";access_token=" + REDACTED
     + "#frag"),
    ('"GET /status?token=abc HTTP/1.1" 200 "http://x/?token=def"',
     '"GET /status?token=' + REDACTED + ' HTTP/1.1" 200 "http://x/?token=' + REDACTED + '"'),
    ("/a?mytoken=kept&tokens=kept", "/a?mytoken=kept&tokens=kept"),
    ("/status", "/status"),
])
def test_secret_query_parameters_are_redacted(text, redacted):
    assert redact(text) == redacted


def test_the_access_log_redacts_the_token_in_the_request_line_and_referrer(events):
    request = DummyRequest([b"status"])
    request.method, request.uri, request.clientproto = b"GET", b"/status?token=s3cr3t", \
        b"HTTP/1.1"
    request.code, request.sentLength = 200, 10
    request.requestHeaders.setRawHeaders(b"referer", [b"http://chat/?token=s3cr3t"])
    AccessLog(Clock()).log(request)
    line, = [e for e in events if e.get("log_namespace") == "coreactors.access"]
    assert "s3cr3t" not in repr(line)
    assert "/status?token=REDACTED" in line["line"] and line["uri"] == "/status?token=REDACTED"
    assert "http://chat/?token=REDACTED" in line["line"]


def test_a_real_server_logs_no_token(tmp_path):
    model = train_bot(tmp_path / "bot", DOMAIN, STORIES, POLICIES)
    log_file = tmp_path / "server.jsonl"
    server = Server(str(tmp_path), ["--enable_api", "-d", model, "--auth_token", "s3cr3t-value",
                                    "-o", str(log_file), "--log_format", "json"]).start()
    try:
        assert server.get("/status?token=s3cr3t-value").status == 200
        assert server.get("/status?token=a-wrong-guess").status == 401
        assert server.get("/conversations/ann/tracker?token=s3cr3t-value&include_events=ALL"
                          ).status == 200
    finally:
        server.stop()
    for text in (server.log(), log_file.read_text(encoding="utf-8")):
        assert "s3cr3t-value" not in text and "a-wrong-guess" not in text
        assert text.count("token=REDACTED") >= 3


@pytest.mark.parametrize("listen, warned", [
    ("tcp:5005", "on every interface"),
    ("tcp:5005:interface=0.0.0.0", "on 0.0.0.0"),
    ("tcp:5005:interface=10.1.2.3", "on 10.1.2.3"),
    ("systemd:domain=INET:index=0", "on a socket systemd opened"),
    ("tcp:5005:interface=127.0.0.1", None),
    ("tcp:5005:interface=127.8.9.10", None),
    ("tcp6:port=5005:interface=\\:\\:1", None),
    ("tcp:5005:interface=localhost", None),
    ("unix:/run/coreactors.sock", None),
])
def test_serving_the_api_beyond_loopback_without_authentication_is_warned_of(listen, warned):
    warning = exposure_warning(listen, enable_api=True, authenticated=False)
    if warned is None:
        assert warning is None
    else:
        assert warning is not None and warned in warning and "--auth_token" in warning
    assert exposure_warning(listen, enable_api=True, authenticated=True) is None
    assert exposure_warning(listen, enable_api=False, authenticated=False) is None


def test_the_server_warns_at_start_where_the_api_is_open_to_others(tmp_path, monkeypatch,
                                                                    events):
    from coreactors.service import make_service
    model = train_bot(tmp_path / "bot", DOMAIN, STORIES, POLICIES)
    (tmp_path / "endpoints.yml").write_text("tracker_store:\n  type: memory\n")
    monkeypatch.chdir(tmp_path)
    options = {"core": model, "enable_api": True, "endpoints": "endpoints.yml"}
    make_service(dict(options, listen="tcp:0:interface=127.0.0.1"))
    assert not [e for e in events if "without authentication" in str(e.get("warning"))]
    make_service(dict(options, listen="tcp:0"))
    warned, = [e for e in events if "without authentication" in str(e.get("warning"))]
    assert warned["log_level"].name == "warn" and "on every interface" in warned["warning"]
    make_service(dict(options, listen="tcp:0", auth_token="t"))
    assert len([e for e in events if "without authentication" in str(e.get("warning"))]) == 1

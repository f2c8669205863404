"""Tests for Klein routing that remembers matches (the ``remembered_routes`` fast path,
coreactors.fastpaths.klein_routing) and for what a finished request lets go of (the
``request_cleanup`` fast path)."""

import gc
import sys
import weakref

import pytest
from klein.interfaces import IKleinRequest
from twisted.internet.testing import StringTransport
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule

from coreactors import fastpaths
from coreactors.fastpaths import klein_routing
from coreactors.fastpaths.klein_routing import RememberingMap, RoutingKlein
from coreactors.fastpaths.twisted_web import ReleasingAPIRequest
from coreactors.http.app import CoreApp, make_site
from coreactors.http.routing import klein_app
from test_http_api import serve_versions

RULES = [
    ("/", "root", ["GET"]),
    ("/conversations/<sender_id>/tracker", "tracker", ["GET"]),
    ("/conversations/<sender_id>/messages", "messages", ["POST"]),
    ("/webhooks/<channel>/", "health", ["GET"]),
    ("/webhooks/<channel>/webhook", "webhook", ["POST", "OPTIONS"]),
]

REQUESTS = [
    ("GET", "/"), ("GET", "/conversations/a/tracker"), ("GET", "/conversations/b/tracker"),
    ("POST", "/conversations/a/messages"), ("GET", "/conversations/a/messages"),
    ("POST", "/webhooks/rest/webhook"), ("OPTIONS", "/webhooks/rest/webhook"),
    ("GET", "/webhooks/rest"), ("GET", "/webhooks/rest/"), ("GET", "/nowhere"),
    ("HEAD", "/"), ("DELETE", "/conversations/x/tracker"),
]


def build(map_class):
    return map_class([Rule(path, endpoint=endpoint, methods=methods)
                      for path, endpoint, methods in RULES])


def outcome(url_map, method, path, return_rule=True):
    adapter = url_map.bind("127.0.0.1:5005", "/", path_info=path, default_method=method,
                           url_scheme="http")
    try:
        rule, values = adapter.match(return_rule=return_rule)
    except RequestRedirect as e:
        return ("redirect", e.new_url)
    except MethodNotAllowed as e:
        return ("405", sorted(e.valid_methods))
    except NotFound:
        return ("404",)
    name = rule.endpoint if return_rule else rule
    return ("match", name, values)


def count_matcher_calls(url_map):
    calls = []
    original = url_map._matcher.match

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)
    url_map._matcher.match = counting
    return calls


@pytest.mark.parametrize("return_rule", [True, False])
def test_remembered_matches_equal_werkzeugs(return_rule):
    plain, remembering = build(Map), build(RememberingMap)
    for _ in range(3):  # first round matches, later rounds remember
        for method, path in REQUESTS:
            assert outcome(remembering, method, path, return_rule) == \
                outcome(plain, method, path, return_rule), (method, path)


def test_a_url_is_matched_once_and_failures_every_time():
    url_map = build(RememberingMap)
    calls = count_matcher_calls(url_map)
    for _ in range(5):
        outcome(url_map, "POST", "/webhooks/rest/webhook")
    assert len(calls) == 1
    for _ in range(3):
        outcome(url_map, "GET", "/nowhere")
        outcome(url_map, "GET", "/webhooks/rest")
    assert len(calls) == 7
    # Other hosts, methods and paths are other keys.
    outcome(url_map, "OPTIONS", "/webhooks/rest/webhook")
    outcome(url_map, "POST", "/webhooks/other/webhook")
    assert len(calls) == 9


def test_values_handed_out_are_copies():
    url_map = build(RememberingMap)
    adapter = url_map.bind("h", "/", path_info="/conversations/a/tracker", default_method="GET")
    _, values = adapter.match(return_rule=True)
    values["sender_id"] = "changed"
    again = url_map.bind("h", "/", path_info="/conversations/a/tracker", default_method="GET")
    assert again.match(return_rule=True)[1] == {"sender_id": "a"}


def test_explicit_arguments_go_to_werkzeug():
    url_map = build(RememberingMap)
    calls = count_matcher_calls(url_map)
    adapter = url_map.bind("h", "/", path_info="/webhooks/rest/webhook", default_method="GET")
    with pytest.raises(MethodNotAllowed):
        adapter.match()
    assert adapter.match(method="POST", return_rule=True)[0].endpoint == "webhook"
    assert adapter.match(path_info="/", return_rule=True)[0].endpoint == "root"
    assert len(calls) == 3
    assert url_map.matches == {}


def test_the_memory_is_bounded_and_a_new_rule_forgets(monkeypatch):
    monkeypatch.setattr(klein_routing, "MATCHES_REMEMBERED", 4)
    url_map = build(RememberingMap)
    for i in range(10):
        outcome(url_map, "GET", "/conversations/{}/tracker".format(i))
        assert len(url_map.matches) <= 4
    outcome(url_map, "GET", "/")
    assert url_map.matches
    url_map.add(Rule("/new", endpoint="new"))
    assert url_map.matches == {}
    assert outcome(url_map, "GET", "/new") == ("match", "new", {})


def test_klein_routes_the_app_through_a_remembering_map():
    assert isinstance(RoutingKlein().url_map, RememberingMap)
    assert isinstance(klein_app(fast=True).url_map, RememberingMap)
    assert type(klein_app(fast=False).url_map) is Map
    remembering = fastpaths.enabled("remembered_routes")
    assert isinstance(CoreApp.app.url_map, RememberingMap) == remembering
    calls = count_matcher_calls(CoreApp.app.url_map)
    serve_versions(make_site(CoreApp(_Version()).resource()), StringTransport(), 4,
                   b"/version?x=1")
    if remembering:
        assert len(calls) <= 1  # at most once (another test may have matched it already)
    else:
        assert len(calls) == 4


class _Version:
    """Just enough of IConversations for GET /version."""
    fingerprint = None
    is_ready = True


def test_a_finished_request_lets_go_of_what_it_held_without_the_collector():
    seen = []

    class Watched(ReleasingAPIRequest):
        def process(self):
            seen.append(([self.requestHeaders, self.responseHeaders],
                         weakref.ref(IKleinRequest(self))))
            return super().process()

    site = make_site(CoreApp(_Version()).resource(), fast=True)
    site.requestFactory = Watched
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    gc.disable()
    try:
        channel.dataReceived(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert transport.value().startswith(b"HTTP/1.1 200")
        assert len(seen) == 1
        headers, klein_request = seen[0]
        # Only the list above still refers to the headers: getrefcount counts that, the loop
        # variable and its own argument.
        assert [sys.getrefcount(h) for h in headers] == [3, 3]
        assert klein_request() is None
    finally:
        gc.enable()

"""Tests for coreactors.fastpaths: the switch, the shape of every private name a fast path
leans on (each test here fails the day its library changes that name), and the plain variant
built when the switch is off."""

import json
import os
import re
import socket
import subprocess
import sys
import textwrap

import pytest
import twisted.web.client
from klein import Klein
from klein.interfaces import IKleinRequest
from twisted.internet import tcp
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.web import _newclient
from twisted.web.client import HTTPConnectionPool
from twisted.web.server import Request
from werkzeug.routing import Map, MapAdapter, Rule

from coreactors import fastpaths
from coreactors.fastpaths import json_encoder, klein_routing, twisted_web
from coreactors.fastpaths.twisted_web import (
    EagerAPIChannel, EagerTransport, ReleasingAPIRequest, quiet_pool)
from coreactors.http.app import CoreApp, make_site
from coreactors.http.site import APIChannel, APIRequest, QuietSite
from test_compact_json import VALUES

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GET_VERSION = b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class _Version:
    """Just enough of IConversations for GET /version."""
    fingerprint = None
    is_ready = True


# ---------------------------------------------------------------------------- the switch

def test_unset_empty_or_on_turns_everything_on():
    for setting in (None, "", "on", " ON ", "off,on"):
        assert fastpaths.parse(setting) == frozenset(fastpaths.KNOWN), setting


def test_off_turns_everything_off_and_names_turn_single_ones_on_or_off():
    assert fastpaths.parse("off") == frozenset()
    assert fastpaths.parse("-eager_send,-remembered_routes") == \
        frozenset(fastpaths.KNOWN) - {"eager_send", "remembered_routes"}
    assert fastpaths.parse("off,eager_send") == {"eager_send"}
    assert fastpaths.parse(" off , eager_send ,, request_cleanup") == \
        {"eager_send", "request_cleanup"}
    assert fastpaths.parse("off,eager_send,-eager_send") == frozenset()


@pytest.mark.parametrize("setting", ["eagre_send", "-nonsense", "off,x", "of"])
def test_an_unknown_name_is_an_error_naming_the_known_ones(setting):
    with pytest.raises(ValueError) as raised:
        fastpaths.parse(setting)
    message = str(raised.value)
    assert "COREACTORS_FAST_PATHS" in message
    assert all(name in message for name in fastpaths.KNOWN)


def test_enabled_and_choose_refuse_unknown_names_and_choose_honours_an_explicit_flag():
    with pytest.raises(ValueError, match="eager_send"):
        fastpaths.enabled("eagre_send")
    with pytest.raises(ValueError):
        fastpaths.choose("eagre_send", True)
    assert fastpaths.choose("eager_send", True) is True
    assert fastpaths.choose("eager_send", False) is False
    assert fastpaths.choose("eager_send", None) == fastpaths.enabled("eager_send")


def test_the_registry_names_worker_pool_and_says_where_each_patch_lives():
    assert "worker_pool" in fastpaths.KNOWN
    assert set(fastpaths.WHERE) == set(fastpaths.KNOWN)
    assert all(description and "\n" not in description
               for description in fastpaths.KNOWN.values())
    with pytest.raises(TypeError):
        fastpaths.KNOWN["new"] = "no"  # type: ignore[index]
    package = os.path.dirname(fastpaths.__file__)
    modules = {name[:-3] for name in os.listdir(package)
               if name.endswith(".py") and name != "__init__.py"}
    assert modules <= set(fastpaths.WHERE.values())  # no unregistered patch module


_REPORT = textwrap.dedent("""
    import json
    from twisted.internet.testing import MemoryReactor
    from coreactors import fastpaths
    from coreactors.fastpaths.twisted_web import quiet_pool
    from coreactors.http import errors
    from coreactors.http.app import CoreApp, make_site
    from coreactors.stores import base
    site = make_site(CoreApp(None).resource(), quiet=True)
    print(json.dumps({
        "on": sorted(name for name in fastpaths.KNOWN if fastpaths.enabled(name)),
        "channel": site.protocol.__name__,
        "request": site.requestFactory.__name__,
        "url_map": type(CoreApp.app.url_map).__name__,
        "answers_encoder": errors._encode.__qualname__,
        "events_encoder": base._encode.__qualname__,
        "pool_factory": quiet_pool(MemoryReactor())._factory.__name__,
    }))
""")


def built_with(setting):
    env = dict(os.environ)
    env.pop(fastpaths.ENVIRONMENT_VARIABLE, None)
    if setting is not None:
        env[fastpaths.ENVIRONMENT_VARIABLE] = setting
    done = subprocess.run([sys.executable, "-c", _REPORT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    return done


ALL_FAST = {"channel": "EagerAPIChannel", "request": "ReleasingAPIRequest",
            "url_map": "RememberingMap", "answers_encoder": "reused_c_encoder.<locals>.encode",
            "events_encoder": "reused_c_encoder.<locals>.encode",
            "pool_factory": "QuietHTTP11ClientFactory"}
ALL_PLAIN = {"channel": "APIChannel", "request": "APIRequest", "url_map": "Map",
             "answers_encoder": "JSONEncoder.encode", "events_encoder": "JSONEncoder.encode",
             "pool_factory": "_HTTP11ClientFactory"}


@pytest.mark.parametrize("setting, expected", [
    (None, dict(ALL_FAST, on=sorted(fastpaths.KNOWN))),
    ("off", dict(ALL_PLAIN, on=[])),
    ("-eager_send,-reused_json_encoder",
     dict(ALL_FAST, channel="APIChannel", answers_encoder="JSONEncoder.encode",
          events_encoder="JSONEncoder.encode",
          on=sorted(set(fastpaths.KNOWN) - {"eager_send", "reused_json_encoder"}))),
    ("off,remembered_routes", dict(ALL_PLAIN, url_map="RememberingMap",
                                   on=["remembered_routes"])),
])
def test_a_process_builds_what_the_switch_says(setting, expected):
    done = built_with(setting)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected


def test_a_process_with_an_unknown_name_stops_at_once_saying_which_names_exist():
    done = built_with("-eager_sned")
    assert done.returncode != 0
    assert "ValueError" in done.stderr and "eager_sned" in done.stderr
    assert all(name in done.stderr for name in fastpaths.KNOWN)


def test_make_site_builds_either_variant_on_request():
    resource = CoreApp(_Version()).resource()
    fast, plain = make_site(resource, fast=True), make_site(resource, quiet=True, fast=False)
    assert (fast.protocol, fast.requestFactory) == (EagerAPIChannel, ReleasingAPIRequest)
    assert (plain.protocol, plain.requestFactory) == (APIChannel, APIRequest)
    assert isinstance(plain, QuietSite) and not isinstance(fast, QuietSite)
    # The fast classes only add to the plain ones.
    assert issubclass(EagerAPIChannel, APIChannel)
    assert issubclass(ReleasingAPIRequest, APIRequest)
    channel = fast.buildProtocol(None)
    assert isinstance(channel, EagerAPIChannel)
    assert channel.requestFactory is ReleasingAPIRequest


# ---------------------------------------------------------------------------- eager_send
# Twisted's TCP transport (twisted.internet.tcp.Server, a FileDescriptor) over a real loopback
# connection, with a memory reactor that records which descriptors wait to write.

@pytest.fixture
def loopback():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname(), timeout=5)
    server, address = listener.accept()
    listener.close()
    yield server, address, client
    client.close()
    server.close()


def tcp_transport(loopback, protocol, reactor):
    server, address, _ = loopback
    transport = tcp.Server(server, protocol, address, None, 1, reactor)
    protocol.makeConnection(transport)
    return transport


class _Recorder:
    def makeConnection(self, transport):
        self.transport = transport

    def connectionLost(self, reason):
        pass


def read_answer(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return data


def test_twisted_tcp_transport_has_the_buffers_and_flags_eager_send_reads(loopback):
    reactor = MemoryReactor()
    transport = tcp_transport(loopback, _Recorder(), reactor)
    client = loopback[2]
    assert EagerTransport.fits(transport)
    assert transport.socket is loopback[0]
    assert transport._tempDataBuffer == [] and isinstance(transport._tempDataBuffer, list)
    assert transport.dataBuffer == b""
    assert transport._writeDisconnected is False
    assert transport.connected and not transport.disconnecting
    # A buffered write waits in _tempDataBuffer for the reactor's next pass...
    transport.write(b"queued")
    assert transport._tempDataBuffer == [b"queued"]
    assert transport in reactor.getWriters()
    # ...and so does a second one: an eager write queues behind the first.
    EagerTransport(transport).write(b" behind")
    assert transport._tempDataBuffer == [b"queued", b" behind"]
    transport.doWrite()
    assert (transport._tempDataBuffer, transport.dataBuffer) == ([], b"")
    assert transport not in reactor.getWriters()
    assert client.recv(100) == b"queued behind"
    # Once the writing side is shut, _writeDisconnected says so, and eager writes are dropped
    # as Twisted drops buffered ones.
    transport.loseWriteConnection()
    transport.doWrite()
    assert transport._writeDisconnected is True
    EagerTransport(transport).write(b"too late")
    assert client.recv(100) == b""


@pytest.mark.parametrize("fast", [True, False])
def test_an_answer_over_real_tcp_is_the_same_either_way_and_eager_needs_no_reactor_pass(
        loopback, fast):
    reactor = MemoryReactor()
    site = make_site(CoreApp(_Version()).resource(), quiet=True, fast=fast)
    transport = tcp_transport(loopback, site.buildProtocol(loopback[1]), reactor)
    client = loopback[2]
    answers = []
    for _ in range(2):  # the second on the same kept-alive connection
        client.sendall(GET_VERSION)
        transport.doRead()
        waiting = transport in reactor.getWriters()
        assert waiting == (not fast)
        if waiting:
            transport.doWrite()
        answers.append(read_answer(client))
    assert answers[0] == answers[1]
    answer = re.sub(rb"(?i)\r\ndate: [^\r]*", b"", answers[0])
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b'"version"' in answer
    expected = _plain_answer_over(StringTransport())
    assert answer == expected


def _plain_answer_over(transport):
    site = make_site(CoreApp(_Version()).resource(), quiet=True, fast=False)
    channel = site.buildProtocol(None)
    channel.makeConnection(transport)
    channel.dataReceived(GET_VERSION)
    return re.sub(rb"(?i)\r\ndate: [^\r]*", b"", transport.value())


# ---------------------------------------------------------------------------- request_cleanup

def test_request_cleanup_is_called_once_per_finished_request_after_it_is_logged():
    calls = []

    class Counted(ReleasingAPIRequest):
        def _cleanup(self):
            calls.append((self.finished, self.requestHeaders is not None))
            super()._cleanup()
            assert self.requestHeaders is None and self._adapterCache == {}

    site = make_site(CoreApp(_Version()).resource(), quiet=True, fast=True)
    site.requestFactory = Counted
    channel = site.buildProtocol(None)
    channel.makeConnection(StringTransport())
    for count in range(1, 4):
        channel.dataReceived(GET_VERSION)
        assert calls == [(1, True)] * count


def test_a_request_keeps_klein_s_adapter_in_its_adapter_cache():
    channel = make_site(CoreApp(_Version()).resource(), fast=False).buildProtocol(None)
    channel.makeConnection(StringTransport())
    request = Request(channel)
    assert request._adapterCache == {}
    klein_request = IKleinRequest(request)
    assert list(request._adapterCache.values()) == [klein_request]
    assert IKleinRequest(request) is klein_request


# ---------------------------------------------------------------------------- remembered_routes

def test_klein_routes_through_the_werkzeug_map_in_its_private_url_map():
    app = Klein()
    assert type(app._url_map) is Map and app.url_map is app._url_map
    binds = []

    class Watched(Map):
        def bind(self, *args, **kwargs):
            binds.append(args)
            return super().bind(*args, **kwargs)

    app._url_map = Watched()

    @app.route("/hello")
    def hello(request):
        return b"hi"

    site = make_site(app.resource(), quiet=True, fast=False)
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
    assert transport.value().endswith(b"\r\n2\r\nhi\r\n0\r\n\r\n")  # chunked: "hi"
    assert len(binds) == 1
    # A Klein app bound to an instance (CoreApp's, on each CoreApp) shares the class's map.
    assert CoreApp(_Version()).app.url_map is CoreApp.app.url_map


def test_werkzeug_binds_a_plain_map_adapter_whose_class_can_be_swapped():
    url_map = Map([Rule("/a/<x>", endpoint="a")])
    adapter = url_map.bind("h", "/", path_info="/a/1", default_method="GET")
    assert type(adapter) is MapAdapter
    assert klein_routing.RememberingMapAdapter.__bases__ == (MapAdapter,)
    for name in ("server_name", "subdomain", "script_name", "path_info", "default_method",
                 "websocket", "map"):
        assert hasattr(adapter, name), name
    assert MapAdapter.match.__code__.co_varnames[1:6] == (
        "path_info", "method", "return_rule", "query_args", "websocket")
    adapter.__class__ = klein_routing.RememberingMapAdapter
    remembering = klein_routing.RememberingMap([Rule("/a/<x>", endpoint="a")])
    swapped = remembering.bind("h", "/", path_info="/a/1", default_method="GET")
    assert type(swapped) is klein_routing.RememberingMapAdapter
    assert swapped.match(return_rule=True)[1] == {"x": "1"}
    assert remembering.matches


# ---------------------------------------------------------------------------- reused_json_encoder

def test_json_s_c_encoder_takes_the_positional_arguments_and_writes_what_json_writes():
    import json.encoder
    assert json.encoder.c_make_encoder is not None  # CPython's accelerator is there
    encode = json_encoder.reused_c_encoder(_refuse, True)
    assert encode is not None
    for value in VALUES * 2:
        assert encode(value) == json.dumps(value, separators=(",", ":"))
    with pytest.raises(ValueError):
        json_encoder.reused_c_encoder(_refuse, False)([float("nan")])
    with pytest.raises(TypeError):
        encode({1, 2})


def _refuse(value):
    raise TypeError(type(value).__name__)


# ---------------------------------------------------------------------------- quiet_pool

class _RecordingEndpoint:
    def __init__(self):
        self.factories = []

    def connect(self, factory):
        from twisted.internet.defer import Deferred
        self.factories.append(factory)
        return Deferred()


@pytest.mark.parametrize("fast", [True, False])
def test_the_pool_connects_with_its_private_factory_class(fast):
    assert HTTPConnectionPool._factory is twisted.web.client._HTTP11ClientFactory
    pool = quiet_pool(MemoryReactor(), fast=fast)
    assert pool.persistent is False
    endpoint = _RecordingEndpoint()
    pool.getConnection(("http", b"h", 80), endpoint)
    [factory] = endpoint.factories
    assert isinstance(factory, twisted.web.client._HTTP11ClientFactory)
    assert factory.noisy is (not fast)


# ---------------------------------------------------------------------------- not switched

def test_request_not_sent_is_still_only_in_twisted_s_private_client_module():
    assert twisted_web.REQUEST_NOT_SENT == (_newclient.RequestNotSent,)
    # The day Twisted exports it, import it from twisted.web.client instead (the other two
    # are exported there).
    assert "RequestNotSent" not in twisted.web.client.__all__
    assert {"ResponseNeverReceived", "RequestTransmissionFailed"} <= set(
        twisted.web.client.__all__)

"""Fast paths through Twisted's private names: the TCP transport, the request, the HTTP client.

``eager_send`` (``EagerTransport``, ``EagerAPIChannel``)
    Touches the TCP transport's (``twisted.internet.abstract.FileDescriptor``) private
    ``_tempDataBuffer`` and ``_writeDisconnected``, and its ``dataBuffer`` and ``socket``.
    Twisted's transport buffers every write and sends it on the reactor's next pass: it
    registers the socket for writability, sends, and unregisters it again. Those two
    ``epoll_ctl`` calls per answer cost more than their syscalls: each one releases the GIL,
    and the reactor thread, the busiest one under load, then waits for an actor thread to hand
    it back. ``EagerTransport`` wraps a connection's transport and, as asyncio's transports
    do, sends at once when nothing is buffered, leaving the rest of a partial send (and
    everything while anything is buffered) to Twisted's own buffered write, so the bytes keep
    their order. ``EagerAPIChannel`` holds the status line and headers until the body, so an
    answer leaves in one piece, and answers ``isSecure`` without Twisted's interface
    adaptation (twice per request) since only plain TCP is ever wrapped. Buys: webhook
    turns/s +5.2% to +14.6% (worst +5.2%), the server's CPU per turn -5.0% to -12.5% (six
    runs of 20 windows). Off: ``COREACTORS_FAST_PATHS=-eager_send`` (connections are plain
    ``APIChannel``s writing through Twisted's buffered write).

``request_cleanup`` (``ReleasingAPIRequest``)
    Overrides Twisted's private ``Request._cleanup`` (called once a request is answered,
    logged and off its connection) and empties ``Componentized._adapterCache``, where Klein's
    per-request adapter lives. Klein's render leaves the request in a reference cycle (an
    error handler that refers to itself), so everything the request holds would wait for the
    collector; dropped in ``_cleanup`` it is freed at once, and the collector's young passes
    come less often. Buys: the collector's time per turn 14.0-19.4 -> 9.2-12.3 us (6.3-6.5
    instead of 9.7 collector passes per 1,000 turns), 2.2% to 3.8% of a turn's CPU; in whole
    turns/s, -0.3% to +8.1% (median +2.2%), within the benchmark's noise. Kept on the
    collector's figures. Off: ``COREACTORS_FAST_PATHS=-request_cleanup`` (plain
    ``APIRequest``s).

``quiet_pool`` (``quiet_pool``)
    Subclasses the private ``twisted.web.client._HTTP11ClientFactory`` and sets
    ``HTTPConnectionPool._factory`` (documented there as the factory class it connects with),
    so that the model watcher's pulls, a new connection each, do not log Twisted's "Starting
    factory" / "Stopping factory" lines. No speed at stake: two log lines per pull. Off:
    ``COREACTORS_FAST_PATHS=-quiet_pool`` (a plain ``HTTPConnectionPool``).

The figures: bench/fast_paths.py on 7 December 2026 (moodbot, SQLite store, 16 keep-alive
connections from wrk, one server with every fast path on and one with the measured one off,
alternating 1 s windows; ten runs of 20 or 60 windows unless said otherwise, half of them
with both servers on one CPU), "worst" being the worst run; its A/A row (quiet_pool, which
costs nothing on this path) read -1.5% to +4.7%. The collector's time was read with
gc.callbacks in both servers (four runs of 20 windows).

Not a fast path, not switched: ``REQUEST_NOT_SENT`` is ``twisted.web._newclient``'s
``RequestNotSent``, which ``twisted.web.client`` does not export; the callback channel retries
a POST that failed with it (or with the public ``ResponseNeverReceived`` and
``RequestTransmissionFailed``) on a fresh connection. Should Twisted drop the name, it is an
empty tuple and only those two are retried.
"""

from typing import Any, Iterable, List, Optional, Tuple, Type

from twisted.web import _newclient, client as web_client
from twisted.web.client import HTTPConnectionPool

from coreactors import fastpaths
from coreactors.http.site import APIChannel, APIRequest


class EagerTransport:
    """Stands in for a connection's TCP transport; everything but writing is passed through."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._held: List[bytes] = []
        # While True, writes are held until the next write or flush (see EagerAPIChannel).
        self.holding = False

    @staticmethod
    def fits(transport: Any) -> bool:
        """Whether ``transport`` is a plain TCP transport whose buffers this can see."""
        return all(hasattr(transport, name) for name in (
            "socket", "dataBuffer", "_tempDataBuffer", "connected", "disconnecting"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    @property
    def disconnecting(self) -> bool:
        # HTTPChannel reads this several times per request; as a property it is found at
        # once, where __getattr__ is only reached after a failed lookup has built an
        # AttributeError.
        return self._transport.disconnecting

    def write(self, data: bytes) -> None:
        self._held.append(data)
        if not self.holding:
            self.flush()

    def writeSequence(self, iovec: Iterable[bytes]) -> None:
        self._held.extend(iovec)
        if not self.holding:
            self.flush()

    def flush(self) -> None:
        """Sends what is held: at once if nothing is buffered, else after what is."""
        if not self._held:
            return
        data = b"".join(self._held)
        self._held = []
        transport = self._transport
        if (transport.connected and not transport.disconnecting
                and not getattr(transport, "_writeDisconnected", False)
                and not transport.dataBuffer and not transport._tempDataBuffer):
            try:
                sent = transport.socket.send(data)
            except OSError:
                # Full (EAGAIN) or broken: the buffered write waits or reports the error, as
                # it would have anyway.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)


class EagerAPIChannel(APIChannel):
    """An ``APIChannel`` writing each answer with one ``send()`` where it can."""

    def connectionMade(self) -> None:
        super().connectionMade()
        if EagerTransport.fits(self.transport):
            self.transport = EagerTransport(self.transport)

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        # The status line and headers wait for the first body bytes (or the end of the answer).
        transport = self.transport
        if not isinstance(transport, EagerTransport):
            return super().writeHeaders(version, code, reason, headers)
        transport.holding = True
        try:
            super().writeHeaders(version, code, reason, headers)
        finally:
            transport.holding = False

    def requestDone(self, request: Any) -> None:
        if isinstance(self.transport, EagerTransport):
            self.transport.flush()  # an answer without a body: its headers are still held
        super().requestDone(request)

    def isSecure(self) -> bool:
        if isinstance(self.transport, EagerTransport):
            return False  # only plain TCP is ever wrapped
        return super().isSecure()


class ReleasingAPIRequest(APIRequest):
    """An ``APIRequest`` that drops what it holds once it is finished with."""

    def _cleanup(self) -> None:
        super()._cleanup()
        # Answered, logged and off the connection: nothing reads these any more, and Klein's
        # reference cycle would keep them for the collector.
        self.requestHeaders = self.responseHeaders = None
        self.args = None
        self.prepath = self.postpath = None
        self._adapterCache = {}


def channel_class(fast: Optional[bool] = None) -> Type[APIChannel]:
    """The connection class: eager (``eager_send``) or plain; ``fast`` None asks the switch."""
    return EagerAPIChannel if fastpaths.choose("eager_send", fast) else APIChannel


def request_class(fast: Optional[bool] = None) -> Type[APIRequest]:
    """The request class: releasing (``request_cleanup``) or plain; None asks the switch."""
    return ReleasingAPIRequest if fastpaths.choose("request_cleanup", fast) else APIRequest


def quiet_pool(reactor: Any, fast: Optional[bool] = None) -> HTTPConnectionPool:
    """A pool making a new connection per request (pulls are minutes apart); with
    ``quiet_pool`` on (``fast`` None asks the switch), without Twisted's factory log lines."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    factory = getattr(web_client, "_HTTP11ClientFactory", None)
    if fastpaths.choose("quiet_pool", fast) and factory is not None:
        pool._factory = type("QuietHTTP11ClientFactory", (factory,), {"noisy": False})
    return pool


REQUEST_NOT_SENT: Tuple[Type[BaseException], ...] = tuple(
    error for error in (getattr(_newclient, "RequestNotSent", None),) if error is not None)


__all__ = ["EagerAPIChannel", "EagerTransport", "REQUEST_NOT_SENT", "ReleasingAPIRequest",
           "channel_class", "quiet_pool", "request_class"]

"""Reading an HTTP response body with a bound on its size (the reactor thread).

treq's ``content()`` collects whatever the peer sends; a model server or a misbehaving peer can
send gigabytes. ``read_body`` collects at most ``limit`` bytes and then drops the connection:
the download fails with ``BodyTooLarge``, or with ``truncate`` fires with the first ``limit``
bytes (enough of an error page for the log).
"""

from typing import Any, List

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss


class BodyTooLarge(Exception):
    """The body is larger than the limit (``limit`` bytes)."""

    def __init__(self, limit: int) -> None:
        super().__init__("The body is larger than {} bytes.".format(limit))
        self.limit = limit


class _BoundedBody(protocol.Protocol):
    """Collects a response body up to ``limit`` bytes, then drops the connection."""

    def __init__(self, limit: int, truncate: bool) -> None:
        self.limit = limit
        self.truncate = truncate
        self.chunks: List[bytes] = []
        self.size = 0
        self.finished = False
        self.deferred: Deferred = Deferred(self._cancel)

    def dataReceived(self, data: bytes) -> None:
        if self.finished:
            return
        if self.size + len(data) > self.limit:
            self.finished = True
            if self.truncate:
                self.chunks.append(data[:self.limit - self.size])
                self.deferred.callback(b"".join(self.chunks))
            else:
                self.deferred.errback(BodyTooLarge(self.limit))
            self.chunks = []
            self.transport.stopProducing()
            return
        self.size += len(data)
        self.chunks.append(data)

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        if self.finished:
            return
        self.finished = True
        # PotentialDataLoss: an HTTP/1.0 body without a length, ended by closing; a cut-off
        # zip fails to unpack anyway.
        if reason.check(ResponseDone, PotentialDataLoss):
            self.deferred.callback(b"".join(self.chunks))
        else:
            self.deferred.errback(reason)

    def _cancel(self, _: Deferred) -> None:
        self.finished = True
        if self.transport is not None:
            self.transport.stopProducing()


def read_body(response: Any, limit: int, truncate: bool = False) -> Deferred:
    """Fires with the body of a twisted ``IResponse`` (at most ``limit`` bytes; see above)."""
    reader = _BoundedBody(limit, truncate)
    response.deliverBody(reader)
    return reader.deferred


__all__ = ["BodyTooLarge", "read_body"]

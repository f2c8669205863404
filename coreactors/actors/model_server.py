"""The model server as seen from here: the ``model:`` settings of endpoints.yml, and one GET
for a newer model (treq, on the reactor thread).

Each pull sends ``If-None-Match: <fingerprint in use>`` and reads the answer: a 200's zip up to
``max_download_bytes``, of any other answer only the start (for the log). What the answer
means is the watcher's business (``model_watcher.py``).
"""

import re
from typing import Any, Callable, NamedTuple, Optional

import treq
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import UNKNOWN_LENGTH

from coreactors.actors.bounded_body import BodyTooLarge, read_body
from coreactors.endpoints import EndpointConfig, EndpointError
from coreactors.fastpaths.twisted_web import quiet_pool
from coreactors.model import MAX_UNZIPPED_BYTES

DEFAULT_WAIT_TIME = 100.0  # seconds between pulls when endpoints.yml does not say (as Rasa)
MIN_WAIT_TIME = 0.1  # 0 would poll in a tight loop (Rasa did); this is as fast as we go
DEFAULT_TIMEOUT = 300.0  # seconds for one whole pull, download included (Rasa's request timeout)
DEFAULT_MAX_DOWNLOAD_BYTES = MAX_UNZIPPED_BYTES
_LOG_BODY_BYTES = 2048  # of an error answer, kept for the log
_NUMBER = re.compile(r"^\s*\d+(\.\d*)?\s*$")


class PullSettings(NamedTuple):
    wait_time: Optional[float]  # None: pull once
    timeout: float
    max_download_bytes: int

    @classmethod
    def from_endpoint(cls, endpoint: EndpointConfig) -> "PullSettings":
        """Reads ``wait_time_between_pulls`` (absent: 100 s, null: pull once), ``timeout``
        and ``max_download_bytes`` from the endpoint's extra keys."""
        if not endpoint.url:
            raise EndpointError("'model' needs a 'url' (the model server's address).")
        if not re.match(r"^https?://", str(endpoint.url)):
            raise EndpointError("'model': 'url' must be an http(s) URL, got {!r}.".format(
                endpoint.url))
        kwargs = endpoint.kwargs
        if "wait_time_between_pulls" in kwargs:
            raw = kwargs["wait_time_between_pulls"]
            wait = None if raw is None else _seconds(raw, "wait_time_between_pulls")
        else:
            wait = DEFAULT_WAIT_TIME
        if wait is not None:
            wait = max(wait, MIN_WAIT_TIME)
        timeout = _seconds(kwargs.get("timeout", DEFAULT_TIMEOUT), "timeout")
        if timeout <= 0:
            raise EndpointError("'model': 'timeout' must be more than 0 seconds.")
        limit = kwargs.get("max_download_bytes", DEFAULT_MAX_DOWNLOAD_BYTES)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise EndpointError("'model': 'max_download_bytes' must be a positive number of "
                                "bytes, got {!r}.".format(limit))
        return cls(wait, timeout, limit)


def _seconds(value: Any, name: str) -> float:
    # Rasa took a digit string as seconds and silently pulled only once for anything else
    # ("10s"); a typo should not quietly stop the updates, so it is an error here.
    if isinstance(value, bool) or not (isinstance(value, (int, float))
                                       or (isinstance(value, str) and _NUMBER.match(value))):
        raise EndpointError("'model': '{}' must be a number of seconds, got {!r}.".format(
            name, value))
    seconds = float(value)
    if seconds < 0:
        raise EndpointError("'model': '{}' cannot be negative.".format(name))
    return seconds



class Pull(NamedTuple):
    """What one request to the model server brought back."""

    status: int
    etag: Optional[str]
    body: bytes  # the zip of a usable 200, else the start of the body (for the log)
    sent: Optional[str]  # the If-None-Match value sent


class DownloadTooLarge(Exception):
    """The model server's zip is larger than ``max_download_bytes``."""


def _timed_out(result: Any, timeout: float) -> Any:
    # A request cancelled mid-way fails with whatever the connection saw (ResponseNeverReceived
    # and the like), not CancelledError: whatever it is, it was the timeout.
    if isinstance(result, Failure):
        raise defer.TimeoutError("no answer within {:g} s".format(timeout))
    return result


def _too_large(failure: Failure, limit: int) -> None:
    failure.trap(BodyTooLarge)
    raise DownloadTooLarge("The model is larger than max_download_bytes ({} bytes).".format(
        limit))


class ModelServerClient:
    """One GET to the model server at a time, with treq; used on the reactor thread only."""

    def __init__(self, endpoint: EndpointConfig, reactor: Any,
                 current_fingerprint: Callable[[], Optional[str]],
                 settings: PullSettings) -> None:
        self.endpoint = endpoint
        self.reactor = reactor
        self.current_fingerprint = current_fingerprint
        self.settings = settings
        self._in_flight: Optional[Deferred] = None
        self.closed = False
        self.pool = quiet_pool(reactor)

    def fetch(self) -> Deferred:
        """Fires with a ``Pull``, or fails (timeout, connection, oversize download)."""
        if self.closed:
            return defer.fail(defer.CancelledError("The model watcher is stopping."))
        sent = self.current_fingerprint()
        headers = dict(self.endpoint.headers)
        if sent:
            headers["If-None-Match"] = sent
        params = {str(k): str(v) for k, v in self.endpoint.query().items()}
        d = treq.get(str(self.endpoint.url), params=params or None, headers=headers,
                     auth=self.endpoint.auth(), reactor=self.reactor, pool=self.pool)
        d.addCallback(self._read, sent)
        # One bound for the whole pull: treq's own timeout stops at the headers.
        d.addTimeout(self.settings.timeout, self.reactor, onTimeoutCancel=_timed_out)
        self._in_flight = d

        def settled(result: Any) -> Any:
            if self._in_flight is d:
                self._in_flight = None
            return result
        d.addBoth(settled)
        return d

    def _read(self, response: Any, sent: Optional[str]) -> Deferred:
        etags = response.headers.getRawHeaders(b"etag")
        etag = etags[0].decode("latin-1").strip() if etags else None
        wanted = response.code == 200 and etag and etag != sent
        if not wanted:
            return read_body(response, _LOG_BODY_BYTES, truncate=True).addCallback(
                lambda body: Pull(response.code, etag, body, sent))
        limit = self.settings.max_download_bytes
        if response.length is not UNKNOWN_LENGTH and response.length > limit:
            read_body(response, 0, truncate=True)  # drops the connection
            return defer.fail(DownloadTooLarge(
                "The model is {} bytes, more than max_download_bytes ({} bytes).".format(
                    response.length, limit)))
        return read_body(response, limit).addCallbacks(
            lambda body: Pull(response.code, etag, body, sent), _too_large,
            errbackArgs=(limit,))

    def close(self) -> None:
        """Stops the pull in progress, and any later one (the server is stopping)."""
        self.closed = True
        if self._in_flight is not None:
            self._in_flight.cancel()



__all__ = ["DownloadTooLarge", "ModelServerClient", "Pull", "PullSettings"]

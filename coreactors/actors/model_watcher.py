"""Pulling models from a model server, and the loading path every new model goes through.

With ``model:`` (or Rasa Core 0.12's ``models:``) in endpoints.yml, the ``ModelWatcherService``
asks the model server for a newer model every ``wait_time_between_pulls`` seconds, sending
``If-None-Match: <fingerprint in use>``:

- 200 with a zip and an ``ETag``: the zip is downloaded (at most ``max_download_bytes``),
  unpacked into a fresh temporary folder, loaded and checked, and handed to the Supervisor; the
  ETag becomes the fingerprint;
- 204 or 304 (whatever ETag they carry), or a 200 whose ETag is the fingerprint in use: nothing
  changes;
- anything else (404, 5xx, a timeout, a refused connection, a 200 without ETag, a zip that is
  corrupt, escapes its folder or holds no usable model): the running model stays, the reason is
  logged, and the next pull comes at the next interval, for as long as the server runs.

Who does what, by thread: the ``ModelServerClient`` talks HTTP (treq) on the reactor; the
``ModelWatcher`` actor runs one pull at a time on its own thread and unpacks and loads there;
the service keeps time and publishes the new model on the reactor. ``ModelArchives`` is the
loading path shared with ``POST /model``; it also removes the unpacked folders no longer needed.
"""

import atexit
import copy
import logging
import os
import re
import shutil
import tempfile
import threading
from typing import Any, Callable, List, NamedTuple, Optional, Set

import pykka
import treq
from twisted.application import service
from twisted.internet import defer, protocol, threads
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web import client as web_client
from twisted.web.client import HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import UNKNOWN_LENGTH

from coreactors.actors.conversation import Reply
from coreactors.endpoints import EndpointConfig, EndpointError
from coreactors.model import MAX_UNZIPPED_BYTES, InvalidModel, Model, unzip_model

logger = logging.getLogger(__name__)

DEFAULT_WAIT_TIME = 100.0  # seconds between pulls when endpoints.yml does not say (as Rasa)
MIN_WAIT_TIME = 0.1  # 0 would poll in a tight loop (Rasa did); this is as fast as we go
DEFAULT_TIMEOUT = 300.0  # seconds for one whole pull, download included (Rasa's request timeout)
DEFAULT_MAX_DOWNLOAD_BYTES = MAX_UNZIPPED_BYTES
STOP_TIMEOUT = 1.0  # how long a stopping server waits for a pull in progress
_LOG_BODY_BYTES = 2048  # of an error answer, kept for the log
_NUMBER = re.compile(r"^\s*\d+(\.\d*)?\s*$")


# --------------------------------------------------------------------------- loading


class ModelArchives:
    """Unpacks model zips into fresh temporary folders and loads them (off the reactor thread).

    Every folder made here is removed once no model in use needs it: the folders of the model
    in use and of the one before it stay (actors take a new model between two messages, so the
    previous one may still be finishing a turn), and so do folders of models loaded but not
    handed over yet. The rest go after each swap, at each load, and when the server stops.
    """

    def __init__(self, parent: Optional[str] = None,
                 max_unzipped_bytes: int = MAX_UNZIPPED_BYTES) -> None:
        self.parent = parent
        self.max_unzipped_bytes = max_unzipped_bytes
        self._lock = threading.Lock()
        self._folders: List[str] = []  # made here and not removed yet, oldest first
        self._pending: Set[str] = set()  # loaded, not handed to the Supervisor yet
        self._in_use: List[Optional[str]] = [None, None]  # model paths: current, previous
        self._atexit = False

    def load(self, data: bytes, fingerprint: Optional[str] = None) -> Model:
        """The model in zip ``data``, unpacked and checked; raises InvalidModel.

        Blocking (unzip, disk, numpy): never call it on the reactor thread. The model's
        fingerprint is ``fingerprint`` (a model server's ETag) or else its content's."""
        self.prune()
        # The real path: unzip_model returns paths under it, and published() compares them
        # without touching the disk (it runs on the reactor).
        folder = os.path.realpath(tempfile.mkdtemp(prefix="coreactors-model-", dir=self.parent))
        try:
            model = Model.load(unzip_model(data, folder, self.max_unzipped_bytes))
        except InvalidModel:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        except Exception as e:  # whatever a broken model trips over, it is the model's fault
            shutil.rmtree(folder, ignore_errors=True)
            logger.debug("Loading an archived model failed.", exc_info=True)
            raise InvalidModel("The archive holds no usable model: {}: {}".format(
                type(e).__name__, e))
        with self._lock:
            self._folders.append(folder)
            self._pending.add(folder)
            if not self._atexit:
                # twistd ends with SIGTERM's default action, which skips atexit; stopping the
                # supervisor cleans up then. This covers every other way out.
                atexit.register(self.remove_all)
                self._atexit = True
        if fingerprint is not None and fingerprint != model.fingerprint:
            # A copy, not a new Model(...): whatever else a Model carries travels along.
            model = copy.copy(model)
            model.fingerprint = fingerprint
        return model

    def published(self, path: Optional[str]) -> None:
        """Bookkeeping only (no I/O, so the reactor may call it): ``path`` is the folder of
        the model now in use."""
        with self._lock:
            if path != self._in_use[0]:
                self._in_use = [path, self._in_use[0]]
            for folder in list(self._pending):
                if _inside(path, folder):
                    self._pending.discard(folder)

    def prune(self) -> None:
        """Removes the folders no model in use needs (blocking)."""
        with self._lock:
            stale = [f for f in self._folders if f not in self._pending
                     and not any(_inside(p, f) for p in self._in_use)]
            self._folders = [f for f in self._folders if f not in stale]
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)

    def discard(self, model: Model) -> None:
        """A loaded model that will not be used: its folder may go."""
        with self._lock:
            for folder in list(self._pending):
                if _inside(model.path, folder):
                    self._pending.discard(folder)

    def remove_all(self) -> None:
        """Removes every folder made here (the server is stopping; models live in memory)."""
        with self._lock:
            folders, self._folders = self._folders, []
            self._pending.clear()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def _inside(path: Optional[str], folder: str) -> bool:
    if not path:
        return False
    path = os.path.normpath(os.path.abspath(path))
    return path == folder or path.startswith(folder + os.sep)


# --------------------------------------------------------------------------- settings


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


# --------------------------------------------------------------------------- HTTP (reactor)


class Pull(NamedTuple):
    """What one request to the model server brought back."""

    status: int
    etag: Optional[str]
    body: bytes  # the zip of a usable 200, else the start of the body (for the log)
    sent: Optional[str]  # the If-None-Match value sent


class DownloadTooLarge(Exception):
    """The model server's zip is larger than ``max_download_bytes``."""


class _BoundedBody(protocol.Protocol):
    """Collects a response body up to ``limit`` bytes, then drops the connection: an error,
    or with ``truncate`` the first ``limit`` bytes."""

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
                self.deferred.errback(DownloadTooLarge(
                    "The model is larger than max_download_bytes ({} bytes).".format(
                        self.limit)))
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


def _timed_out(result: Any, timeout: float) -> Any:
    # A request cancelled mid-way fails with whatever the connection saw (ResponseNeverReceived
    # and the like), not CancelledError: whatever it is, it was the timeout.
    if isinstance(result, Failure):
        raise defer.TimeoutError("no answer within {:g} s".format(timeout))
    return result


def _quiet_pool(reactor: Any) -> HTTPConnectionPool:
    """A new connection per pull (pulls are minutes apart), without Twisted's "Starting
    factory" / "Stopping factory" log lines for each one."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    factory = getattr(web_client, "_HTTP11ClientFactory", None)
    if factory is not None:
        # HTTPConnectionPool documents _factory as the factory class it connects with.
        pool._factory = type("QuietHTTP11ClientFactory", (factory,), {"noisy": False})
    return pool


def _read_body(response: Any, limit: int, truncate: bool = False) -> Deferred:
    reader = _BoundedBody(limit, truncate)
    response.deliverBody(reader)
    return reader.deferred


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
        self.pool = _quiet_pool(reactor)

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
            return _read_body(response, _LOG_BODY_BYTES, truncate=True).addCallback(
                lambda body: Pull(response.code, etag, body, sent))
        limit = self.settings.max_download_bytes
        if response.length is not UNKNOWN_LENGTH and response.length > limit:
            _read_body(response, 0, truncate=True)  # drops the connection
            return defer.fail(DownloadTooLarge(
                "The model is {} bytes, more than max_download_bytes ({} bytes).".format(
                    response.length, limit)))
        return _read_body(response, limit).addCallback(
            lambda body: Pull(response.code, etag, body, sent))

    def close(self) -> None:
        """Stops the pull in progress, and any later one (the server is stopping)."""
        self.closed = True
        if self._in_flight is not None:
            self._in_flight.cancel()


# --------------------------------------------------------------------------- the actor


class ModelWatcher(pykka.ThreadingActor):
    """Runs pulls, one at a time, on its own thread. Messages are ``("poll", reply)``, whose
    reply is the new Model to hand over or None when the model in use stays, and
    ``("prune", None)`` after a model was handed over (the unpacked folders no longer needed
    go)."""

    use_daemon_thread = True

    def __init__(self, client: ModelServerClient, archives: ModelArchives, reactor: Any
                 ) -> None:
        super().__init__()
        self.client = client
        self.archives = archives
        self.reactor = reactor

    def on_receive(self, message: Any) -> None:
        command, reply = message
        if command == "prune":
            self.archives.prune()
            return
        if command != "poll":
            return
        try:
            result = self.poll()
        except Exception:  # a pull that fails in an unforeseen way must not end the pulling
            logger.exception("Pulling a model failed unexpectedly; the model in use stays.")
            result = None
        reply.succeed(result)

    def poll(self) -> Optional[Model]:
        url = self.client.endpoint.url
        if self.client.closed:
            return None
        try:
            pull = threads.blockingCallFromThread(self.reactor, self.client.fetch)
        except Exception as e:
            if not self.client.closed:  # else the server is stopping and cut the pull off
                self._failed(e)
            return None
        kept = "the model in use ({}) stays".format(pull.sent or "none loaded")
        if pull.status in (204, 304):
            logger.debug("Model server %s: %d, no newer model than %s.", url, pull.status,
                         pull.sent)
            return None
        if pull.status == 404:
            logger.info("Model server %s: 404, no model there yet; %s.", url, kept)
            return None
        if pull.status != 200:
            logger.warning("Model server %s answered %d (%s); %s.", url, pull.status,
                           _snippet(pull.body), kept)
            return None
        if not pull.etag:
            logger.warning("Model server %s answered 200 without an ETag, so the model has no "
                           "fingerprint and is not loaded; %s.", url, kept)
            return None
        if pull.etag == pull.sent:
            logger.debug("Model server %s: 200 for the model in use (%s).", url, pull.etag)
            return None
        try:
            model = self.archives.load(pull.body, fingerprint=pull.etag)
        except InvalidModel as e:
            logger.warning("The model server's model %s (%s) cannot be used: %s; %s.",
                           pull.etag, url, e, kept)
            return None
        logger.info("Loaded model %s from the model server %s (%d bytes).", pull.etag, url,
                    len(pull.body))
        return model

    def _failed(self, error: Exception) -> None:
        url = self.client.endpoint.url
        if isinstance(error, defer.TimeoutError):
            logger.warning("The model server at %s did not answer within %g s; the model in "
                           "use stays.", url, self.client.settings.timeout)
        elif isinstance(error, DownloadTooLarge):
            logger.warning("Model server %s: %s The model in use stays.", url, error)
        else:
            logger.warning("Could not reach the model server at %s (%s); the model in use "
                           "stays, next try at the next interval.", url, _describe(error))


def _describe(error: BaseException) -> str:
    # twisted's ResponseNeverReceived and friends wrap the real reason in a list of Failures.
    reasons = [getattr(r, "value", r) for r in getattr(error, "reasons", None) or []]
    return "; ".join(str(e) or type(e).__name__ for e in reasons or [error])


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return (text[:200] + "...") if len(text) > 200 else (text or "no body")


# --------------------------------------------------------------------------- the service


class ModelWatcherService(service.Service):
    """Keeps time for the pulls and hands each new model to the Supervisor (reactor thread).

    The first pull starts with the service; the next one is scheduled when the previous one is
    done, so pulls never overlap. On stop, the pull in progress is cancelled."""

    name = "model-watcher"

    def __init__(self, endpoint: EndpointConfig, supervisor: Any, reactor: Any = None,
                 archives: Optional[ModelArchives] = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor
            reactor = global_reactor
        self.settings = PullSettings.from_endpoint(endpoint)
        self.endpoint = endpoint
        self.supervisor = supervisor
        self.reactor = reactor
        self.archives = archives if archives is not None else supervisor.archives
        self.client = ModelServerClient(endpoint, reactor, lambda: supervisor.fingerprint,
                                        self.settings)
        self._ref: Optional[pykka.ActorRef] = None
        self._next: Any = None

    def startService(self) -> None:
        super().startService()
        self.client.closed = False
        self._ref = ModelWatcher.start(self.client, self.archives, self.reactor)
        logger.info("Pulling models from %s %s.", self.endpoint.url,
                    "every {:g} s".format(self.settings.wait_time)
                    if self.settings.wait_time is not None else "once, now")
        self._poll()

    def _poll(self) -> None:
        self._next = None
        if not self.running or self._ref is None:
            return
        d: Deferred = Deferred()
        try:
            self._ref.tell(("poll", Reply(d, self.reactor.callFromThread)))
        except pykka.ActorDeadError:
            return
        d.addCallback(self._publish)
        d.addErrback(lambda failure: logger.error("Handing over a pulled model failed: %s",
                                                  failure.getTraceback()))
        d.addBoth(self._pulled)

    def _publish(self, model: Optional[Model]) -> None:
        if model is None:
            return
        if not self.running:
            self.archives.discard(model)
            return
        previous = self.supervisor.fingerprint
        self.supervisor.set_model(model)
        logger.info("Now serving model %s (was %s); live conversations take it before their "
                    "next message.", self.supervisor.fingerprint, previous)
        if self._ref is not None:
            self._ref.tell(("prune", None))  # the folder two models back can go now

    def _pulled(self, _: Any) -> None:
        if self.running and self.settings.wait_time is not None:
            self._next = self.reactor.callLater(self.settings.wait_time, self._poll)

    def stopService(self) -> Deferred:
        super().stopService()
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        self.client.close()
        ref, self._ref = self._ref, None
        if ref is None:
            return defer.succeed(None)

        def stop() -> None:
            try:
                ref.stop(block=True, timeout=STOP_TIMEOUT)
            except Exception:  # a load in progress; the daemon thread ends with the process
                logger.warning("The model watcher was busy loading a model; not waiting.")
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), stop)


def watcher_for(endpoints: Any, supervisor: Any, reactor: Any = None
                ) -> Optional[ModelWatcherService]:
    """The watcher service for ``endpoints.model``, or None when no model server is set."""
    endpoint = getattr(endpoints, "model", None)
    if endpoint is None:
        return None
    return ModelWatcherService(endpoint, supervisor, reactor)


__all__ = ["ModelArchives", "ModelServerClient", "ModelWatcher", "ModelWatcherService",
           "PullSettings", "Pull", "watcher_for"]

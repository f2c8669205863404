"""Pulling models from a model server: the watcher actor and the service that keeps its time.

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

Who does what, by thread: the ``ModelServerClient`` (model_server.py) talks HTTP on the
reactor; the ``ModelWatcher`` actor runs one pull at a time on its own thread and unpacks and
loads there (``ModelArchives``, the loading path shared with ``POST /model``); the service keeps
time and publishes the new model on the reactor.
"""

from typing import Any, Optional

import pykka
from twisted.application import service
from twisted.internet import defer, threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from coreactors.actors.messages import Poll, Prune
from coreactors.actors.model_server import (
    DownloadTooLarge, ModelServerClient, PullSettings)
from coreactors.actors.reply import Reply
from coreactors.endpoints import EndpointConfig
from coreactors.log_observers import levelled
from coreactors.model import InvalidModel, Model
from coreactors.model_archives import ModelArchives

log = Logger(observer=levelled)

STOP_TIMEOUT = 1.0  # how long a stopping server waits for a pull in progress


class ModelWatcher(pykka.ThreadingActor):
    """Runs pulls, one at a time, on its own thread. Messages: ``Poll`` (its reply gets the
    new Model to hand over, or None when the model in use stays) and ``Prune`` (after a model
    was handed over: the unpacked folders no longer needed go)."""

    use_daemon_thread = True

    def __init__(self, client: ModelServerClient, archives: ModelArchives, reactor: Any
                 ) -> None:
        super().__init__()
        self.client = client
        self.archives = archives
        self.reactor = reactor

    def on_receive(self, message: Any) -> None:
        match message:
            case Poll(reply):
                try:
                    result = self.poll()
                except Exception:  # a pull that fails in an unforeseen way must not end pulling
                    log.failure("Pulling a model failed unexpectedly; the model in use stays.")
                    result = None
                reply.succeed(result)
            case Prune():
                self.archives.prune()
            case _:
                raise TypeError("The model watcher cannot handle {!r}.".format(message))

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
            log.debug("Model server {url}: {status}, no newer model than {fingerprint}.",
                      url=url, status=pull.status, fingerprint=pull.sent)
            return None
        if pull.status == 404:
            log.info("Model server {url}: 404, no model there yet; {kept}.", url=url, kept=kept)
            return None
        if pull.status != 200:
            log.warn("Model server {url} answered {status} ({body}); {kept}.", url=url,
                     status=pull.status, body=_snippet(pull.body), kept=kept)
            return None
        if not pull.etag:
            log.warn("Model server {url} answered 200 without an ETag, so the model has no "
                     "fingerprint and is not loaded; {kept}.", url=url, kept=kept)
            return None
        if pull.etag == pull.sent:
            log.debug("Model server {url}: 200 for the model in use ({fingerprint}).", url=url,
                      fingerprint=pull.etag)
            return None
        try:
            model = self.archives.load(pull.body, fingerprint=pull.etag)
        except InvalidModel as e:
            log.warn("The model server's model {fingerprint} ({url}) cannot be used: {error}; "
                     "{kept}.", fingerprint=pull.etag, url=url, error=e, kept=kept)
            return None
        log.info("Loaded model {fingerprint} from the model server {url} ({size} bytes).",
                 fingerprint=pull.etag, url=url, size=len(pull.body))
        return model

    def _failed(self, error: Exception) -> None:
        url = self.client.endpoint.url
        if isinstance(error, defer.TimeoutError):
            log.warn("The model server at {url} did not answer within {timeout:g} s; the model "
                     "in use stays.", url=url, timeout=self.client.settings.timeout)
        elif isinstance(error, DownloadTooLarge):
            log.warn("Model server {url}: {error} The model in use stays.", url=url, error=error)
        else:
            log.warn("Could not reach the model server at {url} ({error}); the model in use "
                     "stays, next try at the next interval.", url=url, error=_describe(error))


def _describe(error: BaseException) -> str:
    # twisted's ResponseNeverReceived and friends wrap the real reason in a list of Failures.
    reasons = [getattr(r, "value", r) for r in getattr(error, "reasons", None) or []]
    return "; ".join(str(e) or type(e).__name__ for e in reasons or [error])


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return (text[:200] + "...") if len(text) > 200 else (text or "no body")


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
        log.info("Pulling models from {url} {when}.", url=self.endpoint.url,
                 when="every {:g} s".format(self.settings.wait_time)
                 if self.settings.wait_time is not None else "once, now")
        self._poll()

    def _poll(self) -> None:
        self._next = None
        if not self.running or self._ref is None:
            return
        d: Deferred = Deferred()
        try:
            self._ref.tell(Poll(Reply(d, self.reactor.callFromThread)))
        except pykka.ActorDeadError:
            return
        d.addCallback(self._publish)
        d.addErrback(lambda failure: log.failure("Handing over a pulled model failed.", failure))
        d.addBoth(self._pulled)

    def _publish(self, model: Optional[Model]) -> None:
        if model is None:
            return
        if not self.running:
            self.archives.discard(model)
            return
        previous = self.supervisor.fingerprint
        self.supervisor.set_model(model)
        log.info("Now serving model {fingerprint} (was {previous}); live conversations take it "
                 "before their next message.", fingerprint=self.supervisor.fingerprint,
                 previous=previous)
        if self._ref is not None:
            self._ref.tell(Prune())  # the folder two models back can go now

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
                log.warn("The model watcher was busy loading a model; not waiting.")
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), stop)


def watcher_for(endpoints: Any, supervisor: Any, reactor: Any = None
                ) -> Optional[ModelWatcherService]:
    """The watcher service for ``endpoints.model``, or None when no model server is set."""
    endpoint = getattr(endpoints, "model", None)
    if endpoint is None:
        return None
    return ModelWatcherService(endpoint, supervisor, reactor)


__all__ = ["ModelWatcher", "ModelWatcherService", "watcher_for"]

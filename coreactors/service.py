"""Builds the process's Twisted service tree from the run options (for twistd and the CLI).

The tree, in start order: the actor system (store, supervisor), the model watcher (when
endpoints.yml names a model server), then the HTTP endpoint. Twisted stops children in reverse,
so on SIGTERM the server first stops listening, then stops pulling models, then lets in-flight
turns finish and stops every actor.
"""

import contextlib
import gc
import logging
import sys
from typing import Any, Dict, Optional

from twisted.application import service, strports
from twisted.internet import defer, task
from twisted.logger import Logger, globalLogPublisher, textFileLogObserver

from coreactors.actors.action_client import TreqActionClient
from coreactors.actors.dispatcher import Dispatcher
from coreactors.actors.model_watcher import watcher_for
from coreactors.actors.supervisor import Supervisor
from coreactors.affinity import parse_cpu_list, pin_process
from coreactors.endpoints import AvailableEndpoints, EndpointConfig, read_yaml_config
from coreactors.http.app import make_site
from coreactors.model import InvalidModel, Model
from coreactors.nlu.interpreter import (
    HttpInterpreter, NaturalLanguageInterpreter, project_and_model)
from coreactors.stores.config import store_from_endpoint

log = Logger()

DRAIN_TIMEOUT = 3.0


class ActorSystemService(service.Service):
    """Starts the supervisor; on stop, waits for in-flight turns, then stops every actor."""

    def __init__(self, supervisor: Supervisor, reactor: Any) -> None:
        self.supervisor = supervisor
        self.reactor = reactor

    def startService(self) -> None:
        super().startService()
        self.supervisor.start()

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        waited = 0.0
        while self.supervisor.in_flight() and waited < DRAIN_TIMEOUT:
            yield task.deferLater(self.reactor, 0.05, lambda: None)
            waited += 0.05
        yield self.supervisor.stop()
        try:
            self.supervisor.store.close()
        except Exception:  # closing is best effort; the data is already committed
            log.failure("Closing the tracker store failed.")
        log.info("Stopped every conversation actor.")


class _ToTwistedLogging(logging.Handler):
    """Sends the dialogue engine's stdlib log records into twisted.logger."""

    def emit(self, record: logging.LogRecord) -> None:
        from twisted.logger import LogLevel
        level = (LogLevel.error if record.levelno >= logging.ERROR else
                 LogLevel.warn if record.levelno >= logging.WARNING else
                 LogLevel.info if record.levelno >= logging.INFO else LogLevel.debug)
        Logger(namespace=record.name).emit(level, "{message}", message=self.format(record))


def configure_logging(options: Dict[str, Any]) -> None:
    level = (logging.DEBUG if options.get("debug") else
             logging.WARNING if options.get("quiet") else logging.INFO)
    root = logging.getLogger("coreactors")
    root.setLevel(level)
    if not any(isinstance(h, _ToTwistedLogging) for h in root.handlers):
        root.addHandler(_ToTwistedLogging())
    if options.get("log_file"):
        globalLogPublisher.addObserver(textFileLogObserver(
            open(options["log_file"], "a", encoding="utf-8")))


def load_model(options: Dict[str, Any]) -> Optional[Model]:
    core = options.get("core")
    if not core:
        from coreactors.default_bot import default_model_path
        core = default_model_path()
    return Model.load(core)


def make_interpreter(nlu: Optional[str], endpoint: Optional[EndpointConfig], reactor: Any,
                     dispatcher: Optional[Dispatcher] = None
                     ) -> Optional[NaturalLanguageInterpreter]:
    """The server's NLU: an NLU server (``nlu:`` in endpoints.yml, ``-u`` naming project/model
    there), else the local model folder of ``-u``, else None (the ``/intent`` shorthand only)."""
    if endpoint is not None:
        from coreactors.actors.nlu_client import TreqNLUClient
        project, model_name = project_and_model(nlu)
        blocking = dispatcher.blocking if dispatcher is not None else contextlib.nullcontext
        return HttpInterpreter(TreqNLUClient(endpoint, reactor, blocking), project, model_name,
                               endpoint.token)
    if nlu:
        from coreactors.nlu.model import NLUModel
        try:
            return NLUModel.load(nlu)
        except ValueError as e:
            raise InvalidModel("-u {}: {}".format(nlu, e))
    return None


def tune_interpreter() -> None:
    """Sets the GIL switch interval and the collector for serving; call it once the model and
    code are loaded (bench/ceiling_server.py calls it too, to measure the same stack)."""
    # Actor threads and the reactor share the GIL. A shorter switch interval lets the reactor
    # take the GIL back from a busy actor sooner (the default 5 ms shows up as tail latency).
    sys.setswitchinterval(0.0005)
    # The collector's pauses are the server's longest. Every request leaves about 14 objects
    # in a reference cycle (Klein's per-request error handler refers to itself; what the
    # request held is dropped by the request_cleanup fast path), which only the collector
    # frees, and every turn adds ~10 long-lived objects to its tracker. A young pass costs in
    # proportion to the young objects, and far more per object once they have left the CPU
    # cache: with a threshold of 200,000 each pass stopped the server for ~200 ms every few
    # seconds (bench/load.py, gc.callbacks), with 5,000 each pass takes 1-5 ms and the
    # passes take a third less time in all. Trackers' long-lived objects pass through the
    # middle generation (a pass every 10 young ones, ~10 ms) to the old one, whose full
    # passes CPython also holds back until it has grown by a quarter. Objects loaded so far
    # (model, code) are never garbage: frozen, so no pass looks at them.
    gc.freeze()
    gc.set_threshold(5_000, 10, 100)


def make_service(options: Dict[str, Any], reactor: Any = None) -> service.MultiService:
    """The service tree for these options (the keys of ``coreactors.tap.Options``)."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor
        reactor = global_reactor
    configure_logging(options)
    cpus = options.get("cpus")
    if cpus:
        # Before the store, the dispatcher and the reactor start their threads: they inherit it.
        pin_process(parse_cpu_list(cpus) if isinstance(cpus, str) else frozenset(cpus))
    endpoints = AvailableEndpoints.read(options.get("endpoints"))
    credentials = read_yaml_config(options.get("credentials"))
    store = store_from_endpoint(endpoints.tracker_store)
    # With a model server and no -d, the server starts without a model (503 NoAgent) and waits
    # for the model server's; with -d, it serves that one until the model server has another.
    model = None if endpoints.model is not None and not options.get("core") \
        else load_model(options)
    # The threads conversation actors run on; calls to other servers tell it when they wait.
    dispatcher = Dispatcher()
    action_client = TreqActionClient(endpoints.action, reactor, dispatcher.blocking) \
        if endpoints.action else None
    supervisor = Supervisor(store, model, action_client, reactor,
                            max_actors=int(options.get("max_actors") or 2000),
                            idle_timeout=float(options.get("idle_timeout") or 300),
                            interpreter=make_interpreter(options.get("nlu"), endpoints.nlu,
                                                         reactor, dispatcher),
                            dispatcher=dispatcher)
    watcher = watcher_for(endpoints, supervisor, reactor)  # a bad model block fails here

    from coreactors.http.app import CoreApp
    from coreactors.http.auth import make_authorizer
    from coreactors.http.channels import channels_from_credentials
    channels = channels_from_credentials(credentials or None, options.get("connector"))
    authorize = make_authorizer(options.get("auth_token"), options.get("jwt_secret"),
                                options.get("jwt_method") or "HS256")
    app = CoreApp(supervisor, enable_api=bool(options.get("enable_api")),
                  cors_origins=options.get("cors") or (), channels=channels,
                  authorize=authorize,
                  max_body_bytes=int(options.get("max_body_bytes") or 1_000_000),
                  max_model_bytes=int(options.get("max_model_bytes") or 64 * 1024 * 1024))
    site = make_site(app.resource(), quiet=bool(options.get("quiet")))
    site.displayTracebacks = False

    tune_interpreter()

    root = service.MultiService()
    ActorSystemService(supervisor, reactor).setServiceParent(root)
    if watcher is not None:
        watcher.setServiceParent(root)
    listen = options.get("listen") or "tcp:{}".format(int(options.get("port") or 5005))
    strports.service(listen, site, reactor=reactor).setServiceParent(root)
    root.supervisor = supervisor  # type: ignore[attr-defined]
    log.info("coreactors serving model {fingerprint} on {listen}",
             fingerprint=supervisor.fingerprint or "(none yet: waiting for the model server)",
             listen=listen)
    return root

"""Builds the process's Twisted service tree from the run options (for twistd and the CLI).

The tree, in start order: the log file (``-o``), the actor system (store, worker pool,
supervisor), the model watcher (when endpoints.yml names a model server), then the HTTP
endpoint, and with ``--workers N`` in the first process the other N-1 processes
(``coreactors.workers``). Twisted stops children in
reverse, so on SIGTERM the server first stops listening, then stops pulling models, then lets
in-flight turns finish and stops every actor.

Building has no process-wide side effects (no CPU pinning, no collector or switch interval
settings, no log observers): the process's entry point (``coreactors.tap.makeService``) does
those, once.
"""

import contextlib
from typing import Any, Dict, Optional

from twisted.application import service, strports
from twisted.internet import defer, task
from twisted.logger import Logger

from coreactors.dialogue.class_paths import module_prefixes
from coreactors.actors.action_client import TreqActionClient
from coreactors.actors.agent import Agent
from coreactors.actors.lock_desk import LockDesk
from coreactors.actors.model_requests import ModelRequests
from coreactors.actors.model_watcher import watcher_for
from coreactors.actors.supervisor import Supervisor
from coreactors.actors.worker_pool import WorkerPool
from coreactors.affinity import mark_background_thread
from coreactors.endpoints import AvailableEndpoints, EndpointConfig, read_yaml_config
from coreactors.log_observers import LogFileService, ServerRoot, levelled
from coreactors.model import InvalidModel, Model
from coreactors.model_archives import ModelArchives
from coreactors.nlu.interpreter import (
    HttpInterpreter, NaturalLanguageInterpreter, project_and_model)
from coreactors.stores.base import TrackerStore
from coreactors.stores.config import (
    is_shared, lock_store_from_endpoint, lock_wait_timeout, store_from_endpoint)

log = Logger(observer=levelled)

DRAIN_TIMEOUT = 3.0


class ActorSystemService(service.Service):
    """Starts the supervisor; on stop, waits for in-flight turns, then stops every actor, closes
    the store and removes the unpacked model folders."""

    def __init__(self, supervisor: Supervisor, reactor: Any,
                 archives: Optional[ModelArchives] = None) -> None:
        self.supervisor = supervisor
        self.reactor = reactor
        self.archives = archives if archives is not None else supervisor.archives

    def startService(self) -> None:
        super().startService()
        self.supervisor.start()
        log.info("coreactors serving model {fingerprint}",
                 fingerprint=self.supervisor.fingerprint
                 or "(none yet: waiting for the model server)")

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
            if self.supervisor.desk is not None:
                self.supervisor.desk.locks.close()
        except Exception:  # closing is best effort; the data is already committed
            log.failure("Closing the tracker store failed.")
        # Models live in memory; their unpacked zips can go.
        yield self.supervisor.run_in_thread(self.archives.remove_all)
        log.info("Stopped every conversation actor.")


def load_model(options: Dict[str, Any]) -> Optional[Model]:
    core = options.get("core")
    if not core:
        from coreactors.default_bot import default_model_path
        core = default_model_path()
    return Model.load(core)


def make_store(endpoints: AvailableEndpoints, default_path: str = "coreactors.db"
               ) -> TrackerStore:
    """The tracker store of ``endpoints``; a store's writer thread runs as a background thread
    (woken by a turn's events, it must not push aside the thread that handed them over, which
    holds the GIL it needs anyway)."""
    return store_from_endpoint(endpoints.tracker_store, default_path,
                               writer_setup=mark_background_thread)


def make_desk(endpoints: AvailableEndpoints, store: TrackerStore, workers: int = 1
              ) -> Optional[LockDesk]:
    """The lock desk of ``lock_store:`` (None without one), after checking that the stores fit
    the processes: several processes need a shared tracker store and a lock store, and a lock
    store needs a shared tracker store (it fences writes only the shared stores refuse)."""
    locks = lock_store_from_endpoint(endpoints.lock_store)
    shared = is_shared(store)
    if locks is not None and not shared:
        raise ValueError(
            "lock_store serves several processes on one tracker store, but {!r} belongs to one "
            "process; use tracker_store type redis, or type sql with dialect postgresql (or "
            "remove lock_store to run one process)".format(store))
    if workers > 1 and not shared:
        raise ValueError(
            "--workers {} runs several processes, which need a tracker store they can share: "
            "tracker_store type redis, or type sql with dialect postgresql, and a lock_store "
            "(type redis) in endpoints.yml; {!r} belongs to one process".format(workers, store))
    if workers > 1 and locks is None:
        raise ValueError(
            "--workers {} runs several processes on one tracker store: without a lock store "
            "two of them could run turns of one conversation at once and interleave them; add "
            "lock_store: type: redis to endpoints.yml".format(workers))
    if locks is None:
        return None
    from coreactors.stores.redis import RedisTrackerStore
    if isinstance(store, RedisTrackerStore) and locks.shares_server_with(store.client):
        # One Redis for both: a turn's write gives its lease back in the same script.
        store.give_back_leases(locks.lease_keys)
    return LockDesk(locks, lock_wait_timeout(endpoints.lock_store))


def make_interpreter(nlu: Optional[str], endpoint: Optional[EndpointConfig], reactor: Any,
                     pool: Optional[WorkerPool] = None
                     ) -> Optional[NaturalLanguageInterpreter]:
    """The server's NLU: an NLU server (``nlu:`` in endpoints.yml, ``-u`` naming project/model
    there), else the local model folder of ``-u``, else None (the ``/intent`` shorthand only)."""
    if endpoint is not None:
        from coreactors.actors.nlu_client import TreqNLUClient
        project, model_name = project_and_model(nlu)
        blocking = pool.blocking if pool is not None else contextlib.nullcontext
        return HttpInterpreter(TreqNLUClient(endpoint, reactor, blocking), project, model_name,
                               endpoint.token)
    if nlu:
        from coreactors.nlu.model import NLUModel
        try:
            return NLUModel.load(nlu)
        except ValueError as e:
            raise InvalidModel("-u {}: {}".format(nlu, e))
    return None


def make_service(options: Dict[str, Any], reactor: Any = None) -> ServerRoot:
    """The service tree for these options (the keys of ``coreactors.tap.Options``)."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor
        reactor = global_reactor
    endpoints = AvailableEndpoints.read(options.get("endpoints"))
    credentials = read_yaml_config(options.get("credentials"))
    store = make_store(endpoints)
    try:
        desk = make_desk(endpoints, store, int(options.get("workers") or 1))
    except ValueError:
        store.close()
        raise
    # With a model server and no -d, the server starts without a model (503 NoAgent) and waits
    # for the model server's; with -d, it serves that one until the model server has another.
    model = None if endpoints.model is not None and not options.get("core") \
        else load_model(options)
    # The threads conversation actors run on; calls to other servers tell it when they wait.
    pool = WorkerPool()
    action_client = TreqActionClient(endpoints.action, reactor, pool.blocking) \
        if endpoints.action else None
    archives = ModelArchives(may_import=module_prefixes(
        (options.get("allow_class_path") or "").split(",")))
    supervisor = Supervisor(store, model, action_client, reactor,
                            max_actors=int(options.get("max_actors") or 2000),
                            idle_timeout=float(options.get("idle_timeout") or 300),
                            interpreter=make_interpreter(options.get("nlu"), endpoints.nlu,
                                                         reactor, pool),
                            pool=pool, archives=archives, desk=desk)
    agent = Agent(supervisor, ModelRequests(supervisor, archives))
    watcher = watcher_for(endpoints, supervisor, reactor)  # a bad model block fails here

    from coreactors.http.app import CoreApp, make_site
    from coreactors.http.auth import make_authorizer
    from coreactors.http.channels import channels_from_credentials
    channels = channels_from_credentials(credentials or None, options.get("connector"))
    authorize = make_authorizer(options.get("auth_token"), options.get("jwt_secret"),
                                options.get("jwt_method") or "HS256")
    app = CoreApp(agent, enable_api=bool(options.get("enable_api")),
                  cors_origins=options.get("cors") or (), channels=channels,
                  authorize=authorize,
                  max_body_bytes=int(options.get("max_body_bytes") or 1_000_000),
                  max_model_bytes=int(options.get("max_model_bytes") or 64 * 1024 * 1024))
    site = make_site(app.resource(), quiet=bool(options.get("quiet")))

    root = ServerRoot()
    if options.get("log_file"):
        LogFileService(options["log_file"], options.get("log_format") or "text"
                       ).setServiceParent(root)
    ActorSystemService(supervisor, reactor, archives).setServiceParent(root)
    if watcher is not None:
        watcher.setServiceParent(root)
    listen = options.get("listen") or "tcp:{}".format(int(options.get("port") or 5005))
    from coreactors.http.auth import exposure_warning
    exposed = exposure_warning(listen, bool(options.get("enable_api")), authorize is not None)
    if exposed is not None:
        log.warn("{warning}", warning=exposed)
    workers = int(options.get("workers") or 1)
    if workers == 1:
        strports.service(listen, site, reactor=reactor).setServiceParent(root)
        return root
    from coreactors.shared_port import ReusePortService, shared_port_address
    from coreactors.workers import WorkerProcesses, worker_command
    # Every process binds the port with a socket of its own (SO_REUSEPORT).
    ReusePortService(shared_port_address(listen, None), site, reactor).setServiceParent(root)
    if not options.get("worker_index"):
        # Last, so Twisted (stopping children in reverse) stops it first: on SIGTERM the
        # workers get theirs at once and drain while this process does the same, and this
        # process, which waits for them, exits last (what systemd and a shell see). Added after
        # the port, a port this process cannot bind stops the start before any worker starts.
        WorkerProcesses(workers, worker_command(options), reactor).setServiceParent(root)
    return root

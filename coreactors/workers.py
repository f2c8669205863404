"""Several server processes on one port (``--workers N``).

A coreactors process runs about one core's worth of Python (one GIL). With ``--workers N`` the
process twistd starts (the parent, worker 0) starts N-1 more (``python -m coreactors.run`` with
the parent's options and ``--worker_index k``), each with its own actors, model and connections
to the shared stores. Every one of them listens on the same TCP port with a socket of its own
that has SO_REUSEPORT set (``coreactors.shared_port``), and the kernel spreads new
connections over them.

What is here:

- ``WorkerProcesses``: the parent's service that starts the other processes, starts one again
  when it dies (after 1 s, doubling up to 30 s while it keeps dying soon after its start), and
  on stop sends them SIGTERM and waits for them (SIGKILL after a timeout);
- ``worker_argv``: the parent's options given back as a command line;
- ``die_with_parent``: makes a worker get SIGTERM when the parent dies, even by SIGKILL.

Why not ``twisted.runner.procmon.ProcessMonitor``: it reads each child's stdout and stderr
through pipes and logs every line again in the parent. A worker writes a line per request (the
access log), so the parent, itself a worker, would spend CPU on every request of every other
worker. Here each child writes straight to the parent's stdout and stderr (inherited file
descriptors 1 and 2), and the parent only watches whether it lives.
"""

import ctypes
import os
import signal
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from twisted.application import service
from twisted.internet import defer, error, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from coreactors.affinity import describe
from coreactors.log_observers import levelled
from coreactors.options import FLAGS, PARAMETERS

log = Logger(observer=levelled)

# The parent's pid, in each worker's environment: a worker whose parent is no longer this one
# (it died before the worker could ask the kernel to be told) exits at once.
PARENT_PID_ENV = "COREACTORS_PARENT_PID"

KILL_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL when the parent stops
MIN_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
# A worker that lived this long before it died is started again after MIN_RESTART_DELAY;
# one that died sooner waits twice as long as the last time.
STABLE_AFTER = 10.0


# -- the parent's options as a worker's command line ------------------------------------------

def worker_argv(options: Mapping[str, Any], index: int) -> List[str]:
    """``options`` (the keys of ``coreactors.tap.Options``) as the command line of worker
    ``index``: every parameter that differs from its default, every flag that is set, ``--cors``
    once per origin, ``--cpus`` in the notation of taskset -c, and ``--worker_index``.

    Values are joined with ``=`` so that one starting with "-" stays a value, and so that
    ``coreactors.run``'s spreading of ``--cors a b`` leaves ``--cors=a`` alone."""
    argv: List[str] = []
    for name, _short, default, *_rest in PARAMETERS:
        value = index if name == "worker_index" else options.get(name, default)
        if value is None or (value == default and name != "worker_index"):
            continue
        if name == "cpus" and not isinstance(value, str):
            value = describe(frozenset(value))
        argv.append("--{}={}".format(name, value))
    for name, *_rest in FLAGS:
        if options.get(name):
            argv.append("--" + name)
    for origin in options.get("cors") or ():
        argv.append("--cors=" + origin)
    return argv


def worker_command(options: Mapping[str, Any]) -> Callable[[int], List[str]]:
    """The command that starts worker ``index`` with these options (``coreactors.run`` runs
    twistd with --nodaemon and no pid file, writing its log to stdout)."""
    snapshot = dict(options)
    return lambda index: [sys.executable, "-m", "coreactors.run"] + worker_argv(snapshot, index)


# -- a worker's tie to its parent ---------------------------------------------------------------

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def set_parent_death_signal(signum: int) -> bool:
    """Asks Linux to send ``signum`` to this process when its parent dies (prctl
    PR_SET_PDEATHSIG); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    # unsigned long arguments: a plain int could leave the upper half of the register unset.
    return prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(signum), ctypes.c_ulong(0),
                 ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0


def parent_pid(environ: Mapping[str, str]) -> Optional[int]:
    """The parent pid the parent put in a worker's environment, if any."""
    try:
        return int(environ.get(PARENT_PID_ENV, ""))
    except ValueError:
        return None


def die_with_parent(expected_parent: Optional[int]) -> None:
    """Makes this worker get SIGTERM when its parent dies (so that a SIGKILLed parent leaves
    no worker serving on its port), and exits at once if the parent is already gone."""
    set_parent_death_signal(signal.SIGTERM)
    # Checked after asking: a parent that died before the prctl sent nothing, and left this
    # process to another parent.
    if expected_parent is not None and os.getppid() != expected_parent:
        raise SystemExit("coreactors worker: its parent process {} is gone; exiting".format(
            expected_parent))


# -- the parent's service -----------------------------------------------------------------------

class _WorkerProtocol(protocol.ProcessProtocol):
    """Tells the service when its worker exits (the worker's output does not pass here)."""

    def __init__(self, exited: Callable[[Failure], None]) -> None:
        self._exited = exited

    def processExited(self, reason: Failure) -> None:
        # processExited rather than processEnded: the latter also waits for the stdin pipe,
        # which anything the worker left behind could hold open.
        self._exited(reason)


def describe_exit(reason: Failure) -> str:
    """``exit code 1``, ``signal 9 (SIGKILL)``, ... for a process's end."""
    value = reason.value
    sig = getattr(value, "signal", None)
    if sig:
        try:
            return "signal {} ({})".format(sig, signal.Signals(sig).name)
        except ValueError:
            return "signal {}".format(sig)
    return "exit code {}".format(getattr(value, "exitCode", None))


class WorkerProcesses(service.Service):
    """Runs workers 1..count-1 (this process is worker 0) while running.

    A worker that exits while the service runs is started again after a delay (the reactor's
    clock): ``min_delay``, doubling up to ``max_delay`` while it keeps dying within
    ``stable_after`` seconds of its start. Stopping sends every worker SIGTERM and fires once
    all have exited, sending SIGKILL to those still there after ``kill_timeout`` seconds.

    ``command(index)`` is worker ``index``'s argv (``worker_command`` for the server's)."""

    name = "workers"

    def __init__(self, count: int, command: Callable[[int], Sequence[str]], reactor: Any = None,
                 kill_timeout: float = KILL_TIMEOUT, min_delay: float = MIN_RESTART_DELAY,
                 max_delay: float = MAX_RESTART_DELAY, stable_after: float = STABLE_AFTER,
                 cwd: Optional[str] = None, environ: Optional[Mapping[str, str]] = None
                 ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor
            reactor = global_reactor
        self.count = count
        self.command = command
        self.reactor = reactor
        self.kill_timeout = kill_timeout
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.stable_after = stable_after
        # Fixed now: relative paths in the options (-d, --endpoints) were read from here.
        self.cwd = cwd if cwd is not None else os.getcwd()
        self.environ = environ
        self._processes: Dict[int, Any] = {}  # index -> its IProcessTransport
        self._pids: Dict[int, int] = {}
        self._started_at: Dict[int, float] = {}
        self._delays: Dict[int, float] = {}
        self._restarts: Dict[int, Any] = {}  # index -> IDelayedCall of its next start
        self._exits: Dict[int, List[defer.Deferred]] = {}  # index -> fired when it exits

    @property
    def pids(self) -> Dict[int, int]:
        """The pid of each running worker, by index."""
        return {index: self._pids[index] for index in self._processes}

    def startService(self) -> None:
        super().startService()
        for index in range(1, self.count):
            self._start(index)

    def _start(self, index: int) -> None:
        self._restarts.pop(index, None)
        argv = list(self.command(index))
        environment = dict(os.environ if self.environ is None else self.environ)
        environment[PARENT_PID_ENV] = str(os.getpid())  # now: twistd may have forked since
        try:
            process = self.reactor.spawnProcess(
                _WorkerProtocol(lambda reason: self._exited(index, reason)), argv[0], argv,
                env=environment, path=self.cwd,
                # Straight to the parent's stdout and stderr: see the module docstring.
                childFDs={0: "w", 1: 1, 2: 2})
        except Exception:
            log.failure("Starting worker process {index} failed", index=index)
            self._schedule_restart(index, lived=0.0)
            return
        self._processes[index] = process
        self._pids[index] = process.pid
        self._started_at[index] = self.reactor.seconds()
        log.info("Started worker process {index} (pid {pid})", index=index, pid=process.pid)

    def _exited(self, index: int, reason: Failure) -> None:
        self._processes.pop(index, None)
        pid = self._pids.get(index)
        lived = self.reactor.seconds() - self._started_at.get(index, self.reactor.seconds())
        waiting = self._exits.pop(index, [])
        if waiting or not self.running:
            log.info("Worker process {index} (pid {pid}) exited: {how}", index=index, pid=pid,
                     how=describe_exit(reason))
            for exited in waiting:
                exited.callback(None)
            return
        delay = self._schedule_restart(index, lived)
        log.warn("Worker process {index} (pid {pid}) exited after {lived:.1f} s: {how}; "
                 "starting it again in {delay:g} s", index=index, pid=pid, lived=lived,
                 how=describe_exit(reason), delay=delay)

    def _schedule_restart(self, index: int, lived: float) -> float:
        delay = (self.min_delay if lived >= self.stable_after
                 else self._delays.get(index, self.min_delay))
        self._delays[index] = min(delay * 2, self.max_delay)
        self._restarts[index] = self.reactor.callLater(delay, self._restart, index)
        return delay

    def _restart(self, index: int) -> None:
        log.info("Restarting worker process {index}", index=index)
        self._start(index)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        return defer.DeferredList([self._stop(index) for index in list(self._processes)],
                                  consumeErrors=True)

    def _stop(self, index: int) -> defer.Deferred:
        exited: defer.Deferred = defer.Deferred()
        self._exits.setdefault(index, []).append(exited)
        self._signal(index, "TERM")
        kill = self.reactor.callLater(self.kill_timeout, self._kill, index)
        exited.addBoth(lambda result: kill.cancel() if kill.active() else None)
        return exited

    def _kill(self, index: int) -> None:
        log.warn("Worker process {index} (pid {pid}) did not stop within {timeout:g} s of "
                 "SIGTERM: killing it", index=index, pid=self._pids.get(index),
                 timeout=self.kill_timeout)
        self._signal(index, "KILL")

    def _signal(self, index: int, name: str) -> None:
        process = self._processes.get(index)
        if process is None:
            return
        try:
            process.signalProcess(name)
        except error.ProcessExitedAlready:
            pass  # its processExited is on its way


__all__ = ["PARENT_PID_ENV", "WorkerProcesses", "die_with_parent", "parent_pid",
           "set_parent_death_signal", "worker_argv", "worker_command"]

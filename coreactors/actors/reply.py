"""The reply path: how an actor's answer reaches the reactor thread and fires a Deferred.

Actors run on worker threads; Deferreds may only be fired on the reactor thread. A ``Reply``
travels with a request (in ``messages.Ask``); the actor calls ``succeed`` or ``fail`` on it from
its worker, and the ``ReplyBridge`` runs the delivery on the reactor thread, one wake-up per
burst of answers. The delivery first runs the sender's ``settled`` bookkeeping (the Supervisor
counts a request in flight until its actor has answered, not until its caller stopped
waiting), then fires the Deferred unless the caller has cancelled it meanwhile (its client went
away): the answer is dropped then, the work it describes is done and stored all the same.
"""

import collections
import threading
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from coreactors.log_observers import levelled

log = Logger(observer=levelled)

# Runs ``function(*args)`` on the reactor thread: reactor.callFromThread, or a test's stand-in.
CallFromThread = Callable[..., None]


class ReplyBridge:
    """Carries answers to the reactor thread, one wake-up per burst of answers.

    ``callFromThread`` wakes the reactor through a pipe each time; under load many actors answer
    at once, so answers are queued and the reactor drains the queue in one call. Callable from
    any thread."""

    def __init__(self, call_from_thread: CallFromThread) -> None:
        self.call_from_thread = call_from_thread
        self._queue: "collections.deque" = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def __call__(self, function: Callable[[Any], Any], argument: Any) -> None:
        """Runs ``function(argument)`` on the reactor thread, after what is queued before."""
        with self._lock:
            self._queue.append((function, argument))
            if self._scheduled:
                return
            self._scheduled = True
        self.call_from_thread(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._scheduled = False
                    return
                batch = list(self._queue)
                self._queue.clear()
            for function, argument in batch:
                try:
                    function(argument)
                except Exception:  # one failing callback must not strand the others
                    log.failure("Delivering an actor's answer failed.")


class Reply:
    """Where one answer goes: ``deferred``, fired on the reactor thread through ``bridge``.

    ``settled`` (optional) runs on the reactor thread just before, whether or not anyone still
    waits for the answer."""

    __slots__ = ("deferred", "_bridge", "_settled")

    def __init__(self, deferred: Deferred, bridge: Callable[[Callable[[Any], Any], Any], None],
                 settled: Optional[Callable[[], None]] = None) -> None:
        self.deferred = deferred
        self._bridge = bridge
        self._settled = settled

    def succeed(self, value: Any) -> None:
        """The answer (from any thread)."""
        self._bridge(self._deliver, value)

    def fail(self, error: BaseException) -> None:
        """A failed answer (from any thread)."""
        self._bridge(self._deliver, Failure(error))

    def _deliver(self, result: Any) -> None:
        # The reactor thread.
        if self._settled is not None:
            self._settled()
        if self.deferred.called:
            return  # cancelled: nobody waits for it any more
        if isinstance(result, Failure):
            self.deferred.errback(result)
        else:
            self.deferred.callback(result)


def direct_bridge(function: Callable[[Any], Any], argument: Any) -> None:
    """A bridge for code already on the reactor thread (and for tests): delivers at once."""
    function(argument)


__all__ = ["CallFromThread", "Reply", "ReplyBridge", "direct_bridge"]

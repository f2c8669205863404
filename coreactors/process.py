"""Process-wide set-up, done once by the process's entry point (``coreactors.tap.makeService``,
which twistd calls for ``twistd coreactors`` and ``python -m coreactors.run``).

Three things belong to the whole process rather than to any service: where its threads run
(``--cpus``), where its log goes (``coreactors.log_observers``), and how the interpreter is
tuned for serving (the GIL switch interval and the collector). Builders (``make_service`` and
what it calls) do none of them, so a test or a tool can build a server without changing the
process it runs in.
"""

import gc
import sys
from typing import Any, Dict, FrozenSet, Optional, Union


from coreactors.affinity import parse_cpu_list, pin_process
from coreactors.log_observers import ServerRoot, configure_logging


def pin_cpus(cpus: Optional[Union[str, FrozenSet[int]]]) -> None:
    """Keeps every thread of the process on ``cpus`` (``--cpus``); call it before any thread
    of the server starts, so they all inherit it."""
    if cpus:
        pin_process(parse_cpu_list(cpus) if isinstance(cpus, str) else frozenset(cpus))


def tune_interpreter() -> None:
    """Sets the GIL switch interval and the collector for serving; call it once the model and
    code are loaded (bench/ceiling_server.py calls it too, to measure the same stack)."""
    # Actor threads and the reactor share the GIL. A shorter switch interval lets the reactor
    # take the GIL back from a busy actor sooner (the default 5 ms shows up as tail latency).
    sys.setswitchinterval(0.0005)
    # The collector's pauses are the server's longest. Every request leaves a few objects in a
    # reference cycle (Klein's per-request error handler refers to itself; what the request
    # held is dropped by the request_cleanup fast path), which only the collector frees, and
    # every turn adds ~10 long-lived objects to its tracker. A young pass costs in proportion
    # to the young objects, and far more per object once they have left the CPU cache: with a
    # threshold of 200,000 each pass stopped the server for a long while every few seconds,
    # with 5,000 each pass is short and the passes take less time in all. Trackers'
    # long-lived objects pass through the middle generation to the old one, whose full passes
    # CPython also holds back until it has grown by a quarter. Objects loaded so far (model,
    # code) are never garbage: frozen, so no pass looks at them.
    gc.freeze()
    gc.set_threshold(5_000, 10, 100)


def serve(options: Dict[str, Any]) -> "ServerRoot":
    """The entry point's sequence: logging, CPUs (before any thread), the service tree, then
    the interpreter's tuning (once the model is loaded)."""
    from coreactors.service import make_service
    configure_logging(options)
    pin_cpus(options.get("cpus"))
    root = make_service(options)
    tune_interpreter()
    return root


__all__ = ["pin_cpus", "serve", "tune_interpreter"]

"""Where the server's threads run: on chosen CPUs (``--cpus 0``, ``0,2``, ``0-3``), and which
of them may not push the others aside when they wake.

The reactor, the actor workers and the store's writer take turns holding one GIL, so the
process never runs more than one core's worth of Python however many cores it may use. Spread
over several cores, every hand-over of the GIL between them wakes a sleeping core and moves the
turn's data between caches; on one core it is an ordinary thread switch. bench/load.py on a
2-vCPU VM (the load client on the other CPU): webhook turns/s +27% with ``--cpus 0``, while a
bare hop through one actor (bench/ceiling_server.py), whose threads do almost nothing between
hand-overs, loses ~10%. Off by default: a server pinned to a CPU that something else keeps busy
cannot move away from it, so choosing the CPU is the operator's call (one per server process
when several share a machine).

A background thread that wakes up (the SQLite writer, when a turn's events arrive) would by
default preempt the thread that woke it, on the same CPU, only to find the GIL held and go back
to sleep. As a SCHED_BATCH thread it waits for its turn on the CPU instead: under the load of
bench/load.py with ``--cpus 0`` (counts from /proc, two runs each), thread switches per turn
2.0 -> 0.9, server CPU per turn -3 to -6%. Without pinning it changes nothing measurable.
"""

import os
from typing import FrozenSet


def parse_cpu_list(text: str) -> FrozenSet[int]:
    """The CPUs of a list like ``0``, ``0,2`` or ``0-3,6`` (the notation of taskset -c)."""
    cpus = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low = int(first)
            high = int(last) if dash else low
        except ValueError:
            low = high = -1
        if low < 0 or high < low:
            raise ValueError("'{}' is not a CPU list (e.g. 0, 0,2 or 0-3)".format(text))
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def check_cpus(cpus: FrozenSet[int]) -> None:
    """Refuses CPUs this process may not run on (or a platform that cannot pin threads)."""
    if not hasattr(os, "sched_setaffinity"):
        raise ValueError("pinning threads to CPUs (--cpus) is not supported on this platform")
    allowed = os.sched_getaffinity(0)
    if not cpus <= allowed:
        raise ValueError("CPU {} is not available to this process (it may run on {})".format(
            ",".join(str(c) for c in sorted(cpus - allowed)), describe(allowed)))


def pin_process(cpus: FrozenSet[int]) -> None:
    """Moves every thread of this process to ``cpus``; threads started later inherit it."""
    check_cpus(cpus)
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), cpus)
        except ProcessLookupError:
            pass  # the thread ended meanwhile


def mark_background_thread() -> bool:
    """Makes the calling thread wait for the CPU when it wakes rather than preempt the running
    thread (Linux SCHED_BATCH; its share of the CPU is unchanged). False where unsupported."""
    batch = getattr(os, "SCHED_BATCH", None)
    if batch is None or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, batch, os.sched_param(0))  # 0: the calling thread
    except OSError:
        return False
    return True


def describe(cpus: FrozenSet[int]) -> str:
    """``0-3,6`` for {0, 1, 2, 3, 6}."""
    ranges = []
    for cpu in sorted(cpus):
        if ranges and ranges[-1][1] == cpu - 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(a) if a == b else "{}-{}".format(a, b) for a, b in ranges)


__all__ = ["check_cpus", "describe", "mark_background_thread", "parse_cpu_list", "pin_process"]

"""What each fast path buys: two servers side by side, one with every fast path on and one
without the fast path measured (only ever talks to 127.0.0.1, bounded in time).

For each fast path (``--patch NAME``, repeatable; default every registered one whose module
exists), both servers serve one moodbot model (``python -m coreactors.run``, as bench/load.py
starts it, each with its own store), one with ``COREACTORS_FAST_PATHS=on`` and one with
``COREACTORS_FAST_PATHS=-NAME``. A client sends webhook turns to them over 16 keep-alive
connections, a sender each, in alternating windows, in the order on, off, off, on, ... so that
a drift of the machine's speed falls on both alike. Prints the turns/s of each and the median,
over pairs of windows, of on / off (above 1: what the fast path buys in throughput); and the
server process's CPU time per turn (all its threads, /proc/PID/stat) of each and the median
over pairs of windows of the share of a turn's CPU the fast path saves.

With ``--against DIR`` it compares this checkout (every fast path on) with the checkout at DIR
run by DIR's own ``.venv`` (a worktree of an earlier commit, say: ``git worktree add ../base
REV`` and a venv there), in the same alternating windows: the "off" columns are then DIR's.

The client is wrk (``apt-get install wrk``; C, so it leaves more of the machine to the servers)
with one connection per wrk thread, or, with ``--client python`` or without wrk, bench/load.py's
asyncio client.

    .venv/bin/python bench/fast_paths.py [--patch eager_send ...] [--windows 20]
                                         [--seconds 1] [--cpus 0] [--store memory]
                                         [--client wrk|python] [--against DIR]
"""

import argparse
import asyncio
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

from load import MOOD_CONVERSATION, load, message_body, start_server, stop, wait_up
from versus_original import WRK_SCRIPT

HERE = os.path.dirname(os.path.abspath(__file__))
WEBHOOK = "/webhooks/rest/webhook"


def implemented() -> List[str]:
    """The registered fast paths whose module exists."""
    from coreactors import fastpaths
    return [name for name in fastpaths.KNOWN if importlib.util.find_spec(
        "coreactors.fastpaths." + fastpaths.WHERE[name]) is not None]


# One window of load: (port, connections, seconds) -> (turns, errors, seconds it took).
Load = Callable[[int, int, int], Tuple[int, int, float]]


def python_turns(port: int, connections: int, seconds: int) -> Tuple[int, int, float]:
    """bench/load.py's asyncio client."""
    def body(index: int, i: int) -> bytes:
        return message_body("fast-{}".format(index),
                            MOOD_CONVERSATION[i % len(MOOD_CONVERSATION)])
    started = time.perf_counter()
    done, _, errors = asyncio.run(load(port, lambda c, i: WEBHOOK, body, connections, seconds))
    return done, errors, time.perf_counter() - started


def wrk_load(script: str) -> Load:
    """wrk with bench/versus_original.py's script: one conversation per connection."""
    from versus_original import wrk

    def turns(port: int, connections: int, seconds: int) -> Tuple[int, int, float]:
        window = wrk(script, port, seconds, "fast", "continue", connections)
        return window.turns, window.errors, window.seconds
    return turns


def compare(name: str, model: str, scratch: str, args: argparse.Namespace,
            pinning: List[str], turns: Load) -> Dict[str, float]:
    """Serves the model with every fast path on and with ``name`` off (or, with ``--against``,
    with the other checkout); loads them alternately."""
    servers = {}
    everywhere = os.sched_getaffinity(0)
    try:
        for side, setting in (("on", "on"), ("off", "on" if args.against else "-" + name)):
            cwd = os.path.join(scratch, "{}-{}".format(name, side))
            os.makedirs(cwd)
            endpoints = os.path.join(cwd, "endpoints.yml")
            with open(endpoints, "w") as f:
                f.write("tracker_store:\n  type: {}\n".format(args.store))
            env = dict(os.environ, OPENBLAS_NUM_THREADS="1", COREACTORS_FAST_PATHS=setting)
            python = sys.executable
            if side == "off" and args.against:
                python = os.path.join(args.against, ".venv", "bin", "python")
                env.pop("COREACTORS_FAST_PATHS")  # the other checkout may not know the switch
            servers[side] = start_server(model, endpoints, cwd, env, *pinning, python=python)
        if pinning:
            # After starting the servers (a server refuses CPUs it did not inherit).
            from coreactors.affinity import parse_cpu_list
            others = everywhere - parse_cpu_list(pinning[1])
            if others:
                os.sched_setaffinity(0, others)
        for port, process in servers.values():
            wait_up(port, process)
        for port, _ in servers.values():
            turns(port, args.connections, 1)  # actors started, caches warm
        done = {"on": 0, "off": 0}
        took = {"on": 0.0, "off": 0.0}
        busy = {"on": 0.0, "off": 0.0}
        errors = 0
        ratios = []
        savings = []
        for window in range(args.windows):
            order = ("on", "off") if window % 2 == 0 else ("off", "on")
            rate = {}
            cost = {}
            for side in order:
                port, process = servers[side]
                cpu = cpu_seconds(process.pid)
                count, failed, seconds = turns(port, args.connections, args.seconds)
                cpu = cpu_seconds(process.pid) - cpu
                done[side] += count
                took[side] += seconds
                busy[side] += cpu
                errors += failed
                rate[side] = count / seconds
                cost[side] = cpu / count if count else 0.0
            ratios.append(rate["on"] / rate["off"] if rate["off"] else 0.0)
            savings.append(1.0 - cost["on"] / cost["off"] if cost["off"] else 0.0)
    finally:
        for _, process in servers.values():
            stop(process)
        os.sched_setaffinity(0, everywhere)
    return {"on": done["on"] / took["on"], "off": done["off"] / took["off"], "errors": errors,
            "ratio": statistics.median(ratios), "low": min(ratios), "high": max(ratios),
            "cpu_on": busy["on"] / done["on"], "cpu_off": busy["off"] / done["off"],
            "saving": statistics.median(savings)}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far, all its threads (/proc/PID/stat)."""
    with open("/proc/{}/stat".format(pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patch", action="append", default=None,
                        help="a fast path to measure (repeatable; default: all implemented)")
    parser.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    parser.add_argument("--windows", type=int, default=20, help="windows per server")
    parser.add_argument("--seconds", type=int, default=1, help="length of one window")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--cpus", default=None,
                        help="run both servers with --cpus CPUS (this client then keeps off "
                             "those CPUs where it can)")
    parser.add_argument("--client", choices=("wrk", "python"),
                        default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--against", default=None, metavar="DIR",
                        help="compare with the checkout at DIR (run by DIR/.venv) instead of "
                             "a fast path off")
    args = parser.parse_args()
    from coreactors import fastpaths
    if args.against:
        if not os.path.isfile(os.path.join(args.against, ".venv", "bin", "python")):
            parser.error("--against {}: no .venv/bin/python there".format(args.against))
        args.patch = ["quiet_pool"]  # a row label only: both servers run every fast path
    names = args.patch or implemented()
    for name in names:
        if name not in fastpaths.KNOWN:
            parser.error("unknown fast path {!r}; known: {}".format(
                name, ", ".join(fastpaths.KNOWN)))
        if name not in implemented():
            parser.error("{!r} is registered but not implemented yet (no module "
                         "coreactors.fastpaths.{})".format(name, fastpaths.WHERE[name]))
    moodbot = os.path.join(args.data, "bots", "moodbot")
    if not os.path.isdir(moodbot):
        print("skipped: no moodbot at {} (pass --data)".format(moodbot))
        return 0
    from coreactors.training.train import train_dialogue_model

    pinning: List[str] = []
    if args.cpus is not None:
        pinning = ["--cpus", args.cpus]
    scratch = tempfile.mkdtemp(prefix="coreactors-fastpaths-")
    try:
        model = os.path.join(scratch, "model")
        train_dialogue_model(os.path.join(moodbot, "domain.yml"),
                             os.path.join(moodbot, "data", "stories.md"), model)
        turns: Load = python_turns
        if args.client == "wrk":
            script = os.path.join(scratch, "webhook.lua")
            with open(script, "w") as f:
                f.write(WRK_SCRIPT)  # versus_original's
            turns = wrk_load(script)
        print("moodbot, {} store, {} keep-alive connections ({} client), {} alternating "
              "{} s windows per server, {}".format(
                  args.store, args.connections, args.client, args.windows, args.seconds,
                  "servers on CPUs " + args.cpus if args.cpus else "servers not pinned"))
        print("{:20} {:>7} {:>7} {:>7} {:>13}  {:>16} {:>7}".format(
            "fast path", "on t/s", "off t/s", "on/off", "(windows)", "CPU/turn on, off",
            "saves"))
        for name in names:
            result = compare(name, model, scratch, args, pinning, turns)
            if args.against:
                name = "this / " + os.path.basename(os.path.normpath(args.against))
            print("{:20} {:7.0f} {:7.0f} {:7.3f} ({:.2f}-{:.2f})  {:6.0f} {:6.0f} us {:6.1%}{}"
                  .format(name, result["on"], result["off"], result["ratio"], result["low"],
                          result["high"], 1e6 * result["cpu_on"], 1e6 * result["cpu_off"],
                          result["saving"], "  errors {}".format(result["errors"])
                          if result["errors"] else ""), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

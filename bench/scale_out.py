"""Several processes against one: the Redis stores and ``--workers``, side by side in one run
(only ever talks to 127.0.0.1, bounded in time).

Three servers serve the moodbot of ``../shared/original-rasa-core/moodbot/``, each started
fresh for each shape:

  sqlite   one process, the SQLite tracker store (the default);
  redis    one process, the Redis tracker store and the Redis lock store;
  redis-2  ``--workers 2``: two processes on one port (SO_REUSEPORT), the same Redis stores.

Redis is the one at 127.0.0.1:6379 (each server gets keys of its own); the load client (wrk),
Redis and the servers share this machine. Each shape loads the three in rotating windows, so a
drift of the machine's speed falls on all alike, and prints the ratios of each round:

  a. a new sender per request (``/greet``), ``--connections`` keep-alive connections;
  b. ``--connections`` connections continuing as many conversations (moodbot's sad path).

Targets (issue 15): redis-2 at least 1.5x redis; redis within 25% of sqlite.

    .venv/bin/python bench/scale_out.py [--shapes ab] [--seconds 3] [--rounds 6]
                                        [--connections 32]

Without the moodbot, wrk or a Redis it prints why and exits 0.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from typing import Dict, List, Optional

from load import free_port, stop
from versus_original import WRK_SCRIPT, Server, Window, wait_answering, wrk

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ("sqlite", "redis", "redis-2")

REDIS_ENDPOINTS = """
tracker_store:
  type: redis
  url: 127.0.0.1
  port: 6379
  key_prefix: {prefix}
lock_store:
  type: redis
  url: 127.0.0.1
  port: 6379
  key_prefix: {prefix}
"""


def start(name: str, model: str, folder: str, prefix: str) -> Server:
    """One of the three set-ups, on a port of its own, its log in ``folder``, its Redis keys
    under ``prefix``."""
    os.makedirs(folder)
    port = free_port()
    command = [sys.executable, "-m", "coreactors.run", "--enable_api", "-d", model,
               "--listen", "tcp:{}:interface=127.0.0.1".format(port)]
    if name != "sqlite":
        endpoints = os.path.join(folder, "endpoints.yml")
        with open(endpoints, "w") as f:
            f.write(REDIS_ENDPOINTS.format(prefix=prefix))
        command += ["--endpoints", endpoints]
    if name == "redis-2":
        command += ["--workers", "2"]
    log = open(os.path.join(folder, "server.log"), "wb")
    process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    log.close()
    server = Server(name, process, port)
    wait_answering(server)
    if name == "redis-2":
        # Both processes answer: enough fresh connections reach each of them.
        for _ in range(20):
            wait_answering(server)
    return server


def rotate(servers: List[Server], rounds: int, load) -> Dict[str, List[Window]]:
    seen: Dict[str, List[Window]] = {s.name: [] for s in servers}
    for number in range(rounds):
        order = servers[number % len(servers):] + servers[:number % len(servers)]
        for server in order:
            seen[server.name].append(load(server, number))
    return seen


def report(seen: Dict[str, List[Window]]) -> None:
    for name, windows in seen.items():
        turns = sum(w.turns for w in windows)
        seconds = sum(w.seconds for w in windows)
        print("  {:8s} {:7.0f} turns/s  p50 {:6.2f} ms  p99 median {:6.2f} ms, worst {:6.2f} ms"
              "  errors {}".format(name, turns / seconds,
                                   statistics.median(w.p50 for w in windows),
                                   statistics.median(w.p99 for w in windows),
                                   max(w.p99 for w in windows),
                                   sum(w.errors for w in windows)))
    for top, bottom, target in (("redis-2", "redis", ">= 1.5"), ("redis", "sqlite", ">= 0.75")):
        ratios = [t.rate / b.rate for t, b in zip(seen[top], seen[bottom]) if b.rate]
        print("  {} / {}: {:.2f} (median of {} rounds; {:.2f}-{:.2f}; target {})".format(
            top, bottom, statistics.median(ratios), len(ratios), min(ratios), max(ratios),
            target))


def remove_keys(prefix: str) -> None:
    """What a run left in Redis (conversations that would otherwise weigh on the next runs)."""
    import redis
    client = redis.Redis(host="127.0.0.1", port=6379)
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.close()


def redis_missing() -> Optional[str]:
    try:
        import redis
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except Exception as error:  # any reason means: no benchmark
        return str(error)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--original", default=os.path.join(HERE, "..", "..", "shared",
                                                           "original-rasa-core"))
    parser.add_argument("--shapes", default="ab")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a wrk window")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    bot = os.path.join(args.original, "moodbot")
    if not os.path.isdir(bot):
        print("skipped: no moodbot at {} (pass --original)".format(bot))
        return 0
    if shutil.which("wrk") is None:
        print("skipped: needs wrk (apt-get install wrk)")
        return 0
    missing = redis_missing()
    if missing:
        print("skipped: no Redis at 127.0.0.1:6379 ({})".format(missing))
        return 0
    from coreactors.training.train import train_dialogue_model

    scratch = tempfile.mkdtemp(prefix="coreactors-scale-out-")
    try:
        model = os.path.join(scratch, "model")
        train_dialogue_model(os.path.join(bot, "domain.yml"), os.path.join(bot, "stories.md"),
                             model, policy_config=os.path.join(bot, "policies.yml"))
        script = os.path.join(scratch, "turns.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT)
        print("moodbot, {} connections, {:.0f} s windows, {} rounds, {} CPUs".format(
            args.connections, args.seconds, args.rounds, os.cpu_count()))
        for shape in args.shapes:
            mode = {"a": "new", "b": "continue"}[shape]
            print({"a": "a. a new sender per request",
                   "b": "b. continuing conversations"}[shape])
            servers: List[Server] = []
            prefix = "bench-{}".format(uuid.uuid4().hex[:8])
            try:
                for name in NAMES:
                    servers.append(start(name, model, os.path.join(scratch, shape + name),
                                         "{}-{}".format(prefix, name)))
                if mode == "continue":
                    for server in servers:
                        wrk(script, server.port, 1, "b", mode, args.connections)
                seen = rotate(servers, args.rounds, lambda s, number: wrk(
                    script, s.port, args.seconds,
                    "{}{}".format(shape, number) if mode == "new" else "b", mode,
                    args.connections))
                report(seen)
            finally:
                for server in servers:
                    stop(server.process)
                remove_keys(prefix)
            sys.stdout.flush()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

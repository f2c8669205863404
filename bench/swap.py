"""Hot-swap benchmark: how long a model swap takes, and what it costs the traffic (127.0.0.1 only,
bounded in time).

Serves moodbot (model A) with ``python -m coreactors.run``, pulling from a model server that
this script runs itself (stdlib HTTP, in a thread); model B is moodbot with one more slot
(``swap_marker``), so a tracker shows which model read it. Prints:
  1. with N live conversations (default 1,000): for each of several swaps, the time from the
     model server sending the new ETag's zip to ``/status`` showing the new fingerprint, and to
     every live conversation answering with the new model (a sweep of GET .../tracker over all
     of them, each queued behind the model in that actor's inbox: an upper bound);
  2. webhook turns/s with 16 keep-alive connections without swaps, then with a swap every
     two seconds, and the turns/s in the half second after each new ETag, as a share of normal
     and of the half second before that ETag.

    .venv/bin/python bench/swap.py [--data ../shared/data] [--conversations 1000] [--seconds 5]

The client is this script: asyncio, raw HTTP/1.1 keep-alive, no dependencies.
"""

import argparse
import asyncio
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from load import (  # noqa: E402  (bench/ is not a package)
    MOOD_CONVERSATION, Connection, message_body, start_server, stop, wait_up)

MARKER_SLOT = "swap_marker"
DEADLINE_SECONDS = 600  # the whole run; each wait below has its own, shorter bound


class ModelServer:
    """Serves one zip under one ETag (304 for a client that has it) and notes when each 200
    went out. Runs in a thread of this process, on 127.0.0.1."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.zip = b""
        self.etag = ""
        self.served: Dict[str, float] = {}  # ETag -> perf_counter when its zip was sent
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                with owner.lock:
                    data, etag = owner.zip, owner.etag
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                with owner.lock:
                    owner.served.setdefault(etag, time.perf_counter())

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def serve(self, data: bytes, etag: str) -> None:
        with self.lock:
            self.zip, self.etag = data, etag

    def served_at(self, etag: str) -> Optional[float]:
        with self.lock:
            return self.served.get(etag)

    def close(self) -> None:
        self.http.shutdown()


async def fingerprint(connection: Connection) -> Optional[str]:
    _, body = await connection.request("GET", "/status")
    return json.loads(body)["model_fingerprint"]


async def wait_fingerprint(connection: Connection, etag: str, timeout: float = 60.0) -> float:
    deadline = time.perf_counter() + timeout
    while await fingerprint(connection) != etag:
        if time.perf_counter() > deadline:
            raise RuntimeError("the server did not take model {} in time".format(etag))
        await asyncio.sleep(0.002)
    return time.perf_counter()


async def first_turns(port: int, senders: List[str], connections: int) -> int:
    """One /greet from each sender (starts its actor); returns the number of errors."""
    queue = iter(senders)
    errors = 0

    async def worker() -> None:
        nonlocal errors
        connection = await Connection(port).open()
        try:
            for sender in queue:
                status, _ = await connection.request("POST", "/webhooks/rest/webhook",
                                                     message_body(sender, "/greet"))
                errors += status != 200
        finally:
            connection.close()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return errors


async def sweep(port: int, senders: List[str], connections: int, marked: bool) -> int:
    """GET every sender's tracker; returns how many were NOT read by the expected model."""
    queue = iter(senders)
    wrong = 0

    async def worker() -> None:
        nonlocal wrong
        connection = await Connection(port).open()
        try:
            for sender in queue:
                status, body = await connection.request(
                    "GET", "/conversations/{}/tracker?include_events=NONE".format(sender))
                has_marker = status == 200 and MARKER_SLOT in json.loads(body)["slots"]
                wrong += has_marker != marked
        finally:
            connection.close()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return wrong


async def traffic(port: int, senders: List[str], connections: int, seconds: float
                  ) -> Tuple[List[float], int]:
    """Webhook turns back to back, the connections taking turns over ``senders``; returns
    completion times, errors."""
    done: List[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal errors
        connection = await Connection(port).open()
        i = 0
        try:
            while time.perf_counter() < deadline:
                sender = senders[(index + i * connections) % len(senders)]
                status, _ = await connection.request(
                    "POST", "/webhooks/rest/webhook", message_body(
                        sender, MOOD_CONVERSATION[i % len(MOOD_CONVERSATION)]))
                done.append(time.perf_counter())
                errors += status != 200
                i += 1
        finally:
            connection.close()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return done, errors


def window_rates(done: List[float], starts: List[float], window: float) -> List[float]:
    """Turns/s completed in [start, start + window), for each start the run covers."""
    return [sum(1 for t in done if start <= t < start + window) / window for start in starts
            if done and done[0] <= start and start + window <= done[-1]]


def train_models(moodbot: str, scratch: str) -> Tuple[str, str]:
    from coreactors.training.train import train_dialogue_model
    a, b = os.path.join(scratch, "model_a"), os.path.join(scratch, "model_b")
    stories = os.path.join(moodbot, "data", "stories.md")
    train_dialogue_model(os.path.join(moodbot, "domain.yml"), stories, a)
    with open(os.path.join(moodbot, "domain.yml"), encoding="utf-8") as f:
        domain_b = f.read() + "\nslots:\n  {}:\n    type: unfeaturized\n".format(MARKER_SLOT)
    with open(os.path.join(scratch, "domain_b.yml"), "w", encoding="utf-8") as f:
        f.write(domain_b)
    train_dialogue_model(os.path.join(scratch, "domain_b.yml"), stories, b)
    return a, b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--swaps", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--swap-every", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    args = parser.parse_args()
    moodbot = os.path.join(args.data, "bots", "moodbot")
    if not os.path.isdir(moodbot):
        print("skipped: no moodbot at {} (pass --data)".format(moodbot))
        return 0
    from coreactors.model import zip_model

    scratch = tempfile.mkdtemp(prefix="coreactors-swap-")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", TMPDIR=scratch)
    model_server = ModelServer()
    server: Optional[subprocess.Popen] = None
    try:
        model_a, model_b = train_models(moodbot, scratch)
        zips = {False: zip_model(model_a), True: zip_model(model_b)}
        model_server.serve(zips[False], "a-0")
        endpoints = os.path.join(scratch, "endpoints.yml")
        with open(endpoints, "w") as f:
            f.write("tracker_store:\n  type: {}\nmodel:\n  url: http://127.0.0.1:{}/model\n"
                    "  wait_time_between_pulls: 0.1\n  timeout: 30\n".format(
                        args.store, model_server.port))
        port, server = start_server(
            model_a, endpoints, scratch, env, "--enable_api", "--max_actors",
            str(args.conversations + 100), "--idle_timeout", str(DEADLINE_SECONDS))
        wait_up(port, server)
        asyncio.run(asyncio.wait_for(run(args, port, model_server, zips), DEADLINE_SECONDS))
    finally:
        if server is not None:
            stop(server)
        model_server.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


async def run(args: argparse.Namespace, port: int, model_server: ModelServer,
              zips: Dict[bool, bytes]) -> None:
    status = await Connection(port).open()
    await wait_fingerprint(status, "a-0")
    senders = ["conversation-{}".format(i) for i in range(args.conversations)]
    errors = await first_turns(port, senders, args.connections)
    print("moodbot, {} store; model zips {} / {} bytes; {} live conversations ({} errors)"
          .format(args.store, len(zips[False]), len(zips[True]), len(senders), errors))
    started = time.perf_counter()
    await sweep(port, senders, args.connections, marked=False)
    sweep_time = time.perf_counter() - started
    print("a sweep of GET .../tracker over all of them, no swap: {:6.0f} ms".format(
        1000 * sweep_time))

    # 1. Swap times, alternating A and B.
    to_status: List[float] = []
    to_all: List[float] = []
    wrong_total = 0
    for n in range(1, args.swaps + 1):
        marked = n % 2 == 1
        etag = "{}-{}".format("b" if marked else "a", n)
        model_server.serve(zips[marked], etag)
        seen = await wait_fingerprint(status, etag)
        served = model_server.served_at(etag)
        assert served is not None
        wrong = await sweep(port, senders, args.connections, marked)
        finished = time.perf_counter()
        wrong_total += wrong
        to_status.append(seen - served)
        to_all.append(finished - served)
        print("swap {}: new ETag sent -> /status {:6.0f} ms -> all {} conversations on it "
              "{:6.0f} ms ({} read by the old model)".format(
                  n, 1000 * (seen - served), len(senders), 1000 * (finished - served), wrong))
    print("swap, median of {}: {:.0f} ms to /status, {:.0f} ms to every live conversation "
          "(upper bound; the sweep alone takes {:.0f} ms); {} stale reads".format(
              args.swaps, 1000 * statistics.median(to_status),
              1000 * statistics.median(to_all), 1000 * sweep_time, wrong_total))

    # 2. Throughput without swaps, then with a swap every --swap-every seconds.
    window = 0.5
    await traffic(port, senders, args.connections, 1.0)  # warm-up
    done, errors = await traffic(port, senders, args.connections, args.seconds)
    normal = len(done) / args.seconds
    steady = window_rates(done, [done[0] + k * 0.1 for k in range(int(args.seconds * 10))],
                          window)
    print("webhook over the {} conversations, no swap: {:6.0f} turns/s ({} errors); its {:.1f} s "
          "windows: {:.0%} of that at worst".format(len(senders), normal, errors, window,
                                                   min(steady) / normal))
    swap_times: List[float] = []

    async def swapper() -> None:
        n = args.swaps
        deadline = time.perf_counter() + args.seconds - args.swap_every / 2
        while time.perf_counter() + args.swap_every < deadline:
            await asyncio.sleep(args.swap_every)
            n += 1
            marked = n % 2 == 1
            etag = "{}-{}".format("b" if marked else "a", n)
            model_server.serve(zips[marked], etag)
            await wait_fingerprint(status, etag)
            served = model_server.served_at(etag)
            if served is not None:
                swap_times.append(served)
    (done, errors), _ = await asyncio.gather(
        traffic(port, senders, args.connections, args.seconds), swapper())
    swapping = len(done) / args.seconds
    print("webhook, a swap every {:g} s: {:6.0f} turns/s ({} errors, {} swaps): {:.0%} of normal"
          .format(args.swap_every, swapping, errors, len(swap_times), swapping / normal))
    rates = window_rates(done, swap_times, window)
    if rates:
        print("webhook, in the {:.1f} s after each new ETag: {:.0%} of normal on average, {:.0%} "
              "at worst".format(window, statistics.mean(rates) / normal, min(rates) / normal))
        # The machine's speed drifts within a run, so "normal" (measured seconds earlier) can
        # be off by 10-20%: each window is also compared with the half second before its ETag.
        before = window_rates(done, [s - window for s in swap_times], window)
        shares = [after / ahead for after, ahead in zip(rates, before) if ahead]
        if shares and len(before) == len(rates):
            print("webhook, each such {:.1f} s against the {:.1f} s before its ETag: {:.0%} on "
                  "average, {:.0%} at worst".format(window, window, statistics.mean(shares),
                                                   min(shares)))
    # Where the turns go missing: the share of normal per 100 ms around a new ETag.
    profile = []
    for step in range(-2, 8):
        shares = window_rates(done, [s + step / 10 for s in swap_times], 0.1)
        if shares:
            profile.append("{:+.1f}s {:.0%}".format(step / 10, statistics.mean(shares) / normal))
    print("  per 100 ms around it: " + ", ".join(profile))
    status.close()


if __name__ == "__main__":
    sys.exit(main())

"""Load benchmark of the actor server (only ever talks to 127.0.0.1, bounded in time).

Prints, for a moodbot model served by ``python -m coreactors.run``:
  1. webhook turns/s and p50/p99 latency with 16 keep-alive connections on distinct senders;
  2. in the same run, the turns/s of a bare Klein route that only hops through one actor (the
     stack's ceiling, bench/ceiling_server.py) and the ratio of the two, both measured in
     alternating windows;
  3. the turn rate around turn 10 and around turn 2,000 of one long conversation;
  4. RSS and live threads of the server after N distinct conversations (default 100,000).

    .venv/bin/python bench/load.py [--data ../shared/data] [--seconds 8] [--windows 4]
                                   [--conversations 100000] [--cpus 0]

The client is this script: asyncio, raw HTTP/1.1 keep-alive, no dependencies.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
MOOD_CONVERSATION = ["/greet", "/mood_unhappy", "/mood_deny", "/goodbye"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None

    async def open(self) -> "Connection":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def post(self, path: str, body: bytes) -> Tuple[int, bytes]:
        return await self.request("POST", path, body)

    async def request(self, method: str, path: str, body: bytes = b"") -> Tuple[int, bytes]:
        """Sends one request and reads its answer: (status, body)."""
        assert self.reader is not None and self.writer is not None
        head = "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n".format(
            method, path, len(body))
        if body:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        chunked = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
            elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            data = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                if size == 0:
                    await self.reader.readline()
                    break
                data += await self.reader.readexactly(size)
                await self.reader.readline()
            return status, data
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def message_body(sender: str, text: str) -> bytes:
    return json.dumps({"sender": sender, "message": text}).encode()


async def load(port: int, path_for, body_for, connections: int, seconds: float
               ) -> Tuple[int, List[float], int]:
    """Each connection sends requests back to back for ``seconds``; returns (turns, latencies,
    errors)."""
    latencies: List[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal errors
        connection = await Connection(port).open()
        i = 0
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status, _ = await connection.post(path_for(index, i), body_for(index, i))
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors += 1
                i += 1
        finally:
            connection.close()

    await asyncio.gather(*(worker(i) for i in range(connections)))
    return len(latencies), latencies, errors


def percentile(values: List[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


def wait_up(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited early")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not come up")


def start_server(model: str, endpoints: str, cwd: str, env: dict, *flags: str,
                 python: str = sys.executable) -> Tuple[int, subprocess.Popen]:
    """``python -m coreactors.run`` on a free 127.0.0.1 port, quiet; returns (port, process).
    ``python`` may be another checkout's interpreter (its venv runs its code)."""
    port = free_port()
    process = subprocess.Popen(
        [python, "-m", "coreactors.run", "-d", model, "--endpoints", endpoints,
         "--listen", "tcp:{}:interface=127.0.0.1".format(port), "--quiet", *flags],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return port, process


def proc_status(pid: int) -> Tuple[float, int]:
    rss_kb, threads = 0, 0
    with open("/proc/{}/status".format(pid)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss_kb / 1024.0, threads


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--windows", type=int, default=4,
                        help="alternating webhook/ceiling windows the seconds are cut into")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--conversations", type=int, default=100000)
    parser.add_argument("--max-actors", type=int, default=2000)
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--cpus", default=None,
                        help="run both servers with --cpus CPUS (this client then keeps off "
                             "those CPUs where it can)")
    args = parser.parse_args()
    moodbot = os.path.join(args.data, "bots", "moodbot")
    if not os.path.isdir(moodbot):
        print("skipped: no moodbot at {} (pass --data)".format(moodbot))
        return 0
    from coreactors.training.train import train_dialogue_model

    scratch = tempfile.mkdtemp(prefix="coreactors-load-")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    try:
        model = os.path.join(scratch, "model")
        train_dialogue_model(os.path.join(moodbot, "domain.yml"),
                             os.path.join(moodbot, "data", "stories.md"), model)
        endpoints = os.path.join(scratch, "endpoints.yml")
        with open(endpoints, "w") as f:
            f.write("tracker_store:\n  type: {}\n".format(args.store))
        pinning: List[str] = []
        if args.cpus is not None:
            from coreactors.affinity import parse_cpu_list
            pinning = ["--cpus", args.cpus]
            others = os.sched_getaffinity(0) - parse_cpu_list(args.cpus)
        port, server = start_server(model, endpoints, scratch, env,
                                    "--max_actors", str(args.max_actors), *pinning)
        ceiling_port = free_port()
        ceiling = subprocess.Popen([sys.executable, os.path.join(HERE, "ceiling_server.py"),
                                    str(ceiling_port)] + pinning[1:], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if pinning and others:
            os.sched_setaffinity(0, others)  # after starting the servers: they inherit it
        try:
            wait_up(port, server)
            wait_up(ceiling_port, ceiling)
            print("moodbot model, {} store, {} keep-alive connections, {:.0f} s per run, {}"
                  .format(args.store, args.connections, args.seconds,
                          "servers on CPUs " + args.cpus if args.cpus else "servers not pinned"))

            def webhook_body(index: int, i: int) -> bytes:
                return message_body("load-{}".format(index),
                                    MOOD_CONVERSATION[i % len(MOOD_CONVERSATION)])

            # Warm up (actors started, caches warm), then measure the webhook and the ceiling
            # in alternating windows: this machine's speed drifts by 10-30% within seconds,
            # so two runs one after the other would put the drift into their ratio.
            asyncio.run(load(port, lambda c, i: "/webhooks/rest/webhook", webhook_body,
                             args.connections, 1.0))
            asyncio.run(load(ceiling_port, lambda c, i: "/hop/c{}".format(c),
                             lambda c, i: b"{}", args.connections, 1.0))
            window = args.seconds / args.windows
            turns = hops = errors = 0
            latencies: List[float] = []
            hop_latencies: List[float] = []
            ratios: List[float] = []
            for _ in range(args.windows):
                done, times, failed = asyncio.run(load(
                    port, lambda c, i: "/webhooks/rest/webhook", webhook_body, args.connections,
                    window))
                hopped, hop_times, _ = asyncio.run(load(
                    ceiling_port, lambda c, i: "/hop/c{}".format(c), lambda c, i: b"{}",
                    args.connections, window))
                turns, hops, errors = turns + done, hops + hopped, errors + failed
                latencies += times
                hop_latencies += hop_times
                ratios.append(done / hopped if hopped else 0.0)
            rate = turns / args.seconds
            hop_rate = hops / args.seconds
            print("webhook:  {:8.0f} turns/s  p50 {:6.2f} ms  p99 {:6.2f} ms  errors {}".format(
                rate, 1000 * percentile(latencies, 0.5), 1000 * percentile(latencies, 0.99),
                errors))
            print("ceiling:  {:8.0f} hops/s   p50 {:6.2f} ms  p99 {:6.2f} ms".format(
                hop_rate, 1000 * percentile(hop_latencies, 0.5),
                1000 * percentile(hop_latencies, 0.99)))
            print("ratio webhook / ceiling: {:.2f} (median of {} alternating {:.1f} s windows; "
                  "{:.2f}-{:.2f})".format(statistics.median(ratios), args.windows, window,
                                         min(ratios), max(ratios)))

            async def long_conversation() -> Tuple[List[float], List[float]]:
                """Turn times around turn 10 (of fresh conversations) and around turn 2,000.

                One conversation is first brought to turn 1,950. Then its turns 1,950-2,049
                alternate with turns 2-21 of five fresh conversations, so both figures come
                from the same seconds of the same server: this machine's speed drifts by 10-20%
                within a run, which two windows measured a second apart would report as a
                change with conversation length."""
                connection = await Connection(port).open()

                async def timed(sender: str, i: int) -> float:
                    started = time.perf_counter()
                    await connection.post("/webhooks/rest/webhook", message_body(
                        sender, MOOD_CONVERSATION[i % len(MOOD_CONVERSATION)]))
                    return time.perf_counter() - started
                early: List[float] = []
                late: List[float] = []
                try:
                    for i in range(1950):
                        await timed("long-one", i)
                    for fresh in range(5):
                        sender = "fresh-{}".format(fresh)
                        for i in range(2):  # turns 0-1 start the actor; not timed
                            await timed(sender, i)
                        for i in range(2, 22):
                            early.append(await timed(sender, i))
                            late.append(await timed("long-one", 1950 + len(late)))
                finally:
                    connection.close()
                return early, late
            early_times, late_times = asyncio.run(long_conversation())
            early = 1.0 / statistics.median(early_times)
            late = 1.0 / statistics.median(late_times)
            print("one conversation: {:6.0f} turns/s around turn 10, {:6.0f} turns/s around "
                  "turn 2,000 ({:.0%}; median turn times, measured alternately)".format(
                      early, late, late / early))

            started = time.perf_counter()
            total = args.conversations
            sent, _, errors = asyncio.run(_distinct(port, args, total))
            elapsed = time.perf_counter() - started
            time.sleep(1.0)
            rss, threads = proc_status(server.pid)
            print("{} distinct conversations in {:.0f} s ({} errors): server RSS {:.0f} MB, "
                  "{} live threads (actor cap {})".format(sent, elapsed, errors, rss, threads,
                                                          args.max_actors))
        finally:
            stop(server)
            stop(ceiling)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _distinct(port: int, args: argparse.Namespace, total: int):
    """Coroutine: ``total`` first messages from distinct senders over the keep-alive pool."""
    async def run() -> Tuple[int, List[float], int]:
        counter = iter(range(total))
        latencies: List[float] = []
        errors = 0

        async def worker() -> None:
            nonlocal errors
            connection = await Connection(port).open()
            try:
                for n in counter:
                    started = time.perf_counter()
                    status, _ = await connection.post("/webhooks/rest/webhook", message_body(
                        "conversation-{}".format(n), "/greet"))
                    latencies.append(time.perf_counter() - started)
                    if status != 200:
                        errors += 1
            finally:
                connection.close()
        await asyncio.gather(*(worker() for _ in range(args.connections)))
        return len(latencies), latencies, errors
    return run()


if __name__ == "__main__":
    sys.exit(main())

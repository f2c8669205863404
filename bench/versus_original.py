"""coreactors against the original Rasa Core 0.12.4, side by side in one run (only ever talks to
127.0.0.1, bounded in time).

Both servers serve the moodbot of ``../shared/original-rasa-core/moodbot/`` (MemoizationPolicy +
FallbackPolicy, messages as ``/intent``): coreactors trained here on its files and started with
its defaults (``python -m coreactors.run --enable_api``: SQLite store, actor cap 2,000, not
pinned), the original from its own trained model by ``start.sh`` (``ORACLE_TCP_NODELAY=1``, see
that folder's README). Each shape loads the two in alternating windows (coreactors, original,
original, coreactors, ...), so a drift of the machine's speed falls on both alike, and prints
each pair's ratio:

  a. a new sender per request (``/greet``), 16 keep-alive connections, until coreactors has had
     ``--senders`` of them (default 50,000: far beyond its actor cap);
  b. 16 keep-alive connections continuing 16 conversations (moodbot's sad path, over and over);
  c. one conversation of 2,000 turns that falls back on every turn (``/mood_affirm`` where no
     story has it: ``action_default_fallback`` rewinds it), and one that follows the stories:
     the median turn time around turn 100 against around turn 2,000, both from the same
     seconds (a fresh conversation's turns 51-150 alternate with the long one's 1,951-2,050);
  d. ``--conversations`` conversations of one turn each (default 100,000), 16 connections, in
     alternating windows of ``--chunk`` seconds until each server has had that many: the
     wall time of that many (at the windows' rate), and each server's RSS at the end;
  n. (coreactors alone, not in the default ``--shapes``) a new sender's turn against a
     continuing conversation's: windows of new senders, beyond the actor cap, alternating
     with windows of 16 continuing conversations.

The load client of a, b and d is wrk (``apt-get install wrk``) with a small Lua script, one
connection per wrk thread; c is sequential, so a Python client on one connection does.

    .venv/bin/python bench/versus_original.py [--shapes abcd] [--seconds 3] [--windows 6]
                                              [--senders 50000] [--conversations 100000]
                                              [--original ../shared/original-rasa-core]
                                              [--against DIR]

With ``--against DIR`` the other server is the coreactors checkout at DIR, run by DIR's own
``.venv`` (``git worktree add ../base REV`` and a venv there): the same shapes measure a change.

Without the original (its folder, or the venv its ``setup.sh`` builds) it prints why and exits 0.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

from load import free_port, proc_status, stop, wait_up

HERE = os.path.dirname(os.path.abspath(__file__))
WEBHOOK = "/webhooks/rest/webhook"
CONNECTIONS = 16
SAD_PATH = ["/greet", "/mood_unhappy", "/mood_deny", "/goodbye"]
UNKNOWN_TO_THE_STORIES = "/mood_affirm"  # at a conversation's start: every turn falls back
OTHER = "original"  # the name of the server compared with (see --against)

# One wrk thread per connection. args: a tag that makes this run's senders unique, and "new" (a
# new sender per request) or "continue" (one sender per connection).
WRK_SCRIPT = """
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local moods = {%s}
function init(args)
  prefix = args[1] .. "-" .. id
  fresh = args[2] == "new"
  sent = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  sent = sent + 1
  local sender, text = prefix, moods[(sent - 1) %% #moods + 1]
  if fresh then
    sender, text = prefix .. "-" .. sent, "/greet"
  end
  return wrk.format(nil, nil, nil, '{"sender": "' .. sender .. '", "message": "' .. text .. '"}')
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("TURNS %%d ERRORS %%d MICROSECONDS %%d P50 %%d P99 %%d\\n",
                         summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
                         summary.duration, latency:percentile(50), latency:percentile(99)))
end
""" % ", ".join('"{}"'.format(text) for text in SAD_PATH)


class Window:
    """What one wrk run measured."""

    def __init__(self, turns: int, errors: int, seconds: float, p50: float, p99: float) -> None:
        self.turns, self.errors, self.seconds = turns, errors, seconds
        self.p50, self.p99 = p50, p99

    @property
    def rate(self) -> float:
        return self.turns / self.seconds if self.seconds else 0.0


def wrk(script: str, port: int, seconds: float, tag: str, mode: str,
        connections: int = CONNECTIONS) -> Window:
    done = subprocess.run(
        ["wrk", "-t", str(connections), "-c", str(connections), "-d", "{}s".format(int(seconds)),
         "-s", script, "http://127.0.0.1:{}{}".format(port, WEBHOOK), "--", tag, mode],
        capture_output=True, text=True, timeout=seconds + 60, check=True)
    found = re.search(r"TURNS (\d+) ERRORS (\d+) MICROSECONDS (\d+) P50 (\d+) P99 (\d+)",
                      done.stdout)
    if found is None:
        raise RuntimeError("wrk said: " + done.stdout + done.stderr)
    turns, errors, micros, p50, p99 = (int(x) for x in found.groups())
    return Window(turns, errors, micros / 1e6, p50 / 1000.0, p99 / 1000.0)


class Server:
    """One of the two servers: its process, port and name."""

    def __init__(self, name: str, process: subprocess.Popen, port: int) -> None:
        self.name, self.process, self.port = name, process, port

    def rss(self) -> float:
        return proc_status(self.process.pid)[0]


def start_coreactors(model: str, folder: str, python: str = sys.executable,
                     name: str = "coreactors") -> Server:
    """Our server with its defaults (SQLite store in ``folder``, actor cap, INFO log), run by
    ``python`` (another checkout's venv runs that checkout's code)."""
    os.makedirs(folder)
    port = free_port()
    log = open(os.path.join(folder, "server.log"), "wb")
    process = subprocess.Popen(
        [python, "-m", "coreactors.run", "--enable_api", "-d", model,
         "--listen", "tcp:{}:interface=127.0.0.1".format(port)],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    server = Server(name, process, port)
    wait_answering(server)
    return server


def start_original(original: str, venv: str, folder: str) -> Server:
    os.makedirs(folder)
    port = free_port()
    env = dict(os.environ, VENV=venv, ORACLE_TCP_NODELAY="1", ORACLE_LOG_DIR=folder)
    log = open(os.path.join(folder, "server.log"), "wb")
    process = subprocess.Popen([os.path.join(original, "start.sh"), str(port)], env=env,
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    server = Server(OTHER, process, port)
    wait_answering(server)
    return server


def wait_answering(server: Server) -> None:
    """Waits until the port is open and a turn is answered (the model is loaded)."""
    wait_up(server.port, server.process, timeout=120)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            status, _ = Client(server.port).turn("warm-up", "/greet")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("{} does not answer turns".format(server.name))


class Client:
    """One keep-alive connection that sends webhook turns one after another."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def turn(self, sender: str, text: str) -> Tuple[int, bytes]:
        body = json.dumps({"sender": sender, "message": text})
        self.connection.request("POST", WEBHOOK, body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, response.read()

    def timed(self, sender: str, text: str) -> float:
        started = time.perf_counter()
        status, body = self.turn(sender, text)
        took = time.perf_counter() - started
        if status != 200:
            raise RuntimeError("turn of {} answered {}: {!r}".format(sender, status, body))
        return took

    def close(self) -> None:
        self.connection.close()


def alternate(servers: List[Server], windows: int, load: Callable[[Server, int], Window],
              enough: Callable[[Dict[str, List[Window]]], bool] = lambda seen: True
              ) -> Dict[str, List[Window]]:
    """Loads the servers in alternating order, pair after pair, for at least ``windows`` pairs
    and until ``enough`` says so."""
    seen: Dict[str, List[Window]] = {s.name: [] for s in servers}
    pair = 0
    while pair < windows or not enough(seen):
        order = servers if pair % 2 == 0 else list(reversed(servers))
        for server in order:
            seen[server.name].append(load(server, pair))
        pair += 1
    return seen


def report_windows(label: str, seen: Dict[str, List[Window]]) -> None:
    ours, theirs = seen["coreactors"], seen[OTHER]
    ratios = [o.rate / t.rate for o, t in zip(ours, theirs) if t.rate]
    for name, windows in seen.items():
        turns = sum(w.turns for w in windows)
        seconds = sum(w.seconds for w in windows)
        print("  {:10s} {:7.0f} turns/s  p50 {:6.2f} ms  p99 median {:6.2f} ms, worst {:6.2f} "
              "ms  errors {}  ({} turns)".format(
                  name, turns / seconds, statistics.median(w.p50 for w in windows),
                  statistics.median(w.p99 for w in windows), max(w.p99 for w in windows),
                  sum(w.errors for w in windows), turns))
    print("  {}: coreactors / {} {:.2f} (median of {} pairs of windows; {:.2f}-{:.2f})"
          .format(label, OTHER, statistics.median(ratios), len(ratios), min(ratios),
                  max(ratios)))


def shape_a(servers: List[Server], script: str, args: argparse.Namespace) -> None:
    print("a. a new sender per request, {} connections, {:.0f} s windows, until coreactors has "
          "had {:,} senders".format(CONNECTIONS, args.seconds, args.senders))

    def senders(seen: Dict[str, List[Window]]) -> bool:
        return sum(w.turns for w in seen["coreactors"]) >= args.senders
    seen = alternate(servers, args.windows, lambda s, pair: wrk(
        script, s.port, args.seconds, "a{}".format(pair), "new"), senders)
    report_windows("new senders", seen)


def shape_b(servers: List[Server], script: str, args: argparse.Namespace) -> None:
    print("b. {} connections continuing {} conversations, {:.0f} s windows".format(
        CONNECTIONS, CONNECTIONS, args.seconds))
    for server in servers:
        wrk(script, server.port, 1, "b", "continue")  # the 16 conversations exist
    seen = alternate(servers, args.windows, lambda s, pair: wrk(
        script, s.port, args.seconds, "b", "continue"))
    report_windows("continuing", seen)


def shape_n(servers: List[Server], script: str, args: argparse.Namespace) -> None:
    """coreactors alone: a new sender's turn against a continuing conversation's, in
    alternating windows, once more senders than the actor cap have come."""
    ours = servers[0]
    print("n. coreactors alone: windows of new senders (beyond the actor cap) alternating with "
          "windows of {} continuing conversations, {:.0f} s each".format(CONNECTIONS,
                                                                         args.seconds))
    wrk(script, ours.port, 1, "n", "continue")  # the 16 conversations exist
    wrk(script, ours.port, 3, "n-warm", "new")  # and more senders than the cap have come
    fresh: List[Window] = []
    going: List[Window] = []
    for pair in range(args.windows):
        order = ("new", "continue") if pair % 2 == 0 else ("continue", "new")
        for mode in order:
            window = wrk(script, ours.port, args.seconds, "n{}".format(pair), mode)
            (fresh if mode == "new" else going).append(window)
    ratios = [g.rate / f.rate for f, g in zip(fresh, going) if f.rate]
    for label, windows in (("new senders", fresh), ("continuing", going)):
        print("  {:12s} {:6.0f} turns/s  p50 {:6.2f} ms  p99 median {:6.2f} ms".format(
            label, sum(w.turns for w in windows) / sum(w.seconds for w in windows),
            statistics.median(w.p50 for w in windows),
            statistics.median(w.p99 for w in windows)))
    print("  a new sender's turn takes {:.2f}x a continuing one's (median of {} pairs; "
          "{:.2f}-{:.2f})".format(statistics.median(ratios), len(ratios), min(ratios),
                                  max(ratios)))


def long_conversation(server: Server, text: Callable[[int], str], tag: str,
                      turns: int = 2000) -> Tuple[float, float]:
    """(median turn time around turn 100, around turn ``turns``) of one server."""
    client = Client(server.port)
    long_one, fresh = "{}-long".format(tag), "{}-fresh".format(tag)
    try:
        for i in range(turns - 100):
            client.timed(long_one, text(i))
        early: List[float] = []
        late: List[float] = []
        for i in range(150):
            took = client.timed(fresh, text(i))
            if i >= 50:
                early.append(took)
            took = client.timed(long_one, text(turns - 100 + i))
            if i >= 50:
                late.append(took)
    finally:
        client.close()
    return statistics.median(early), statistics.median(late)


def shape_c(servers: List[Server], args: argparse.Namespace) -> None:
    print("c. one conversation of 2,000 turns: median turn time around turn 100 and around "
          "turn 2,000 (measured alternately)")
    kinds = [("falls back every turn", lambda i: UNKNOWN_TO_THE_STORIES),
             ("follows the stories", lambda i: SAD_PATH[i % len(SAD_PATH)])]
    for number, (kind, text) in enumerate(kinds):
        for server in servers:
            early, late = long_conversation(server, text, "c{}".format(number))
            print("  {:22s} {:10s} turn 100: {:6.2f} ms  turn 2,000: {:6.2f} ms  "
                  "speed at 2,000: {:4.0%} of that at 100".format(
                      kind, server.name, 1000 * early, 1000 * late, early / late))


def shape_d(servers: List[Server], script: str, args: argparse.Namespace) -> None:
    total = args.conversations
    print("d. {:,} conversations of one turn each, {} connections, in alternating {:.0f} s "
          "windows".format(total, CONNECTIONS, args.chunk))
    seen: Dict[str, List[Window]] = {s.name: [] for s in servers}
    pair = 0
    while any(sum(w.turns for w in seen[s.name]) < total for s in servers):
        order = servers if pair % 2 == 0 else list(reversed(servers))
        for server in order:
            if sum(w.turns for w in seen[server.name]) < total:
                seen[server.name].append(wrk(script, server.port, args.chunk,
                                             "d{}".format(pair), "new"))
        pair += 1
    time.sleep(1.0)
    walls = {}
    for server in servers:
        windows = seen[server.name]
        turns = sum(w.turns for w in windows)
        seconds = sum(w.seconds for w in windows)
        # wrk runs whole windows: the time of the first ``total`` is at the windows' rate.
        walls[server.name] = seconds * total / turns
        print("  {:10s} {:,} conversations in {:6.1f} s ({:5.0f}/s, {} errors; {:,} sent in "
              "all); RSS {:4.0f} MB".format(server.name, total, walls[server.name],
                                            turns / seconds, sum(w.errors for w in windows),
                                            turns, server.rss()))
    print("  wall time: {} / coreactors {:.2f}".format(OTHER, walls[OTHER] / walls["coreactors"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--original", default=os.path.join(HERE, "..", "..", "shared",
                                                           "original-rasa-core"))
    parser.add_argument("--venv", default=os.environ.get("VENV", "/tmp/venv-oracle"),
                        help="the original's venv (its setup.sh builds it)")
    parser.add_argument("--shapes", default="abcd")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a wrk window")
    parser.add_argument("--windows", type=int, default=6, help="pairs of windows (at least)")
    parser.add_argument("--senders", type=int, default=50000)
    parser.add_argument("--conversations", type=int, default=100000)
    parser.add_argument("--chunk", type=float, default=10.0, help="length of a window of d")
    parser.add_argument("--against", default=None, metavar="DIR",
                        help="compare with the coreactors checkout at DIR (run by DIR's .venv) "
                             "instead of the original")
    args = parser.parse_args()
    bot = os.path.join(args.original, "moodbot")
    if not os.path.isfile(os.path.join(args.original, "start.sh")) or not os.path.isdir(bot):
        print("skipped: no original Rasa Core at {} (pass --original)".format(args.original))
        return 0
    if args.against:
        global OTHER
        OTHER = "other"
    elif not os.path.isfile(os.path.join(args.venv, "bin", "python")):
        print("skipped: the original's venv {} is missing (run {}/setup.sh)".format(
            args.venv, args.original))
        return 0
    if shutil.which("wrk") is None and set(args.shapes) & set("abd"):
        print("skipped: shapes a, b and d need wrk (apt-get install wrk)")
        return 0
    from coreactors.training.train import train_dialogue_model

    scratch = tempfile.mkdtemp(prefix="coreactors-versus-")
    try:
        model = os.path.join(scratch, "model")
        train_dialogue_model(os.path.join(bot, "domain.yml"), os.path.join(bot, "stories.md"),
                             model, policy_config=os.path.join(bot, "policies.yml"))
        script = os.path.join(scratch, "turns.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT)
        print("moodbot ({}), coreactors with its defaults, the original Rasa Core 0.12.4; "
              "servers not pinned, {} CPUs".format(bot, os.cpu_count()))
        for shape in args.shapes:
            run = {"n": lambda s: shape_n(s, script, args),
                   "a": lambda s: shape_a(s, script, args),
                   "b": lambda s: shape_b(s, script, args),
                   "c": lambda s: shape_c(s, args),
                   "d": lambda s: shape_d(s, script, args)}[shape]
            # Fresh servers for each shape: what one shape left behind does not weigh on the
            # next one.
            servers: List[Server] = []
            try:
                servers.append(start_coreactors(model, os.path.join(scratch, "ours-" + shape)))
                if shape == "n":  # coreactors alone
                    run(servers)
                    continue
                other = os.path.join(scratch, "other-" + shape)
                servers.append(
                    start_coreactors(model, other, os.path.join(args.against, ".venv", "bin",
                                                                "python"), OTHER)
                    if args.against else start_original(args.original, args.venv, other))
                run(servers)
            finally:
                for server in servers:
                    stop(server.process)
            sys.stdout.flush()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``--workers N`` (coreactors.workers): the options, the port every process binds, the
SO_REUSEPORT listening service, the parent's worker processes, and a worker's tie to its
parent. The whole server with workers: tests/test_workers_e2e.py."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from typing import Any, Dict, List, Optional

import pytest
from twisted.application import strports
from twisted.internet import error, protocol, task
from twisted.python import usage
from twisted.python.failure import Failure

from coreactors import tap
from coreactors.affinity import describe
from coreactors.shared_port import (
    DEFAULT_BACKLOG, ReusePortService, TcpAddress, parse_tcp_listen, shared_port_address,
    split_endpoint)
from coreactors.workers import PARENT_PID_ENV, WorkerProcesses, worker_argv, worker_command

from live_server import GREETING_DOMAIN, GREETING_STORIES, MEMOIZATION_POLICIES, free_port


def parse(argv: List[str]) -> tap.Options:
    options = tap.Options()
    options.parseOptions(argv)
    return options


# -- options ----------------------------------------------------------------------------------

def test_workers_defaults_to_one_process():
    options = parse([])
    assert options["workers"] == 1 and options["worker_index"] == 0


@pytest.mark.parametrize("argv", [
    ["--workers", "0"],
    ["--workers", "-2"],
    ["--workers", "two"],
    ["--worker_index", "1"],  # only below --workers
    ["--workers", "2", "--worker_index", "2"],
    ["--workers", "2", "--worker_index", "-1"],
    ["--workers", "2", "--listen", "systemd:domain=INET:name=web"],
    ["--workers", "2", "--listen", "unix:/tmp/coreactors.sock"],
    ["--workers", "2", "--listen", "ssl:5005:privateKey=key.pem"],
    ["--workers", "2", "-p", "0"],  # a free port of each process's own
])
def test_bad_workers_options_are_refused(argv):
    with pytest.raises(usage.UsageError):
        parse(argv)


def test_one_process_keeps_any_endpoint():
    assert parse(["--listen", "systemd:domain=INET:name=web"])["workers"] == 1


def test_the_refusal_of_another_endpoint_says_what_works():
    with pytest.raises(usage.UsageError) as refused:
        parse(["--workers", "2", "--listen", "systemd:domain=INET:name=web"])
    assert "--workers 2" in str(refused.value)
    assert "tcp:PORT" in str(refused.value) and "systemd" in str(refused.value)


def some_cpu() -> str:
    return describe(frozenset(sorted(os.sched_getaffinity(0))[:1]))


@pytest.mark.parametrize("argv", [
    ["--workers", "2"],
    ["--workers", "3", "--enable_api", "--cors", "*", "--cors", "https://a.example:8443",
     "-v", "--debug", "-p", "6000", "--idle_timeout", "12.5", "--max_actors", "10",
     "--auth_token", "-starts-with-a-dash:and=colons", "--max_body_bytes", "2048"],
    ["--workers", "2", "--listen", "tcp:5006:interface=127.0.0.1:backlog=128",
     "-d", "models/dialogue", "-u", "project/model", "--endpoints", "endpoints.yml",
     "--credentials", "credentials.yml", "-c", "rest", "--log_format", "json",
     "-o", "server log.txt", "--quiet", "--allow_class_path", "my_bot,other_bot",
     "--jwt_secret", "s3cret", "--jwt_method", "HS512", "--max_model_bytes", "1000"],
    ["--workers", "4", "--vv", "--listen", "tcp:port=5007:interface=\\:\\:1",
     "-o", "logs/a=b:c d.txt"],
])
def test_worker_argv_gives_back_the_same_options(argv):
    parent = parse(argv)
    child = parse(worker_argv(parent, 1))
    assert dict(child) == dict(parent, worker_index=1)


def test_worker_argv_gives_back_cpus_in_taskset_notation():
    cpu = some_cpu()
    parent = parse(["--workers", "2", "--cpus", cpu])
    assert isinstance(parent["cpus"], frozenset)  # postOptions parsed it
    argv = worker_argv(parent, 1)
    assert "--cpus=" + cpu in argv
    assert parse(argv)["cpus"] == parent["cpus"]


def test_worker_argv_leaves_out_defaults_and_sets_the_index():
    assert worker_argv(parse(["--workers", "2"]), 1) == ["--workers=2", "--worker_index=1"]


def test_worker_argv_keeps_cors_origins_apart_from_coreactors_run_spreading():
    # coreactors.run spreads "--cors a b" over two flags; "--cors=a" it leaves alone.
    argv = worker_argv(parse(["--workers", "2", "--cors", "*", "--cors", "b"]), 1)
    assert "--cors" not in argv
    assert [a for a in argv if a.startswith("--cors")] == ["--cors=*", "--cors=b"]


def test_worker_argv_knows_every_option():
    # An option stored under a key of its own (an opt_ method) would be lost for workers.
    known = ({p[0] for p in tap.Options.optParameters} | {f[0] for f in tap.Options.optFlags}
             | {"cors"})
    assert set(parse([])) <= known


def test_worker_command_runs_coreactors_run_with_this_python():
    command = worker_command(parse(["--workers", "3", "--enable_api"]))
    assert command(2) == [sys.executable, "-m", "coreactors.run", "--workers=3",
                          "--worker_index=2", "--enable_api"]


# -- the port every process binds -------------------------------------------------------------

@pytest.mark.parametrize("description, address", [
    ("tcp:5005", TcpAddress(5005, "", DEFAULT_BACKLOG)),
    ("tcp:5005:interface=127.0.0.1", TcpAddress(5005, "127.0.0.1", DEFAULT_BACKLOG)),
    ("tcp:5005:interface=127.0.0.1:backlog=1024", TcpAddress(5005, "127.0.0.1", 1024)),
    ("tcp:backlog=7:port=5005", TcpAddress(5005, "", 7)),
    ("tcp:5005:10.0.0.1:9", TcpAddress(5005, "10.0.0.1", 9)),  # Twisted's positional order
    (" tcp:5005 ", TcpAddress(5005, "", DEFAULT_BACKLOG)),
    ("tcp:5005:interface=\\:\\:1", TcpAddress(5005, "::1", DEFAULT_BACKLOG)),
    ("tcp6:5005", TcpAddress(5005, "::", DEFAULT_BACKLOG, ipv6=True)),
    ("TCP6:5005:9:\\:\\:1", TcpAddress(5005, "::1", 9, ipv6=True)),
])
def test_tcp_listen_strings(description, address):
    assert parse_tcp_listen(description) == address


def test_the_address_family_follows_the_interface():
    assert parse_tcp_listen("tcp:5005").family == socket.AF_INET
    assert parse_tcp_listen("tcp:5005:interface=127.0.0.1").family == socket.AF_INET
    assert parse_tcp_listen("tcp:5005:interface=\\:\\:1").family == socket.AF_INET6
    assert parse_tcp_listen("tcp:5005:interface=fe80\\:\\:1%lo").family == socket.AF_INET6
    assert parse_tcp_listen("tcp6:5005").family == socket.AF_INET6


@pytest.mark.parametrize("description", [
    "systemd:domain=INET:name=web", "systemd:domain=INET:index=0", "unix:/tmp/x.sock",
    "ssl:5005", "tls:5005", "TCP:5005",  # Twisted's tcp: is lower case only
    "tcp", "tcp:", "tcp:port", "tcp:-1", "tcp:65536", "tcp:5005:bogus=1",
    "tcp:5005:port=5006", "tcp:5005:interface=127.0.0.1:backlog=-1",
    "tcp:5005:127.0.0.1:9:extra", "tcp:5005:interface=bad\\",
])
def test_other_or_malformed_endpoints_are_refused(description):
    with pytest.raises(ValueError):
        parse_tcp_listen(description)


@pytest.mark.parametrize("description", [
    "tcp:5005", "tcp:5005:interface=127.0.0.1:backlog=9", "tcp:port=1:a\\=b=c\\:d=e",
    "systemd:domain=INET:name=web", "tcp:5005:interface=\\:\\:1", "a:b:c=d=e:f",
])
def test_endpoint_strings_split_as_twisted_splits_them(description):
    from twisted.internet.endpoints import _parse
    assert split_endpoint(description) == _parse(description)


def test_the_shared_port_comes_from_listen_or_port():
    assert shared_port_address(None, 6000) == TcpAddress(6000)
    assert shared_port_address("tcp:6001:interface=127.0.0.1", 6000) == TcpAddress(
        6001, "127.0.0.1")
    for listen, port in ((None, 0), ("tcp:0", 5005), (None, 70000)):
        with pytest.raises(ValueError):
            shared_port_address(listen, port)


# -- the SO_REUSEPORT listening service -------------------------------------------------------

@pytest.fixture
def own_reactor():
    """A reactor of the test's own (never run: the test turns it by hand)."""
    from twisted.internet.epollreactor import EPollReactor
    reactor = EPollReactor()
    yield reactor
    reactor.removeAll()
    # What a run reactor would close as it stops: its waker and its epoll descriptor.
    for reader in list(reactor._internalReaders):
        reactor.removeReader(reader)
        reader.connectionLost(None)
    reactor._poller.close()


class Greeting(protocol.Protocol):
    def connectionMade(self) -> None:
        self.transport.write(self.factory.name)
        self.transport.loseConnection()


def greeting_factory(name: bytes) -> protocol.Factory:
    factory = protocol.Factory.forProtocol(Greeting)
    factory.name = name
    factory.noisy = False
    return factory


def fetch(reactor: Any, port: int, timeout: float = 5.0) -> bytes:
    """Connects, then turns the reactor until the server has said its name and closed."""
    client = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    client.setblocking(False)
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            reactor.iterate(0.01)
            try:
                chunk = client.recv(100)
            except BlockingIOError:
                continue
            if not chunk:
                return received
            received += chunk
    finally:
        client.close()
    raise AssertionError("no answer from port {}".format(port))


def settle(reactor: Any, deferred: Any) -> Any:
    results: List[Any] = []
    deferred.addBoth(results.append)
    deadline = time.monotonic() + 5
    while not results and time.monotonic() < deadline:
        reactor.iterate(0.01)
    assert results, "the Deferred did not fire"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def test_two_reuse_port_services_share_one_port_and_both_serve(own_reactor):
    port = free_port()
    address = TcpAddress(port, "127.0.0.1")
    first = ReusePortService(address, greeting_factory(b"first"), own_reactor)
    second = ReusePortService(address, greeting_factory(b"second"), own_reactor)
    first.privilegedStartService()
    first.startService()  # listens once, not twice
    second.startService()
    try:
        assert first.port.getHost().port == second.port.getHost().port == port
        # The kernel picks a socket per connection (a hash of its addresses): with 30
        # connections both are picked but for a chance of 2 in 2**30.
        answers = [fetch(own_reactor, port) for _ in range(30)]
        assert set(answers) == {b"first", b"second"}
    finally:
        settle(own_reactor, first.stopService())
        settle(own_reactor, second.stopService())
    assert first.port is None and second.stopService() is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_port_taken_without_reuse_port_cannot_be_listened_on(own_reactor):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        service = ReusePortService(TcpAddress(taken.getsockname()[1], "127.0.0.1"),
                                   greeting_factory(b"x"), own_reactor)
        with pytest.raises(error.CannotListenError):
            service.privilegedStartService()
        assert service.port is None


# -- the service tree ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def greeting_model(tmp_path_factory):
    from live_server import train_bot
    return train_bot(tmp_path_factory.mktemp("bot"), GREETING_DOMAIN, GREETING_STORIES,
                     MEMOIZATION_POLICIES)




def tree(options: Dict[str, Any]) -> List[type]:
    from coreactors.service import make_service
    from twisted.internet import reactor
    return [type(child) for child in make_service(options, reactor)]


def test_one_process_listens_as_before(greeting_model, shared_endpoints):
    listening = type(strports.service("tcp:0", protocol.Factory()))
    assert tree({"core": greeting_model, "endpoints": shared_endpoints})[-1] is listening


def test_the_first_of_several_processes_starts_the_others_after_its_port(
        greeting_model, shared_endpoints):
    options = {"core": greeting_model, "endpoints": shared_endpoints, "workers": 3,
               "port": free_port()}
    assert tree(options)[-2:] == [ReusePortService, WorkerProcesses]
    assert tree(dict(options, worker_index=2))[-1] is ReusePortService
    assert WorkerProcesses not in tree(dict(options, worker_index=2))


def test_several_processes_on_another_endpoint_are_refused(greeting_model, shared_endpoints):
    with pytest.raises(ValueError):
        tree({"core": greeting_model, "endpoints": shared_endpoints, "workers": 2,
              "listen": "unix:/tmp/coreactors-workers.sock"})


# -- the parent's worker processes (a clock and recorded processes) ----------------------------

class FakeProcess:
    def __init__(self, pid: int, protocol: protocol.ProcessProtocol) -> None:
        self.pid = pid
        self.protocol = protocol
        self.signals: List[str] = []
        self.alive = True

    def signalProcess(self, name: str) -> None:
        if not self.alive:
            raise error.ProcessExitedAlready()
        self.signals.append(name)

    def exit(self, code: int = 0, sig: Optional[int] = None) -> None:
        self.alive = False
        reason = error.ProcessDone(0) if code == 0 and sig is None else \
            error.ProcessTerminated(None if sig else code, sig)
        self.protocol.processExited(Failure(reason))


class ProcessClock(task.Clock):
    """A clock whose spawnProcess records what it was asked to start."""

    def __init__(self) -> None:
        super().__init__()
        self.started: List[Dict[str, Any]] = []
        self.refuse = False

    def spawnProcess(self, protocol: Any, executable: str, args: List[str], env: Any = None,
                     path: Any = None, childFDs: Any = None) -> FakeProcess:
        if self.refuse:
            raise OSError("no more processes")
        process = FakeProcess(1000 + len(self.started), protocol)
        protocol.makeConnection(process)
        self.started.append({"process": process, "executable": executable, "args": args,
                             "env": env, "path": path, "childFDs": childFDs})
        return process

    def last(self, index: int) -> FakeProcess:
        return [s["process"] for s in self.started if s["args"][-1] == str(index)][-1]


def workers(clock: ProcessClock, count: int = 3, **kwargs: Any) -> WorkerProcesses:
    service = WorkerProcesses(count, lambda index: ["worker", "--index", str(index)], clock,
                              cwd="/srv/bot", environ={"KEPT": "yes"}, **kwargs)
    service.startService()
    return service


def fired(deferred: Any) -> bool:
    results: List[Any] = []
    deferred.addBoth(results.append)
    return bool(results)


def test_starts_the_other_workers_writing_to_the_parents_stdout_and_stderr():
    clock = ProcessClock()
    service = workers(clock, 3)
    assert [s["args"] for s in clock.started] == [["worker", "--index", "1"],
                                                  ["worker", "--index", "2"]]
    for started in clock.started:
        assert started["executable"] == "worker"
        assert started["childFDs"] == {0: "w", 1: 1, 2: 2}
        assert started["path"] == "/srv/bot"
        assert started["env"] == {"KEPT": "yes", PARENT_PID_ENV: str(os.getpid())}
    assert service.pids == {1: 1000, 2: 1001}


def test_one_worker_starts_no_process():
    clock = ProcessClock()
    service = workers(clock, 1)
    assert clock.started == [] and fired(service.stopService())


def test_a_worker_that_exits_is_started_again_after_a_doubling_delay():
    clock = ProcessClock()
    service = workers(clock, 2)
    delays = []
    for _ in range(7):
        clock.advance(1)  # dies a second after its start
        clock.last(1).exit(1)
        started = len(clock.started)
        waited = 0.0
        while len(clock.started) == started:
            clock.advance(0.5)
            waited += 0.5
        delays.append(waited)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    clock.advance(60)  # a long life resets the delay
    clock.last(1).exit(0)
    clock.advance(0.5)
    assert len(clock.started) == 8
    clock.advance(0.5)
    assert len(clock.started) == 9
    assert service.pids == {1: clock.last(1).pid}


def test_stop_sends_sigterm_and_waits_for_every_worker():
    clock = ProcessClock()
    service = workers(clock, 3)
    stopped = service.stopService()
    assert [s["process"].signals for s in clock.started] == [["TERM"], ["TERM"]]
    clock.started[0]["process"].exit(sig=signal.SIGTERM)
    assert not fired(stopped)
    clock.started[1]["process"].exit(0)
    assert fired(stopped)
    clock.advance(100)  # no restarts, no SIGKILL
    assert len(clock.started) == 2
    assert [s["process"].signals for s in clock.started] == [["TERM"], ["TERM"]]


def test_stop_kills_a_worker_that_ignores_sigterm_after_the_timeout():
    clock = ProcessClock()
    service = workers(clock, 3, kill_timeout=10)
    stopped = service.stopService()
    obedient, stubborn = (s["process"] for s in clock.started)
    obedient.exit(sig=signal.SIGTERM)
    clock.advance(9.9)
    assert stubborn.signals == ["TERM"] and not fired(stopped)
    clock.advance(0.1)
    assert stubborn.signals == ["TERM", "KILL"]
    stubborn.exit(sig=signal.SIGKILL)
    assert fired(stopped)


def test_stop_cancels_a_pending_restart():
    clock = ProcessClock()
    service = workers(clock, 2)
    clock.started[0]["process"].exit(1)
    assert fired(service.stopService())
    clock.advance(100)
    assert len(clock.started) == 1


def test_a_worker_that_cannot_be_started_is_tried_again():
    clock = ProcessClock()
    clock.refuse = True
    service = workers(clock, 2)
    assert service.pids == {}
    clock.refuse = False
    clock.advance(1)
    assert service.pids == {1: 1000}


def test_starts_exits_and_restarts_are_logged_with_index_and_pid(events):
    clock = ProcessClock()
    service = workers(clock, 2)
    clock.started[0]["process"].exit(sig=signal.SIGKILL)
    clock.advance(1)
    service.stopService()
    clock.started[1]["process"].exit(sig=signal.SIGTERM)
    from twisted.logger import formatEvent
    lines = [formatEvent(e) for e in events if e.get("log_namespace") == "coreactors.workers"]
    assert lines == [
        "Started worker process 1 (pid 1000)",
        "Worker process 1 (pid 1000) exited after 0.0 s: signal 9 (SIGKILL); starting it "
        "again in 1 s",
        "Restarting worker process 1",
        "Started worker process 1 (pid 1001)",
        "Worker process 1 (pid 1001) exited: signal 15 (SIGTERM)",
    ]


# -- real processes and the real reactor (in a process of their own) ---------------------------

SCENARIO = textwrap.dedent("""
    import json, os, sys, time
    from twisted.internet import defer, reactor, task
    from coreactors.workers import WorkerProcesses

    child, folder = sys.argv[1], sys.argv[2]
    service = WorkerProcesses(2, lambda index: [sys.executable, "-c", child, folder],
                              min_delay=0.2, kill_timeout=1.0)
    report = {}

    def seen(pids):
        pid = service.pids.get(1)
        if pid is not None and pid not in pids:
            pids.append(pid)

    @defer.inlineCallbacks
    def run():
        try:
            service.startService()
            report["pids"] = []
            deadline = time.monotonic() + 20
            while not os.path.exists(os.path.join(folder, "ready")):
                assert time.monotonic() < deadline, "the worker never got ready"
                seen(report["pids"])
                yield task.deferLater(reactor, 0.05, lambda: None)
            seen(report["pids"])
            began = time.monotonic()
            yield service.stopService()
            report["stop_seconds"] = time.monotonic() - began
            report["running"] = service.pids
        finally:
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    print(json.dumps(report))
""")

# A worker that exits at once the first time, then stays until SIGTERM (or, told to ignore it,
# until SIGKILL), saying when it is ready.
WORKER = textwrap.dedent("""
    import os, signal, sys, time
    folder = sys.argv[1]
    if not os.path.exists(os.path.join(folder, "first")):
        open(os.path.join(folder, "first"), "w").close()
        sys.exit(3)
    if os.path.exists(os.path.join(folder, "stubborn")):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(os.path.join(folder, "ready"), "w").close()
    time.sleep(60)
""")


def run_scenario(folder: str) -> Dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", SCENARIO, WORKER, folder],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_real_worker_is_restarted_and_stopped_by_sigterm(tmp_path):
    report = run_scenario(str(tmp_path))
    assert len(report["pids"]) == 2 and report["pids"][0] != report["pids"][1]
    assert report["stop_seconds"] < 0.9  # SIGTERM did it, not the SIGKILL after 1 s
    assert report["running"] == {}


def test_a_real_worker_that_ignores_sigterm_is_killed(tmp_path):
    (tmp_path / "stubborn").touch()
    report = run_scenario(str(tmp_path))
    assert 0.9 <= report["stop_seconds"] < 5
    assert report["running"] == {}


# -- a worker's tie to its parent ---------------------------------------------------------------

def test_a_worker_whose_parent_is_gone_exits_at_once():
    check = "from coreactors.workers import die_with_parent; die_with_parent({}); print('on')"
    alive = subprocess.run([sys.executable, "-c", check.format(os.getpid())],
                           capture_output=True, text=True, timeout=30)
    assert alive.returncode == 0 and alive.stdout.strip() == "on"
    gone = subprocess.run([sys.executable, "-c", check.format(os.getpid() + 100000)],
                          capture_output=True, text=True, timeout=30)
    assert gone.returncode == 1 and "is gone" in gone.stderr and gone.stdout == ""


def process_state(pid: int) -> Optional[str]:
    """The state letter of ``pid`` (Z: exited, not yet reaped), None once it is gone."""
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_gets_sigterm_when_its_parent_is_killed(tmp_path):
    ready = str(tmp_path / "ready")
    worker = ("import os, sys, time\nfrom coreactors.workers import die_with_parent\n"
              "die_with_parent(os.getppid())\nopen(sys.argv[1], 'w').close()\ntime.sleep(60)")
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time\n"
         "child = subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]])\n"
         "print(child.pid, flush=True)\ntime.sleep(60)", worker, ready],
        stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 20
        while not os.path.exists(ready):
            assert time.monotonic() < deadline, "the worker never got ready"
            time.sleep(0.05)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while process_state(child) not in (None, "Z"):
            assert time.monotonic() < deadline, "the worker outlived its parent"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


def test_die_with_parent_without_a_parent_pid_only_asks_for_the_signal():
    done = subprocess.run(
        [sys.executable, "-c", "from coreactors.workers import die_with_parent; "
         "die_with_parent(None); print('on')"],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "on"


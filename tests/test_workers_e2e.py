"""End to end: ``--workers 2``, the real server as two processes on one port.

The server (``python -m coreactors.run --workers 2``) keeps its conversations in a Redis of the
test's own, with a lock store on it: what several processes need. Which process serves what is
read from /proc (each process's accepted sockets), so nothing on the wire changes.
"""

import http.client
import json
import os
import signal
import socket
import time
import uuid
from typing import Dict, List, Optional, Set

import pytest

from live_server import (
    GREETING_DOMAIN, GREETING_STORIES, MEMOIZATION_POLICIES, Server, train_bot)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"),
                                reason="reads the server's processes and sockets from /proc")

LISTEN, ESTABLISHED = "0A", "01"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_bot(tmp_path_factory.mktemp("bot"), GREETING_DOMAIN, GREETING_STORIES,
                     MEMOIZATION_POLICIES)


@pytest.fixture(scope="module")
def endpoints(shared_endpoints):
    return shared_endpoints


# -- the server's processes and sockets, from /proc ---------------------------------------------

def parent_of(pid: int) -> Optional[int]:
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def state_of(pid: int) -> Optional[str]:
    """The state letter of ``pid`` (Z: exited, not reaped yet), None once it is gone."""
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def children_of(pid: int) -> List[int]:
    return sorted(int(name) for name in os.listdir("/proc")
                  if name.isdigit() and parent_of(int(name)) == pid
                  and state_of(int(name)) not in (None, "Z"))


def socket_inodes(pid: int) -> Set[str]:
    inodes = set()
    try:
        for fd in os.listdir("/proc/{}/fd".format(pid)):
            try:
                target = os.readlink("/proc/{}/fd/{}".format(pid, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    except OSError:
        pass
    return inodes


def sockets_on(port: int, state: str) -> Set[str]:
    """The inodes of the TCP sockets whose local port is ``port``, in ``state``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                inodes.add(fields[9])
    return inodes


def per_process(pids: List[int], port: int, state: str) -> Dict[int, int]:
    on_port = sockets_on(port, state)
    return {pid: len(socket_inodes(pid) & on_port) for pid in pids}


def wait_for(condition, what: str, timeout: float = 30.0, server: Optional[Server] = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("waited {:g} s for {}{}".format(
        timeout, what, "\n" + server.log() if server is not None else ""))


def both_listening(server: Server) -> List[int]:
    """Waits until the server and exactly one worker listen on the port; their pids."""
    def listening() -> Optional[List[int]]:
        pids = [server.process.pid] + children_of(server.process.pid)
        counts = per_process(pids, server.port, LISTEN)
        return pids if len(pids) == 2 and all(counts.values()) else None
    return wait_for(listening, "two processes listening on the port", server=server)


# -- talking to it ------------------------------------------------------------------------------

def webhook(connection: http.client.HTTPConnection) -> int:
    connection.request("POST", "/webhooks/rest/webhook",
                       json.dumps({"sender": "w-" + uuid.uuid4().hex, "message": "/greet"}),
                       {"Content-Type": "application/json"})
    response = connection.getresponse()
    body = response.read()
    assert response.status == 200, body
    assert json.loads(body)[0]["text"] == "hi"
    return response.status


def served_by(server: Server, pids: List[int], count: int = 40) -> Dict[int, int]:
    """Sends ``count`` webhook turns, each on a fresh connection kept open until all are
    answered; how many of those connections each process holds."""
    connections = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                   for _ in range(count)]
    try:
        for connection in connections:
            webhook(connection)
        return per_process(pids, server.port, ESTABLISHED)
    finally:
        for connection in connections:
            connection.close()


@pytest.fixture
def server(model_dir, endpoints, tmp_path):
    running = Server(str(tmp_path), ["--enable_api", "-d", model_dir, "--endpoints", endpoints,
                                     "--workers", "2"]).start()
    try:
        yield running
    finally:
        workers = children_of(running.process.pid)
        if running.process.poll() is None:
            running.stop()
        for pid in workers:  # a test that failed half way may leave one
            if state_of(pid) not in (None, "Z"):
                os.kill(pid, signal.SIGKILL)


def test_both_processes_listen_and_serve(server):
    pids = both_listening(server)
    held = served_by(server, pids)
    # 40 connections, each given to one of the two sockets by a hash of its addresses: both
    # get some but for a chance of 2 in 2**40.
    assert sum(held.values()) == 40 and all(held.values()), held
    assert "Started worker process 1 (pid {})".format(pids[1]) in server.log()


def test_a_killed_worker_is_started_again_and_requests_keep_being_answered(server):
    parent, worker = both_listening(server)
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: state_of(worker) is None, "the killed worker to be reaped", server=server)
    for _ in range(10):  # the parent alone, meanwhile
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            webhook(connection)
        finally:
            connection.close()
    pids = both_listening(server)
    assert pids[0] == parent and pids[1] != worker
    held = served_by(server, pids)
    assert sum(held.values()) == 40 and all(held.values()), held
    log = server.log()
    assert "Worker process 1 (pid {}) exited".format(worker) in log
    assert "signal 9 (SIGKILL); starting it again in 1 s" in log
    assert "Restarting worker process 1" in log


def test_sigterm_to_the_server_stops_every_process(server):
    parent, worker = both_listening(server)
    began = time.monotonic()
    server.stop(timeout=10)
    assert time.monotonic() - began < 8, server.log()
    assert state_of(worker) is None  # the server waited for it (and reaped it)
    assert "Worker process 1 (pid {}) exited: signal 15 (SIGTERM)".format(worker) in server.log()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def test_the_worker_exits_when_the_server_is_killed(server):
    parent, worker = both_listening(server)
    server.process.kill()
    server.process.wait()
    # PR_SET_PDEATHSIG: SIGTERM, then the worker's own graceful stop. Left to init, it may
    # stay a zombie for a while: exited all the same.
    wait_for(lambda: state_of(worker) in (None, "Z"), "the worker to exit after the server",
             timeout=10, server=server)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()

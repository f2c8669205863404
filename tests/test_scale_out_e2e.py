"""End to end: several server processes on one conversation store, kept apart by the Redis lock
store: turns of one conversation never interleave and keep their arrival order, a process that
dies loses no answered turn and holds nobody up for long, and a process that stalled past its
lease cannot write.

Every process is a real ``coreactors.run`` server; the lock store is a Redis of the test's own,
the tracker store that Redis or the PostgreSQL at 127.0.0.1:5432 (each test runs on both); the
action server is written here.
"""

import http.server
import json
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from live_server import Server, free_port, start_redis, train_bot, write

DOMAIN = """
intents: [echo, stall]
entities: [n]
actions: [action_echo]
"""
# Every message carries an ``n`` (which makes each turn's text its own).
STORIES = """
## echo
* echo{"n": "1"}
    - action_echo

## stall
* stall{"n": "1"}
    - action_echo
"""
POLICIES = """
policies:
  - name: MemoizationPolicy
    max_history: 1
"""
LIFETIME = 1.0  # the lock store's lease lifetime in these tests (seconds)


class _EchoActions(http.server.BaseHTTPRequestHandler):
    """Says back the user's last message, after ``delay`` seconds (``stall`` ones: 2.5 s)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["tracker"]["latest_message"]["text"]
        time.sleep(2.5 if text.startswith("/stall") else self.server.delay)
        data = json.dumps({"events": [], "responses": [{"text": "echo " + text}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def actions():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoActions)
    server.daemon_threads = True
    server.delay = 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_bot(tmp_path_factory.mktemp("echobot"), DOMAIN, STORIES, POLICIES)


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    port = free_port()
    process = start_redis(port, str(tmp_path_factory.mktemp("redis")))
    yield port
    process.kill()
    process.wait()


def endpoints_yml(workdir, redis_port, actions, store=None):
    store = store or "tracker_store:\n  type: redis\n  url: 127.0.0.1\n  port: {}\n".format(
        redis_port)
    return write(os.path.join(workdir, "endpoints.yml"), (
        "action_endpoint:\n  url: http://127.0.0.1:{}/webhook\n  timeout: 10\n{}"
        "lock_store:\n  type: redis\n  url: 127.0.0.1\n  port: {}\n  lifetime: {}\n"
        "  wait_timeout: 20\n").format(actions.server_address[1], store, redis_port,
                                       LIFETIME))


POSTGRES = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=2"
SQL_STORE = ("tracker_store:\n  type: sql\n  dialect: postgresql\n  url: 127.0.0.1\n"
             "  port: 5432\n  db: test\n  username: postgres\n")
# Every sender of this run starts with it (the PostgreSQL store's rows are removed by it).
RUN = "scale-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module", params=["redis", "postgresql"])
def tracker_store(request):
    """The tracker store block the cluster shares: Redis, or the PostgreSQL at 5432."""
    if request.param == "redis":
        yield None
        return
    import psycopg
    try:
        psycopg.connect(POSTGRES).close()
    except psycopg.Error as error:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 ({})".format(str(error).strip()))
    yield SQL_STORE
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        mine = "SELECT id FROM conversations WHERE substring(sender_id for %s) = %s"
        key = (len(RUN.encode()), RUN.encode())
        admin.execute("DELETE FROM events WHERE conversation IN ({})".format(mine), key)
        admin.execute("DELETE FROM conversations WHERE id IN ({})".format(mine), key)


@pytest.fixture
def cluster(model_dir, redis_port, actions, tracker_store, tmp_path):
    """Three server processes on the same stores (a function: some tests kill one)."""
    endpoints = endpoints_yml(str(tmp_path), redis_port, actions, tracker_store)
    servers = []
    for number in range(3):
        workdir = str(tmp_path / "p{}".format(number))
        os.makedirs(workdir)
        servers.append(Server(workdir, ["--enable_api", "-d", model_dir, "--endpoints",
                                        endpoints, "--max_actors", "50"]))
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda s: s.start(), servers))
    actions.delay = 0.0
    yield servers
    for server in servers:
        if server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
            server.stop()


def say(server, sender, text):
    return server.post("/webhooks/rest/webhook", {"sender": sender, "message": text},
                       timeout=60)


def check_turns(events, texts):
    """The conversation holds exactly these user messages, in this order, each followed by its
    own answer: no turn interleaved with another."""
    users = [e["text"] for e in events if e["event"] == "user"]
    assert users == texts
    turn = None
    for event in events:
        if event["event"] == "user":
            assert turn is None or turn == "answered", "a turn began inside another"
            turn = event["text"]
        elif event["event"] == "bot":
            assert event["text"] == "echo " + turn, "another turn's answer"
            turn = "answered"
        elif event["event"] == "action" and event["name"] == "action_echo":
            assert turn not in (None, "answered")


def tracker_events(server, sender):
    response = server.get("/conversations/{}/tracker?include_events=ALL".format(sender))
    assert response.status == 200, response.text
    return response.json()["events"]


def test_200_concurrent_turns_over_three_processes_none_interleaved(cluster, actions):
    actions.delay = 0.002
    sender = RUN + "-shared-" + uuid.uuid4().hex[:6]
    texts = ['/echo{{"n": "{}"}}'.format(n) for n in range(200)]

    def send(number):
        response = say(cluster[number % 3], sender, texts[number])
        return response.status, response.json() if response.status == 200 else response.text

    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(send, range(200)))
    for number, (status, body) in enumerate(answers):
        assert status == 200, body
        assert body == [{"recipient_id": sender, "text": "echo " + texts[number]}]
    events = tracker_events(cluster[0], sender)
    users = [e["text"] for e in events if e["event"] == "user"]
    assert sorted(users) == sorted(texts)
    check_turns(events, users)
    # Every process sees the same conversation.
    assert tracker_events(cluster[2], sender) == events


def test_turns_keep_the_order_in_which_they_reached_the_cluster(cluster, actions):
    # Each turn waits 30 ms for the action server while the next ones arrive, 10 ms apart, at
    # the three processes in turn: most of them wait for the lease held in another process.
    actions.delay = 0.03
    sender = RUN + "-ordered-" + uuid.uuid4().hex[:6]
    texts = ['/echo{{"n": "{}"}}'.format(n) for n in range(45)]
    with ThreadPoolExecutor(45) as pool:
        futures = []
        for number, text in enumerate(texts):
            futures.append(pool.submit(say, cluster[number % 3], sender, text))
            time.sleep(0.01)
        assert all(f.result().status == 200 for f in futures)
    check_turns(tracker_events(cluster[1], sender), texts)


def test_a_process_killed_under_load_loses_no_answered_turn(cluster, actions):
    actions.delay = 0.002
    senders = ["{}-load-{}-{}".format(RUN, n, uuid.uuid4().hex[:6]) for n in range(6)]
    answered = {sender: [] for sender in senders}
    lock = threading.Lock()
    stop = threading.Event()
    after_kill = []

    def client(index):
        sender = senders[index]
        number = 0
        while not stop.is_set():
            server = cluster[(index + number) % 3]
            text = '/echo{{"n": "{}"}}'.format(number)
            number += 1
            try:
                response = say(server, sender, text)
            except OSError:
                continue  # the killed process: not answered
            if response.status == 200:
                with lock:
                    answered[sender].append(text)
                    if killed.is_set() and server is not cluster[1]:
                        after_kill.append(text)

    killed = threading.Event()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(senders))]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    cluster[1].process.kill()
    cluster[1].process.wait()
    killed.set()
    time.sleep(LIFETIME * 3)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert len(after_kill) > 20, "the other processes stopped answering"
    for sender in senders:
        events = tracker_events(cluster[0], sender)
        users = [e["text"] for e in events if e["event"] == "user"]
        # Every answered turn is there, in order; a turn the killed process stored but never
        # answered may be there too.
        assert [t for t in users if t in answered[sender]] == answered[sender]
        check_turns(events, users)


def test_a_process_stalled_past_its_lease_cannot_write(cluster, actions):
    sender = RUN + "-stalled-" + uuid.uuid4().hex[:6]
    stalled, other = cluster[0], cluster[2]
    assert say(stalled, sender, '/echo{"n": "first"}').status == 200
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        response=say(stalled, sender, '/stall{"n": "s"}')))
    thread.start()
    time.sleep(0.5)  # the stalled process holds the lease and waits for the action server
    os.kill(stalled.process.pid, signal.SIGSTOP)
    try:
        time.sleep(LIFETIME * 1.5)  # its lease runs out: nobody renews it
        response = say(other, sender, '/echo{"n": "other"}')
        assert response.status == 200, response.text
    finally:
        os.kill(stalled.process.pid, signal.SIGCONT)
    thread.join(30)
    # It resumes, gets the action server's answer, and its write is refused.
    assert result["response"].status == 503, result["response"].text
    assert "lease" in result["response"].text
    events = tracker_events(stalled, sender)
    check_turns(events, ['/echo{"n": "first"}', '/echo{"n": "other"}'])
    # And it goes on from what the store holds.
    assert say(stalled, sender, '/echo{"n": "after"}').status == 200
    check_turns(tracker_events(other, sender), ['/echo{"n": "first"}', '/echo{"n": "other"}',
                                                '/echo{"n": "after"}'])

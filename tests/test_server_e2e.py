"""End to end: the real server (twistd, the reactor, a port on 127.0.0.1) over real HTTP.

One server process per module (starting one takes a second); tests use distinct sender ids.
"""

import concurrent.futures
import json
import os
import sqlite3
import time

import pytest

from live_server import Server, free_port, train_bot, write

DOMAIN = """
intents:
  - greet
  - goodbye
  - inform
entities:
  - name
slots:
  name:
    type: text
templates:
  utter_greet:
    - text: "hey {name}!"
  utter_goodbye:
    - text: "bye\\n\\nsee you"
  utter_ask_name:
    - text: "what is your name?"
      buttons:
        - title: "Ann"
          payload: '/inform{"name": "Ann"}'
actions:
  - utter_greet
  - utter_goodbye
  - utter_ask_name
"""

STORIES = """
## greet with name
* greet{"name": "Ann"}
    - utter_greet

## greet without name
* greet
    - utter_ask_name
* inform{"name": "Bob"}
    - utter_greet

## goodbye
* goodbye
    - utter_goodbye
"""

POLICIES = """
policies:
  - name: MemoizationPolicy
    max_history: 3
  - name: FallbackPolicy
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_bot(tmp_path_factory.mktemp("bot"), DOMAIN, STORIES, POLICIES,
                     augmentation_factor=20)


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("server"))
    running = Server(workdir, ["--enable_api", "-d", model_dir]).start()
    yield running
    running.stop()


def turn(server, sender, message):
    response = server.post("/webhooks/rest/webhook", {"sender": sender, "message": message})
    assert response.status == 200, response.text
    return response.json()


def test_health_version_status(server):
    assert server.get("/").status == 200
    version = server.get("/version").json()
    assert version["version"] == "0.12.4"
    assert version["minimum_compatible_version"] == "0.12.0"
    status = server.get("/status").json()
    assert status["is_ready"] is True
    assert len(status["model_fingerprint"]) == 32


def test_rest_channel_runs_a_turn(server):
    assert server.get("/webhooks/rest/").json() == {"status": "ok"}
    assert turn(server, "rest-1", '/greet{"name": "Ann"}') == [
        {"recipient_id": "rest-1", "text": "hey Ann!"}]
    assert turn(server, "rest-1", "/goodbye") == [
        {"recipient_id": "rest-1", "text": "bye"}, {"recipient_id": "rest-1", "text": "see you"}]


def test_answers_keep_their_framing_on_one_kept_alive_connection(server):
    # Plain, streamed (chunked) and empty answers, one after another on one connection: each
    # must arrive whole and nothing of one may run into the next.
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for _ in range(2):
            connection.request("POST", "/webhooks/rest/webhook", json.dumps(
                {"sender": "framing", "message": "/goodbye"}),
                {"Content-Type": "application/json"})
            plain = connection.getresponse()
            assert plain.status == 200
            assert json.loads(plain.read()) == [{"recipient_id": "framing", "text": "bye"},
                                                {"recipient_id": "framing", "text": "see you"}]
            connection.request("POST", "/webhooks/rest/webhook?stream=true", json.dumps(
                {"sender": "framing", "message": "/goodbye"}),
                {"Content-Type": "application/json"})
            streamed = connection.getresponse()
            assert streamed.status == 200
            assert streamed.getheader("Transfer-Encoding") == "chunked"
            assert [json.loads(line) for line in streamed.read().splitlines()] == [
                {"recipient_id": "framing", "text": "bye"},
                {"recipient_id": "framing", "text": "see you"}]
            connection.request("OPTIONS", "/version")
            empty = connection.getresponse()
            assert empty.status == 200 and empty.read() == b""
            connection.request("GET", "/nowhere")
            missing = connection.getresponse()
            assert missing.status == 404 and json.loads(missing.read())["code"] == 404
    finally:
        connection.close()


def test_tracker_after_turns(server):
    turn(server, "tracker-1", "/greet")
    turn(server, "tracker-1", '/inform{"name": "Bob"}')
    state = server.get("/conversations/tracker-1/tracker").json()
    assert state["sender_id"] == "tracker-1"
    assert state["slots"] == {"name": "Bob"}
    assert state["latest_input_channel"] == "rest"
    names = [e.get("name") for e in state["events"] if e["event"] == "action"]
    assert names == ["action_listen", "utter_ask_name", "action_listen", "utter_greet",
                     "action_listen"]
    assert server.get("/conversations/tracker-1/tracker?include_events=NONE").json()[
        "events"] is None
    assert "tracker-1" in server.get("/conversations").json()


def test_events_routes_and_bad_event(server):
    response = server.post("/conversations/events-1/tracker/events",
                           {"event": "slot", "name": "name", "value": "Cy"})
    assert response.status == 200
    assert response.json()["slots"]["name"] == "Cy"
    bad = server.post("/conversations/events-1/tracker/events", {"event": "nope"})
    assert bad.status == 400
    body = bad.json()
    assert body["status"] == "failure" and body["code"] == 400 and "nope" in body["message"]
    # The bad request changed nothing.
    assert server.get("/conversations/events-1/tracker").json()["slots"]["name"] == "Cy"
    replaced = server.put("/conversations/events-1/tracker/events",
                          [{"event": "action", "name": "action_listen"}])
    assert replaced.status == 200
    assert replaced.json()["slots"]["name"] is None


def test_predict_execute_story(server):
    server.post("/conversations/p-1/messages", {"text": "/goodbye", "sender": "user"})
    prediction = server.post("/conversations/p-1/predict").json()
    assert prediction["policy"] == "policy_0_MemoizationPolicy"
    best = max(prediction["scores"], key=lambda s: s["score"])
    assert best["action"] == "utter_goodbye"
    executed = server.post("/conversations/p-1/execute", {"name": "utter_goodbye"}).json()
    assert executed["messages"][0]["text"] == "bye"
    story = server.get("/conversations/p-1/story").text
    assert story.startswith("## p-1")
    assert "utter_goodbye" in story


def test_domain_json_and_yaml(server):
    domain = server.get("/domain").json()
    assert "utter_greet" in domain["templates"]
    yml = server.get("/domain", headers={"Accept": "application/x-yml"})
    assert yml.status == 200 and "utter_greet" in yml.text


def test_unknown_route_and_method_get_error_bodies(server):
    missing = server.get("/nothing/here")
    assert missing.status == 404 and missing.json()["code"] == 404
    wrong = server.request("DELETE", "/status")
    assert wrong.status == 405 and wrong.json()["status"] == "failure"


def test_one_conversation_serialises_concurrent_messages(server):
    """100 messages at once to one conversation: 100 complete turns, in order, none lost."""
    sender = "concurrent-1"
    messages = ['/greet{{"name": "n{}"}}'.format(i) for i in range(100)]

    def send(text):
        return turn(server, sender, text)

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        other = pool.submit(lambda: [turn(server, "bystander", "/goodbye") for _ in range(5)])
        replies = list(pool.map(send, messages))
    assert other.result()[0][0]["text"] == "bye"
    # Every turn answered with its own name: nothing interleaved.
    assert [r[0]["text"] for r in replies] == ["hey n{}!".format(i) for i in range(100)] or \
        sorted(r[0]["text"] for r in replies) == sorted("hey n{}!".format(i) for i in range(100))
    events = server.get("/conversations/{}/tracker?include_events=ALL".format(sender)).json()[
        "events"]
    users = [e for e in events if e["event"] == "user"]
    assert len(users) == 100
    # Each user message is followed by its own complete turn before the next message.
    kinds = [(e["event"], e.get("name")) for e in events]
    turn_shape = [("user", None), ("slot", "name"), ("action", "utter_greet"), ("bot", None),
                  ("action", "action_listen")]
    assert kinds[1:] == turn_shape * 100
    slots = [e["value"] for e in events if e["event"] == "slot"]
    assert sorted(slots) == sorted("n{}".format(i) for i in range(100))


def test_restart_continues_from_sqlite(model_dir, tmp_path):
    first = Server(str(tmp_path), ["--enable_api", "-d", model_dir]).start()
    try:
        turn(first, "durable", "/greet")
    finally:
        assert first.stop() in (0, -15)
    db = sqlite3.connect(os.path.join(str(tmp_path), "coreactors.db"))
    assert db.execute("select count(*) from sqlite_master").fetchone()[0] > 0
    db.close()
    second = Server(str(tmp_path), ["--enable_api", "-d", model_dir]).start()
    try:
        assert turn(second, "durable", '/inform{"name": "Dee"}') == [
            {"recipient_id": "durable", "text": "hey Dee!"}]
    finally:
        second.stop()


def test_a_failing_store_answers_503_and_the_conversation_goes_on(model_dir, tmp_path):
    server = Server(str(tmp_path), ["--enable_api", "-d", model_dir]).start()
    db = sqlite3.connect(os.path.join(str(tmp_path), "coreactors.db"))
    try:
        turn(server, "fragile", "/greet")
        turn(server, "sturdy", "/greet")
        # SQLite itself refuses this conversation's next turn: a real write failure.
        db.execute("CREATE TRIGGER refuse_boom BEFORE INSERT ON events "
                   "WHEN NEW.data LIKE '%boom%' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
        db.commit()
        refused = server.post("/webhooks/rest/webhook",
                              {"sender": "fragile", "message": '/inform{"name": "boom"}'})
        assert refused.status == 503, refused.text
        assert refused.json()["reason"] == "StoreUnavailable"
        assert "disk on fire" in refused.json()["message"]
        assert turn(server, "sturdy", '/inform{"name": "Sam"}')[0]["text"] == "hey Sam!"
        # The refused turn is not in the conversation, which goes on from what was stored.
        state = server.get("/conversations/fragile/tracker").json()
        assert "boom" not in json.dumps(state) and state["slots"]["name"] is None
        db.execute("DROP TRIGGER refuse_boom")
        db.commit()
        assert turn(server, "fragile", '/inform{"name": "Fay"}')[0]["text"] == "hey Fay!"
        events = server.get("/conversations/fragile/tracker?include_events=ALL").json()[
            "events"]
        assert [e["text"] for e in events if e["event"] == "user"] == [
            "/greet", '/inform{"name": "Fay"}']
    finally:
        db.close()
        server.stop()


def test_passivated_conversation_comes_back(model_dir, tmp_path):
    server = Server(str(tmp_path), ["--enable_api", "-d", model_dir, "--idle_timeout", "0.2",
                                    "--max_actors", "2"]).start()
    try:
        turn(server, "passive", "/greet")
        for i in range(4):  # more conversations than the cap: "passive" is stopped
            turn(server, "filler-{}".format(i), "/goodbye")
        time.sleep(0.6)
        assert turn(server, "passive", '/inform{"name": "Eve"}')[0]["text"] == "hey Eve!"
        state = server.get("/conversations/passive/tracker").json()
        assert state["slots"]["name"] == "Eve"
    finally:
        server.stop()


def test_sigterm_stops_quickly(model_dir, tmp_path):
    server = Server(str(tmp_path), ["--enable_api", "-d", model_dir]).start()
    turn(server, "bye", "/goodbye")
    started = time.time()
    # twistd re-raises SIGTERM after a clean shutdown, so the exit status says "terminated".
    assert server.stop() in (0, -15)
    assert time.time() - started < 5.0
    log = server.log()
    assert "Stopped every conversation actor." in log
    assert "Server Shut Down." in log



@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="cannot pin threads here")
def test_cpus_keeps_every_thread_of_the_server_on_them(model_dir, tmp_path):
    cpu = max(os.sched_getaffinity(0))
    server = Server(str(tmp_path), ["-d", model_dir, "--cpus", str(cpu)]).start()
    try:
        assert turn(server, "pinned", "/goodbye")
        tasks = "/proc/{}/task".format(server.process.pid)
        allowed = {tid: os.sched_getaffinity(int(tid)) for tid in os.listdir(tasks)}
        # The reactor, the actor workers, the store's writer and its checkpointer at least.
        assert len(allowed) >= 4
        assert set(map(frozenset, allowed.values())) == {frozenset({cpu})}
    finally:
        server.stop()
    refused = Server(str(tmp_path), ["-d", model_dir, "--cpus", "4096"])
    with pytest.raises(RuntimeError, match="--cpus: CPU 4096 is not available"):
        refused.start()


SOCKET_ACTIVATION = """
import os, socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(16)
os.dup2(listener.fileno(), 3)
os.set_inheritable(3, True)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="coreactors")
os.execv(sys.executable, [sys.executable, "-m", "coreactors.run"] + sys.argv[2:])
"""


def test_systemd_socket_activation(model_dir, tmp_path):
    """--listen systemd:... serves on a socket handed over the way systemd does (fd 3)."""
    import subprocess
    import sys
    import urllib.request
    port = free_port()
    log = open(str(tmp_path / "server.log"), "wb")
    process = subprocess.Popen(
        [sys.executable, "-c", SOCKET_ACTIVATION, str(port), "--enable_api", "-d", model_dir,
         "--listen", "systemd:domain=INET:name=coreactors"], cwd=str(tmp_path),
        stdout=log, stderr=subprocess.STDOUT,
        env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache")))
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:{}/status".format(port),
                                            timeout=2) as response:
                    assert json.loads(response.read())["is_ready"] is True
                    break
            except OSError:
                if time.time() > deadline or process.poll() is not None:
                    raise AssertionError(open(str(tmp_path / "server.log")).read())
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_model_level_routes(server):
    events = [{"event": "action", "name": "action_listen"},
              {"event": "user", "text": "/goodbye",
               "parse_data": {"intent": {"name": "goodbye", "confidence": 1.0},
                              "entities": []}}]
    predicted = server.post("/predict", events)
    assert predicted.status == 200
    body = predicted.json()
    assert set(body) == {"scores", "policy", "tracker"}
    assert max(body["scores"], key=lambda s: s["score"])["action"] == "utter_goodbye"
    assert server.post("/predict", [{"event": "nope"}]).status == 400

    evaluation = server.request("POST", "/evaluate", raw=STORIES.encode())
    assert evaluation.status == 200
    result = evaluation.json()
    assert result["accuracy"] == 1.0 and result["is_end_to_end_evaluation"] is False
    assert {a["action"] for a in result["actions"]} >= {"utter_greet", "utter_goodbye"}
    bad = server.request("POST", "/evaluate", raw=b"a line before any story name\n")
    assert bad.status == 400 and bad.json()["reason"] == "FailedEvaluation"

    before = server.get("/status").json()["model_fingerprint"]
    finetuned = server.post("/finetune", events + [
        {"event": "action", "name": "utter_goodbye"},
        {"event": "action", "name": "action_listen"}])
    assert finetuned.status in (200, 204)
    assert server.get("/status").json()["model_fingerprint"] != before


def test_respond_route(server):
    response = server.get("/conversations/respond-1/respond?query=%2Fgoodbye")
    assert response.status == 200
    assert [m["text"] for m in response.json()] == ["bye", "see you"]


def test_callback_channel(model_dir, tmp_path):
    import http.server
    import threading
    received = []

    class Capture(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    capture = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=capture.serve_forever, daemon=True).start()
    credentials = write(str(tmp_path / "credentials.yml"),
                        "callback:\n  url: http://127.0.0.1:{}/bot\n".format(
                            capture.server_address[1]))
    server = Server(str(tmp_path), ["-d", model_dir, "--credentials", credentials]).start()
    try:
        answer = server.post("/webhooks/callback/webhook",
                             {"sender": "cb-user", "message": "/goodbye"})
        assert answer.status == 200 and answer.text == "success"
        deadline = time.time() + 10
        while len(received) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert received == [{"recipient_id": "cb-user", "text": "bye"},
                            {"recipient_id": "cb-user", "text": "see you"}]
        # Without --enable_api the API routes are not served.
        assert server.get("/status").status == 404
    finally:
        server.stop()
        capture.shutdown()


def test_a_server_on_redis_continues_after_a_restart_and_answers_503_while_redis_is_down(
        model_dir, tmp_path):
    """tracker_store: type: redis, on a Redis of the test's own: the conversation survives a
    restart of the server; with Redis stopped turns answer 503 StoreUnavailable; with Redis
    back (empty: it keeps nothing on disk) the server serves again by itself."""
    from live_server import start_redis
    port = free_port()
    endpoints = os.path.join(str(tmp_path), "endpoints.yml")
    with open(endpoints, "w") as f:
        f.write("tracker_store:\n  store_type: redis\n  url: 127.0.0.1\n  port: {}\n"
                .format(port))
    store = start_redis(port, str(tmp_path))
    args = ["--enable_api", "-d", model_dir, "--endpoints", endpoints]
    try:
        first = Server(str(tmp_path), args).start()
        try:
            turn(first, "kept", "/greet")
        finally:
            first.stop()
        assert not os.path.exists(os.path.join(str(tmp_path), "coreactors.db"))
        second = Server(str(tmp_path), args).start()
        try:
            assert turn(second, "kept", '/inform{"name": "Dee"}') == [
                {"recipient_id": "kept", "text": "hey Dee!"}]
            store.terminate()
            store.wait(10)
            refused = second.post("/webhooks/rest/webhook",
                                  {"sender": "other", "message": "/greet"})
            assert refused.status == 503, refused.text
            assert refused.json()["reason"] == "StoreUnavailable"
            assert "Redis at 127.0.0.1" in refused.json()["message"]
            store = start_redis(port, str(tmp_path))
            assert turn(second, "other", "/greet")[0]["text"]
        finally:
            second.stop()
    finally:
        store.kill()
        store.wait()


def test_a_server_on_postgresql_continues_after_a_restart(model_dir, tmp_path):
    """tracker_store: type: sql, dialect: postgresql, on the PostgreSQL at 127.0.0.1:5432."""
    import uuid

    import psycopg
    admin_info = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=2"
    try:
        psycopg.connect(admin_info).close()
    except psycopg.Error as error:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 ({})".format(str(error).strip()))
    sender = "e2e-{}".format(uuid.uuid4().hex)
    endpoints = os.path.join(str(tmp_path), "endpoints.yml")
    with open(endpoints, "w") as f:
        f.write("tracker_store:\n  type: sql\n  dialect: postgresql\n  url: 127.0.0.1\n"
                "  port: 5432\n  db: test\n  username: postgres\n")
    args = ["--enable_api", "-d", model_dir, "--endpoints", endpoints]
    try:
        first = Server(str(tmp_path), args).start()
        try:
            turn(first, sender, "/greet")
        finally:
            first.stop()
        assert not os.path.exists(os.path.join(str(tmp_path), "coreactors.db"))
        second = Server(str(tmp_path), args).start()
        try:
            assert turn(second, sender, '/inform{"name": "Dee"}') == [
                {"recipient_id": sender, "text": "hey Dee!"}]
            assert sender in second.get("/conversations").json()
        finally:
            second.stop()
    finally:
        with psycopg.connect(admin_info, autocommit=True) as admin:
            admin.execute("DELETE FROM events WHERE conversation IN (SELECT id FROM "
                          "conversations WHERE sender_id = %s)", (sender.encode(),))
            admin.execute("DELETE FROM conversations WHERE sender_id = %s", (sender.encode(),))

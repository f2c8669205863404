"""End to end: custom actions on an action server, through the real coreactors server.

One action server is a test double written here (stdlib HTTP server, recording requests); the
other is the real ``rasa-sdk`` action server running actions written in this test.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from live_server import Server, free_port, train_bot, write

DOMAIN = """
intents:
  - greet
  - hello
  - fail
  - slow
  - reject
slots:
  name:
    type: text
templates:
  utter_greet:
    - text: "hey {name}!"
  utter_done:
    - text: "done"
actions:
  - utter_greet
  - utter_done
  - action_hello
  - action_fail
  - action_slow
  - action_reject
"""

STORIES = """
## hello
* hello
    - action_hello
    - slot{"name": "Ada"}
    - utter_done

## fail
* fail
    - action_fail
    - utter_done

## slow
* slow
    - action_slow
    - utter_done

## reject
* reject
    - action_reject
    - utter_done
"""

POLICIES = """
policies:
  - name: MemoizationPolicy
    max_history: 3
"""


class _DoubleHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "body": body})
        action = body["next_action"]
        if action == "action_hello":
            self._answer(200, {"events": [{"event": "slot", "name": "name", "value": "Ada"}],
                               "responses": [{"text": "hello from the action server"},
                                             {"template": "utter_greet"}]})
        elif action == "action_fail":
            self._answer(500, {"error": "boom"})
        elif action == "action_slow":
            time.sleep(3)
            self._answer(200, {"events": [], "responses": []})
        elif action == "action_reject":
            self._answer(400, {"action_name": "action_reject", "error": "no"})

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_bot(tmp_path_factory.mktemp("actionbot"), DOMAIN, STORIES, POLICIES)


@pytest.fixture(scope="module")
def double():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DoubleHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def server(model_dir, double, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("actionserver"))
    endpoints = write(os.path.join(workdir, "endpoints.yml"), (
        "action_endpoint:\n  url: http://127.0.0.1:{}/webhook\n  timeout: 1\n"
        "tracker_store:\n  type: memory\n").format(double.server_address[1]))
    running = Server(workdir, ["--enable_api", "-d", model_dir,
                               "--endpoints", endpoints]).start()
    yield running
    running.stop()


def turn(server, sender, message):
    response = server.post("/webhooks/rest/webhook", {"sender": sender, "message": message})
    assert response.status == 200, response.text
    return response.json()


def actions_of(server, sender):
    events = server.get("/conversations/{}/tracker?include_events=ALL".format(sender)).json()[
        "events"]
    return [(e["event"], e.get("name")) for e in events
            if e["event"] in ("action", "action_execution_rejected", "slot")]


def test_action_server_events_and_messages(server, double):
    messages = turn(server, "act-1", "/hello")
    assert [m["text"] for m in messages] == ["hello from the action server", "hey None!",
                                             "done"]
    request = double.requests[-1]
    assert request["path"] == "/webhook"
    body = request["body"]
    assert set(body) == {"next_action", "sender_id", "tracker", "domain", "version"}
    assert body["next_action"] == "action_hello" and body["sender_id"] == "act-1"
    assert body["tracker"]["latest_message"]["intent"]["name"] == "hello"
    assert "action_hello" in body["domain"]["actions"]
    state = server.get("/conversations/act-1/tracker").json()
    assert state["slots"]["name"] == "Ada"
    assert actions_of(server, "act-1") == [
        ("action", "action_listen"), ("action", "action_hello"), ("slot", "name"),
        ("action", "utter_done"), ("action", "action_listen")]


def test_failing_action_server_still_answers(server):
    assert [m["text"] for m in turn(server, "act-2", "/fail")] == ["done"]
    assert ("action", "action_fail") in actions_of(server, "act-2")


def test_slow_action_server_times_out_and_the_turn_answers(server):
    started = time.time()
    assert [m["text"] for m in turn(server, "act-3", "/slow")] == ["done"]
    assert time.time() - started < 2.9


def test_a_conversation_waiting_for_the_action_server_holds_up_no_other(server):
    # Conversation actors share a few worker threads: one waiting for the action server (up
    # to its 1 s timeout here) must not keep the others from being served meanwhile.
    slow = {}

    def slow_turn():
        slow["messages"] = turn(server, "act-wait", "/slow")
        slow["answered"] = time.monotonic()
    waiting = threading.Thread(target=slow_turn)
    waiting.start()
    time.sleep(0.3)
    answered = []
    for i in range(5):
        turn(server, "act-other-{}".format(i), "/greet")
        answered.append(time.monotonic())
    waiting.join(10)
    assert [m["text"] for m in slow["messages"]] == ["done"]
    assert answered[-1] < slow["answered"]


def test_rejection_is_logged(server):
    turn(server, "act-4", "/reject")
    assert ("action_execution_rejected", "action_reject") in actions_of(server, "act-4")


def test_unreachable_action_server(model_dir, tmp_path):
    endpoints = write(str(tmp_path / "endpoints.yml"), (
        "action_endpoint:\n  url: http://127.0.0.1:{}/webhook\n"
        "tracker_store:\n  type: memory\n").format(free_port()))
    server = Server(str(tmp_path), ["--enable_api", "-d", model_dir,
                                    "--endpoints", endpoints]).start()
    try:
        assert [m["text"] for m in turn(server, "act-5", "/fail")] == ["done"]
    finally:
        server.stop()


SDK_ACTIONS = '''
from rasa_sdk import Action
from rasa_sdk.events import SlotSet


class ActionHello(Action):
    def name(self):
        return "action_hello"

    def run(self, dispatcher, tracker, domain):
        intent = tracker.latest_message["intent"]["name"]
        dispatcher.utter_message(text="sdk saw {} from {}".format(intent, tracker.sender_id))
        dispatcher.utter_message(response="utter_greet")
        return [SlotSet("name", "Sdk")]
'''


def test_real_rasa_sdk_action_server(model_dir, tmp_path):
    pytest.importorskip("rasa_sdk", reason="the rasa-sdk test dependency is not installed")
    write(str(tmp_path / "sdk_actions.py"), SDK_ACTIONS)
    port = free_port()
    sdk = subprocess.Popen([sys.executable, "-m", "rasa_sdk", "--actions", "sdk_actions",
                            "-p", str(port)], cwd=str(tmp_path),
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:{}/health".format(port),
                                            timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.time() > deadline or sdk.poll() is not None:
                    pytest.fail("the rasa-sdk action server did not start")
                time.sleep(0.2)
        endpoints = write(str(tmp_path / "endpoints.yml"), (
            "action_endpoint:\n  url: http://127.0.0.1:{}/webhook\n"
            "tracker_store:\n  type: memory\n").format(port))
        server = Server(str(tmp_path), ["--enable_api", "-d", model_dir,
                                        "--endpoints", endpoints]).start()
        try:
            messages = turn(server, "sdk-user", "/hello")
            texts = [m.get("text") for m in messages]
            assert texts[0] == "sdk saw hello from sdk-user"
            assert texts[-1] == "done"
            state = server.get("/conversations/sdk-user/tracker").json()
            assert state["slots"]["name"] == "Sdk"
        finally:
            server.stop()
    finally:
        sdk.terminate()
        sdk.wait(10)

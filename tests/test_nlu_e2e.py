"""End to end: NLU in the running server (the real twistd process on 127.0.0.1).

The local model through ``-u`` and bundled in the model folder, the embedded default bot's NLU,
``POST /parse``, and the HTTP interpreter against a real NLU server run by the test (the standard
library's HTTP server in a thread), including that server being down.
"""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from live_server import Server, free_port, multipart, train_bot, write

DOMAIN = """
intents: [greet, goodbye, inform]
entities: [name]
slots:
  name: {type: text}
templates:
  utter_greet: ["Hello there!"]
  utter_greet_name: ["Hello {name}!"]
  utter_goodbye: ["Goodbye!"]
  utter_default: ["Sorry, I did not understand."]
actions: [utter_greet, utter_greet_name, utter_goodbye, utter_default]
"""

STORIES = """
## greet
* greet
    - utter_greet

## inform
* inform{"name": "Ann"}
    - utter_greet_name

## goodbye
* goodbye
    - utter_goodbye
"""

POLICIES = """
policies:
  - name: MemoizationPolicy
    max_history: 2
  - name: FallbackPolicy
    nlu_threshold: 0.3
    core_threshold: 0.3
    fallback_action_name: utter_default
"""

NLU = """
## intent:greet
- hello
- hi
- hey there
- good morning

## intent:goodbye
- bye
- see you later
- good night

## intent:inform
- my name is [Ann](name)
- I am [Bob](name)
- call me [Carla](name)
- [Dan](name) is my name
"""


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    from coreactors.training.nlu import train_nlu_model
    root = tmp_path_factory.mktemp("nlubot")
    train_bot(root, DOMAIN, STORIES, POLICIES, model="dialogue")
    train_nlu_model(write(str(root / "nlu.md"), NLU), None, str(root / "nlu"),
                    fixed_model_name="current")
    return root


@pytest.fixture(scope="module")
def server(bot, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("server"))
    running = Server(workdir, ["--enable_api", "-d", str(bot / "dialogue"),
                               "-u", str(bot / "nlu" / "current")]).start()
    yield running
    running.stop()


def say(server, sender, message):
    response = server.post("/webhooks/rest/webhook", {"sender": sender, "message": message})
    assert response.status == 200, response.text
    return [m.get("text") for m in response.json()]


def test_plain_text_is_understood_with_dash_u(server):
    assert say(server, "u0", "hello") == ["Hello there!"]
    assert say(server, "u1", "my name is Ann") == ["Hello Ann!"]
    tracker = server.get("/conversations/u1/tracker").json()
    latest = tracker["latest_message"]
    assert latest["intent"]["name"] == "inform"
    assert 0.3 < latest["intent"]["confidence"] < 1.0  # the model's, not the shorthand's 1.0
    assert latest["entities"][0]["extractor"] == "ner_crf"
    assert tracker["slots"]["name"] == "Ann"


def test_intent_shorthand_still_goes_to_the_regex_interpreter(server):
    assert say(server, "u2", "/goodbye") == ["Goodbye!"]
    latest = server.get("/conversations/u2/tracker").json()["latest_message"]
    assert latest["intent"] == {"name": "goodbye", "confidence": 1.0}


def test_parse_route_touches_no_conversation(server):
    before = server.get("/conversations").json()
    response = server.post("/parse", {"q": "good night"})
    assert response.status == 200
    parsed = response.json()
    assert parsed["text"] == "good night"
    assert parsed["intent"]["name"] == "goodbye"
    assert [r["name"] for r in parsed["intent_ranking"]][0] == "goodbye"
    assert parsed["entities"] == []
    entity = server.post("/parse", {"q": "call me Zoe"}).json()["entities"][0]
    assert {k: entity[k] for k in ("entity", "value", "start", "end")} == {
        "entity": "name", "value": "Zoe", "start": 8, "end": 11}
    assert server.post("/parse", {"q": "/greet"}).json()["intent"]["confidence"] == 1.0
    assert server.get("/conversations").json() == before
    assert server.post("/parse", {"text": 1}).status == 400


def test_a_model_folder_with_its_own_nlu(bot, tmp_path):
    import shutil
    model = tmp_path / "bundled"
    shutil.copytree(str(bot / "dialogue"), str(model))
    shutil.copytree(str(bot / "nlu" / "current"), str(model / "nlu"))
    running = Server(str(tmp_path), ["-d", str(model)]).start()
    try:
        assert say(running, "b1", "hey there") == ["Hello there!"]
    finally:
        running.stop()


def test_a_posted_model_zip_brings_its_nlu_and_swaps_with_it(bot, tmp_path):
    import shutil
    from coreactors.model import zip_model
    model = tmp_path / "bundled"
    shutil.copytree(str(bot / "dialogue"), str(model))
    shutil.copytree(str(bot / "nlu" / "current"), str(model / "nlu"))
    running = Server(str(tmp_path), ["--enable_api", "-d", str(bot / "dialogue")]).start()
    try:
        # Without NLU, "hello" is read as the shorthand for an intent the bot does not know.
        assert say(running, "z1", "hello") == ["Sorry, I did not understand."]
        before = running.get("/status").json()["model_fingerprint"]
        body, headers = multipart({"model": zip_model(str(model))})
        assert running.request("POST", "/model", raw=body, headers=headers).status == 204
        assert running.get("/status").json()["model_fingerprint"] != before
        assert say(running, "z2", "hello") == ["Hello there!"]
        assert running.post("/parse", {"q": "good night"}).json()["intent"]["name"] == "goodbye"
    finally:
        running.stop()


def test_the_default_bot_understands_plain_text(tmp_path):
    running = Server(str(tmp_path), ["--enable_api"]).start()
    try:
        greeting = say(running, "d1", "hello")
        assert greeting[0].startswith("Hello! Welcome to the coffee counter")
        assert say(running, "d1", "a large latte please") == ["A large latte, is that right?"]
        assert running.post("/parse", {"q": "a big espresso"}).json()["entities"][0][
            "value"] == "large"
    finally:
        running.stop()


# --------------------------------------------------------------------------- NLU server


class NLUServer:
    """A Rasa-NLU-protocol server answering from a table; records every query."""

    def __init__(self, answers):
        self.answers = answers
        self.queries = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                owner.queries.append((url.path, query))
                intent, confidence = owner.answers.get(query.get("q"), ("greet", 0.9))
                body = json.dumps({
                    "text": query.get("q"), "project": query.get("project"),
                    "model": query.get("model"),
                    "intent": {"name": intent, "confidence": confidence},
                    "intent_ranking": [{"name": intent, "confidence": confidence}],
                    "entities": []}).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:{}".format(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_interpreter_against_a_real_nlu_server(bot, tmp_path):
    nlu = NLUServer({"hiya": ("greet", 0.95), "mumble": ("greet", 0.1),
                     "cheerio": ("goodbye", 0.8)})
    endpoints = write(str(tmp_path / "endpoints.yml"),
                      "nlu:\n  url: {}\n  token: nlusecret\n".format(nlu.url))
    running = Server(str(tmp_path), ["--enable_api", "-d", str(bot / "dialogue"),
                                     "--endpoints", endpoints, "-u", "bots/current"]).start()
    try:
        assert say(running, "h1", "hiya") == ["Hello there!"]
        assert nlu.queries[-1] == ("/parse", {"q": "hiya", "project": "bots",
                                              "model": "current", "token": "nlusecret"})
        # The FallbackPolicy sees the NLU server's confidence (0.1 < nlu_threshold 0.3).
        assert say(running, "h1", "mumble") == ["Sorry, I did not understand."]
        assert running.post("/parse", {"q": "cheerio"}).json()["intent"] == {
            "name": "goodbye", "confidence": 0.8}
        # The NLU server goes away: turns still answer, with no intent understood.
        nlu.stop()
        assert say(running, "h2", "hiya") == ["Sorry, I did not understand."]
        latest = running.get("/conversations/h2/tracker").json()["latest_message"]
        assert latest["intent"]["name"] is None
        assert latest["text"] == "hiya"
        assert running.post("/parse", {"q": "hiya"}).json()["intent"]["name"] is None
        assert say(running, "h3", "/goodbye") == ["Goodbye!"]
    finally:
        running.stop()
        nlu.stop()


def test_an_nlu_server_that_never_existed(bot, tmp_path):
    endpoints = write(str(tmp_path / "endpoints.yml"),
                      "nlu:\n  url: http://127.0.0.1:{}\n".format(free_port()))
    running = Server(str(tmp_path), ["-d", str(bot / "dialogue"),
                                     "--endpoints", endpoints]).start()
    try:
        assert say(running, "n1", "hello") == ["Sorry, I did not understand."]
        assert "NLU server could not be reached" in running.log()
    finally:
        running.stop()


def test_a_missing_nlu_model_stops_the_start(bot, tmp_path):
    running = Server(str(tmp_path), ["-d", str(bot / "dialogue"), "-u", str(tmp_path / "nope")])
    with pytest.raises(RuntimeError) as info:
        running.start(timeout=20)
    assert "nope" in str(info.value)

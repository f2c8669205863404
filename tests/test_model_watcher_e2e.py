"""End to end: pulling models from a model server, hot swaps under load, and POST /model.

The model server is the Klein app below, run as its own process (``python <this file> serve
PORT``) so that it can go away and come back; tests steer it over HTTP (``POST /control`` says
what ``GET /models/current`` answers next) and read back every request it got, with its
``If-None-Match``. The coreactors server is the real one (``live_server``). Two bots, A and B,
are trained here; every reply names the bot that computed it ("A hello", "B hello"), and only B
has the slot ``colour``.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from typing import Any, Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_PATH = "/models/current"
TOKEN = "s3cret"


# --------------------------------------------------------------------------- the model server


def serve_model_server(port: int) -> None:
    """Runs the test model server on 127.0.0.1:port until terminated (a separate process)."""
    from klein import Klein
    from twisted.internet import reactor
    from twisted.internet.task import deferLater
    from twisted.web.server import Site

    class ModelServer:
        app = Klein()

        def __init__(self) -> None:
            self.behaviour: Dict[str, Any] = {"kind": "status", "status": 404}
            self.requests: List[Dict[str, Any]] = []

        @app.route(MODEL_PATH, methods=["GET"])
        def model(self, request):
            sent = request.getHeader(b"if-none-match")
            sent = sent.decode() if sent is not None else None
            token = request.args.get(b"token", [b""])[0].decode()
            self.requests.append({"if_none_match": sent, "token": token, "time": time.time()})
            b = self.behaviour
            kind = b["kind"]
            if b.get("etag") and (kind != "zip" or b.get("send_etag", True)):
                request.setHeader(b"ETag", b["etag"].encode())
            if kind == "status":
                request.setResponseCode(b["status"])
                return b"" if b["status"] in (204, 304) else b"the model server says no"
            if kind == "slow":
                return deferLater(reactor, b["seconds"], lambda: b"too late")
            # kind == "zip": a 304 when the client has this ETag already, as a model server does
            if b.get("etag") and sent == b["etag"]:
                request.setResponseCode(304)
                return b""
            request.setHeader(b"Content-Type", b"application/zip")
            with open(b["path"], "rb") as f:
                data = f.read()
            if b.get("length"):  # otherwise Klein streams it (chunked, length unknown)
                request.setHeader(b"Content-Length", str(len(data)).encode())
            return data

        @app.route("/control", methods=["POST"])
        def control(self, request):
            self.behaviour = json.loads(request.content.read())
            return b"{}"

        @app.route("/requests", methods=["GET"])
        def recorded(self, request):
            return json.dumps(self.requests).encode()

    reactor.listenTCP(port, Site(ModelServer().app.resource()), interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve_model_server(int(sys.argv[2]))
    sys.exit(0)


import pytest  # noqa: E402  (the model server process above needs none of this)

from live_server import Server, free_port, multipart, write  # noqa: E402


class ModelServerProcess:
    """The model server above, in its own process; ``stop`` and ``start`` keep the port."""

    def __init__(self, port: Optional[int] = None) -> None:
        self.port = port or free_port()
        self.url = "http://127.0.0.1:{}".format(self.port)
        self.process: Optional[subprocess.Popen] = None

    def start(self, **behaviour: Any) -> "ModelServerProcess":
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve",
                                         str(self.port)], cwd=HERE)
        deadline = time.time() + 20
        while True:
            try:
                self.requests()
                break
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the model server did not start")
                time.sleep(0.05)
        if behaviour:
            self.set(**behaviour)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _call(self, method: str, path: str, body: Optional[bytes] = None) -> bytes:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request(method, path, body=body)
            return connection.getresponse().read()
        finally:
            connection.close()

    def set(self, **behaviour: Any) -> None:
        self._call("POST", "/control", json.dumps(behaviour).encode())

    def requests(self) -> List[Dict[str, Any]]:
        return json.loads(self._call("GET", "/requests"))


# --------------------------------------------------------------------------- the bots

DOMAIN = """
intents:
  - greet
  - bye
{slots}
templates:
  utter_hello:
    - text: "{bot} hello"
  utter_more:
    - text: "{bot} more"
  utter_bye:
    - text: "{bot} bye"
actions:
  - utter_hello
  - utter_more
  - utter_bye
"""

STORIES = """
## greet
* greet
    - utter_hello
    - utter_more

## bye
* bye
    - utter_bye
"""

POLICIES = """
policies:
  - name: MemoizationPolicy
    max_history: 2
"""

A_TURN = ["A hello", "A more"]
B_TURN = ["B hello", "B more"]


def train_bot(root: str, bot: str, slots: str = "") -> str:
    from coreactors.training.train import train_dialogue_model
    folder = os.path.join(root, bot)
    os.makedirs(folder, exist_ok=True)
    domain = write(os.path.join(folder, "domain.yml"), DOMAIN.format(bot=bot, slots=slots))
    train_dialogue_model(domain, write(os.path.join(folder, "stories.md"), STORIES),
                         os.path.join(folder, "model"),
                         write(os.path.join(folder, "policies.yml"), POLICIES),
                         augmentation_factor=20)
    return os.path.join(folder, "model")


def zip_entries(path: str, entries: Dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def model_files(model: str, prefix: str = "") -> Dict[str, bytes]:
    files = {}
    for root, _, names in os.walk(model):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                files[prefix + os.path.relpath(full, model).replace(os.sep, "/")] = f.read()
    return files


class Bots:
    def __init__(self, root: str) -> None:
        from coreactors.model import fingerprint_of, zip_model
        self.a = train_bot(root, "A")
        self.b = train_bot(root, "B", "slots:\n  colour:\n    type: unfeaturized")
        self.fingerprint_a = fingerprint_of(self.a)
        self.fingerprint_b = fingerprint_of(self.b)
        self.zip_a = os.path.join(root, "a.zip")
        with open(self.zip_a, "wb") as f:
            f.write(zip_model(self.a))
        # B wrapped in one top folder: the other layout model servers use.
        self.zip_b = zip_entries(os.path.join(root, "b.zip"), model_files(self.b, "model_b/"))
        with open(self.zip_a, "rb") as f:
            data = f.read()
        self.corrupt = os.path.join(root, "corrupt.zip")
        with open(self.corrupt, "wb") as f:
            f.write(data[:len(data) // 2])
        self.escaped_name = "escaped-{}.txt".format(uuid.uuid4().hex)
        escaping = model_files(self.a)
        escaping["../" + self.escaped_name] = b"should never be written"
        self.escaping = zip_entries(os.path.join(root, "escaping.zip"), escaping)
        # A domain that no longer matches the trained feature layout (domain.json).
        incompatible = model_files(self.a)
        incompatible["domain.yml"] = incompatible["domain.yml"].replace(
            b"- greet", b"- greet\n- shout", 1)
        self.incompatible = zip_entries(os.path.join(root, "incompatible.zip"), incompatible)
        self.not_a_model = zip_entries(os.path.join(root, "readme.zip"),
                                       {"README.md": b"no model in here"})


@pytest.fixture(scope="module")
def bots(tmp_path_factory):
    return Bots(str(tmp_path_factory.mktemp("bots")))


# --------------------------------------------------------------------------- helpers


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("timed out waiting for {}".format(what or condition))
        time.sleep(0.05)


def fingerprint(server: Server) -> Optional[str]:
    return server.get("/status").json()["model_fingerprint"]


def wait_fingerprint(server: Server, expected: str) -> None:
    wait_for(lambda: fingerprint(server) == expected, what="fingerprint " + expected)


def wait_pulls(model_server: ModelServerProcess, count: int = 3) -> List[Dict[str, Any]]:
    """Waits until the model server got ``count`` more requests; returns those."""
    before = len(model_server.requests())
    wait_for(lambda: len(model_server.requests()) >= before + count, what="pulls")
    return model_server.requests()[before:]


def turn(server: Server, sender: str, text: str) -> List[str]:
    response = server.post("/webhooks/rest/webhook", {"sender": sender, "message": text})
    assert response.status == 200, response.text
    return [m.get("text") for m in response.json()]


def endpoints_file(workdir: str, model_server: ModelServerProcess, wait: str = "0.2",
                   timeout: float = 1.0, extra: str = "") -> str:
    return write(os.path.join(workdir, "endpoints.yml"), (
        "model:\n  url: {}{}\n  token: {}\n  wait_time_between_pulls: {}\n  timeout: {}\n{}"
        "tracker_store:\n  type: memory\n").format(model_server.url, MODEL_PATH, TOKEN, wait,
                                                     timeout, extra))


def model_folders(tmp: str) -> List[str]:
    return sorted(n for n in os.listdir(tmp) if n.startswith("coreactors-model-"))


def start_server(workdir: str, args: List[str]) -> Server:
    tmp = os.path.join(workdir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    return Server(workdir, ["--enable_api"] + args, env={"TMPDIR": tmp}).start()


# --------------------------------------------------------------------------- the matrix


def test_model_server_matrix(bots, tmp_path):
    """Every answer a model server can give, in one server's life: it keeps answering, keeps
    pulling, and ends on the right fingerprint."""
    workdir = str(tmp_path)
    model_server = ModelServerProcess().start(kind="status", status=404)
    server = start_server(workdir, ["--endpoints", endpoints_file(workdir, model_server)])
    tmp = os.path.join(workdir, "tmp")
    try:
        # No -d and a model server with nothing yet: up, not ready, conversations get 503.
        status = server.get("/status").json()
        assert status == {"model_fingerprint": None, "is_ready": False}
        refused = server.get("/conversations/early/tracker")
        assert refused.status == 503 and refused.json()["reason"] == "NoAgent"
        assert turn(server, "early", "/greet") == []  # channels answer an empty turn
        first = wait_pulls(model_server, 2)
        assert all(r["if_none_match"] is None and r["token"] == TOKEN for r in first)

        # The first model.
        model_server.set(kind="zip", path=bots.zip_a, etag="a-1")
        wait_fingerprint(server, "a-1")
        assert server.get("/status").json()["is_ready"] is True
        assert turn(server, "conv-a", "/greet") == A_TURN
        # From now on the server sends its fingerprint, and the model server answers 304.
        assert all(r["if_none_match"] == "a-1" for r in wait_pulls(model_server))

        # 204 (with an ETag, which Rasa Core 0.12 mistook for a new model): nothing changes.
        model_server.set(kind="status", status=204, etag="not-a-model")
        wait_pulls(model_server)
        assert fingerprint(server) == "a-1"
        assert turn(server, "conv-a", "/greet") == A_TURN

        # A swap, to a model wrapped in one top folder; a live conversation's next turn is B's
        # and its tracker is read with B's slots.
        assert "colour" not in server.get("/conversations/conv-a/tracker").json()["slots"]
        model_server.set(kind="zip", path=bots.zip_b, etag="b-1")
        wait_fingerprint(server, "b-1")
        assert turn(server, "conv-a", "/greet") == B_TURN
        assert "colour" in server.get("/conversations/conv-a/tracker").json()["slots"]
        assert all(r["if_none_match"] == "b-1" for r in wait_pulls(model_server))

        # Every failure keeps B, keeps the server answering and keeps the pulling going.
        failures = [
            dict(kind="status", status=404),
            dict(kind="status", status=500),
            dict(kind="zip", path=bots.corrupt, etag="corrupt-1"),
            dict(kind="zip", path=bots.escaping, etag="escaping-1"),
            dict(kind="zip", path=bots.incompatible, etag="incompatible-1"),
            dict(kind="zip", path=bots.not_a_model, etag="readme-1"),
            dict(kind="zip", path=bots.zip_a, etag="no-etag-1", send_etag=False),
            dict(kind="slow", seconds=3),  # longer than the 1 s timeout
        ]
        for i, behaviour in enumerate(failures):
            model_server.set(**behaviour)
            pulls = wait_pulls(model_server, 2 if behaviour["kind"] == "slow" else 3)
            assert all(r["if_none_match"] == "b-1" for r in pulls), behaviour
            assert fingerprint(server) == "b-1", behaviour
            assert turn(server, "conv-fail-{}".format(i), "/greet") == B_TURN, behaviour
        assert not os.path.exists(os.path.join(tmp, bots.escaped_name))
        assert not os.path.exists(os.path.join(workdir, bots.escaped_name))

        # The model server goes away, then comes back with a new model.
        model_server.stop()
        time.sleep(1.0)  # five pull intervals of refused connections
        started = time.time()
        assert fingerprint(server) == "b-1"
        assert time.time() - started < 1.0
        assert turn(server, "conv-a", "/bye") == ["B bye"]
        model_server.start(kind="zip", path=bots.zip_a, etag="a-2")
        wait_fingerprint(server, "a-2")
        assert turn(server, "conv-a", "/greet") == A_TURN
        assert wait_pulls(model_server)[-1]["if_none_match"] == "a-2"

        # Unpacked folders: the model in use and the one before it; failed loads left nothing.
        assert len(model_folders(tmp)) == 2
        log = server.log()
        for expected in ("404, no model there yet", "answered 500", "Not a zip archive",
                         "escapes its folder", "cannot be used", "without an ETag",
                         "did not answer within", "Could not reach the model server",
                         "Now serving model a-2"):
            assert expected in log, expected
        stop_started = time.time()
        assert server.stop() in (0, -15)
        assert time.time() - stop_started < 5.0
        assert model_folders(tmp) == []
    finally:
        server.stop()
        model_server.stop()


def test_local_model_first_then_the_model_servers_pulled_once(bots, tmp_path):
    """-d serves its model until the model server's arrives; ``null`` pulls only once."""
    workdir = str(tmp_path)
    model_server = ModelServerProcess().start(kind="zip", path=bots.zip_b, etag="b-7")
    server = start_server(workdir, ["-d", bots.a, "--endpoints",
                                    endpoints_file(workdir, model_server, wait="null")])
    try:
        wait_fingerprint(server, "b-7")
        assert turn(server, "local", "/greet") == B_TURN
        time.sleep(1.0)
        pulls = model_server.requests()
        assert len(pulls) == 1
        # The local model's content fingerprint went along, as If-None-Match.
        assert pulls[0]["if_none_match"] == bots.fingerprint_a
    finally:
        server.stop()
        model_server.stop()


def test_sigterm_during_a_pull(bots, tmp_path):
    """A pull waiting on a model server that does not answer does not hold up the exit."""
    workdir = str(tmp_path)
    model_server = ModelServerProcess().start(kind="slow", seconds=60)
    server = start_server(workdir, ["-d", bots.a, "--endpoints", endpoints_file(
        workdir, model_server, timeout=300)])
    try:
        wait_for(lambda: model_server.requests(), what="the first pull")  # it hangs
        started = time.time()
        assert server.stop() in (0, -15)
        assert time.time() - started < 5.0
        log = server.log()
        assert "Stopped every conversation actor." in log
        assert "Could not reach" not in log  # a pull cut off by the stop is no failure
    finally:
        server.stop()
        model_server.stop()


def test_downloads_are_bounded(bots, tmp_path):
    """A model over max_download_bytes is refused, streamed (no length) or announced."""
    workdir = str(tmp_path)
    model_server = ModelServerProcess().start(kind="zip", path=bots.zip_b, etag="b-big")
    server = start_server(workdir, ["-d", bots.a, "--endpoints", endpoints_file(
        workdir, model_server, extra="  max_download_bytes: 1000\n")])
    try:
        wait_pulls(model_server, 3)
        model_server.set(kind="zip", path=bots.zip_b, etag="b-big", length=True)
        wait_pulls(model_server, 3)
        assert fingerprint(server) == bots.fingerprint_a
        assert turn(server, "bounded", "/greet") == A_TURN
        log = server.log()
        assert "The model is larger than max_download_bytes (1000 bytes)" in log
        assert "more than max_download_bytes (1000 bytes)" in log
        assert model_folders(os.path.join(workdir, "tmp")) == []
    finally:
        server.stop()
        model_server.stop()


# --------------------------------------------------------------------------- POST /model


def upload(server: Server, fields: Dict[str, bytes]):
    body, headers = multipart(fields)
    return server.request("POST", "/model", raw=body, headers=headers)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_post_model(bots, tmp_path):
    server = start_server(str(tmp_path), ["-d", bots.a, "--max_model_bytes", "1000000"])
    try:
        assert turn(server, "uploads", "/greet") == A_TURN
        refusals = [
            (upload(server, {"model": read(bots.corrupt)}), "InvalidModel", "Not a zip"),
            (upload(server, {"model": read(bots.escaping)}), "InvalidModel", "escapes"),
            (upload(server, {"model": read(bots.not_a_model)}), "InvalidModel", "domain.yml"),
            (upload(server, {"model": read(bots.incompatible)}), "InvalidModel", ""),
            (upload(server, {"other": read(bots.zip_b)}), "InvalidParameter", "'model'"),
            (server.post("/model", {"model": "b.zip"}), "BadRequest", "multipart/form-data"),
        ]
        for response, reason, words in refusals:
            assert response.status == 400, response.text
            body = response.json()
            assert body["status"] == "failure" and body["reason"] == reason, body
            assert words in body["message"], body
            assert fingerprint(server) == bots.fingerprint_a
        too_big = upload(server, {"model": b"x" * 1_100_000})
        assert too_big.status == 413 and too_big.json()["reason"] == "PayloadTooLarge"
        assert turn(server, "uploads", "/greet") == A_TURN

        accepted = upload(server, {"model": read(bots.zip_b)})
        assert accepted.status == 204, accepted.text
        # The fingerprint of an uploaded model is its content's (the same as training gave).
        assert fingerprint(server) == bots.fingerprint_b
        assert turn(server, "uploads", "/greet") == B_TURN
        assert "colour" in server.get("/conversations/uploads/tracker").json()["slots"]
    finally:
        server.stop()


# --------------------------------------------------------------------------- swap under load


class Client(threading.Thread):
    """Sends /greet on its own conversation and keep-alive connection until told to stop."""

    def __init__(self, port: int, sender: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.sender = sender
        self.stop_event = stop
        self.turns: List[Dict[str, Any]] = []
        self.failures: List[str] = []

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        body = json.dumps({"sender": self.sender, "message": "/greet"}).encode()
        while not self.stop_event.is_set():
            started = time.time()
            try:
                connection.request("POST", "/webhooks/rest/webhook", body=body,
                                   headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as e:
                self.failures.append(repr(e))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            if response.status != 200:
                self.failures.append("{} {}".format(response.status, data[:200]))
                continue
            self.turns.append({"started": started, "ended": time.time(),
                               "texts": [m.get("text") for m in json.loads(data)]})
        connection.close()


def test_swap_under_load(bots, tmp_path):
    """16 clients talk without pause while the model changes: no request fails or waits long,
    each turn is wholly A's or wholly B's, and every turn sent after the swap is B's."""
    workdir = str(tmp_path)
    model_server = ModelServerProcess().start(kind="status", status=404)
    server = start_server(workdir, ["-d", bots.a, "--endpoints",
                                    endpoints_file(workdir, model_server)])
    stop = threading.Event()
    clients = [Client(server.port, "load-{}".format(i), stop) for i in range(16)]
    try:
        for client in clients:
            client.start()
        time.sleep(1.0)
        model_server.set(kind="zip", path=bots.zip_b, etag="b-load")
        wait_fingerprint(server, "b-load")
        swapped = time.time()
        time.sleep(1.0)
        stop.set()
        for client in clients:
            client.join(30)
        for client in clients:
            assert client.failures == [], client.failures[:3]
            texts = [t["texts"] for t in client.turns]
            assert all(t in (A_TURN, B_TURN) for t in texts), texts
            # A's turns, then B's: never back.
            first_b = texts.index(B_TURN)
            assert all(t == A_TURN for t in texts[:first_b])
            assert all(t == B_TURN for t in texts[first_b:])
            assert first_b > 0
            # Every turn sent once the server said it serves B was B's.
            assert all(t["texts"] == B_TURN for t in client.turns if t["started"] > swapped)
            slowest = max(t["ended"] - t["started"] for t in client.turns)
            assert slowest < 2.0, slowest
    finally:
        stop.set()
        server.stop()
        model_server.stop()


def test_every_process_of_workers_pulls_and_they_converge(bots, tmp_path):
    """--workers 2 on a Redis tracker and lock store: each process polls the model server
    itself (with its own If-None-Match) and both serve each new model."""
    from live_server import start_redis
    workdir = str(tmp_path)
    redis_port = free_port()
    redis = start_redis(redis_port, workdir)
    model_server = ModelServerProcess().start(kind="zip", path=bots.zip_a, etag="a-1")
    block = "  type: redis\n  url: 127.0.0.1\n  port: {}\n".format(redis_port)
    endpoints = endpoints_file(workdir, model_server)
    with open(endpoints) as f:
        shared = f.read().replace("tracker_store:\n  type: memory\n",
                                  "tracker_store:\n" + block + "lock_store:\n" + block)
    write(endpoints, shared)
    server = start_server(workdir, ["--endpoints", endpoints, "--workers", "2"])

    def fingerprints() -> set:
        # A new connection each time: the kernel spreads them over both processes.
        return {fingerprint(server) for _ in range(30)}

    def first_pulls() -> int:
        return [r["if_none_match"] for r in model_server.requests()].count(None)
    try:
        # Each process pulls once with nothing (its first pull), then with what it has.
        wait_for(lambda: first_pulls() == 2, what="two processes pulling")
        wait_for(lambda: fingerprints() == {"a-1"}, what="both processes on a-1")
        assert all(r["if_none_match"] == "a-1" for r in wait_pulls(model_server, 4))
        assert first_pulls() == 2
        model_server.set(kind="zip", path=bots.zip_b, etag="b-1")
        wait_for(lambda: fingerprints() == {"b-1"}, what="both processes on b-1")
        assert turn(server, "after-swap", "/greet") == B_TURN
    finally:
        server.stop()
        model_server.stop()
        redis.kill()
        redis.wait()

"""End to end: the real server with ``--auth_token`` and ``--jwt_secret``, over real HTTP.

A representative part of the auth matrix (the full one is in ``test_auth.py``), a real message
turn by a JWT user on its own conversation, and a bad ``--jwt_method`` refused at startup.
"""

import subprocess
import sys
import time

import jwt
import pytest

from live_server import Server, train_bot

TOKEN = "e2e-api-token"
SECRET = "e2e-jwt-secret-" + "s" * 48

DOMAIN = """
intents:
  - greet
templates:
  utter_greet:
    - text: "hey there!"
actions:
  - utter_greet
"""

STORIES = """
## greet
* greet
    - utter_greet
"""

POLICIES = """
policies:
  - name: MemoizationPolicy
    max_history: 2
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = train_bot(tmp_path_factory.mktemp("authbot"), DOMAIN, STORIES, POLICIES)
    running = Server(str(tmp_path_factory.mktemp("server")),
                     ["--enable_api", "-d", model, "--auth_token", TOKEN,
                      "--jwt_secret", SECRET]).start()
    yield running
    running.stop()


def bearer(claims, key=SECRET, alg="HS256"):
    return {"Authorization": "Bearer " + jwt.encode(claims, key, algorithm=alg)}


ADMIN = bearer({"user": {"username": "root", "role": "admin"}})
ALICE = bearer({"user": {"username": "alice", "role": "user"}})
EXPIRED = bearer({"user": {"username": "root", "role": "admin"}, "exp": int(time.time()) - 60})
UNSIGNED = bearer({"user": {"username": "root", "role": "admin"}}, key=None, alg="none")

ROUTES = ["/status", "/conversations/alice/tracker", "/domain"]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("query, headers, expected", [
    ("", {}, 401),
    ("?token=wrong", {}, 401),
    ("?token=" + TOKEN, {}, 200),
    ("", ADMIN, 200),
    ("", EXPIRED, 401),
    ("", UNSIGNED, 401),
], ids=["none", "wrong-token", "token", "admin", "expired", "alg-none"])
def test_representative_matrix(server, path, query, headers, expected):
    response = server.get(path + query, headers=headers)
    assert response.status == expected, response.text
    if expected != 200:
        body = response.json()
        assert (body["code"], body["reason"]) == (401, "NotAuthenticated")


def test_a_jwt_user_only_reaches_its_own_conversation(server):
    assert server.get("/conversations/alice/tracker", headers=ALICE).status == 200
    for path in ("/conversations/bob/tracker", "/status"):
        response = server.get(path, headers=ALICE)
        assert response.status == 403, response.text
        assert response.json()["reason"] == "NotAuthorized"


def test_a_jwt_user_runs_a_turn_on_its_own_conversation(server):
    response = server.post("/conversations/alice/respond", {"query": "/greet"}, headers=ALICE)
    assert response.status == 200, response.text
    assert response.json() == [{"recipient_id": "alice", "text": "hey there!"}]
    tracker = server.get("/conversations/alice/tracker", headers=ALICE).json()
    assert tracker["latest_message"]["intent"]["name"] == "greet"
    refused = server.post("/conversations/bob/respond", {"query": "/greet"}, headers=ALICE)
    assert refused.status == 403


def test_open_routes_stay_open(server):
    assert server.get("/").status == 200
    assert server.get("/version").status == 200
    response = server.post("/webhooks/rest/webhook", {"sender": "web-1", "message": "/greet"})
    assert response.status == 200, response.text


def test_an_unknown_jwt_method_stops_the_start(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "coreactors.run", "--jwt_secret", SECRET, "--jwt_method",
         "HS257", "--listen", "tcp:0:interface=127.0.0.1"],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "--jwt_method 'HS257' is not a JWT algorithm" in output
    assert SECRET not in output

"""End to end: hostile input and CORS against the real server (``live_server.Server``).

Every route that takes a body or a sender id gets malformed JSON, a wrong content type, bodies
of the wrong JSON type, unknown and malformed events, mistyped fields, a body above the limit
(``--max_body_bytes``) and odd sender ids; unknown routes and wrong methods are tried on every
route the app serves. Each refusal must be a 4xx with the JSON error body, and afterwards every
stored conversation must read exactly as before. The server runs with ``--cors`` so the CORS
headers are checked on successes, refusals and ``OPTIONS`` preflights of every route.

One server (SQLite store in a temporary folder) serves the module, apart from a short-lived one
with ``--cors '*'``; each test compares every stored tracker before and after itself.
"""

import json
import re
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

import pytest

from live_server import Response, Server, train_bot

DOMAIN = """
intents:
  - greet
  - goodbye
entities:
  - name
slots:
  name:
    type: text
templates:
  utter_greet:
    - text: "hey {name}!"
  utter_goodbye:
    - text: "bye"
actions:
  - utter_greet
  - utter_goodbye
"""

STORIES = """
## greet
* greet
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

ALLOWED_ORIGIN = "https://a.example"
SECOND_ORIGIN = "https://c.example"
OTHER_ORIGIN = "https://b.example"
BODY_LIMIT = 2048
ERROR_KEYS = {"version", "status", "message", "reason", "details", "help", "code"}

VICTIM = "victim"
# Ids a client may legitimately use; each must stay one conversation of its own.
ODD_SENDERS = ["ünï-😀 ✓", "z" * 10000, "a/b", "a%2Fb", "..", " spaced id "]

SLOT_EVENT = {"event": "slot", "name": "name", "value": "Ann"}
USER_EVENT = {"event": "user", "text": "/greet",
              "parse_data": {"intent": {"name": "greet", "confidence": 1.0}, "entities": [],
                             "text": "/greet"}}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_bot(tmp_path_factory.mktemp("hostile-bot"), DOMAIN, STORIES, POLICIES)


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("hostile-server"))
    running = Server(workdir, ["--enable_api", "-d", model_dir,
                               # rasa_core.run's spelling: several origins after one flag.
                               "--cors", ALLOWED_ORIGIN, SECOND_ORIGIN,
                               "--max_body_bytes", str(BODY_LIMIT), "--quiet"]).start()
    # Conversations with some history, for the refusals to leave alone.
    for sender in [VICTIM] + ODD_SENDERS:
        answer = running.post(path_of(sender, "tracker/events"), [USER_EVENT, SLOT_EVENT])
        assert answer.status == 200, answer.text
        assert answer.json()["sender_id"] == sender
    yield running
    running.stop()


# --------------------------------------------------------------------------- helpers


def path_of(sender_id: str, rest: str) -> str:
    return "/conversations/{}/{}".format(quote(sender_id, safe=""), rest)


def send(server: Server, method: str, path: str, raw: Optional[bytes] = None,
         content_type: Optional[str] = "application/json",
         headers: Optional[Dict[str, str]] = None) -> Response:
    headers = dict(headers or {})
    if raw is not None and content_type is not None:
        headers["Content-Type"] = content_type
    return server.request(method, path, raw=raw, headers=headers)


def assert_refused(answer: Response, status: Optional[int] = None,
                   case: str = "") -> Dict[str, Any]:
    """A 4xx (``status`` if given) with the JSON error body."""
    assert 400 <= answer.status < 500, (case, answer.status, answer.body[:300])
    if status is not None:
        assert answer.status == status, (case, answer.body[:300])
    assert answer.headers.get("Content-Type") == "application/json", (case, answer.headers)
    body = answer.json()
    assert set(body) == ERROR_KEYS, body
    assert body["status"] == "failure" and body["code"] == answer.status
    assert isinstance(body["message"], str) and body["message"]
    return body


def snapshot(server: Server) -> Dict[str, Any]:
    """Every stored conversation with all its events, and the model in use."""
    ids = server.get("/conversations").json()
    trackers = {}
    for sender_id in ids:
        answer = server.get(path_of(sender_id, "tracker?include_events=ALL"))
        assert answer.status == 200, answer.text
        trackers[sender_id] = answer.json()
    return {"trackers": trackers,
            "model": server.get("/status").json()["model_fingerprint"]}


def as_bytes(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")


# (method, path for a sender id, what the body must be, a body the route accepts)
SENDER_ROUTES = [
    ("POST", "tracker/events", "event or list", SLOT_EVENT),
    ("PUT", "tracker/events", "list", [USER_EVENT]),
    ("POST", "messages", "object", {"text": "/greet", "sender": "user"}),
    ("POST", "execute", "object", {"name": "utter_greet"}),
    ("POST", "respond", "object", {"query": "/greet"}),
]
MODEL_ROUTES = [
    ("POST", "/predict", "list", [USER_EVENT]),
    ("POST", "/finetune", "list", [USER_EVENT]),
    ("POST", "/parse", "object", {"q": "/greet"}),
    ("POST", "/webhooks/rest/webhook", "object", {"sender": VICTIM, "message": "/greet"}),
]


def json_routes(sender_id: str = VICTIM) -> List[Tuple[str, str, str, Any]]:
    return ([(m, path_of(sender_id, p), kind, ok) for m, p, kind, ok in SENDER_ROUTES]
            + MODEL_ROUTES)


# Bodies no JSON route may take: (label, raw body, expected status).
MALFORMED_BODIES = [
    ("truncated JSON", b'{"event": "slot", ', 400),
    ("not JSON", b"event=slot&name=name", 400),
    ("invalid UTF-8", b'{"q": "\xff\xfe"}', 400),
    ("NaN", b'{"event": "slot", "name": "name", "value": NaN, "q": NaN}', 400),
    ("Infinity", b'[{"event": "user", "timestamp": Infinity}]', 400),
    ("number beyond a double", b'[{"event": "user", "timestamp": 1e999}]', 400),
    ("integer beyond a double", b'[{"event": "user", "timestamp": 1' + b"0" * 400 + b"}]", 400),
    ("lone surrogate", b'{"sender": "\\ud800", "message": "\\udfff", "q": "\\ud800", '
                       b'"text": "\\ud800", "name": "\\ud800", "event": "slot"}', 400),
    ("nested too deep", b"[" * 100 + b"]" * 100, 400),
    ("unbalanced nesting", b"[" * 2000, 400),
    ("a string", b'"hello"', 400),
    ("a number", b"42", 400),
    ("null", b"null", 400),
    ("a boolean", b"true", 400),
]

WRONG_CONTENT_TYPES = ["application/xml", "image/png", "text/html",
                       "application/octet-stream"]

# Route-specific bodies that are JSON of the right type but wrong inside.
BAD_EVENTS = [
    {"event": "no_such_event"},
    {"name": "utter_greet"},
    {"event": 5},
    {"event": "slot"},
    {"event": "slot", "name": 5, "value": "x"},
    {"event": "action"},
    {"event": "action", "name": ["utter_greet"]},
    {"event": "user", "text": 5},
    {"event": "user", "timestamp": "yesterday"},
    {"event": "user", "parse_data": "greet"},
    {"event": "user", "parse_data": {"intent": "greet"}},
    {"event": "user", "parse_data": {"intent": {"name": 5}}},
    {"event": "user", "parse_data": {"intent": {"name": "greet", "confidence": "high"}}},
    {"event": "user", "parse_data": {"entities": "name"}},
    {"event": "user", "parse_data": {"entities": [{"value": "Ann"}]}},
    {"event": "user", "parse_data": {"entities": [{"entity": "name", "start": "0"}]}},
    {"event": "user", "parse_data": {"intent_ranking": [{"name": {}}]}},
    {"event": "user", "parse_data": {"entities": [{"entity": "name", "confidence": True}]}},
    {"event": "user", "parse_data": {"entities": [{"entity": "name", "start": 5, "end": 2}]}},
    {"event": "reminder", "action": "utter_greet", "date_time": "tomorrow"},
    {"event": "reminder", "action": "utter_greet", "date_time": "2018-09-22T20:57:39",
     "kill_on_user_msg": "yes"},
    {"event": "form", "name": 5},
    {"event": "form_validation", "validate": "yes"},
    {"event": "action", "name": "action_listen", "confidence": "sure"},
]

FIELD_ERRORS = {
    "messages": [
        {"sender": "user"}, {"text": 5, "sender": "user"}, {"text": "hi"},
        {"text": "hi", "sender": "bot"}, {"text": "hi", "sender": ["user"]},
        {"text": "hi", "sender": "user", "parse_data": "greet"},
        {"text": "hi", "sender": "user", "parse_data": {"intent": "greet"}},
        {"text": "hi", "sender": "user", "parse_data": {"entities": "name"}},
        {"text": "hi", "sender": "user", "parse_data": {"entities": [5]}},
        {"text": "hi", "sender": "user", "parse_data": {"entities": [{"value": "x"}]}},
        {"text": "hi", "sender": "user", "parse_data": {"intent": {"name": 5}}},
        {"text": "hi", "sender": "user",
         "parse_data": {"intent": {"name": "greet", "confidence": "1"}}},
        {"text": "hi", "sender": "user", "parse_data": {"text": 5}},
    ],
    "execute": [
        {}, {"name": 5}, {"name": ""}, {"name": "no_such_action"}, {"action": ["x"]},
        {"name": "utter_greet", "policy": 5}, {"name": "utter_greet", "confidence": "high"},
        {"name": "utter_greet", "confidence": True},
    ],
    "respond": [{"query": 5}, {"q": ["/greet"]}, {}, {"query": None}],
    "/parse": [{}, {"q": 5}, {"text": ["a"]}, {"q": None}],
    "/webhooks/rest/webhook": [
        {"sender": VICTIM}, {"sender": VICTIM, "message": 5},
        {"sender": {"id": VICTIM}, "message": "/greet"},
        {"sender": True, "message": "/greet"}, {"sender": [VICTIM], "message": "/greet"},
    ],
}


def field_errors(path: str) -> List[Any]:
    for key, bodies in FIELD_ERRORS.items():
        if path.endswith(key):
            return bodies
    return []


def bad_bodies_for(path: str, kind: str) -> List[Tuple[str, bytes, int]]:
    cases = list(MALFORMED_BODIES)
    if kind == "object":
        cases.append(("a list", b'[{"q": "/greet"}]', 400))
    if kind == "list":
        cases.append(("an object", as_bytes(SLOT_EVENT), 400))
    if kind in ("list", "event or list"):
        for event in BAD_EVENTS:
            cases.append(("event {}".format(event), as_bytes([event]), 400))
        # One bad event spoils the whole list: nothing of it is applied.
        cases.append(("good then bad", as_bytes([SLOT_EVENT, {"event": "nope"}]), 400))
        cases.append(("a list of strings", b'["slot"]', 400))
    if kind == "event or list":
        for event in BAD_EVENTS:
            cases.append(("event {}".format(event), as_bytes(event), 400))
    for body in field_errors(path):
        cases.append(("fields {}".format(body), as_bytes(body), 400))
    return cases


def too_large(limit: int) -> bytes:
    # Valid JSON one byte over the limit: refused for its size, whatever it says.
    head = b'{"sender": "victim", "message": "'
    return head + b"x" * (limit + 1 - len(head) - 2) + b'"}'


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize("method, path, kind, ok", json_routes(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_bad_bodies_are_refused_and_change_nothing(server, method, path, kind, ok):
    before = snapshot(server)
    for label, raw, status in bad_bodies_for(path, kind):
        assert_refused(send(server, method, path, raw), status, label)
    for content_type in WRONG_CONTENT_TYPES:
        assert_refused(send(server, method, path, as_bytes(ok), content_type), 415)
    body = too_large(BODY_LIMIT)
    assert len(body) == BODY_LIMIT + 1
    assert_refused(send(server, method, path, body), 413)
    assert snapshot(server) == before


@pytest.mark.parametrize("method, path, kind, ok", json_routes(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_the_same_bodies_are_taken_when_valid(server, method, path, kind, ok):
    """The control: what the refusals above varied is the only thing wrong with them."""
    for content_type in (None, "application/json", "application/json; charset=utf-8",
                         "text/plain", "application/x-www-form-urlencoded"):
        answer = send(server, method, path, as_bytes(ok), content_type)
        assert answer.status in (200, 204), (content_type, answer.text)


def test_a_missing_body_is_refused(server):
    before = snapshot(server)
    for method, path, kind, ok in json_routes():
        if path.endswith("respond"):
            continue  # its message may come in the query instead
        assert_refused(send(server, method, path, None), 400)
        assert_refused(send(server, method, path, b"  \n"), 400)
    assert snapshot(server) == before


def test_the_body_limit_is_exact(server):
    head = b'{"sender": "limit", "message": "'
    body = head + b"x" * (BODY_LIMIT - len(head) - 2) + b'"}'
    assert len(body) == BODY_LIMIT
    assert send(server, "POST", "/webhooks/rest/webhook", body).status == 200


def test_bad_query_parameters_are_refused_before_anything_runs(server):
    before = snapshot(server)
    victim = quote(VICTIM)
    cases = [
        ("GET", "/conversations/{}/tracker?include_events=SOME".format(victim), None),
        ("GET", "/conversations/{}/tracker?until=yesterday".format(victim), None),
        ("GET", "/conversations/{}/tracker?until=nan".format(victim), None),
        ("GET", "/conversations/{}/tracker?events=maybe".format(victim), None),
        ("GET", "/conversations/{}/story?until=soon".format(victim), None),
        ("GET", "/conversations/{}/respond".format(victim), None),
        ("GET", "/conversations/{}/respond?query=%FF".format(victim), None),
        ("POST", "/conversations/{}/tracker/events?include_events=x".format(victim),
         as_bytes(SLOT_EVENT)),
        ("PUT", "/conversations/{}/tracker/events?include_events=x".format(victim),
         as_bytes([USER_EVENT])),
        ("POST", "/conversations/{}/messages?include_events=x".format(victim),
         as_bytes({"text": "/greet", "sender": "user"})),
        ("POST", "/conversations/{}/execute?include_events=x".format(victim),
         as_bytes({"name": "utter_greet"})),
        ("POST", "/webhooks/rest/webhook?stream=maybe",
         as_bytes({"sender": VICTIM, "message": "/greet"})),
        ("POST", "/evaluate?e2e=perhaps", STORIES.encode()),
    ]
    for method, path, raw in cases:
        assert_refused(send(server, method, path, raw), 400)
    assert_refused(server.get("/domain", headers={"Accept": "text/html"}), 406)
    assert snapshot(server) == before


def test_evaluate_refuses_what_is_not_markdown_stories(server):
    before = snapshot(server)
    assert_refused(send(server, "POST", "/evaluate", b"", "text/markdown"), 400)
    assert_refused(send(server, "POST", "/evaluate", b"\xff\xfe## x", "text/markdown"), 400)
    body = assert_refused(send(server, "POST", "/evaluate", b"a line before any story\n",
                               "text/markdown"), 400)
    assert body["reason"] == "FailedEvaluation"
    for content_type in ("application/json", "image/png", "application/xml"):
        assert_refused(send(server, "POST", "/evaluate", STORIES.encode(), content_type), 415)
    assert_refused(send(server, "POST", "/evaluate", b"#" * (BODY_LIMIT + 1), "text/markdown"),
                   413)
    assert send(server, "POST", "/evaluate", STORIES.encode(), "text/markdown").status == 200
    assert snapshot(server) == before


# --------------------------------------------------------------------------- sender ids


@pytest.mark.parametrize("sender_id", ODD_SENDERS, ids=["unicode", "10k chars", "slash",
                                                        "encoded slash", "dots", "spaces"])
def test_odd_sender_ids_stay_one_conversation(server, sender_id):
    state = server.get(path_of(sender_id, "tracker")).json()
    assert state["sender_id"] == sender_id
    assert state["slots"]["name"] == "Ann"
    assert sender_id in server.get("/conversations").json()
    story = server.get(path_of(sender_id, "story"))
    assert story.status == 200
    # Refusals on this id change nothing, here or anywhere.
    before = snapshot(server)
    for method, rest, kind, ok in SENDER_ROUTES:
        path = path_of(sender_id, rest)
        assert_refused(send(server, method, path, b'{"event": '), 400)
        assert_refused(send(server, method, path, b'"x"'), 400)
        assert_refused(send(server, method, path, as_bytes(ok), "application/xml"), 415)
        assert_refused(send(server, method, path, too_large(BODY_LIMIT)), 413)
        if kind != "object":
            assert_refused(send(server, method, path, as_bytes([{"event": "nope"}])), 400)
    # 400, or 413 when the id alone is longer than the body limit.
    assert_refused(send(server, "POST", "/webhooks/rest/webhook",
                        as_bytes({"sender": sender_id, "message": 5})))
    assert snapshot(server) == before


def test_a_path_that_is_not_utf8_is_refused(server):
    before = snapshot(server)
    for rest in ("tracker", "story", "respond?q=hi"):
        assert_refused(server.get("/conversations/%FF%FE/" + rest), 400)
    assert_refused(send(server, "POST", "/conversations/%C3/tracker/events",
                        as_bytes(SLOT_EVENT)), 400)
    assert snapshot(server) == before


def test_refusals_do_not_create_conversations(server):
    ghost = "ghost-😶"
    for method, rest, kind, ok in SENDER_ROUTES:
        path = path_of(ghost, rest)
        for label, raw, status in bad_bodies_for(path, kind):
            assert_refused(send(server, method, path, raw), status, label)
    assert ghost not in server.get("/conversations").json()


# --------------------------------------------------------------------------- routing


def concrete(rule: str) -> str:
    """A request path for a Klein rule: a sender id for <sender_id>, rest for <channel>."""
    path = rule.replace("<channel>", "rest")
    return re.sub(r"<(?:[^:>]+:)?[^>]+>", quote(VICTIM), path)


def served_rules() -> List[Tuple[str, List[str]]]:
    """Each path the app serves with its methods (one path may have a rule per method)."""
    from coreactors.http.app import CoreApp
    methods: Dict[str, set] = {}
    for rule in CoreApp.app.url_map.iter_rules():
        methods.setdefault(rule.rule, set()).update(rule.methods - {"HEAD", "OPTIONS"})
    return [(path, sorted(names)) for path, names in sorted(methods.items())]


def test_unknown_routes_get_404(server):
    before = snapshot(server)
    for method, path in [("GET", "/nope"), ("POST", "/nope"), ("GET", "/conversations/"),
                         ("GET", "/conversations/victim"), ("GET", "/conversations//tracker"),
                         ("POST", "/conversations/victim/tracker/nope"),
                         ("GET", "/webhooks/nope/"), ("POST", "/webhooks/nope/webhook"),
                         ("DELETE", "/nope"), ("GET", "/%FF"), ("GET", "/" + "x" * 5000)]:
        raw = as_bytes({"sender": VICTIM, "message": "/greet"}) if method == "POST" else None
        assert_refused(send(server, method, path, raw), 404)
    assert snapshot(server) == before


def test_wrong_methods_get_405_on_every_route(server):
    before = snapshot(server)
    for rule, methods in served_rules():
        path = concrete(rule)
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            if method in methods:
                continue
            raw = as_bytes(SLOT_EVENT) if method in ("POST", "PUT", "PATCH") else None
            answer = send(server, method, path, raw)
            assert_refused(answer, 405)
            allowed = {m.strip() for m in answer.headers["Allow"].split(",")}
            assert set(methods) <= allowed, (rule, allowed)
    assert snapshot(server) == before


# --------------------------------------------------------------------------- CORS


def cors_origin(answer: Response) -> Optional[str]:
    return answer.headers.get("Access-Control-Allow-Origin")


def test_cors_header_on_successes_and_refusals_for_the_allowed_origin(server):
    allowed = {"Origin": ALLOWED_ORIGIN}
    answers = [
        server.get("/status", headers=allowed),
        server.get("/", headers=allowed),
        server.get("/openapi.yml", headers=allowed),
        server.get(path_of(VICTIM, "tracker"), headers=allowed),
        send(server, "POST", "/webhooks/rest/webhook",
             as_bytes({"sender": "cors", "message": "/greet"}), headers=allowed),
        server.get("/nope", headers=allowed),  # 404
        server.request("DELETE", "/status", headers=allowed),  # 405
        send(server, "POST", path_of(VICTIM, "tracker/events"), b"{", headers=allowed),  # 400
        send(server, "POST", "/predict", as_bytes([]), "application/xml", headers=allowed),
        send(server, "POST", "/predict", too_large(BODY_LIMIT), headers=allowed),  # 413
    ]
    assert [a.status for a in answers] == [200, 200, 200, 200, 200, 404, 405, 400, 415, 413]
    for answer in answers:
        assert cors_origin(answer) == ALLOWED_ORIGIN, answer.headers
        assert "Origin" in answer.headers.get("Vary", "")


def test_every_listed_origin_is_allowed(server):
    answer = server.get("/nope", headers={"Origin": SECOND_ORIGIN})
    assert answer.status == 404 and cors_origin(answer) == SECOND_ORIGIN


def test_cors_for_any_origin(model_dir, tmp_path):
    any_origin = Server(str(tmp_path), ["--enable_api", "-d", model_dir, "--cors", "*",
                                        "--quiet"]).start()
    try:
        for answer in (any_origin.get("/status", headers={"Origin": OTHER_ORIGIN}),
                       any_origin.get("/nope", headers={"Origin": OTHER_ORIGIN}),
                       send(any_origin, "POST", "/predict", b"[", headers={"Origin": "x"}),
                       any_origin.request("OPTIONS", "/conversations/x/tracker/events",
                                          headers={"Origin": OTHER_ORIGIN,
                                                   "Access-Control-Request-Method": "PUT"})):
            assert cors_origin(answer) == "*", answer.headers
            # "*" never goes with credentials.
            assert "Access-Control-Allow-Credentials" not in answer.headers
    finally:
        any_origin.stop()


def test_no_cors_header_for_other_origins_or_none(server):
    for headers in ({"Origin": OTHER_ORIGIN}, {"Origin": "null"}, {}):
        for answer in (server.get("/status", headers=headers),
                       server.get("/nope", headers=headers),
                       send(server, "POST", "/predict", b"[", headers=headers)):
            assert cors_origin(answer) is None, (headers, answer.headers)


@pytest.mark.parametrize("rule, methods", served_rules(), ids=lambda v: v if isinstance(v, str)
                         else None)
def test_every_route_answers_the_preflight(server, rule, methods):
    path = concrete(rule)
    for method in methods:
        answer = server.request("OPTIONS", path, headers={
            "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "Content-Type, Authorization"})
        assert answer.status == 200, (rule, answer.status, answer.body[:200])
        assert cors_origin(answer) == ALLOWED_ORIGIN
        assert method in answer.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]
        assert method in answer.headers["Allow"]
    refused = server.request("OPTIONS", path, headers={
        "Origin": OTHER_ORIGIN, "Access-Control-Request-Method": methods[0]})
    assert cors_origin(refused) is None


# --------------------------------------------------------------------------- found by fuzzing
# Bugs the fuzzer found outside the HTTP layer's input checks, fixed where they lay.


def test_a_malformed_multipart_body_gets_the_error_body(server):
    # Twisted used to answer these itself, with a bare 400, before any route ran.
    answer = send(server, "POST", path_of(VICTIM, "tracker/events"), b"--b--\r\n",
                  "multipart/form-data; boundary=b", headers={"Origin": ALLOWED_ORIGIN})
    assert_refused(answer, 415)
    assert cors_origin(answer) == ALLOWED_ORIGIN
    for body, content_type in ((b"--b--\r\n", "multipart/form-data; boundary=b"),
                               (b"garbage", "multipart/form-data"),
                               (b"--b\r\nContent-Disposition: form-data; name=other\r\n\r\n"
                                b"x\r\n--b--\r\n", "multipart/form-data; boundary=b")):
        answer = send(server, "POST", "/model", body, content_type,
                      headers={"Origin": ALLOWED_ORIGIN})
        assert_refused(answer, 400)
        assert cors_origin(answer) == ALLOWED_ORIGIN


def test_story_of_a_message_whose_entities_cannot_be_annotated(server):
    sender = "story-bug"
    answer = server.post(path_of(sender, "messages"), {
        "text": "[x](y) and Ann", "sender": "user",
        "parse_data": {"intent": {"name": "greet", "confidence": 1.0},
                       "entities": [{"entity": "name", "value": "Ann", "start": 11,
                                     "end": 14}]}})
    assert answer.status == 200
    assert server.get(path_of(sender, "story")).status == 200


@pytest.mark.parametrize("where", ["stored conversation", "POST /predict"])
def test_a_followup_to_an_unknown_action(server, where):
    followup = {"event": "followup", "name": "no_such_action"}
    if where == "POST /predict":
        assert server.post("/predict", [USER_EVENT, followup]).status < 500
        return
    sender = "followup-bug"
    assert server.post(path_of(sender, "tracker/events"), followup).status < 500
    assert server.post(path_of(sender, "predict")).status < 500

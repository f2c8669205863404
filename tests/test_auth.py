"""Unit tests of token and JWT authentication (coreactors.http.auth) over CoreApp.

The app runs in memory over the fake conversations of ``test_http_api``. The auth matrix walks
every protected route of the Klein url map, so a route added later is covered without editing
this file (an open route added later must be named in ``OPEN_PATHS``).
"""

import re
import time
from typing import Any, Dict, List, Optional, Tuple

import jwt
import pytest
from jwt.utils import base64url_encode
from twisted.logger import Logger
from twisted.python import usage

from coreactors.http import auth
from coreactors.http.app import CoreApp
from coreactors.http.auth import check_auth_options, make_authorizer
from coreactors.tap import Options
from test_http_api import Captured, FakeConversations, assert_error, assert_json, call, make

TOKEN = "the-api-token-4f1c"
SECRET = "the-jwt-secret-" + "k" * 64  # long enough for HS512 without PyJWT's warning
OPEN_PATHS = {"/", "/version", "/openapi.yml"}

ADMIN = {"user": {"username": "root", "role": "admin"}}
ALICE = {"user": {"username": "alice", "role": "user"}}


def bearer(claims: Dict[str, Any], key: Optional[str] = SECRET, alg: str = "HS256"
           ) -> Dict[str, str]:
    return {"Authorization": "Bearer " + jwt.encode(claims, key, algorithm=alg)}


def expired(claims: Dict[str, Any]) -> Dict[str, Any]:
    return dict(claims, exp=int(time.time()) - 60)


@pytest.fixture
def fake() -> FakeConversations:
    return FakeConversations()


def guarded(fake: FakeConversations, auth_token: Optional[str] = TOKEN,
            jwt_secret: Optional[str] = SECRET, jwt_method: str = "HS256") -> Any:
    return make(fake, authorize=make_authorizer(auth_token, jwt_secret, jwt_method))


def request(stub: Any, method: str, path: str, headers: Optional[Dict[str, str]] = None):
    return call(stub, method, path, headers=headers or {},
                json={"text": "/hello", "sender": "user", "name": "utter_hello"})


def assert_allowed(answer: Any) -> None:
    assert answer.code not in (401, 403), answer.body


# --------------------------------------------------------------------------- the matrix


def protected_routes() -> List[Tuple[str, str]]:
    routes = []
    for rule in CoreApp.app.url_map.iter_rules():
        if rule.rule in OPEN_PATHS or rule.rule.startswith("/webhooks/"):
            continue
        # HEAD is GET without a body; OPTIONS is the CORS preflight, open by design.
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, rule.rule))
    return routes


def fill(rule: str, sender_id: str) -> str:
    def value(match: Any) -> str:
        name = match.group(1)
        assert name == "sender_id", "the matrix does not know the path parameter " + name
        return sender_id
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", value, rule)


ALLOWED = "allowed"

# case: (sender id in the path, query, headers, expected with a sender id, expected without)
CASES: Dict[str, Tuple[str, str, Dict[str, str], Any, Any]] = {
    "no credentials": ("alice", "", {}, 401, 401),
    "wrong token": ("alice", "?token=wrong", {}, 401, 401),
    "right token": ("alice", "?token=" + TOKEN, {}, ALLOWED, ALLOWED),
    "jwt admin": ("bob", "", bearer(ADMIN), ALLOWED, ALLOWED),
    "jwt user, own conversation": ("alice", "", bearer(ALICE), ALLOWED, 403),
    "jwt user, other conversation": ("bob", "", bearer(ALICE), 403, 403),
    "expired jwt": ("alice", "", bearer(expired(ADMIN)), 401, 401),
    "wrong signature": ("alice", "", bearer(ADMIN, key="another-secret-" + "x" * 64), 401, 401),
    "alg none": ("alice", "", bearer(ADMIN, key=None, alg="none"), 401, 401),
    "another hmac algorithm": ("alice", "", bearer(ADMIN, alg="HS512"), 401, 401),
}

REASONS = {401: "NotAuthenticated", 403: "NotAuthorized"}


def test_the_matrix_sees_the_routes():
    routes = protected_routes()
    assert ("GET", "/status") in routes
    assert ("POST", "/conversations/<sender_id>/messages") in routes
    assert not any(path.startswith("/webhooks/") or path in OPEN_PATHS for _, path in routes)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("method, rule", protected_routes())
def test_auth_matrix(fake, method, rule, case):
    sender_id, query, headers, with_sender, without_sender = CASES[case]
    expected = with_sender if "<sender_id>" in rule else without_sender
    answer = request(guarded(fake), method, fill(rule, sender_id) + query, headers)
    if expected == ALLOWED:
        assert_allowed(answer)
    else:
        assert_error(answer, expected, REASONS[expected])
        assert fake.calls == []


@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/version"), ("GET", "/openapi.yml"), ("GET", "/webhooks/rest/"),
    ("POST", "/webhooks/rest/webhook"),
])
def test_open_routes_stay_open(fake, method, path):
    answer = call(guarded(fake), method, path, json={"sender": "u1", "message": "/hello"})
    assert answer.code == 200, answer.body


# --------------------------------------------------------------------------- configuration


def test_no_token_and_no_secret_is_no_authorizer(fake):
    assert make_authorizer() is None
    assert make_authorizer(None, None, "HS512") is None
    assert_json(call(make(fake, authorize=make_authorizer()), "GET", "/status"))


def test_token_only_ignores_jwts(fake):
    stub = guarded(fake, jwt_secret=None)
    body = assert_error(request(stub, "GET", "/status", bearer(ADMIN)), 401, "NotAuthenticated")
    assert "?token=" in body["message"] and "Bearer" not in body["message"]
    assert_json(request(stub, "GET", "/status?token=" + TOKEN))


def test_jwt_only_ignores_the_token_parameter(fake):
    stub = guarded(fake, auth_token=None)  # transcript 75
    body = assert_error(request(stub, "GET", "/status?token=anything"), 401)
    assert "Bearer" in body["message"] and "?token=" not in body["message"]
    assert_json(request(stub, "GET", "/status", bearer(ADMIN)))


def test_either_credential_admits(fake):
    stub = guarded(fake)
    assert_json(request(stub, "GET", "/status?token=wrong", bearer(ADMIN)))
    assert_json(request(stub, "GET", "/status?token=" + TOKEN, bearer(expired(ADMIN))))


def test_the_token_is_compared_in_constant_time(fake, monkeypatch):
    compared = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest",
                        lambda a, b: compared.append((a, b)) or real(a, b))
    assert_json(request(guarded(fake), "GET", "/status?token=" + TOKEN))
    assert compared == [(TOKEN.encode(), TOKEN.encode())]


@pytest.mark.parametrize("method", ["XX256", "none", "hs256", ""])
def test_an_unknown_jwt_method_is_a_usage_error(method):
    with pytest.raises(usage.UsageError, match="--jwt_method"):
        Options().parseOptions(["--jwt_secret", SECRET, "--jwt_method", method])
    with pytest.raises(ValueError):
        make_authorizer(None, SECRET, method)


@pytest.mark.parametrize("args, problem", [
    (["--auth_token", ""], "--auth_token must not be empty"),
    (["--jwt_secret", ""], "--jwt_secret must not be empty"),
    (["--jwt_secret", "not a pem key", "--jwt_method", "RS256"], "not a valid key for RS256"),
])
def test_bad_auth_options_are_usage_errors(args, problem):
    with pytest.raises(usage.UsageError, match=problem):
        Options().parseOptions(args)


def test_good_auth_options_parse():
    options = Options()
    options.parseOptions(["--auth_token", TOKEN, "--jwt_secret", SECRET])
    assert options["jwt_method"] == "HS256"
    check_auth_options(None, None, "HS384")


def test_a_short_hmac_key_is_warned_about_once_at_startup(fake, monkeypatch):
    captured = Captured()
    monkeypatch.setattr(auth, "log", Logger(observer=captured))
    stub = make(fake, authorize=make_authorizer(None, "short", "HS256"))
    assert any("--jwt_secret" in text for text in captured.texts())
    assert_json(request(stub, "GET", "/status", bearer(ADMIN, key="short")))


# --------------------------------------------------------------------------- JWT details


def test_claims_at_the_top_level_work_for_older_clients(fake):
    stub = guarded(fake, auth_token=None)
    alice = bearer({"username": "alice", "role": "user"})
    assert_json(request(stub, "GET", "/conversations/alice/tracker", alice))
    assert_error(request(stub, "GET", "/conversations/bob/tracker", alice), 403)
    assert_json(request(stub, "GET", "/status", bearer({"role": "admin"})))


def test_the_user_object_wins_over_top_level_claims(fake):
    stub = guarded(fake, auth_token=None)
    mixed = bearer({"user": {"username": "alice", "role": "user"}, "role": "admin"})
    assert_error(request(stub, "GET", "/status", mixed), 403, "NotAuthorized")


@pytest.mark.parametrize("claims", [
    {"user": {"username": "alice", "role": "guest"}},
    {"user": {"username": "alice"}},
    {"user": {"username": "alice", "role": ["admin"]}},
    {"user": {"role": "user"}},
    {"user": {"username": 7, "role": "user"}},
    {},
])
def test_other_roles_and_missing_usernames_are_refused(fake, claims):
    stub = guarded(fake, auth_token=None)
    body = assert_error(request(stub, "GET", "/conversations/alice/tracker", bearer(claims)),
                        403, "NotAuthorized")
    assert body["message"].startswith("User has insufficient permissions")


def test_a_user_gets_its_conversation_by_its_decoded_sender_id(fake):
    stub = guarded(fake, auth_token=None)
    user = bearer({"user": {"username": "alice/home", "role": "user"}})
    assert_json(request(stub, "GET", "/conversations/alice%2Fhome/tracker", user))
    assert_error(request(stub, "GET", "/conversations/alice/tracker", user), 403)


def test_exp_and_nbf_are_honoured(fake):
    stub = guarded(fake, auth_token=None)
    now = int(time.time())
    assert_json(request(stub, "GET", "/status", bearer(dict(ADMIN, exp=now + 600))))
    body = assert_error(request(stub, "GET", "/status", bearer(dict(ADMIN, exp=now - 1))), 401)
    assert body["message"] == "The JWT has expired."
    body = assert_error(request(stub, "GET", "/status", bearer(dict(ADMIN, nbf=now + 600))),
                        401)
    assert "not valid yet" in body["message"]


@pytest.mark.parametrize("headers, problem", [
    (bearer(ADMIN, key="wrong-" + "w" * 64), "signature"),
    (bearer(ADMIN, key=None, alg="none"), "algorithm"),
    (bearer(ADMIN, alg="HS384"), "algorithm"),
    ({"Authorization": "Bearer not.a.jwt"}, "malformed"),
    ({"Authorization": "Bearer abc"}, "malformed"),
    ({"Authorization": "Token abc"}, "Bad Authorization header"),
    ({"Authorization": "Bearer"}, "Bad Authorization header"),
    ({"Authorization": "Bearer a b"}, "Bad Authorization header"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "Bad Authorization header"),
])
def test_invalid_jwts_say_what_was_wrong(fake, headers, problem):
    body = assert_error(request(guarded(fake), "GET", "/status?token=nope", headers), 401,
                        "NotAuthenticated")
    assert problem in body["message"]
    sent = headers["Authorization"].partition(" ")[2]
    for secret in (SECRET, TOKEN, "nope", sent):
        assert not secret or secret not in body["message"]


def test_the_bearer_scheme_is_case_insensitive(fake):
    token = bearer(ADMIN)["Authorization"].split()[1]
    assert_json(request(guarded(fake), "GET", "/status", {"Authorization": "bearer " + token}))


def test_a_hmac_token_keyed_with_the_public_key_is_refused(fake):
    # The classic key confusion: an RS256 server must not verify HS256 with its public key.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    stub = guarded(fake, auth_token=None, jwt_secret=public_pem, jwt_method="RS256")
    assert_json(request(stub, "GET", "/status", bearer(ADMIN, key=private, alg="RS256")))
    forged = hs256_by_hand(ADMIN, public_pem.encode())
    assert_error(request(stub, "GET", "/status", {"Authorization": "Bearer " + forged}), 401)


def hs256_by_hand(claims: Dict[str, Any], key: bytes) -> str:
    """PyJWT refuses to sign with a PEM key as HMAC secret; an attacker would not."""
    import hashlib
    import hmac
    import json
    signing_input = b".".join(base64url_encode(json.dumps(part).encode())
                              for part in ({"alg": "HS256", "typ": "JWT"}, claims))
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64url_encode(signature)).decode()

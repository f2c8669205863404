"""Authentication of the HTTP API: a shared token (``?token=``) and JWTs (``Authorization: Bearer``).

``make_authorizer`` turns the run options ``--auth_token``, ``--jwt_secret`` and
``--jwt_method`` into the ``authorize`` hook that ``CoreApp`` runs before every protected route
(every API route except ``/`` and ``/version``; the channel webhooks are never protected).

- The token admits to everything.
- A JWT is checked with the configured algorithm only, and its ``exp``/``nbf`` are honoured.
  Its claims ``username`` and ``role`` are read from its ``user`` object, as Rasa Core 0.12 did,
  or from the top level (older clients). Role ``admin`` admits to everything; role ``user``
  only to routes whose ``sender_id`` is its ``username``.
- With both configured, either one admits.

Missing or invalid credentials are refused with 401 ``NotAuthenticated``, valid credentials
that do not allow the route with 403 ``NotAuthorized``.
"""

import hmac
import ipaddress
import re
import warnings
from typing import Any, Dict, Optional, Tuple

import jwt
from jwt.algorithms import get_default_algorithms
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from coreactors.http.app import Authorize
from coreactors.log_observers import levelled

Refusal = Tuple[int, str, str]

log = Logger(observer=levelled)

_NOT_AUTHENTICATED = "NotAuthenticated"
_NOT_AUTHORIZED = "NotAuthorized"

# The most specific PyJWT errors first: several derive from DecodeError.
_JWT_PROBLEMS = (
    (jwt.ExpiredSignatureError, "The JWT has expired."),
    (jwt.ImmatureSignatureError, "The JWT is not valid yet (its nbf or iat is in the future)."),
    (jwt.InvalidAlgorithmError, "The JWT is not signed with the algorithm this server accepts."),
    (jwt.InvalidSignatureError, "The JWT's signature is not valid."),
    (jwt.DecodeError, "The JWT is malformed."),
)


def check_auth_options(auth_token: Optional[str], jwt_secret: Optional[str],
                       jwt_method: str) -> None:
    """Raises ``ValueError`` saying what is wrong with these options (checked at startup)."""
    if auth_token is not None and not auth_token:
        raise ValueError("--auth_token must not be empty.")
    if jwt_secret is not None and not jwt_secret:
        raise ValueError("--jwt_secret must not be empty.")
    algorithms = get_default_algorithms()
    # "none" would accept unsigned tokens: it is never a choice.
    accepted = sorted(name for name in algorithms if name != "none")
    if jwt_method not in accepted:
        raise ValueError("--jwt_method {!r} is not a JWT algorithm this server supports; use "
                         "one of {}.".format(jwt_method, ", ".join(accepted)))
    if jwt_secret:
        try:
            algorithms[jwt_method].prepare_key(jwt_secret)
        except jwt.InvalidKeyError:
            raise ValueError("--jwt_secret is not a valid key for {} (RS*, PS*, ES* and EdDSA "
                             "want a PEM public key).".format(jwt_method))


def make_authorizer(auth_token: Optional[str] = None, jwt_secret: Optional[str] = None,
                    jwt_method: str = "HS256") -> Optional[Authorize]:
    """The ``authorize`` hook for ``CoreApp``; None (everything open) without token or secret.

    Raises ``ValueError`` for options ``check_auth_options`` refuses."""
    check_auth_options(auth_token, jwt_secret, jwt_method)
    if auth_token is None and jwt_secret is None:
        return None
    if jwt_secret is not None:
        _warn_about_a_short_key(jwt_secret, jwt_method)
    return _Authorizer(auth_token, jwt_secret, jwt_method)


class _Authorizer:
    def __init__(self, auth_token: Optional[str], jwt_secret: Optional[str],
                 jwt_method: str) -> None:
        self._token = auth_token.encode("utf-8") if auth_token is not None else None
        self._jwt_secret = jwt_secret
        self._jwt_method = jwt_method

    def __call__(self, request: IRequest, sender_id: Optional[str]) -> Optional[Refusal]:
        given_token = (request.args.get(b"token") or [None])[0]
        if self._token is not None and given_token is not None:
            if hmac.compare_digest(given_token, self._token):
                return None
        header = request.getHeader(b"authorization")
        if self._jwt_secret is not None and header is not None:
            return self._check_jwt(header, sender_id)
        if self._token is not None and given_token is not None:
            return _unauthenticated("The token is wrong.")
        return _unauthenticated("User is not authenticated; send {}.".format(self._wanted()))

    def _wanted(self) -> str:
        ways = []
        if self._token is not None:
            ways.append("the API token as ?token=...")
        if self._jwt_secret is not None:
            ways.append("a JWT as 'Authorization: Bearer <JWT>'")
        return " or ".join(ways)

    def _check_jwt(self, header: bytes, sender_id: Optional[str]) -> Optional[Refusal]:
        scheme, _, token = header.decode("latin-1").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            return _unauthenticated("Bad Authorization header; expected 'Bearer <JWT>'.")
        try:
            # Only the configured algorithm: never the one the token's header asks for.
            payload = jwt.decode(token, self._jwt_secret, algorithms=[self._jwt_method])
        except jwt.InvalidTokenError as e:
            return _unauthenticated(_jwt_problem(e))
        return _permission(_claims(payload), sender_id)


def _claims(payload: Dict[str, Any]) -> Dict[str, Any]:
    user = payload.get("user")
    return user if isinstance(user, dict) else payload


def _permission(claims: Dict[str, Any], sender_id: Optional[str]) -> Optional[Refusal]:
    role = claims.get("role")
    if role == "admin":
        return None
    if role != "user":
        return _unauthorized("User has insufficient permissions: the JWT's role must be "
                             "'admin' or 'user'.")
    if sender_id is None:
        return _unauthorized("User has insufficient permissions: role 'user' may only use "
                             "the routes of its own conversation.")
    username = claims.get("username")
    if not isinstance(username, str) or username != sender_id:
        return _unauthorized("User has insufficient permissions: role 'user' may only use "
                             "its own conversation (sender id = the JWT's username).")
    return None


def _jwt_problem(error: jwt.InvalidTokenError) -> str:
    for kind, message in _JWT_PROBLEMS:
        if isinstance(error, kind):
            return message
    return "The JWT is not valid ({}).".format(type(error).__name__)


def _unauthenticated(message: str) -> Refusal:
    return (401, _NOT_AUTHENTICATED, message)


def _unauthorized(message: str) -> Refusal:
    return (403, _NOT_AUTHORIZED, message)


def _warn_about_a_short_key(jwt_secret: str, jwt_method: str) -> None:
    algorithm = get_default_algorithms()[jwt_method]
    check = getattr(algorithm, "check_key_length", None)  # PyJWT >= 2.10
    advice = check(algorithm.prepare_key(jwt_secret)) if check is not None else None
    if advice:
        # Said once here; PyJWT would otherwise repeat it from inside request handling.
        log.warn("--jwt_secret: {advice}", advice=advice)
        warnings.filterwarnings("ignore", category=jwt.InsecureKeyLengthWarning)


def exposure_warning(listen: str, enable_api: bool, authenticated: bool) -> Optional[str]:
    """What to warn about at start when the API is served without authentication on an
    endpoint (``--listen``/``--port``, as a Twisted endpoint string) that other machines may
    reach; None when the API is off, authenticated, or listens on loopback or a unix socket."""
    if not enable_api or authenticated:
        return None
    kind = listen.split(":", 1)[0].strip().lower()
    if kind == "unix":
        return None
    found = re.search(r"(?:^|:)interface=((?:\\.|[^:\\])*)", listen)
    interface = re.sub(r"\\(.)", r"\1", found.group(1)) if found else ""
    if interface.lower() == "localhost":
        return None
    try:
        if interface and ipaddress.ip_address(interface).is_loopback:
            return None
    except ValueError:
        pass
    where = ("on {}".format(interface) if interface else
             "on a socket systemd opened" if kind == "systemd" else "on every interface")
    return ("The HTTP API (--enable_api) is served {} ({}) without authentication: anyone who "
            "can reach it can read and change every conversation and replace the model. Use "
            "--auth_token or --jwt_secret, or listen on 127.0.0.1 only (--listen "
            "tcp:5005:interface=127.0.0.1).".format(where, listen))


__all__ = ["check_auth_options", "exposure_warning", "make_authorizer", "Refusal"]

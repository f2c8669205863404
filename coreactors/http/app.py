"""The HTTP API of Rasa Core 0.12, as a Klein app over ``IConversations``.

Routes only parse the request, ask the actor system (every call returns a Deferred) and write
the answer; they never touch a tracker. Every answer has an explicit ``Content-Length``; every
refusal is the API's JSON error body (see ``errors.py``), never an HTML page.

Serve it with ``make_site(CoreApp(conversations, ...).resource())``. ``resource()`` wraps the
Klein resource so that CORS headers go on every answer and an encoded ``/`` in a sender id
(``/conversations/a%2Fb/tracker``) stays inside its path segment.
"""

import email
import functools
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple
from urllib.parse import quote

from klein import Klein
from klein.interfaces import IKleinRequest
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import Site
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from coreactors import MINIMUM_COMPATIBLE_VERSION, RASA_CORE_VERSION, __version__
from coreactors.actors.interface import ConversationError, IConversations, IModelArchives
from coreactors.fastpaths.twisted_web import channel_class, request_class
from coreactors.http.channels import InputChannel, RestInput
from coreactors.http.errors import (
    HttpError, bad_parameter, write_body, write_error, write_http_error, write_json)
from coreactors.http.redaction import redact
from coreactors.http.requests import (
    bool_arg, check_events, check_parse_data, float_arg, optional_number, optional_str,
    path_segment, query_arg, read_body, read_json, read_text, required_str, verbosity_arg)
from coreactors.http.routing import klein_app
from coreactors.http.site import APIChannel, APIRequest, APISite, QuietSite
from coreactors.log_observers import levelled

# authorize(request, sender_id or None) -> None to let the request through, or
# (status, reason, message) to refuse it. It may also return a Deferred of either.
Authorize = Callable[[IRequest, Optional[str]], Any]

TEXT_PLAIN = b"text/plain; charset=utf-8"
YAML_CONTENT_TYPE = b"application/x-yml"
# The OpenAPI description of what this app serves, shipped in the package (setup.py).
OPENAPI_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi.yml")
OPENAPI_CONTENT_TYPE = b"application/yaml; charset=utf-8"
_JSON_MEDIA = ("application/json", "application/*", "*/*")
_YAML_MEDIA = ("application/x-yml", "application/yaml", "application/x-yaml")
_CORS_METHODS = b"GET, POST, PUT, OPTIONS"
_CORS_HEADERS = b"Content-Type, Authorization"

# Endpoint names of the routes that exist only with enable_api.
_API_ENDPOINTS: Set[str] = set()


def _route(app: Klein, path: str, *methods: str, api: bool = True,
           protected: bool = True) -> Callable:
    """Registers a CoreApp method as a route; ``OPTIONS`` (CORS preflight) is always allowed.

    ``api``: the route exists only with ``enable_api``; ``protected``: the ``authorize`` hook
    runs first. The method gets its path parameters decoded and may raise ``HttpError``."""
    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def endpoint(self: "CoreApp", request: IRequest, **params: str) -> Any:
            return self._serve(request, handler, params, api, protected)
        if api:
            _API_ENDPOINTS.add(handler.__name__)
        app.route(path, methods=list(methods) + ["OPTIONS"])(endpoint)
        return endpoint
    return decorate


class CoreApp:
    """The Rasa Core 0.12 HTTP API plus the channel webhooks, over ``conversations``."""

    app = klein_app()
    log = Logger(observer=levelled)

    def __init__(self, conversations: IConversations, enable_api: bool = True,
                 cors_origins: Sequence[str] = (), max_body_bytes: int = 1_000_000,
                 max_model_bytes: int = 64 * 1024 * 1024,
                 in_thread: Optional[Callable[..., defer.Deferred]] = None,
                 authorize: Optional[Authorize] = None,
                 channels: Optional[Sequence[InputChannel]] = None) -> None:
        self._conversations = conversations
        self._enable_api = enable_api
        self._cors_origins = frozenset(cors_origins or ())
        self._max_body_bytes = max_body_bytes
        # A zipped model (POST /model) is far bigger than any JSON request.
        self._max_model_bytes = max(max_model_bytes, max_body_bytes)
        self._authorize = authorize
        # Runs CPU-heavy request work (reading an uploaded model) off the reactor thread.
        self._in_thread = in_thread or threads.deferToThread
        # Read here, at start-up, so no request waits on the disk (the reactor never blocks).
        self._openapi = _openapi_document()
        if channels is None:
            channels = [RestInput()]
        self._channels: Dict[str, InputChannel] = {}
        for channel in channels:
            if channel.name in self._channels:
                raise ValueError("Two channels are named '{}'.".format(channel.name))
            self._channels[channel.name] = channel

    @property
    def channels(self) -> List[InputChannel]:
        return list(self._channels.values())

    def resource(self) -> Resource:
        """The root resource to serve (``Site(app.resource())``)."""
        return _Root(self, self.app.resource())

    # ------------------------------------------------------------------ plumbing

    def _serve(self, request: IRequest, handler: Callable, params: Dict[str, str],
               api: bool, protected: bool) -> Any:
        if api and not self._enable_api:
            return self._not_found(request)
        if request.method == b"OPTIONS":
            return self._preflight(request)
        try:
            params = {name: path_segment(value, name) for name, value in params.items()}
        except HttpError as e:
            return write_http_error(request, e)
        if not (protected and self._authorize is not None):
            return self._run_route(request, handler, params)
        d = defer.maybeDeferred(self._authorize, request, params.get("sender_id"))

        def run(refusal: Optional[Tuple[int, str, str]]) -> Any:
            if refusal is not None:
                status, reason, message = refusal
                return write_error(request, status, reason, message)
            return self._run_route(request, handler, params)

        d.addCallback(run)
        d.addErrback(self._answer_failure, request)
        return d

    def _run_route(self, request: IRequest, handler: Callable, params: Dict[str, str]) -> Any:
        """Runs a route now; whether it fails at once or later, the failure is answered."""
        try:
            result = handler(self, request, **params)
        except Exception:
            return self._answer_failure(Failure(), request)
        if isinstance(result, defer.Deferred):
            result.addErrback(self._answer_failure, request)
        return result

    def _answer_failure(self, failure: Failure, request: IRequest) -> Optional[bytes]:
        if failure.check(defer.CancelledError):
            return None  # the client went away; nobody is left to answer
        if getattr(request, "startedWriting", False):
            # A streamed answer has begun: the status line is gone, so log and end it.
            self.log.failure("Failed in the middle of answering {method} {uri}", failure,
                             method=_text(request.method), uri=redact(_text(request.uri)))
            return None
        error = failure.value
        if isinstance(error, HttpError):
            return write_http_error(request, error)
        if isinstance(error, ConversationError):
            return write_error(request, error.status, error.reason, error.message)
        self.log.failure("Internal error answering {method} {uri}", failure,
                         method=_text(request.method), uri=redact(_text(request.uri)))
        return write_error(request, 500, "InternalError",
                           "An internal error occurred ({}); it has been logged."
                           .format(type(error).__name__))

    def _answer(self, request: IRequest, d: defer.Deferred, status: int = 200
                ) -> defer.Deferred:
        return d.addCallback(lambda value: write_json(request, value, status))

    def _not_found(self, request: IRequest) -> bytes:
        return write_error(request, 404, "NotFound", "There is no resource {} {}.".format(
            _text(request.method), _text(request.path)))

    def _preflight(self, request: IRequest) -> bytes:
        mapper = IKleinRequest(request).mapper
        allowed = mapper.allowed_methods() if mapper is not None else []
        if allowed:
            request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
        return write_body(request, b"", TEXT_PLAIN)

    def add_cors_headers(self, request: IRequest) -> None:
        """The CORS headers for this request's Origin, if it is allowed."""
        if not self._cors_origins:
            return
        origin = request.getHeader(b"origin")
        if "*" in self._cors_origins:
            request.setHeader(b"Access-Control-Allow-Origin", b"*")
        elif origin is not None and _text(origin) in self._cors_origins:
            request.setHeader(b"Access-Control-Allow-Origin", origin)
            # Credentials are only allowed with a named origin, never with "*".
            request.setHeader(b"Access-Control-Allow-Credentials", b"true")
            request.setHeader(b"Vary", b"Origin")
        else:
            return
        request.setHeader(b"Access-Control-Allow-Methods", _CORS_METHODS)
        request.setHeader(b"Access-Control-Allow-Headers", _CORS_HEADERS)

    # ------------------------------------------------------------------ errors of routing

    @app.handle_errors(NotFound)
    def _unknown_route(self, request: IRequest, failure: Failure) -> bytes:
        return self._not_found(request)

    @app.handle_errors(MethodNotAllowed)
    def _wrong_method(self, request: IRequest, failure: Failure) -> bytes:
        allowed = list(failure.value.valid_methods or [])
        if not self._enable_api and self._is_api_path(request, allowed):
            return self._not_found(request)
        if allowed:
            request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
        return write_error(request, 405, "MethodNotAllowed",
                           "The method {} is not allowed for {}; use {}.".format(
                               _text(request.method), _text(request.path),
                               ", ".join(allowed) or "another method"))

    @app.handle_errors(HTTPException)
    def _other_routing_error(self, request: IRequest, failure: Failure) -> Any:
        error = failure.value
        if isinstance(error, RequestRedirect):
            # A missing trailing slash (``/webhooks/rest``): werkzeug redirects to the slash.
            request.setHeader(b"Location", error.new_url.encode("utf-8"))
            return write_body(request, b"", TEXT_PLAIN, error.code)
        return write_error(request, error.code, type(error).__name__,
                           error.description or error.name)

    @app.handle_errors(Exception)
    def _unexpected(self, request: IRequest, failure: Failure) -> Optional[bytes]:
        return self._answer_failure(failure, request)

    def _is_api_path(self, request: IRequest, methods: List[str]) -> bool:
        mapper = IKleinRequest(request).mapper
        for method in methods:
            try:
                rule, _ = mapper.match(method=method, return_rule=True)
            except HTTPException:
                continue
            return rule.endpoint in _API_ENDPOINTS
        return False

    # ------------------------------------------------------------------ status

    @_route(app, "/", "GET", api=False, protected=False)
    def hello(self, request: IRequest) -> bytes:
        return write_body(request, "hello from Rasa Core: {}".format(RASA_CORE_VERSION)
                          .encode("utf-8"), TEXT_PLAIN)

    @_route(app, "/version", "GET", protected=False)
    def version(self, request: IRequest) -> bytes:
        return write_json(request, {"version": RASA_CORE_VERSION,
                                    "minimum_compatible_version": MINIMUM_COMPATIBLE_VERSION,
                                    "coreactors": __version__})

    @_route(app, "/openapi.yml", "GET", api=False, protected=False)
    def openapi(self, request: IRequest) -> bytes:
        return write_body(request, self._openapi, OPENAPI_CONTENT_TYPE)

    @_route(app, "/status", "GET")
    def status(self, request: IRequest) -> bytes:
        return write_json(request, {"model_fingerprint": self._conversations.fingerprint,
                                    "is_ready": bool(self._conversations.is_ready)})

    # ------------------------------------------------------------------ conversations

    @_route(app, "/conversations", "GET")
    def list_conversations(self, request: IRequest) -> defer.Deferred:
        return self._answer(request, self._conversations.conversation_ids())

    @_route(app, "/conversations/<sender_id>/tracker", "GET")
    def tracker(self, request: IRequest, sender_id: str) -> defer.Deferred:
        verbosity = verbosity_arg(request, legacy=True)
        until = float_arg(request, "until")
        return self._answer(request, self._conversations.tracker(sender_id, verbosity, until))

    @_route(app, "/conversations/<sender_id>/tracker/events", "POST")
    def append_events(self, request: IRequest, sender_id: str) -> defer.Deferred:
        verbosity = verbosity_arg(request)
        body = read_json(request, self._max_body_bytes, (dict, list))
        events = check_events([body] if isinstance(body, dict) else body)
        return self._answer(request, self._conversations.append_events(
            sender_id, events, verbosity))

    @_route(app, "/conversations/<sender_id>/tracker/events", "PUT")
    def replace_events(self, request: IRequest, sender_id: str) -> defer.Deferred:
        verbosity = verbosity_arg(request)
        events = check_events(read_json(request, self._max_body_bytes, list))
        return self._answer(request, self._conversations.replace_events(
            sender_id, events, verbosity))

    @_route(app, "/conversations/<sender_id>/messages", "POST")
    def log_message(self, request: IRequest, sender_id: str) -> defer.Deferred:
        verbosity = verbosity_arg(request)
        body = read_json(request, self._max_body_bytes, dict)
        text = required_str(body, "text", "message", allow_empty=True)
        sender = body.get("sender")
        if sender is None:
            raise bad_parameter("The request body needs the field 'sender' (\"user\").",
                                "sender")
        if sender != "user":
            # Rasa Core 0.12 answered 500 here; it is the client's mistake, so 400.
            raise bad_parameter(
                "Currently, only user messages can be passed to this endpoint. Messages of "
                "sender '{}' can not be handled.".format(sender), "sender",
                reason="NotSupported")
        parse_data = check_parse_data(body.get("parse_data"))
        return self._answer(request, self._conversations.log_message(
            sender_id, text, parse_data, verbosity))

    @_route(app, "/conversations/<sender_id>/predict", "POST")
    def predict(self, request: IRequest, sender_id: str) -> defer.Deferred:
        return self._answer(request, self._conversations.predict(sender_id))

    @_route(app, "/conversations/<sender_id>/execute", "POST")
    def execute(self, request: IRequest, sender_id: str) -> defer.Deferred:
        verbosity = verbosity_arg(request)
        body = read_json(request, self._max_body_bytes, dict)
        action = required_str(body, "name", "action")
        policy = optional_str(body, "policy")
        confidence = optional_number(body, "confidence")
        return self._answer(request, self._conversations.execute(
            sender_id, action, policy, confidence, verbosity))

    @_route(app, "/conversations/<sender_id>/respond", "GET", "POST")
    def respond(self, request: IRequest, sender_id: str) -> defer.Deferred:
        body: Dict[str, Any] = {}
        if request.method == b"POST":
            body = read_json(request, self._max_body_bytes, dict, required=False) or {}
        text = body.get("query", body.get("q"))
        if text is None:
            text = query_arg(request, "query")
        if text is None:
            text = query_arg(request, "q")
        if text is None:
            raise bad_parameter("Missing the message parameter.", "query", "query")
        if not isinstance(text, str):
            raise bad_parameter("'query' must be a string.", "query")
        return self._answer(request, self._conversations.handle_message(
            sender_id, text, None, None))

    @_route(app, "/conversations/<sender_id>/story", "GET")
    def story(self, request: IRequest, sender_id: str) -> defer.Deferred:
        until = float_arg(request, "until")
        d = self._conversations.story(sender_id, until)
        return d.addCallback(lambda text: write_body(request, text.encode("utf-8"), TEXT_PLAIN))

    # ------------------------------------------------------------------ model

    @_route(app, "/predict", "POST")
    def predict_for_events(self, request: IRequest) -> defer.Deferred:
        events = check_events(read_json(request, self._max_body_bytes, list))
        return self._answer(request, self._conversations.predict_for_events(events))

    @_route(app, "/evaluate", "POST")
    def evaluate(self, request: IRequest) -> defer.Deferred:
        e2e = bool_arg(request, "e2e", False)
        stories = read_text(request, self._max_body_bytes)
        if not stories.strip():
            raise bad_parameter("The request body must be stories in markdown.", "stories")
        return self._answer(request, self._conversations.evaluate(stories, e2e))

    @_route(app, "/finetune", "POST")
    def finetune(self, request: IRequest) -> defer.Deferred:
        events = check_events(read_json(request, self._max_body_bytes, list))

        def no_content(_: Any) -> bytes:
            request.setResponseCode(204)
            return b""
        return self._conversations.finetune(events).addCallback(no_content)

    @_route(app, "/model", "POST")
    def replace_model(self, request: IRequest) -> Any:
        loader = IModelArchives(self._conversations, None)
        if loader is None:
            return self._not_found(request)
        body, content_type = _model_upload(request, self._max_model_bytes)
        # Reading a form of many megabytes is CPU work the reactor thread must not do.
        d = self._in_thread(_form_file, body, content_type, "model")
        d.addCallback(loader.load_model_archive)

        def no_content(_: Any) -> bytes:
            request.setResponseCode(204)
            return b""
        return d.addCallback(no_content)

    @_route(app, "/parse", "POST")
    def parse(self, request: IRequest) -> defer.Deferred:
        body = read_json(request, self._max_body_bytes, dict)
        text = required_str(body, "q", "text", allow_empty=True)
        return self._answer(request, self._conversations.parse(text))

    @_route(app, "/domain", "GET")
    def domain(self, request: IRequest) -> bytes:
        as_yaml = _wants_yaml(request.getHeader(b"accept"))
        domain = self._conversations.domain()
        if as_yaml:
            return write_body(request, domain.as_yaml().encode("utf-8"), YAML_CONTENT_TYPE)
        return write_json(request, domain.as_dict())

    # ------------------------------------------------------------------ channels

    @_route(app, "/webhooks/<channel>/", "GET", api=False, protected=False)
    def channel_health(self, request: IRequest, channel: str) -> Any:
        return self._channel(channel).health(request)

    @_route(app, "/webhooks/<channel>/webhook", "POST", api=False, protected=False)
    def channel_webhook(self, request: IRequest, channel: str) -> Any:
        input_channel = self._channel(channel)
        payload = read_json(request, self._max_body_bytes, dict)
        return input_channel.webhook(request, payload, self._conversations)

    def _channel(self, name: str) -> InputChannel:
        try:
            return self._channels[name]
        except KeyError:
            raise HttpError(404, "NotFound", "There is no channel '{}' (channels here: {})."
                            .format(name, ", ".join(sorted(self._channels)) or "none"))


# Characters percent-encoding leaves as they are: most segments consist of nothing else, and
# are passed on without quoting.
_UNRESERVED = re.compile(rb"[A-Za-z0-9_.~-]*")


class _Root(Resource):
    """Puts the CORS headers on every answer, then lets Klein route the request.

    Twisted has already percent-decoded the path segments, so ``a%2Fb`` arrives as ``a/b`` and
    would split into two segments when Klein joins them again; quoting each segment keeps it
    whole, and the routes decode their parameters (``requests.path_segment``)."""

    isLeaf = True

    def __init__(self, app: CoreApp, klein_resource: Resource) -> None:
        super().__init__()
        self._app = app
        self._klein = klein_resource

    def render(self, request: IRequest) -> Any:
        self._app.add_cors_headers(request)
        request.postpath = [segment if _UNRESERVED.fullmatch(segment)
                            else quote(segment, safe="").encode("ascii")
                            for segment in request.postpath]
        return self._klein.render(request)


def _wants_yaml(accept: Optional[bytes]) -> bool:
    """Content negotiation for ``GET /domain``: JSON unless the client prefers YAML."""
    if accept is None or not accept.strip():
        return False
    ranges = []
    for position, item in enumerate(_text(accept).split(",")):
        media, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media and quality > 0:
            ranges.append((-quality, position, media.strip().lower()))
    for _, _, media in sorted(ranges):
        if media in _JSON_MEDIA:
            return False
        if media in _YAML_MEDIA:
            return True
    raise HttpError(406, "InvalidHeader",
                    "Invalid Accept header '{}'. The domain is available as JSON "
                    "(\"Accept: application/json\") or YAML (\"Accept: application/x-yml\")."
                    .format(_text(accept)))


def make_site(resource: Resource, quiet: bool = False, fast: Optional[bool] = None) -> Site:
    """The Site to serve ``resource`` (``CoreApp.resource()``) with; ``quiet`` drops the
    per-request access log (``--quiet``). Its request and connection classes are the fast
    variants (``coreactors.fastpaths.twisted_web``: ``request_cleanup``, ``eager_send``) or
    the plain ones: ``fast`` True or False picks all of one kind, None asks the switch."""
    site = (QuietSite if quiet else APISite)(resource, requestFactory=request_class(fast))
    site.protocol = channel_class(fast)
    site.displayTracebacks = False  # never show a client our internals
    return site


def _model_upload(request: IRequest, max_bytes: int) -> Tuple[bytes, str]:
    """The body and Content-Type of a ``POST /model`` (a multipart/form-data upload)."""
    body = read_body(request, max_bytes)
    content_type = _text(request.getHeader(b"content-type") or b"")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise HttpError(400, "BadRequest",
                        "POST /model takes the zipped model as the multipart/form-data field "
                        "'model' (curl -F model=@model.zip); the Content-Type was {}.".format(
                            repr(content_type) if content_type else "missing"))
    return body, content_type


def _form_file(body: bytes, content_type: str, field: str) -> bytes:
    """The content of the file field ``field`` of a multipart/form-data body."""
    form = email.message_from_bytes(
        b"MIME-Version: 1.0\r\nContent-Type: " + content_type.encode("latin-1", "replace")
        + b"\r\n\r\n" + body)
    if not form.is_multipart():
        raise HttpError(400, "BadRequest", "The multipart/form-data body cannot be read "
                                           "(no boundary, or no parts).")
    for part in form.get_payload():
        if part.get_param("name", header="content-disposition") == field:
            data = part.get_payload(decode=True)
            if data:
                return data
    raise bad_parameter("The form has no file in the field '{}' (the zipped model).".format(
        field), field)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


@functools.lru_cache(maxsize=1)
def _openapi_document() -> bytes:
    # Read once per process: the file does not change while the server runs.
    with open(OPENAPI_PATH, "rb") as f:
        return f.read()


__all__ = ["APIChannel", "APIRequest", "APISite", "Authorize", "CoreApp", "QuietSite",
           "make_site"]

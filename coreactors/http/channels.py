"""Input channels: where users' messages come in and the bot's answers go out.

A channel is mounted by ``CoreApp`` under ``/webhooks/<name>/``: ``GET /webhooks/<name>/`` is
its health check and ``POST /webhooks/<name>/webhook`` takes ``{"sender", "message"}``. The app
reads the body (size limit, JSON object) and hands it to the channel's ``webhook``; errors a
channel raises (``HttpError``, ``ConversationError``) become the API's error body. Channels are
never behind the API's ``authorize`` hook: they are how end users talk to the bot.

- ``RestInput`` (``rest``): answers the bot messages of the turn as a JSON list, or with
  ``?stream=true`` writes them one JSON object per line as the turn produces them.
- ``CallbackInput`` (``callback``): answers ``success`` and POSTs every bot message as JSON to a
  configured URL, as it is produced and in order; a failing URL is logged, never fatal.

``channels_from_credentials`` builds the channels a ``credentials.yml`` asks for.
"""

from typing import Any, Dict, List, Optional, Tuple

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import RequestTransmissionFailed, ResponseNeverReceived
from twisted.web.iweb import IRequest

from coreactors.actors.interface import IConversations, NoModelLoaded
from coreactors.fastpaths.twisted_web import REQUEST_NOT_SENT
from coreactors.http.errors import bad_parameter, dump_json, write_body, write_json
from coreactors.http.requests import bool_arg
from coreactors.log_observers import levelled

DEFAULT_SENDER_ID = "default"
SUPPORTED_CHANNELS = ("rest", "callback")


def message_from(payload: Dict[str, Any]) -> Tuple[str, str]:
    """``(sender_id, text)`` of a webhook body: a missing sender is ``"default"``, a number is
    turned into its string; ``message`` must be a string."""
    sender = payload.get("sender")
    if sender is None:
        sender_id = DEFAULT_SENDER_ID
    elif isinstance(sender, (str, int, float)) and not isinstance(sender, bool):
        sender_id = str(sender)
    else:
        raise bad_parameter("'sender' must be a string (the conversation id).", "sender")
    text = payload.get("message")
    if text is None:
        raise bad_parameter("The request body needs the field 'message' (the user's text).",
                            "message")
    if not isinstance(text, str):
        raise bad_parameter("'message' must be a string.", "message")
    return sender_id, text


class InputChannel:
    """A channel mounted at ``/webhooks/<name>/``."""

    name = ""
    log = Logger(observer=levelled)

    def health(self, request: IRequest) -> bytes:
        return write_json(request, {"status": "ok"})

    def webhook(self, request: IRequest, payload: Dict[str, Any],
                conversations: IConversations) -> Any:
        """Handles one user message; returns the body (or a Deferred of it)."""
        raise NotImplementedError

    def _without_model(self, failure: Failure, sender_id: str) -> None:
        # Rasa Core answered an empty turn when no model was loaded; channel clients (chat
        # widgets) rely on that, so the channels do the same and only log it.
        failure.trap(NoModelLoaded)
        self.log.warn("No model loaded: the message of {sender_id} got no answer "
                      "(channel {channel}).", sender_id=sender_id, channel=self.name)
        return None

    def __repr__(self) -> str:
        return "<{} {!r}>".format(type(self).__name__, self.name)


class RestInput(InputChannel):
    """``POST /webhooks/rest/webhook``: the bot's answers as a JSON list (or a stream)."""

    name = "rest"

    def webhook(self, request: IRequest, payload: Dict[str, Any],
                conversations: IConversations) -> Any:
        sender_id, text = message_from(payload)
        if bool_arg(request, "stream", False):
            return self._stream(request, sender_id, text, conversations)
        d = conversations.handle_message(sender_id, text, self.name, None)
        d.addErrback(self._without_model, sender_id)
        d.addCallback(lambda messages: write_json(request, list(messages or [])))
        return d

    def _stream(self, request: IRequest, sender_id: str, text: str,
                conversations: IConversations) -> defer.Deferred:
        # Headers go out with the first message, so a turn that fails before saying anything
        # still gets a proper error body. Without a Content-Length Twisted sends it chunked.
        started = []

        def start() -> None:
            if not started:
                started.append(True)
                request.setResponseCode(200)
                request.setHeader(b"Content-Type", b"text/event-stream")
                request.setHeader(b"Cache-Control", b"no-cache")

        def on_message(message: Dict[str, Any]) -> None:
            start()
            request.write(dump_json(message) + b"\n")

        def done(_: Any) -> bytes:
            start()
            return b""

        d = conversations.handle_message(sender_id, text, self.name, on_message)
        d.addErrback(self._without_model, sender_id)
        d.addCallback(done)
        return d


class CallbackInput(InputChannel):
    """``POST /webhooks/callback/webhook``: answers ``success``; each bot message is POSTed as
    JSON to ``url`` as the turn produces it (an EndpointConfig-like block of credentials.yml:
    ``url``, ``headers``, ``params``, ``basic_auth: {username, password}``, ``token`` sent as
    the query parameter ``token_name``)."""

    name = "callback"

    def __init__(self, url: str, headers: Optional[Dict[str, str]] = None,
                 params: Optional[Dict[str, Any]] = None,
                 basic_auth: Optional[Dict[str, str]] = None, token: Optional[str] = None,
                 token_name: str = "token", http_client: Any = None,
                 timeout: Optional[float] = 30.0) -> None:
        if not isinstance(url, str) or not url:
            raise ValueError("The callback channel needs a 'url' to send the bot's messages to.")
        self.url = url
        self.headers = dict(headers or {})
        self.params = dict(params or {})
        if token:
            self.params[token_name] = token
        self.auth: Optional[Tuple[str, str]] = None
        if basic_auth:
            try:
                self.auth = (str(basic_auth["username"]), str(basic_auth["password"]))
            except (KeyError, TypeError):
                raise ValueError("The callback channel's 'basic_auth' needs 'username' and "
                                 "'password'.")
        self._http_client = http_client
        self.timeout = timeout

    @classmethod
    def from_credentials(cls, credentials: Any, http_client: Any = None) -> "CallbackInput":
        if not isinstance(credentials, dict):
            raise ValueError("The 'callback' channel in the credentials needs a block with at "
                             "least 'url'.")
        return cls(url=credentials.get("url"), headers=credentials.get("headers"),
                   params=credentials.get("params"), basic_auth=credentials.get("basic_auth"),
                   token=credentials.get("token"),
                   token_name=credentials.get("token_name") or "token",
                   http_client=http_client)

    @property
    def http_client(self) -> Any:
        if self._http_client is None:
            import treq
            self._http_client = treq
        return self._http_client

    def webhook(self, request: IRequest, payload: Dict[str, Any],
                conversations: IConversations) -> Any:
        sender_id, text = message_from(payload)
        # One chain per turn keeps the messages in the order the bot said them.
        deliveries = defer.succeed(None)

        def on_message(message: Dict[str, Any]) -> None:
            deliveries.addCallback(lambda _: self.deliver(message))

        d = conversations.handle_message(sender_id, text, self.name, on_message)
        d.addErrback(self._without_model, sender_id)
        d.addCallback(lambda _: write_body(request, b"success", b"text/plain; charset=utf-8"))
        return d

    def deliver(self, message: Dict[str, Any]) -> defer.Deferred:
        """POSTs one message to the callback URL; fires with None whatever happens."""
        kwargs: Dict[str, Any] = {"json": message}
        if self.headers:
            kwargs["headers"] = self.headers
        if self.params:
            kwargs["params"] = self.params
        if self.auth:
            kwargs["auth"] = self.auth
        if self.timeout:
            kwargs["timeout"] = self.timeout
        d = defer.maybeDeferred(self.http_client.post, self.url, **kwargs)

        def retry_stale_connection(failure: Any) -> Any:
            # A kept-alive connection the callback server has meanwhile closed fails before any
            # answer; one retry on a fresh connection delivers the message.
            failure.trap(ResponseNeverReceived, RequestTransmissionFailed, *REQUEST_NOT_SENT)
            return self.http_client.post(self.url, **kwargs)
        d.addErrback(retry_stale_connection)
        d.addCallback(self._check_answer)
        d.addErrback(lambda failure: self.log.failure(
            "Could not send a bot message to the callback URL {url}", failure, url=self.url))
        return d

    def _check_answer(self, response: Any) -> defer.Deferred:
        # Read the body so the connection can be reused, then judge the status.
        d = defer.maybeDeferred(response.content)

        def judge(body: bytes) -> None:
            if not 200 <= response.code < 300:
                self.log.warn("The callback URL {url} answered {code}: {body!r}",
                              url=self.url, code=response.code, body=body[:200])
        d.addCallback(judge)
        return d

    def __repr__(self) -> str:
        return "<CallbackInput {!r}>".format(self.url)


def channels_from_credentials(credentials: Optional[Dict[str, Any]],
                              connector: Optional[str] = None) -> List[InputChannel]:
    """The channels to mount: with ``connector`` (``-c``) just that one (its credentials taken
    from the file), else every channel the credentials list, else the REST channel alone.

    Raises ValueError naming a channel coreactors does not provide (facebook, slack, ...)."""
    if credentials is None:
        credentials = {}
    if not isinstance(credentials, dict):
        raise ValueError("The credentials must be a mapping of channel names to their settings "
                         "(as in credentials.yml).")
    if connector:
        names = [connector]
    elif credentials:
        names = list(credentials)
    else:
        names = ["rest"]
    channels: List[InputChannel] = []
    for name in names:
        settings = credentials.get(name)
        if name == "rest":
            channels.append(RestInput())
        elif name == "callback":
            channels.append(CallbackInput.from_credentials(settings))
        else:
            raise ValueError("The channel '{}' is not supported by coreactors; the supported "
                             "channels are: {}.".format(name, ", ".join(SUPPORTED_CHANNELS)))
    return channels

"""The action server client: POSTs an action request with treq, from a conversation actor.

The actor thread hands the call to the reactor (``blockingCallFromThread``) and waits for it;
only that conversation waits, and only up to the endpoint's timeout (its dispatcher serves
the other conversations on another thread meanwhile).
"""

import contextlib
import json
from typing import Any, Callable, ContextManager, Dict, Tuple

import treq
from twisted.internet import threads
from twisted.internet.defer import inlineCallbacks

from coreactors.endpoints import EndpointConfig

DEFAULT_TIMEOUT = 30.0


class TreqActionClient:
    """Calls the action server of ``action_endpoint``; usable as an ``ActionServerClient``."""

    def __init__(self, endpoint: EndpointConfig, reactor: Any,
                 blocking: Callable[[], ContextManager[Any]] = contextlib.nullcontext) -> None:
        if not endpoint.url:
            raise ValueError("'action_endpoint' needs a 'url'.")
        self.endpoint = endpoint
        self.reactor = reactor
        # Tells the actors' dispatcher that this thread waits (others serve the rest).
        self.blocking = blocking
        self.timeout = float(endpoint.kwargs.get("timeout", DEFAULT_TIMEOUT))

    def __call__(self, payload: Dict[str, Any]) -> Tuple[int, Any]:
        with self.blocking():
            return threads.blockingCallFromThread(self.reactor, self._post, payload)

    @inlineCallbacks
    def _post(self, payload: Dict[str, Any]):
        headers = dict(self.endpoint.headers)
        headers["Content-Type"] = "application/json"
        response = yield treq.post(
            self.endpoint.url, data=json.dumps(payload).encode("utf-8"), headers=headers,
            params=self.endpoint.query() or None, auth=self.endpoint.auth(),
            timeout=self.timeout, reactor=self.reactor)
        answer = yield json_answer(response)
        return answer


@inlineCallbacks
def json_answer(response: Any):
    """Fires with (status, the JSON body or None when there is none or it is not JSON)."""
    content = yield response.content()
    try:
        body = json.loads(content.decode("utf-8")) if content else None
    except ValueError:
        body = None
    return response.code, body

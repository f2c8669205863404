"""The NLU server client: one ``GET /parse`` with treq, called from an actor's thread.

The caller's thread hands the call to the reactor (``blockingCallFromThread``) and waits for it;
only that conversation waits, and only up to the endpoint's timeout (its dispatcher serves
the other conversations on another thread meanwhile).
"""

import contextlib
from typing import Any, Callable, ContextManager, Dict, Tuple

import treq
from twisted.internet import threads
from twisted.internet.defer import inlineCallbacks

from coreactors.actors.action_client import json_answer
from coreactors.endpoints import EndpointConfig

DEFAULT_TIMEOUT = 10.0


class TreqNLUClient:
    """Calls ``<nlu url>/parse``; usable as an ``NLUServerClient``."""

    def __init__(self, endpoint: EndpointConfig, reactor: Any,
                 blocking: Callable[[], ContextManager[Any]] = contextlib.nullcontext) -> None:
        if not endpoint.url:
            raise ValueError("'nlu' needs a 'url'.")
        self.url = endpoint.url.rstrip("/") + "/parse"
        self.endpoint = endpoint
        self.reactor = reactor
        # Tells the actors' dispatcher that this thread waits (others serve the rest).
        self.blocking = blocking
        self.timeout = float(endpoint.kwargs.get("timeout", DEFAULT_TIMEOUT))

    def __call__(self, params: Dict[str, str]) -> Tuple[int, Any]:
        with self.blocking():
            return threads.blockingCallFromThread(self.reactor, self._get, params)

    @inlineCallbacks
    def _get(self, params: Dict[str, str]):
        query = dict(self.endpoint.params)
        query.update(params)
        response = yield treq.get(self.url, params=query, headers=self.endpoint.headers or None,
                                  auth=self.endpoint.auth(), timeout=self.timeout,
                                  reactor=self.reactor)
        answer = yield json_answer(response)
        return answer

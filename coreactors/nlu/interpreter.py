"""Interpreters turn a user's text into parse data: intent, confidence and entities.

The RegexInterpreter (defined in ``coreactors.markup``, re-exported here) reads the
``/intent{"entity": "value"}`` shorthand that stories, buttons and tests use; it is the
interpreter when no NLU model is configured, and every message starting with ``/`` goes to it
even when one is. The HttpInterpreter asks a Rasa NLU server; the local
model (``coreactors.nlu.model.NLUModel``) is an interpreter too, as it has ``parse``.
"""

import os
from typing import Any, Callable, Dict, Optional, Tuple

# The shorthand's reader and the interpreters' common shape live in coreactors.markup, where
# stories can use them without importing this room; they stay importable from here.
from coreactors.markup import (
    INTENT_MESSAGE_PREFIX, NaturalLanguageInterpreter, RegexInterpreter, empty_parse)
from coreactors.logs import Log

log = Log(__name__)

# Sends the query parameters of one ``/parse`` call; returns (HTTP status, parsed JSON body or
# None). Raises when the NLU server cannot be reached or does not answer in time.
NLUServerClient = Callable[[Dict[str, str]], Tuple[int, Any]]


def project_and_model(nlu: Optional[str]) -> Tuple[str, Optional[str]]:
    """``-u project/model`` names a model on an NLU server; a bare name is in ``default``."""
    if not nlu:
        return "default", None
    project, model = os.path.split(nlu.rstrip("/"))
    return project or "default", model or None


class HttpInterpreter(NaturalLanguageInterpreter):
    """Asks a Rasa NLU server (``GET /parse?q=...&project=...&model=...&token=...``).

    The HTTP call is injected (``client``), so this class does no I/O of its own. Any failure
    (unreachable, a non-200 answer, a body that is not a parse) gives an empty parse, so the turn
    goes on without an intent instead of failing.
    """

    def __init__(self, client: NLUServerClient, project: str = "default",
                 model: Optional[str] = None, token: Optional[str] = None) -> None:
        self.client = client
        self.project = project
        self.model = model
        self.token = token

    def query(self, text: str) -> Dict[str, str]:
        params = {"q": text, "project": self.project}
        if self.model:
            params["model"] = self.model
        if self.token is not None:
            params["token"] = str(self.token)
        return params

    def parse(self, text: str) -> Dict[str, Any]:
        try:
            status, body = self.client(self.query(text))
        except Exception as e:  # whatever the transport raised, this message goes unparsed
            log.error("The NLU server could not be reached ({error}); the message {text!r} gets "
                      "no intent.", error=str(e), text=text)
            return empty_parse(text)
        if status != 200:
            log.error("The NLU server answered {status}; the message {text!r} gets no intent.",
                      status=status, text=text)
            return empty_parse(text)
        if not _looks_like_parse(body):
            log.error("The NLU server's answer is not a parse result: {body!r:.200}", body=body)
            return empty_parse(text)
        result = dict(body)
        result.setdefault("text", text)
        result.setdefault("intent_ranking", [])
        result["entities"] = result.get("entities") or []
        if result.get("intent") is None:
            result["intent"] = {"name": None, "confidence": 0.0}
        return result


def _looks_like_parse(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    intent = body.get("intent")
    if intent is not None and not (isinstance(intent, dict)
                                   and isinstance(intent.get("name"), (str, type(None)))):
        return False
    entities = body.get("entities")
    if entities is not None and not (isinstance(entities, list)
                                     and all(isinstance(e, dict) for e in entities)):
        return False
    return True


__all__ = ["INTENT_MESSAGE_PREFIX", "NaturalLanguageInterpreter", "RegexInterpreter",
           "HttpInterpreter", "NLUServerClient", "empty_parse", "project_and_model"]

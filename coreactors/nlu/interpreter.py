"""Interpreters turn a user's text into parse data: intent, confidence and entities.

The RegexInterpreter reads the ``/intent{"entity": "value"}`` shorthand that stories, buttons and
tests use; it is the interpreter when no NLU model is configured, and every message starting
with ``/`` goes to it even when one is. The HttpInterpreter asks a Rasa NLU server; the local
model (``coreactors.nlu.model.NLUModel``) is an interpreter too, as it has ``parse``.
"""

import json
import logging
import os
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

logger = logging.getLogger(__name__)

INTENT_MESSAGE_PREFIX = "/"

_SHORTHAND = re.compile(r"^[/]?([^{@]+)(@[0-9.]+)?([{].+)?", re.DOTALL)


class NaturalLanguageInterpreter:
    """What every interpreter offers: ``parse(text) -> parse data`` in Rasa NLU's shape."""

    def parse(self, text: str) -> Dict[str, Any]:
        raise NotImplementedError


class RegexInterpreter(NaturalLanguageInterpreter):
    """Parses ``/intent@confidence{json entities}`` with confidence 1.0 by default."""

    @staticmethod
    def _parse_entities(block: Optional[str], start: int, end: int) -> List[Dict[str, Any]]:
        if not block:
            return []
        try:
            values = json.loads(block)
        except ValueError:
            logger.warning("Ignoring the entities of a /intent message: %r is not valid JSON.",
                           block)
            return []
        if not isinstance(values, dict):
            logger.warning("Ignoring the entities of a /intent message: %r is not an object.",
                           block)
            return []
        entities = []
        for name, value in values.items():
            for v in (value if isinstance(value, list) else [value]):
                entities.append({"entity": name, "start": start, "end": end, "value": v})
        return entities

    @staticmethod
    def _parse_confidence(raw: Optional[str]) -> float:
        if not raw:
            return 1.0
        try:
            return float(raw[1:])
        except ValueError:
            logger.warning("Invalid confidence %r in a /intent message; using 0.0.", raw)
            return 0.0

    def parse(self, text: str) -> Dict[str, Any]:
        match = _SHORTHAND.match(text.strip() if text else "")
        if text and not text.startswith(INTENT_MESSAGE_PREFIX):
            text = INTENT_MESSAGE_PREFIX + text
        if not match:
            return empty_parse(text or "")
        intent = match.group(1).strip()
        confidence = self._parse_confidence(match.group(2))
        # The entity span is the JSON block's place in the message as it was sent.
        start = match.start(3) if match.group(3) else 0
        end = match.end(3) if match.group(3) else 0
        entities = self._parse_entities(match.group(3), start, end)
        return {
            "text": text,
            "intent": {"name": intent, "confidence": confidence},
            "intent_ranking": [{"name": intent, "confidence": confidence}],
            "entities": entities,
        }


# Sends the query parameters of one ``/parse`` call; returns (HTTP status, parsed JSON body or
# None). Raises when the NLU server cannot be reached or does not answer in time.
NLUServerClient = Callable[[Dict[str, str]], Tuple[int, Any]]


def empty_parse(text: str) -> Dict[str, Any]:
    """What a message parses to when nothing could be understood: no intent, no entities."""
    return {"text": text, "intent": {"name": None, "confidence": 0.0}, "intent_ranking": [],
            "entities": []}


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
            logger.error("The NLU server could not be reached (%s); the message %r gets no "
                         "intent.", e, text)
            return empty_parse(text)
        if status != 200:
            logger.error("The NLU server answered %s; the message %r gets no intent.",
                         status, text)
            return empty_parse(text)
        if not _looks_like_parse(body):
            logger.error("The NLU server's answer is not a parse result: %.200r", body)
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

"""Interpreters turn a user's text into parse data: intent, confidence and entities.

The RegexInterpreter reads the ``/intent{"entity": "value"}`` shorthand that stories, buttons and
tests use; it is the interpreter when no NLU model is configured, and every message starting
with ``/`` goes to it even when one is.
"""

import json
import logging
import re
from typing import Any, Dict, List, Optional

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
            return {"text": text or "", "intent": {"name": None, "confidence": 0.0},
                    "intent_ranking": [], "entities": []}
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

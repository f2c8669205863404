"""Rasa's two ways of writing a parsed message as text, shared by stories, NLU data and the loop.

* The intent shorthand ``/intent@confidence{"entity": "value"}``: a message that says its own
  parse. Stories write user turns this way, buttons send it as their payload, and the message
  loop hands every message starting with ``/`` to the ``RegexInterpreter`` below, whatever NLU
  the model has.
* Entity annotations ``[text](entity)`` and ``[text](entity:value)``: NLU training examples and
  end-to-end story lines (``* intent: show me [chinese](cuisine)``) mark entities this way.

This module is the bottom of the pure rooms: ``dialogue/``, ``nlu/`` and ``processor.py`` import
it, and it imports nothing of theirs, so stories can read both notations without knowing the NLU
room. An interpreter for end-to-end lines is passed in to the story reader: any object with
``parse(text) -> parse data`` will do (``NaturalLanguageInterpreter`` names that shape).
No threads, no I/O.
"""

import json
import re
from typing import Any, Dict, List, Optional, Tuple

from coreactors.logs import Log

log = Log(__name__)

INTENT_MESSAGE_PREFIX = "/"

_SHORTHAND = re.compile(r"^[/]?([^{@]+)(@[0-9.]+)?([{].+)?", re.DOTALL)
# Looser than Rasa's (which requires non-empty text) so that empty parts can be reported instead
# of leaving the markup in the example text.
_ANNOTATION_RE = re.compile(r"\[(?P<text>[^\]]*)\]\((?P<entity>[^:)]*)(?::(?P<value>[^)]*))?\)")


# ---------------------------------------------------------------------------------------------
# The intent shorthand
# ---------------------------------------------------------------------------------------------

class NaturalLanguageInterpreter:
    """What every interpreter offers: ``parse(text) -> parse data`` in Rasa NLU's shape."""

    def parse(self, text: str) -> Dict[str, Any]:
        raise NotImplementedError


def empty_parse(text: str) -> Dict[str, Any]:
    """What a message parses to when nothing could be understood: no intent, no entities."""
    return {"text": text, "intent": {"name": None, "confidence": 0.0}, "intent_ranking": [],
            "entities": []}


class RegexInterpreter(NaturalLanguageInterpreter):
    """Parses ``/intent@confidence{json entities}`` with confidence 1.0 by default."""

    @staticmethod
    def _parse_entities(block: Optional[str], start: int, end: int) -> List[Dict[str, Any]]:
        if not block:
            return []
        try:
            values = json.loads(block)
        except ValueError:
            log.warn("Ignoring the entities of a /intent message: {entities!r} is not valid "
                     "JSON.", entities=block)
            return []
        if not isinstance(values, dict):
            log.warn("Ignoring the entities of a /intent message: {entities!r} is not an "
                     "object.", entities=block)
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
            log.warn("Invalid confidence {confidence!r} in a /intent message; using 0.0.",
                     confidence=raw)
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


# ---------------------------------------------------------------------------------------------
# Entity annotations
# ---------------------------------------------------------------------------------------------

class AnnotationError(ValueError):
    """An entity annotation with an empty text, type or value; the message says which."""


def parse_annotated_text(text: str) -> Tuple[str, List[Dict[str, Any]]]:
    """Split ``"show me [chinese](cuisine)"`` into the plain text and its entities.

    ``[text](type)`` gives the value ``text``; ``[text](type:value)`` gives ``value``. Offsets
    refer to the plain text. Raises AnnotationError for an empty text, type or value.
    """
    plain_parts = []
    entities = []
    plain_len = 0
    pos = 0
    for match in _ANNOTATION_RE.finditer(text):
        covered = match.group("text")
        entity_type = match.group("entity").strip()
        value = match.group("value")
        if not covered:
            raise AnnotationError("entity annotation {!r} has empty text".format(match.group(0)))
        if not entity_type:
            raise AnnotationError(
                "entity annotation {!r} has an empty entity type".format(match.group(0)))
        if value is not None and value == "":
            raise AnnotationError(
                "entity annotation {!r} has an empty value after ':'".format(match.group(0)))
        before = text[pos:match.start()]
        plain_parts.append(before)
        plain_len += len(before)
        start = plain_len
        plain_parts.append(covered)
        plain_len += len(covered)
        entities.append({"start": start, "end": plain_len,
                         "value": covered if value is None else value,
                         "entity": entity_type})
        pos = match.end()
    plain_parts.append(text[pos:])
    return "".join(plain_parts), entities


def annotate_text(text: str, entities: List[Dict[str, Any]]) -> str:
    """Inverse of :func:`parse_annotated_text`.

    Entities are taken in order of ``start``; one overlapping an earlier one is left out. The
    value is written (with ``str()``) only where it differs from the covered text. Raises
    ValueError if the result would not read back as the same text and entities, e.g. when the
    plain text itself contains ``[..](..)`` or an entity type contains ``:`` or ``)``.
    """
    kept = []
    last_end = 0
    for entity in sorted(entities, key=lambda e: (e["start"], e["end"])):
        start, end = entity["start"], entity["end"]
        if not 0 <= start < end <= len(text):
            raise ValueError("entity {!r} does not fit in text {!r}".format(entity, text))
        if start < last_end:
            continue
        kept.append(entity)
        last_end = end

    parts = []
    pos = 0
    expected = []
    for entity in kept:
        start, end = entity["start"], entity["end"]
        covered = text[start:end]
        value = entity.get("value")
        value = covered if value is None else str(value)
        parts.append(text[pos:start])
        if value == covered:
            parts.append("[{}]({})".format(covered, entity["entity"]))
        else:
            parts.append("[{}]({}:{})".format(covered, entity["entity"], value))
        pos = end
        expected.append({"start": start, "end": end, "value": value, "entity": entity["entity"]})
    parts.append(text[pos:])
    annotated = "".join(parts)

    # Markdown has no escaping, so check by reading back rather than predicting every clash.
    try:
        reread: Optional[Tuple[str, List[Dict[str, Any]]]] = parse_annotated_text(annotated)
    except AnnotationError:
        reread = None
    if reread != (text, expected):
        raise ValueError("text {!r} with entities {!r} cannot be written as markdown "
                         "annotations".format(text, kept))
    return annotated


__all__ = ["INTENT_MESSAGE_PREFIX", "NaturalLanguageInterpreter", "RegexInterpreter",
           "empty_parse", "AnnotationError", "parse_annotated_text", "annotate_text"]

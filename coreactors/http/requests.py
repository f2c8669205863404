"""Reading what a client sent: the body (with a size limit), query parameters, path segments.

Every helper raises ``HttpError`` with a message that says what was wrong, so a route never
answers a 500 (or an HTML page) for bad input. What the helpers let through is also what the
engine can store and read back: JSON bodies are plain Unicode, finite numbers and shallow
structures, and a user message's ``parse_data`` has the shape the policies rely on.
"""

import functools
import json
import math
import sys
from typing import Any, Dict, List, Optional, Tuple, Type, Union
from urllib.parse import unquote

from twisted.web.iweb import IRequest

from coreactors.dialogue.tracker import EventVerbosity
from coreactors.http.errors import HttpError, bad_parameter

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")

# Rasa Core read JSON bodies whatever their declared type (Flask's ``get_json(force=True)``), so
# clients send no type, ``curl -d``'s form type or text/plain; those stay accepted. A body
# declared as another format (XML, a multipart upload, an image) is refused with 415.
_JSON_MEDIA_TYPES = ("application/json", "text/json", "text/plain",
                     "application/x-www-form-urlencoded")
_TEXT_MEDIA_TYPES = ("application/x-www-form-urlencoded", "application/octet-stream")

# Deeper JSON than this is refused: real payloads nest a few levels, and the store, the
# tracker's hashing and the encoder all recurse over what they are given.
MAX_JSON_DEPTH = 64
_MAX_FLOAT = sys.float_info.max


def read_body(request: IRequest, max_bytes: int) -> bytes:
    """The raw body; 413 when it is larger than ``max_bytes``.

    Twisted has buffered the whole body before the route runs (in memory, or in a temporary
    file when large), so this bounds what we parse, not what the server receives."""
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    body = content.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise _too_large(max_bytes)
    return body


def _too_large(max_bytes: int) -> HttpError:
    return HttpError(413, "PayloadTooLarge",
                     "The request body is larger than the limit of {} bytes.".format(max_bytes))


def media_type(request: IRequest) -> Optional[str]:
    """The declared media type of the body, lower case and without parameters (or None)."""
    raw = request.getHeader(b"content-type")
    return None if raw is None else _media_type_of(raw)


@functools.lru_cache(maxsize=64)
def _media_type_of(raw: Union[bytes, str]) -> Optional[str]:
    # Clients send the same few Content-Type values over and over.
    value = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    return value.split(";", 1)[0].strip().lower() or None


def _check_media_type(request: IRequest, accepted: Tuple[str, ...], text: bool,
                      wanted: str) -> None:
    declared = media_type(request)
    if declared is None or declared in accepted:
        return
    if not text and declared.startswith("application/") and declared.endswith("+json"):
        return
    if text and declared.startswith("text/"):
        return
    raise HttpError(415, "UnsupportedMediaType",
                    "The request body is declared as '{}'; this resource takes {}.".format(
                        declared, wanted))


def read_text(request: IRequest, max_bytes: int) -> str:
    """The body as UTF-8 text (no type, ``text/*``, or a form or octet-stream type)."""
    body = read_body(request, max_bytes)
    if body:
        _check_media_type(request, _TEXT_MEDIA_TYPES, True, "text (e.g. text/markdown)")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "BadRequest", "The request body is not valid UTF-8 text.")


_JSON_NAMES = {dict: "a JSON object", list: "a JSON list"}


def read_json(request: IRequest, max_bytes: int,
              expect: Union[Type[Any], Tuple[Type[Any], ...]],
              required: bool = True) -> Any:
    """The body parsed as JSON of the ``expect`` type(s) (``dict`` and/or ``list``).

    An empty body is None when not ``required``, a 400 otherwise."""
    kinds = expect if isinstance(expect, tuple) else (expect,)
    raw = read_body(request, max_bytes)
    if not raw.strip():
        if not required:
            return None
        raise HttpError(400, "BadRequest",
                        "The request needs a body: {}.".format(_json_names(kinds)))
    _check_media_type(request, _JSON_MEDIA_TYPES, False, "JSON (application/json)")
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise HttpError(400, "BadRequest", "The request body is not valid UTF-8.")
    except RecursionError:
        raise _too_deep()
    except ValueError as e:
        raise HttpError(400, "BadRequest", "The request body is not valid JSON: {}.".format(e))
    # Lone surrogates can only come from \u escapes (the UTF-8 decoding refuses them), and
    # nesting cannot be deeper than the brackets there are: most bodies need no walk at all.
    if b"\\u" in raw or raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
        _check_plain(value)
    if not isinstance(value, kinds):
        raise HttpError(400, "BadRequest", "The request body must be {}, got {}.".format(
            _json_names(kinds), _json_type_name(value)))
    return value


def _json_names(kinds: Tuple[Type[Any], ...]) -> str:
    return " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)


def _finite_float(text: str) -> float:
    # 1e400 would become inf, which the answer could then only write as invalid JSON.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("the number {} is too large".format(text[:40]))
    return value


def _bounded_int(text: str) -> int:
    # Integers beyond a float's range fail wherever the engine takes a number (timestamps,
    # confidences); JSON's interoperable range is that of a double anyway.
    value = int(text)
    if abs(value) > _MAX_FLOAT:
        raise ValueError("the number {}... is too large".format(text[:40]))
    return value


def _no_constant(name: str) -> Any:
    raise ValueError("{} is not a JSON value".format(name))


# Configured once: json.loads with any option builds a new decoder on every call.
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_int=_bounded_int,
                            parse_constant=_no_constant)


def _too_deep() -> HttpError:
    return HttpError(400, "BadRequest", "The request body nests deeper than {} levels."
                     .format(MAX_JSON_DEPTH))


def _check_plain(value: Any) -> None:
    """Refuses nesting beyond ``MAX_JSON_DEPTH`` and strings that are not Unicode text (JSON's
    ``\\ud800`` escapes decode to lone surrogates, which no store can encode)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_unicode(item)
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise _too_deep()
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_unicode(key)
                    pending.append((child, depth + 1))
            else:
                pending.extend((child, depth + 1) for child in item)


def _check_unicode(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise HttpError(400, "BadRequest",
                        "The request body has a string that is not valid Unicode (a lone "
                        "surrogate escape such as \\ud800).")


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return _JSON_NAMES.get(type(value), type(value).__name__)


def check_events(events: List[Any]) -> List[Dict[str, Any]]:
    """Each item must be an object with a string ``event``, and a ``user`` event's
    ``parse_data`` must pass ``check_parse_data``; the actors check the rest."""
    for i, item in enumerate(events):
        if not isinstance(item, dict):
            raise bad_parameter("Event {} must be a JSON object, got {}.".format(
                i, _json_type_name(item)), "events")
        if not isinstance(item.get("event"), str):
            raise bad_parameter("Event {} needs the field 'event' (the event type, a string)."
                                .format(i), "event")
        if item["event"] == "user":
            check_parse_data(item.get("parse_data"), "Event {}: 'parse_data'".format(i))
    return events


def check_parse_data(parse_data: Any, name: str = "parse_data") -> Optional[Dict[str, Any]]:
    """``parse_data`` as the interpreter would have made it, or None.

    The policies read ``intent.name`` as a string and ``intent.confidence`` as a number, and
    the story writer reads each entity's ``entity`` (and ``start``/``end`` when given); a
    message logged with other types would break every later prediction of its conversation,
    so it is refused here, before anything is stored. What passes has the shape of
    ``ParseData`` in ``openapi.yml``, as trackers echo it; other keys pass through untouched."""
    if parse_data is None:
        return None

    def refuse(message: str) -> HttpError:
        return bad_parameter("{} {}.".format(name, message), "parse_data")

    if not isinstance(parse_data, dict):
        raise refuse("must be a JSON object, got {}".format(_json_type_name(parse_data)))
    if parse_data.get("text") is not None and not isinstance(parse_data["text"], str):
        raise refuse("has a 'text' that is not a string")
    intents = [("intent", parse_data.get("intent"))]
    ranking = parse_data.get("intent_ranking")
    if ranking is not None:
        if not isinstance(ranking, list):
            raise refuse("has an 'intent_ranking' that is not a list")
        intents.extend(("intent_ranking[{}]".format(i), intent)
                       for i, intent in enumerate(ranking))
    for where, intent in intents:
        if intent is None:
            continue
        if not isinstance(intent, dict):
            raise refuse("has an '{}' that is not an object".format(where))
        if intent.get("name") is not None and not isinstance(intent["name"], str):
            raise refuse("has an '{}.name' that is not a string".format(where))
        if intent.get("confidence") is not None and not _is_number(intent["confidence"]):
            raise refuse("has an '{}.confidence' that is not a number".format(where))
    entities = parse_data.get("entities")
    if entities is not None:
        if not isinstance(entities, list):
            raise refuse("has 'entities' that are not a list")
        for i, entity in enumerate(entities):
            if not isinstance(entity, dict):
                raise refuse("has an entity ({}) that is not an object".format(i))
            if not isinstance(entity.get("entity"), str):
                raise refuse("has an entity ({}) without a string 'entity' (its type)"
                             .format(i))
            for key in ("start", "end"):
                offset = entity.get(key)
                if offset is not None and (isinstance(offset, bool)
                                           or not isinstance(offset, int) or offset < 0):
                    raise refuse("has an entity ({}) whose '{}' is not a character offset"
                                 .format(i, key))
            if entity.get("start") is not None and entity.get("end") is not None \
                    and entity["start"] > entity["end"]:
                raise refuse("has an entity ({}) that ends before it starts".format(i))
            if entity.get("confidence") is not None and not _is_number(entity["confidence"]):
                raise refuse("has an entity ({}) whose 'confidence' is not a number"
                             .format(i))
    return parse_data


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def query_arg(request: IRequest, name: str) -> Optional[str]:
    """The first value of query parameter ``name``, decoded; None when absent."""
    values = (request.args or {}).get(name.encode("ascii"))
    if not values:
        return None
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise bad_parameter("The query parameter '{}' is not valid UTF-8.".format(name),
                            name, "query")


def bool_arg(request: IRequest, name: str, default: bool) -> bool:
    value = query_arg(request, name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise bad_parameter("Invalid value '{}' for '{}'; use true or false.".format(value, name),
                        name, "query")


def float_arg(request: IRequest, name: str) -> Optional[float]:
    """A number parameter such as ``until``; None when absent."""
    value = query_arg(request, name)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if math.isnan(number):
        raise bad_parameter("Invalid value '{}' for '{}'; it must be a number (a timestamp)."
                            .format(value, name), name, "query")
    return number


def verbosity_arg(request: IRequest, default: EventVerbosity = EventVerbosity.AFTER_RESTART,
                  legacy: bool = False) -> EventVerbosity:
    """``include_events`` (case-insensitive). With ``legacy`` (GET .../tracker), the older
    ``ignore_restarts=true`` (-> ALL) and ``events=false`` (-> NONE, which wins) change the
    default; an explicit ``include_events`` always wins."""
    if legacy:
        if bool_arg(request, "ignore_restarts", False):
            default = EventVerbosity.ALL
        if not bool_arg(request, "events", True):
            default = EventVerbosity.NONE
    value = query_arg(request, "include_events")
    if value is None or value == "":
        return default
    try:
        return EventVerbosity[value.strip().upper()]
    except KeyError:
        # Rasa Core 0.12 answered 404 here; a bad parameter is a bad request, so we say 400.
        raise bad_parameter(
            "Invalid parameter value for 'include_events'. Should be one of {}.".format(
                ", ".join(v.name for v in EventVerbosity)), "include_events", "query")


def path_segment(value: str, name: str) -> str:
    """A path parameter as the client meant it (see ``CoreApp.resource``: the segments reach
    the routes percent-encoded so that an encoded ``/`` stays inside its segment)."""
    try:
        return unquote(value, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise bad_parameter("The path parameter '{}' is not valid UTF-8.".format(name),
                            name, "path")


def optional_str(body: Dict[str, Any], name: str) -> Optional[str]:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_parameter("'{}' must be a string.".format(name), name)
    return value


def required_str(body: Dict[str, Any], *names: str, allow_empty: bool = False) -> str:
    """The first of ``names`` present in ``body``; it must be a string (non-empty unless
    ``allow_empty``)."""
    for name in names:
        if body.get(name) is not None:
            value = body[name]
            if not isinstance(value, str):
                raise bad_parameter("'{}' must be a string.".format(name), name)
            if not value and not allow_empty:
                raise bad_parameter("'{}' must not be empty.".format(name), name)
            return value
    raise bad_parameter("The request body needs the field {}.".format(
        " or ".join("'{}'".format(n) for n in names)), names[0])


def optional_number(body: Dict[str, Any], name: str) -> Optional[float]:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_parameter("'{}' must be a number.".format(name), name)
    return float(value)

"""Reading what a client sent: the body (with a size limit), query parameters, path segments.

Every helper raises ``HttpError`` with a message that says what was wrong, so a route never
answers a 500 (or an HTML page) for bad input.
"""

import json
import math
from typing import Any, Dict, List, Optional, Tuple, Type, Union
from urllib.parse import unquote

from twisted.web.iweb import IRequest

from coreactors.dialogue.tracker import EventVerbosity
from coreactors.http.errors import HttpError, bad_parameter

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


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


def read_text(request: IRequest, max_bytes: int) -> str:
    """The body as UTF-8 text."""
    try:
        return read_body(request, max_bytes).decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "BadRequest", "The request body is not valid UTF-8 text.")


_JSON_NAMES = {dict: "a JSON object", list: "a JSON list"}


def read_json(request: IRequest, max_bytes: int,
              expect: Union[Type[Any], Tuple[Type[Any], ...]],
              required: bool = True) -> Any:
    """The body parsed as JSON of the ``expect`` type(s) (``dict`` and/or ``list``).

    An empty body is None when not ``required``, a 400 otherwise."""
    kinds = expect if isinstance(expect, tuple) else (expect,)
    wanted = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)
    raw = read_body(request, max_bytes)
    if not raw.strip():
        if not required:
            return None
        raise HttpError(400, "BadRequest",
                        "The request needs a body: {}.".format(wanted))
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise HttpError(400, "BadRequest", "The request body is not valid UTF-8.")
    except ValueError as e:
        raise HttpError(400, "BadRequest", "The request body is not valid JSON: {}.".format(e))
    if not isinstance(value, kinds):
        raise HttpError(400, "BadRequest", "The request body must be {}, got {}.".format(
            wanted, _json_type_name(value)))
    return value


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
    """Each item must be an object with a string ``event``; the actors check the rest."""
    for i, item in enumerate(events):
        if not isinstance(item, dict):
            raise bad_parameter("Event {} must be a JSON object, got {}.".format(
                i, _json_type_name(item)), "events")
        if not isinstance(item.get("event"), str):
            raise bad_parameter("Event {} needs the field 'event' (the event type, a string)."
                                .format(i), "event")
    return events


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

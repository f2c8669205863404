"""The error body of the Rasa Core API, and the small writers every HTTP answer goes through.

Every refusal, whatever caused it (bad input, an unknown route, an actor that said no, a bug), is
answered with the same JSON object::

    {"version": "0.12.4", "status": "failure", "message": "...", "reason": "...",
     "details": {}, "help": null, "code": 400}

Bodies are written with an explicit ``Content-Length`` so Twisted does not switch to chunked
transfer encoding (see ``reference/actors-and-twisted.md``, "Structural limits").
"""

import math
from typing import Any, Dict, Optional

from twisted.web.iweb import IRequest

from coreactors import RASA_CORE_VERSION
from coreactors.compact_json import compact_encoder

JSON_CONTENT_TYPE = b"application/json"


class HttpError(Exception):
    """A request the HTTP layer refuses by itself; becomes the error body with ``status``."""

    def __init__(self, status: int, reason: str, message: str,
                 details: Optional[Dict[str, Any]] = None, help: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details or {}
        self.help = help


def bad_parameter(message: str, parameter: Optional[str] = None, where: str = "body",
                  reason: str = "InvalidParameter", status: int = 400) -> HttpError:
    """A 400 that names the parameter at fault, as Rasa's ``details`` does."""
    details = {"in": where, "parameter": parameter} if parameter else {}
    return HttpError(status, reason, message, details)


def error_body(status: int, reason: str, message: str,
               details: Optional[Dict[str, Any]] = None,
               help: Optional[str] = None) -> Dict[str, Any]:
    """The error object of the API."""
    return {
        "version": RASA_CORE_VERSION,
        "status": "failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "help": help,
        "code": status,
    }


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays (scores, confidences) know how to become plain Python values.
    for method in ("tolist", "item"):
        convert = getattr(value, method, None)
        if callable(convert):
            return convert()
    raise TypeError("{} is not JSON serialisable".format(type(value).__name__))


_encode = compact_encoder(default=_json_default, allow_nan=False)


def dump_json(value: Any) -> bytes:
    """Compact JSON, as the original server wrote it; always valid JSON (a NaN or infinite
    number, which JSON cannot express, is written as null)."""
    try:
        text = _encode(value)
    except ValueError:
        text = _encode(_finite(value))
    return text.encode("utf-8")


def _finite(value: Any) -> Any:
    # The slow path, only taken when a non-finite number is somewhere in the answer.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    try:
        return _finite(_json_default(value))
    except TypeError:
        return value  # the encoder refuses it again, as it would have anyway


def write_body(request: IRequest, body: bytes, content_type: bytes, status: int = 200) -> bytes:
    """Sets status, content type and length; returns the body for Klein to write."""
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


def write_json(request: IRequest, value: Any, status: int = 200) -> bytes:
    """Answers ``value`` as ``application/json``."""
    return write_body(request, dump_json(value), JSON_CONTENT_TYPE, status)


def write_error(request: IRequest, status: int, reason: str, message: str,
                details: Optional[Dict[str, Any]] = None, help: Optional[str] = None) -> bytes:
    """Answers the error body with ``status`` and ``Content-Type: application/json``."""
    return write_json(request, error_body(status, reason, message, details, help), status)


def write_http_error(request: IRequest, error: HttpError) -> bytes:
    return write_error(request, error.status, error.reason, error.message, error.details,
                       error.help)

"""Compact JSON encoding for the hot paths: every stored event and every HTTP answer.

``json.JSONEncoder.encode`` builds a new C encoder and a fresh circular-reference table on
every call, and keys each container into that table as it goes. The events and answers
encoded here are trees built by this program (a cycle would be a bug, and is still refused:
the encoder runs out of recursion depth and raises RecursionError), so one C encoder is built
once and reused. Output is identical to ``json.JSONEncoder(separators=(",", ":"), ...)``.
"""

import json
from json import encoder as _json_encoder
from typing import Any, Callable, Optional

Encode = Callable[[Any], str]


def _not_serialisable(value: Any) -> Any:
    raise TypeError("Object of type {} is not JSON serializable".format(type(value).__name__))


def compact_encoder(default: Optional[Callable[[Any], Any]] = None,
                    allow_nan: bool = True) -> Encode:
    """An ``encode(value) -> str`` writing compact JSON (``,`` and ``:`` without spaces, ASCII
    escapes), calling ``default`` for values JSON has no type for (TypeError without one);
    with ``allow_nan`` False a NaN or infinite number raises ValueError."""
    default = default or _not_serialisable
    make = getattr(_json_encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(separators=(",", ":"), default=default,
                                allow_nan=allow_nan, check_circular=False).encode
    c_encode = make(None, default, _json_encoder.encode_basestring_ascii, None, ":", ",",
                    False, False, allow_nan)

    def encode(value: Any) -> str:
        return "".join(c_encode(value, 0))
    return encode


__all__ = ["Encode", "compact_encoder"]

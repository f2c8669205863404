"""Compact JSON encoding for the hot paths: every stored event and every HTTP answer.

Output is ``json.JSONEncoder(separators=(",", ":"), ...)``'s, written without the
circular-reference check: the events and answers encoded here are trees built by this program,
and a cycle is still refused (the encoder runs out of recursion depth and raises
RecursionError). With the ``reused_json_encoder`` fast path one C encoder is built once and
reused (``coreactors.fastpaths.json_encoder``).
"""

import json
from typing import Any, Callable, Optional

from coreactors import fastpaths
from coreactors.fastpaths.json_encoder import Encode, reused_c_encoder


def _not_serialisable(value: Any) -> Any:
    raise TypeError("Object of type {} is not JSON serializable".format(type(value).__name__))


def compact_encoder(default: Optional[Callable[[Any], Any]] = None,
                    allow_nan: bool = True, fast: Optional[bool] = None) -> Encode:
    """An ``encode(value) -> str`` writing compact JSON (``,`` and ``:`` without spaces, ASCII
    escapes), calling ``default`` for values JSON has no type for (TypeError without one);
    with ``allow_nan`` False a NaN or infinite number raises ValueError. ``fast`` picks the
    reused C encoder (True) or ``json.JSONEncoder`` (False); None asks the switch."""
    default = default or _not_serialisable
    if fastpaths.choose("reused_json_encoder", fast):
        encode = reused_c_encoder(default, allow_nan)
        if encode is not None:
            return encode
    return json.JSONEncoder(separators=(",", ":"), default=default, allow_nan=allow_nan,
                            check_circular=False).encode


__all__ = ["Encode", "compact_encoder"]

"""Fast path through the standard library json's private C encoder.

``reused_json_encoder`` (``reused_c_encoder``)
    Calls ``json.encoder.c_make_encoder`` (the C accelerator ``_json.make_encoder``, not part
    of json's documented API) with the positional arguments ``json.JSONEncoder.iterencode``
    gives it: markers, default, string encoder, indent, key separator, item separator,
    sort_keys, skipkeys, allow_nan. ``JSONEncoder.encode`` builds a new C encoder and a fresh
    circular-reference table on every call, and keys each container into that table as it
    goes. The events and answers encoded here are trees built by this program (a cycle would
    be a bug, and is still refused: the encoder runs out of recursion depth and raises
    RecursionError), so one C encoder is built once and reused, without the table. Same
    output as ``json.JSONEncoder(separators=(",", ":"), ...)``. Off:
    ``COREACTORS_FAST_PATHS=-reused_json_encoder`` (``JSONEncoder.encode`` per call).
"""

from json import encoder as json_encoder
from typing import Any, Callable, Optional

Encode = Callable[[Any], str]


def reused_c_encoder(default: Callable[[Any], Any], allow_nan: bool) -> Optional[Encode]:
    """An ``encode(value) -> str`` writing compact ASCII JSON through one reused C encoder, or
    None on an interpreter without json's C accelerator."""
    make = getattr(json_encoder, "c_make_encoder", None)
    if make is None:
        return None
    c_encode = make(None, default, json_encoder.encode_basestring_ascii, None, ":", ",",
                    False, False, allow_nan)

    def encode(value: Any) -> str:
        return "".join(c_encode(value, 0))
    return encode


__all__ = ["Encode", "reused_c_encoder"]

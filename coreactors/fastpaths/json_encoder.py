"""Fast path through the standard library json's private C encoder.

``reused_json_encoder`` (``reused_c_encoder``)
    Calls ``json.encoder.c_make_encoder`` (the C accelerator ``_json.make_encoder``, not part
    of json's documented API) with the positional arguments ``json.JSONEncoder.iterencode``
    gives it: markers, default, string encoder, indent, key separator, item separator,
    sort_keys, skipkeys, allow_nan. ``JSONEncoder.encode`` builds a new C encoder (and a
    Python closure for floats) on every call; one built once and reused writes the same
    (``json.JSONEncoder(separators=(",", ":"), check_circular=False, ...)``'s output, which
    is the plain variant). Buys: webhook turns/s +2.8% to +11.6% (worst +2.8%; +3.1% to
    +4.7% in the four longest runs, against -1.5% to +2.2% for the A/A row), the server's CPU
    per turn -1.2% to -10.2% (bench/fast_paths.py, ten runs of alternating windows on 7
    December 2026). In a warm loop a moodbot turn's five encodes (four events, the answer)
    take 11.3 -> 9.1 us, about 1.2% of a turn; the server gains more than that loop shows,
    and turns/s rose by more than 2% in every run, so it stays. Off:
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

"""The fast paths: speed-ups that lean on private names of other libraries, all in this package,
each behind one switch.

``COREACTORS_FAST_PATHS`` (read once, at import): unset or ``on`` = all on, ``off`` = all off,
``-name,...`` = all but those. Names: ``worker_pool`` (``pykka_pool.py``: conversation actors
share a few worker threads; off, each actor has a thread of its own).
"""

import os
from typing import Dict, FrozenSet

KNOWN: Dict[str, str] = {
    "worker_pool": "conversation actors share a few worker threads (pykka's loop internals); "
                   "off: a thread per actor",
}


def _parse(value: str) -> FrozenSet[str]:
    value = value.strip()
    if value in ("", "on"):
        return frozenset(KNOWN)
    if value == "off":
        return frozenset()
    off = set()
    for item in value.split(","):
        name = item.strip().lstrip("-")
        if name not in KNOWN:
            raise ValueError("COREACTORS_FAST_PATHS: unknown fast path {!r} (known: {})".format(
                name, ", ".join(sorted(KNOWN))))
        off.add(name)
    return frozenset(KNOWN) - off


_ENABLED = _parse(os.environ.get("COREACTORS_FAST_PATHS", "on"))


def enabled(name: str) -> bool:
    """Whether the fast path ``name`` is on in this process."""
    if name not in KNOWN:
        raise ValueError("unknown fast path {!r}".format(name))
    return name in _ENABLED

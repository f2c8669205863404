"""The fast paths: the one place where coreactors leans on other libraries' private names.

Each fast path is a patch that makes a turn cheaper by reaching into a library's internals
(Twisted's TCP transport, werkzeug's matcher, the C JSON encoder, ...). They live in this
package, one module per library, and each module's docstring says what private names its
patches touch, what they buy and how to turn them off. The plain code elsewhere uses public API
only and asks ``enabled(name)`` which variant to build; with every fast path off it is a
complete, working server.

The switch is the environment variable ``COREACTORS_FAST_PATHS``, read once, when this package
is first imported, and never changed afterwards:

- unset, empty or ``on``: every fast path on;
- ``off``: every fast path off;
- a comma list, read left to right from all on: ``-name`` turns ``name`` off, ``name`` turns it
  on, ``on``/``off`` all of them: ``-eager_send,-remembered_routes`` turns off those two,
  ``off,eager_send`` turns on that one alone.

An unknown name is a ValueError naming the known ones. Code that must build one variant
whatever the switch says (tests, benchmarks) passes an explicit flag to the function that picks
the variant (``make_site(..., fast=False)``, ``klein_app(fast=True)``, ...).
"""

import os
from types import MappingProxyType
from typing import FrozenSet, Mapping, Optional

ENVIRONMENT_VARIABLE = "COREACTORS_FAST_PATHS"

# name -> what it does, and what happens with it off.
KNOWN: Mapping[str, str] = MappingProxyType({
    "eager_send": "answers leave with one send() when nothing is buffered (Twisted's TCP "
                  "transport buffers, twisted_web); off: Twisted's buffered write",
    "request_cleanup": "a finished request drops what it held at once (Twisted's "
                       "Request._cleanup, twisted_web); off: the collector frees it",
    "remembered_routes": "Klein's URL map remembers each URL's match (Klein's _url_map, "
                         "werkzeug's MapAdapter, klein_routing); off: werkzeug matches "
                         "every request",
    "reused_json_encoder": "one C JSON encoder built once and reused (json.encoder's "
                           "c_make_encoder, json_encoder); off: json.JSONEncoder per call",
    "quiet_pool": "model-server pulls log no factory start/stop lines (Twisted's "
                  "_HTTP11ClientFactory, twisted_web); off: Twisted's log lines",
    "worker_pool": "conversation actors share a few worker threads (pykka's loop "
                   "internals, pykka_pool); off: a thread per actor",
})

# name -> the module of this package holding its patch.
WHERE: Mapping[str, str] = MappingProxyType({
    "eager_send": "twisted_web",
    "request_cleanup": "twisted_web",
    "remembered_routes": "klein_routing",
    "reused_json_encoder": "json_encoder",
    "quiet_pool": "twisted_web",
    "worker_pool": "pykka_pool",
})


def parse(setting: Optional[str]) -> FrozenSet[str]:
    """The names a value of ``COREACTORS_FAST_PATHS`` turns on (see the module docstring)."""
    on = set(KNOWN)
    for entry in (setting or "").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "on":
            on = set(KNOWN)
        elif entry == "off":
            on = set()
        elif entry.startswith("-"):
            on.discard(_known(entry[1:].strip(), setting))
        else:
            on.add(_known(entry, setting))
    return frozenset(on)


def _known(name: str, setting: Optional[str]) -> str:
    if name not in KNOWN:
        raise ValueError("{}={!r}: unknown fast path {!r}; the known ones are {} (and 'on', "
                         "'off')".format(ENVIRONMENT_VARIABLE, setting, name,
                                         ", ".join(sorted(KNOWN))))
    return name


_ON = parse(os.environ.get(ENVIRONMENT_VARIABLE))


def enabled(name: str) -> bool:
    """Whether the fast path ``name`` is on in this process (a ValueError if unknown)."""
    if name not in KNOWN:
        raise ValueError("unknown fast path {!r}; the known ones are {}".format(
            name, ", ".join(sorted(KNOWN))))
    return name in _ON


def choose(name: str, fast: Optional[bool]) -> bool:
    """``fast`` if given, else the switch for ``name``: for functions that build either variant."""
    on = enabled(name)  # checks the name either way
    return on if fast is None else fast


__all__ = ["ENVIRONMENT_VARIABLE", "KNOWN", "WHERE", "choose", "enabled", "parse"]

"""The server's command-line options as data (the flags of ``twistd coreactors`` and
``python -m coreactors.run``): ``coreactors.tap.Options`` parses a command line with them, and
``coreactors.workers.worker_argv`` writes one back for each process of ``--workers N``.

A module of its own, importing nothing of coreactors, so that both sides can read the table
without depending on each other (tap starts the server, whose tree starts the workers).
``--cors`` (repeatable) and ``--vv`` are methods of ``tap.Options``.
"""

from typing import Any, List


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be at least 0")
    return number


# [long name, short name, default, help(, coerce)], as twisted.python.usage reads them.
PARAMETERS: List[List[Any]] = [
    ["core", "d", None, "trained dialogue model folder (default: the embedded default bot)"],
    ["nlu", "u", None, "NLU model folder (or project/model with an nlu endpoint)"],
    ["port", "p", 5005, "port to listen on (all interfaces)", int],
    ["listen", None, None, "Twisted endpoint to listen on instead of --port, e.g. "
                           "tcp:5005:interface=127.0.0.1 or systemd:domain=INET:name=web"],
    ["log_file", "o", None, "also write the log to this file"],
    ["log_format", None, "text", "how -o writes the log: text, or json (one JSON object "
                                 "per line, with each event's fields)"],
    ["credentials", None, None, "channel credentials file (credentials.yml)"],
    ["connector", "c", None, "the one channel to serve (rest or callback)"],
    ["endpoints", None, None, "endpoints file (endpoints.yml)"],
    ["auth_token", None, None, "API requests must carry ?token=<this>"],
    ["jwt_secret", None, None, "JWT key for API requests"],
    ["jwt_method", None, "HS256", "JWT algorithm"],
    ["max_actors", None, 2000, "most conversation actors alive at once", int],
    ["idle_timeout", None, 300.0, "seconds before an idle conversation actor stops", float],
    ["max_body_bytes", None, 1000000, "largest request body accepted (bytes); larger "
                                      "ones get 413", _positive_int],
    ["max_model_bytes", None, 64 * 1024 * 1024, "largest model zip POST /model accepts "
                                                "(bytes)", _positive_int],
    ["allow_class_path", None, None, "module prefixes (comma-separated, e.g. my_bot) a model "
                                     "that arrives over the network (POST /model, the model "
                                     "server) may import slot and policy classes from; "
                                     "default: built-in classes only"],
    ["cpus", None, None, "keep the server's threads on these CPUs, e.g. 0 or 0-1 (the "
                         "notation of taskset -c; default: anywhere)"],
    ["workers", None, 1, "server processes to run, all listening on the port (--port or a "
                         "tcp: --listen) with SO_REUSEPORT; above 1 they need a shared "
                         "tracker store and a lock store", _positive_int],
    ["worker_index", None, 0, "set by the server for the processes it starts; do not set",
     _non_negative_int],
]
# [long name, short name, help]: set (1) when given.
FLAGS: List[List[Any]] = [
    ["enable_api", None, "serve the HTTP API (otherwise only the channel webhooks)"],
    ["verbose", "v", "log at INFO level (the default)"],
    ["debug", None, "log at DEBUG level"],
    ["quiet", None, "log warnings and errors only"],
]


__all__ = ["FLAGS", "PARAMETERS"]

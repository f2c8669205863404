"""The twistd plugin's options and service: ``twistd -n coreactors --enable_api -d MODEL ...``.

The flags are those of ``python -m rasa_core.run``, plus ``--listen`` (any Twisted endpoint
string, e.g. ``systemd:domain=INET:name=coreactors`` for socket activation).
"""

from typing import Any, Dict

from twisted.python import usage


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Runs the coreactors dialogue server (the Rasa Core 0.12 HTTP API). Without "
                "-d it serves the embedded default bot, or, with a model server in the "
                "endpoints file, waits for that server's model.")
    optParameters = [
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
    ]
    optFlags = [
        ["enable_api", None, "serve the HTTP API (otherwise only the channel webhooks)"],
        ["verbose", "v", "log at INFO level (the default)"],
        ["debug", None, "log at DEBUG level"],
        ["quiet", None, "log warnings and errors only"],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["cors"] = []

    def opt_cors(self, origin: str) -> None:
        """allow cross-origin requests from this origin (* for any); may repeat"""
        self["cors"].append(origin)

    def opt_vv(self) -> None:
        """log at DEBUG level"""
        self["debug"] = True

    def postOptions(self) -> None:
        from coreactors.log_observers import LOG_FORMATS
        if self["log_format"] not in LOG_FORMATS:
            raise usage.UsageError("--log_format: text or json, not {!r}".format(
                self["log_format"]))
        # A bad --jwt_method or key must stop the start, not fail every request later.
        from coreactors.http.auth import check_auth_options
        try:
            check_auth_options(self["auth_token"], self["jwt_secret"], self["jwt_method"])
        except ValueError as e:
            raise usage.UsageError(str(e))
        if self["cpus"] is not None:
            from coreactors.affinity import check_cpus, parse_cpu_list
            try:
                self["cpus"] = parse_cpu_list(self["cpus"])
                check_cpus(self["cpus"])
            except ValueError as e:
                raise usage.UsageError("--cpus: {}".format(e))


def makeService(options: Dict[str, Any]):
    """The process's entry point under twistd: process-wide set-up, then the service tree."""
    from coreactors.log_observers import twistd_observer
    from coreactors.process import serve
    root = serve(dict(options))
    # twistd's options (our Options' parent): where twistd would write the log.
    root.log_observer = twistd_observer(getattr(options, "parent", None))
    return root

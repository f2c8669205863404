"""The twistd plugin's options and service: ``twistd -n coreactors --enable_api -d MODEL ...``.

The flags are those of ``python -m rasa_core.run``, plus ``--listen`` (any Twisted endpoint
string, e.g. ``systemd:domain=INET:name=coreactors`` for socket activation) and ``--workers N``
(N processes on one port: ``coreactors.workers``).
"""

import os
from typing import Any, Dict

from twisted.python import usage

from coreactors.options import FLAGS, PARAMETERS


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Runs the coreactors dialogue server (the Rasa Core 0.12 HTTP API). Without "
                "-d it serves the embedded default bot, or, with a model server in the "
                "endpoints file, waits for that server's model.")
    optParameters = PARAMETERS
    optFlags = FLAGS

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
        self._check_workers()

    def _check_workers(self) -> None:
        if self["worker_index"] >= self["workers"]:
            raise usage.UsageError("--worker_index is set by the server for the processes it "
                                   "starts (below --workers); do not set it")
        if self["workers"] > 1:
            from coreactors.shared_port import shared_port_address
            try:
                shared_port_address(self["listen"], self["port"])
            except ValueError as e:
                raise usage.UsageError("--workers {}: {}".format(self["workers"], e))


def makeService(options: Dict[str, Any]):
    """The process's entry point under twistd: process-wide set-up, then the service tree."""
    from coreactors.log_observers import twistd_observer
    from coreactors.process import serve
    if options.get("worker_index"):
        # A worker the server started (--workers): first of all, tie its life to the parent's.
        from coreactors.workers import die_with_parent, parent_pid
        die_with_parent(parent_pid(os.environ))
    root = serve(dict(options))
    # twistd's options (our Options' parent): where twistd would write the log.
    root.log_observer = twistd_observer(getattr(options, "parent", None))
    return root

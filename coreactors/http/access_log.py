"""The access log: one line per answered request, in the combined log format.

Twisted's ``HTTPFactory.log`` writes each line to a ``LoggingFile``, which splits it and emits
it as a log event of ``twisted.python.log``; the log's observer then formats it like any event.
That path cost about a fifth of the reactor thread's time per webhook turn. Here the line is
made by Twisted's own ``combinedLogFormatter`` with a date string made once a second, and
emitted as one event of the ``coreactors.access`` namespace whose text is the line
(``LINE_FORMAT``): ``coreactors.log_observers.TextLogObserver`` writes it without formatting it
again. The line is the one Twisted writes, with secret query parameters redacted
(``coreactors.http.redaction``); the event also carries its parts (``client``,
``method``, ``uri``, ``status``, ``length``) for ``--log_format json``.
"""

import time
from typing import Any, Optional, Tuple

from twisted.logger import LogLevel, globalLogPublisher
from twisted.web.http import combinedLogFormatter, datetimeToLogString

from coreactors.http.redaction import redact
from coreactors.log_observers import LINE_FORMAT

NAMESPACE = "coreactors.access"


class AccessLog:
    """Emits a request's access line; the date string is remade only when the second changes
    (time from ``clock``, the reactor's)."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._date: Tuple[int, str] = (-1, "")

    def date(self) -> str:
        second = int(self.clock.seconds())
        if second != self._date[0]:
            self._date = (second, datetimeToLogString(second))
        return self._date[1]

    def log(self, request: Any) -> None:
        line = redact(combinedLogFormatter(self.date(), request))
        address: Optional[Any] = request.getClientAddress()
        # The event as Logger.emit makes it, made here: emit checks the level against every
        # LogLevel each time (a sorted list built per call), which cost as much as the rest.
        # It goes straight to the global publisher: the access log is on or off as a whole
        # (the site is quiet with --quiet), so no level filter needs to look at each line.
        globalLogPublisher({
            "line": line, "client": getattr(address, "host", None),
            "method": request.method.decode("latin-1"),
            "uri": redact(request.uri.decode("latin-1")),
            "status": request.code, "length": request.sentLength,
            "log_level": LogLevel.info, "log_namespace": NAMESPACE, "log_source": None,
            "log_format": LINE_FORMAT, "log_time": time.time()})


__all__ = ["AccessLog", "NAMESPACE"]

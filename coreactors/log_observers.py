"""Where the server's log goes, and at which level.

Everything coreactors logs ends up in ``twisted.logger`` as events with named fields
(``sender_id``, ``fingerprint``, ``action``, ``url``, ...):

- the Twisted side (``actors/``, ``http/``, ``stores/``, the services) logs through
  ``twisted.logger.Logger(observer=levelled)`` (made at module level, it takes the module's
  name as its namespace), so the run's level (``-v``, ``-vv``/``--debug``, ``--quiet``)
  applies to them;
- the pure rooms log through ``coreactors.logs.Log`` on stdlib ``logging``; ``StdlibBridge``
  hands each record to ``twisted.logger`` with its format and fields intact.

With ``-o FILE`` the log is also written to FILE: as text, or with ``--log_format json`` as
JSON lines (one object per event: ``time``, ``level``, ``namespace``, ``text``, the event's
fields, and ``traceback`` for a failure), which a machine can read line by line.
"""

import datetime
import json
import logging
from typing import IO, Any, Dict, Optional

from twisted.application import service
from twisted.logger import (
    FileLogObserver, FilteringLogObserver, ILogObserver, LogLevel, LogLevelFilterPredicate,
    Logger, formatEvent, globalLogPublisher, textFileLogObserver)
from twisted.python.failure import Failure

from coreactors.logs import StructuredMessage

NAMESPACE = "coreactors"
LOG_FORMATS = ("text", "json")

# The run's level for coreactors' own Twisted-side events (set once by configure_logging).
_levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)

# What coreactors' Twisted-side Loggers emit to: the global publisher, at the run's level.
levelled: ILogObserver = FilteringLogObserver(globalLogPublisher, [_levels])

_STDLIB_LEVELS = ((logging.CRITICAL, LogLevel.critical), (logging.ERROR, LogLevel.error),
                  (logging.WARNING, LogLevel.warn), (logging.INFO, LogLevel.info))

# Keys twisted.logger uses itself or that Logger.emit takes as arguments.
_RESERVED = frozenset(("format", "level", "message", "time", "system", "isError", "why"))


class StdlibBridge(logging.Handler):
    """Sends stdlib log records (the pure rooms') into twisted.logger, fields and all."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = next((twisted for number, twisted in _STDLIB_LEVELS
                          if record.levelno >= number), LogLevel.debug)
            message = record.msg
            if isinstance(message, StructuredMessage):
                format = message.format
                fields = {("field_" + k if k in _RESERVED or k.startswith("log_") else k): v
                          for k, v in message.fields.items()}
                if fields.keys() != message.fields.keys():
                    format = str(message).replace("{", "{{").replace("}", "}}")
            else:
                format, fields = "{text}", {"text": record.getMessage()}
            if record.exc_info and record.exc_info[1] is not None:
                fields["log_failure"] = Failure(record.exc_info[1], record.exc_info[0],
                                                record.exc_info[2])
            Logger(namespace=record.name, observer=globalLogPublisher).emit(
                level, format, **fields)
        except Exception:
            self.handleError(record)


def json_line(event: Dict[str, Any]) -> str:
    """One event as a line of JSON (see the module docstring)."""
    level = event.get("log_level")
    line: Dict[str, Any] = {
        "time": datetime.datetime.fromtimestamp(
            event.get("log_time", 0.0), datetime.timezone.utc).isoformat(),
        "level": level.name if level is not None else None,
        "namespace": event.get("log_namespace"),
        "text": formatEvent(event),
    }
    for key, value in event.items():
        if key.startswith("log_") or key in _RESERVED or key in line:
            continue
        line[key] = value
    failure = event.get("log_failure")
    if failure is not None:
        line["traceback"] = failure.getTraceback()
    return json.dumps(line, default=repr, ensure_ascii=False) + "\n"


def json_lines_observer(out: IO[str]) -> ILogObserver:
    """Writes every event to ``out`` as a line of JSON."""
    return FileLogObserver(out, json_line)


def level_for(options: Dict[str, Any]) -> LogLevel:
    return (LogLevel.debug if options.get("debug") else
            LogLevel.warn if options.get("quiet") else LogLevel.info)


def configure_logging(options: Dict[str, Any]) -> None:
    """The run's level for coreactors' events and the stdlib bridge. Once per process (the
    entry point calls it); the ``-o`` file is the service tree's (``LogFileService``)."""
    level = level_for(options)
    _levels.setLogLevelForNamespace(NAMESPACE, level)
    stdlib_level = {LogLevel.debug: logging.DEBUG, LogLevel.info: logging.INFO}.get(
        level, logging.WARNING)
    root = logging.getLogger(NAMESPACE)
    root.setLevel(stdlib_level)
    if not any(isinstance(h, StdlibBridge) for h in root.handlers):
        root.addHandler(StdlibBridge())


class LogFileService(service.Service):
    """Writes the log to a file (``-o``) while the server runs: as text, or as JSON lines.

    Started first and stopped last, so it sees everything from the server's start (its first
    line says what it serves) to its last line. An observer added before twistd begins logging
    would see the early events twice (twistd replays its buffer to every observer)."""

    name = "log-file"

    def __init__(self, path: str, format: str = "text") -> None:
        if format not in LOG_FORMATS:
            raise ValueError("log format: text or json, not {!r}".format(format))
        self.path = path
        self.format = format
        self._out: Optional[IO[str]] = None
        self._observer: Optional[ILogObserver] = None

    def startService(self) -> None:
        self._out = open(self.path, "a", encoding="utf-8")
        self._observer = (json_lines_observer(self._out) if self.format == "json"
                          else textFileLogObserver(self._out))
        globalLogPublisher.addObserver(self._observer)
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        if self._observer is not None:
            globalLogPublisher.removeObserver(self._observer)
            self._observer = None
        if self._out is not None:
            self._out.close()
            self._out = None


__all__ = ["LOG_FORMATS", "LogFileService", "StdlibBridge", "configure_logging", "json_line",
           "json_lines_observer", "level_for", "levelled"]

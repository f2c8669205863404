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

Text is written by ``TextLogObserver``: twistd's format, made for less (an access line per
request goes through it). Under ``twistd -n`` (and ``python -m coreactors.run``) it is also the
observer twistd writes stdout with: the service tree offers it to twistd's application
(``ServerRoot``), which is how Twisted lets an application choose its observer. With
``--logfile``, ``--syslog``, ``--logger`` or as a daemon, twistd's own observer writes as
before.
"""

import atexit
import datetime
import json
import logging
import sys
import threading
from typing import IO, Any, Dict, Optional, Tuple

from twisted.application import service
from twisted.logger import (
    FileLogObserver, FilteringLogObserver, ILogObserver, LogLevel, LogLevelFilterPredicate,
    Logger, formatEvent, formatEventAsClassicLogText, formatTime, globalLogPublisher)
from twisted.python.components import Componentized
from twisted.python.failure import Failure
from zope.interface import implementer

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


# An event whose format is this and which carries ``line`` is that line (the access log's).
LINE_FORMAT = "{line}"


@implementer(ILogObserver)
class TextLogObserver:
    """Writes events as twistd's ``textFileLogObserver`` does (``TIME [namespace#level]
    text``, one line, continuation lines indented), for less: the time is formatted once a
    second (its format has no finer part), an event that is one ready line (``LINE_FORMAT``)
    is not formatted again, and the file is flushed a few times a second by a thread of its
    own, at once for warnings and worse, and at exit, rather than after every event."""

    def __init__(self, out: IO[str], flush_interval: float = 0.2) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._unflushed = False
        self._stamp: Tuple[int, str] = (-1, "")
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_every, args=(flush_interval,),
                                         daemon=True, name="log-flush")
        self._flusher.start()
        atexit.register(self.flush)

    def __call__(self, event: Dict[str, Any]) -> None:
        text = self.text(event)
        if not text:
            return
        level = event.get("log_level")
        with self._lock:
            self._out.write(text)
            if level is not None and level >= LogLevel.warn:
                self._out.flush()
            else:
                self._unflushed = True

    def text(self, event: Dict[str, Any]) -> Optional[str]:
        """The event as twistd's text observer writes it."""
        line = event.get("line")
        if (event.get("log_format") == LINE_FORMAT and isinstance(line, str)
                and "log_failure" not in event and "log_system" not in event
                and "\n" not in line):
            level = event.get("log_level")
            return "{} [{}#{}] {}\n".format(
                self.time(event.get("log_time")), event.get("log_namespace", "-"),
                level.name if level is not None else "-", line)
        return formatEventAsClassicLogText(event, formatTime=self.time)

    def time(self, when: Optional[float]) -> str:
        if when is None:
            return formatTime(None)
        second = int(when)
        if second != self._stamp[0]:
            self._stamp = (second, formatTime(second))
        return self._stamp[1]

    def flush(self) -> None:
        with self._lock:
            if self._unflushed:
                self._unflushed = False
                try:
                    self._out.flush()
                except (OSError, ValueError):  # closed or gone: nothing left to save
                    pass

    def close(self) -> None:
        """Flushes and stops the flushing thread (the file stays open: it is the caller's)."""
        self._closed.set()
        self.flush()
        atexit.unregister(self.flush)

    def _flush_every(self, interval: float) -> None:
        while not self._closed.wait(interval):
            self.flush()


def twistd_observer(twistd_options: Any) -> Optional[TextLogObserver]:
    """The observer to offer twistd (``ServerRoot``): one on stdout where twistd would write the
    log to stdout with its own (``-n`` without ``--logfile``, ``--syslog`` or ``--logger``),
    else None (twistd's choice stands)."""
    if twistd_options is None:
        return None
    get = getattr(twistd_options, "get", None)
    if get is None or get("logger") or get("syslog") or not get("nodaemon"):
        return None
    if (get("logfile") or "") not in ("", "-"):
        return None
    return TextLogObserver(sys.stdout)


class ServerRoot(service.MultiService):
    """The root of the server's service tree. Made part of twistd's application, it offers
    the application ``log_observer`` (when set) as its ``ILogObserver``, which twistd then
    begins logging to: Twisted's way for an application to choose its log observer."""

    log_observer: Optional[ILogObserver] = None

    def setServiceParent(self, parent: Any) -> Any:
        if self.log_observer is not None and isinstance(parent, Componentized) \
                and parent.getComponent(ILogObserver, None) is None:
            parent.setComponent(ILogObserver, self.log_observer)
        return super().setServiceParent(parent)


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
                          else TextLogObserver(self._out))
        globalLogPublisher.addObserver(self._observer)
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        if self._observer is not None:
            globalLogPublisher.removeObserver(self._observer)
            if isinstance(self._observer, TextLogObserver):
                self._observer.close()
            self._observer = None
        if self._out is not None:
            self._out.close()
            self._out = None


__all__ = ["LINE_FORMAT", "LOG_FORMATS", "LogFileService", "ServerRoot", "StdlibBridge",
           "TextLogObserver", "configure_logging", "json_line", "json_lines_observer",
           "level_for", "levelled", "twistd_observer"]

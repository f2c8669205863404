"""Structured logging for the pure rooms (``dialogue/``, ``nlu/``, ``policies/``, ``actions/``,
``training/``, ``processor.py``), which may not import Twisted.

``Log`` offers the calls of ``twisted.logger.Logger`` (``debug``, ``info``, ``warn``, ``error``,
``failure``, each a PEP 3101 format string and its fields as keywords) on top of stdlib
``logging``: a record's message is a ``StructuredMessage`` that keeps the format and the fields
apart. The server's bridge (``coreactors.service``) hands both to ``twisted.logger``, so the
fields survive into its observers (a JSON log file, say); anything else that reads stdlib
records (the CLI, pytest's caplog) sees the formatted text.
"""

import logging
from typing import Any, Dict


class StructuredMessage:
    """A log message as a format string and its fields; ``str()`` formats it."""

    __slots__ = ("format", "fields")

    def __init__(self, format: str, fields: Dict[str, Any]) -> None:
        self.format = format
        self.fields = fields

    def __str__(self) -> str:
        try:
            return self.format.format(**self.fields)
        except (KeyError, IndexError, ValueError, AttributeError) as e:
            # A wrong format must not cost the message: show what there is.
            return "{} (unformattable: {}: {}) {!r}".format(self.format, type(e).__name__, e,
                                                           self.fields)

    def __repr__(self) -> str:
        return "StructuredMessage({!r}, {!r})".format(self.format, self.fields)


class Log:
    """A logger of the namespace it is made for (``log = Log(__name__)`` at module level).

    Fields are only formatted when a handler emits the record, and nothing is built when the
    level is off."""

    __slots__ = ("namespace", "_logger")

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._logger = logging.getLogger(namespace)

    def _emit(self, level: int, format: str, fields: Dict[str, Any],
              exc_info: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            # stacklevel 3: the record names the caller's line, not this helper's.
            self._logger.log(level, StructuredMessage(format, fields), exc_info=exc_info,
                             stacklevel=3)

    def debug(self, format: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, format, fields)

    def info(self, format: str, **fields: Any) -> None:
        self._emit(logging.INFO, format, fields)

    def warn(self, format: str, **fields: Any) -> None:
        self._emit(logging.WARNING, format, fields)

    def error(self, format: str, **fields: Any) -> None:
        self._emit(logging.ERROR, format, fields)

    def failure(self, format: str, **fields: Any) -> None:
        """An error with the exception being handled (call it inside ``except``)."""
        self._emit(logging.ERROR, format, fields, exc_info=True)


__all__ = ["Log", "StructuredMessage"]

"""Twisted web internals this project leans on.

``quiet_pool``: ``HTTPConnectionPool._factory`` (documented on the class as the factory it
connects with) set to a subclass of ``twisted.web.client._HTTP11ClientFactory`` with ``noisy``
off, so a pull from the model server (a new connection each time) logs no "Starting factory"
and "Stopping factory" lines. Off (``COREACTORS_FAST_PATHS=off``): a plain pool.
"""

from typing import Any

from twisted.web import client as web_client
from twisted.web.client import HTTPConnectionPool


def quiet_pool(reactor: Any) -> HTTPConnectionPool:
    """A pool that opens a new connection per request and does not log each one."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    factory = getattr(web_client, "_HTTP11ClientFactory", None)
    if factory is not None:
        pool._factory = type("QuietHTTP11ClientFactory", (factory,), {"noisy": False})
    return pool

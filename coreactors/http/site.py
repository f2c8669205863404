"""The Twisted site classes the API is served with: its requests and its connections.

Public Twisted API only. ``coreactors.http.app.make_site`` builds a site from these or from
their fast variants (``coreactors.fastpaths.twisted_web``), as the fast-path switch says.
"""

from typing import Any

from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site

from coreactors.http.access_log import AccessLog


class APIRequest(Request):
    """A request whose body Twisted does not parse as a form: the routes read bodies
    themselves, and Twisted would answer a malformed multipart body with its own bare 400
    before any route (and its JSON error body and CORS headers) runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)


class APIChannel(HTTPChannel):
    """An HTTP/1.1 connection that asks the kernel for its addresses once, not for every
    request (each request reads them, Klein builds its URLs from the local one): every
    getsockname() lets the actor threads take the GIL from the reactor thread, which then
    waits to get it back. (HTTP/2 needs TLS, which this server does not terminate.)"""

    _host: Any = None
    _peer: Any = None

    def getHost(self) -> Any:
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def getPeer(self) -> Any:
        if self._peer is None:
            self._peer = super().getPeer()
        return self._peer


class APISite(Site):
    """A Site serving ``CoreApp.resource()`` with the plain request and connection classes,
    and its access log (``coreactors.http.access_log``)."""

    requestFactory = APIRequest
    protocol = APIChannel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = AccessLog(self.reactor)

    def log(self, request: Any) -> None:
        self.access_log.log(request)


class QuietSite(APISite):
    """A Site without the per-request access log (``--quiet``)."""

    def log(self, request: Any) -> None:
        pass


__all__ = ["APIChannel", "APIRequest", "APISite", "QuietSite"]

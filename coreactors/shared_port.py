"""One TCP port shared by several server processes (``--workers N``): each process listens
with a socket of its own that has SO_REUSEPORT set, and the kernel spreads new connections over
them.

- ``parse_tcp_listen`` / ``shared_port_address``: the port (and interface, backlog) every
  process binds, from ``--port`` or a plain ``tcp:`` ``--listen`` string; other endpoint types
  (``systemd:``, ``unix:``, ``ssl:``...) cannot be bound once per process and are refused;
- ``ReusePortService``: listens on that port with a SO_REUSEPORT socket, in each process.
"""

import ipaddress
import socket
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from twisted.application import service
from twisted.internet import defer, error, protocol
from twisted.internet.interfaces import IListeningPort

# Twisted's default listen queue for tcp: endpoints, so --workers changes nothing else.
DEFAULT_BACKLOG = 50

_LISTEN_SHAPE = "--port, or --listen tcp:PORT[:interface=ADDRESS][:backlog=N]"


class TcpAddress(NamedTuple):
    """A TCP port to listen on: ``interface`` "" is every IPv4 interface, as for tcp:."""

    port: int
    interface: str = ""
    backlog: int = DEFAULT_BACKLOG
    ipv6: bool = False

    @property
    def family(self) -> int:
        return socket.AF_INET6 if self.ipv6 or _is_ipv6(self.interface) else socket.AF_INET


def _is_ipv6(interface: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(interface.split("%", 1)[0]),
                          ipaddress.IPv6Address)
    except ValueError:
        return False


def split_endpoint(description: str) -> Tuple[List[str], Dict[str, str]]:
    """The positional and keyword parameters of a Twisted endpoint string, as Twisted reads it:
    ``:`` separates parameters, the first ``=`` of one makes it a keyword, a backslash takes the
    next character as it is (``interface=\\:\\:1``)."""
    args: List[str] = []
    kwargs: Dict[str, str] = {}
    parts: List[str] = []
    current = ""
    chars = iter(description)
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise ValueError("{!r} ends in a lone backslash".format(description))
            current += escaped
        elif char == ":":
            parts.append(current)
            _add_parameter(parts, args, kwargs)
            parts, current = [], ""
        elif char == "=" and not parts:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    _add_parameter(parts, args, kwargs)
    return args, kwargs


def _add_parameter(parts: List[str], args: List[str], kwargs: Dict[str, str]) -> None:
    if len(parts) == 1:
        args.append(parts[0])
    else:
        kwargs[parts[0]] = parts[1]


# The parameters of tcp: and tcp6: in Twisted's positional order.
_TCP_PARAMETERS = {"tcp": ("port", "interface", "backlog"),
                   "tcp6": ("port", "backlog", "interface")}


def parse_tcp_listen(description: str) -> TcpAddress:
    """The address of a ``tcp:`` (or ``tcp6:``) endpoint string; ValueError for any other kind
    of endpoint or a malformed one."""
    args, kwargs = split_endpoint(description.strip())
    kind = args[0]
    # Twisted's own parsers are case-sensitive (tcp), its plugins' prefixes are not (tcp6).
    kind = "tcp6" if kind.lower() == "tcp6" else kind
    names = _TCP_PARAMETERS.get(kind)
    if names is None:
        raise ValueError(
            "--listen {!r}: with --workers above 1 every process binds the port itself with "
            "SO_REUSEPORT, which only a plain TCP port allows; give {} ({} endpoints cannot be "
            "shared that way)".format(description, _LISTEN_SHAPE, kind or "empty"))
    if len(args) - 1 > len(names):
        raise ValueError("--listen {!r}: too many parameters (a {}: endpoint takes {})".format(
            description, kind, ", ".join(names)))
    values = dict(zip(names, args[1:]))
    for key, value in kwargs.items():
        if key not in names:
            raise ValueError("--listen {!r}: a {}: endpoint has no parameter {!r} (only {})"
                             .format(description, kind, key, ", ".join(names)))
        if key in values:
            raise ValueError("--listen {!r}: {} given twice".format(description, key))
        values[key] = value
    if "port" not in values:
        raise ValueError("--listen {!r}: no port".format(description))
    return TcpAddress(
        port=_number(values["port"], "port", description, 0, 65535),
        interface=values.get("interface", "::" if kind == "tcp6" else ""),
        backlog=_number(values.get("backlog", str(DEFAULT_BACKLOG)), "backlog", description,
                        0, None),
        ipv6=kind == "tcp6")


def _number(text: str, name: str, description: str, low: int, high: Optional[int]) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise ValueError("--listen {!r}: {} must be a whole number{}, not {!r}".format(
            description, name, " from {} to {}".format(low, high) if high is not None
            else " of at least {}".format(low), text))
    return value


def shared_port_address(listen: Optional[str], port: Optional[int]) -> TcpAddress:
    """Where every process of ``--workers`` N > 1 listens: ``--listen`` when given (a plain
    TCP endpoint), else every IPv4 interface on ``--port``. ValueError where the processes
    could not share the port."""
    address = parse_tcp_listen(listen) if listen else TcpAddress(
        port=5005 if port is None else int(port))
    if not 0 <= address.port <= 65535:
        raise ValueError("port {} is not a TCP port number".format(address.port))
    if address.port == 0:
        raise ValueError("port 0 asks the system for a free port, which would be a different "
                         "one in each process: --workers above 1 needs a port number")
    return address


def reuse_port_socket(address: TcpAddress) -> socket.socket:
    """A listening, non-blocking socket on ``address`` that other processes may bind too."""
    reuse_port = getattr(socket, "SO_REUSEPORT", None)
    if reuse_port is None:
        raise ValueError("this system has no SO_REUSEPORT, which --workers needs")
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, reuse_port, 1)
        try:
            sock.bind((address.interface, address.port))
        except OSError as e:
            # What twistd would say had Twisted bound the port (strports does that for 1).
            raise error.CannotListenError(address.interface, address.port, e)
        sock.listen(address.backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class ReusePortService(service.Service):
    """Listens on ``address`` with a SO_REUSEPORT socket of its own, while running.

    Like strports' service, it starts listening in ``privilegedStartService`` (before twistd
    sheds privileges, so ports below 1024 work with ``--uid``), or in ``startService`` when
    that is not called."""

    def __init__(self, address: TcpAddress, factory: protocol.Factory, reactor: Any) -> None:
        self.address = address
        self.factory = factory
        self.reactor = reactor
        self.port: Optional[IListeningPort] = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        self._listen()

    def _listen(self) -> None:
        if self.port is not None:
            return
        sock = reuse_port_socket(self.address)
        try:
            self.port = self.reactor.adoptStreamPort(sock.fileno(), sock.family, self.factory)
        finally:
            sock.close()  # the port has its own duplicate of the descriptor

    def stopService(self) -> Optional[defer.Deferred]:
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return None
        return defer.maybeDeferred(port.stopListening)


__all__ = ["DEFAULT_BACKLOG", "ReusePortService", "TcpAddress", "parse_tcp_listen",
           "reuse_port_socket", "shared_port_address", "split_endpoint"]

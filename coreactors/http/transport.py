"""Writing an HTTP answer to its TCP connection with one ``send()`` where it can.

Twisted's TCP transport buffers every write and sends it on the reactor's next pass: it
registers the socket for writability, sends, and unregisters it again. Those two ``epoll_ctl``
calls per answer cost more than their syscalls here: each one releases the GIL, and the reactor
thread, the busiest one under load, then waits for an actor thread to hand it back
(bench/load.py: ~10% more turns/s without them). ``EagerTransport`` wraps a connection's
transport and, as asyncio's transports do, sends at once when nothing is buffered, leaving the
rest of a partial send (and everything while anything is buffered) to Twisted's own buffered
write, so the bytes keep their order. The status line and headers wait for the body, so an
answer leaves in one piece.
"""

from typing import Any, Iterable, List


class EagerTransport:
    """Stands in for a connection's TCP transport; everything but writing is passed through."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._held: List[bytes] = []
        # While True, writes are held until the next write or flush (see APIChannel).
        self.holding = False

    @staticmethod
    def fits(transport: Any) -> bool:
        """Whether ``transport`` is a plain TCP transport whose buffers this can see."""
        return all(hasattr(transport, name) for name in (
            "socket", "dataBuffer", "_tempDataBuffer", "connected", "disconnecting"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    @property
    def disconnecting(self) -> bool:
        # HTTPChannel reads this several times per request; as a property it is found at
        # once, where __getattr__ is only reached after a failed lookup has built an
        # AttributeError (about a twentieth of the reactor's work per request).
        return self._transport.disconnecting

    def write(self, data: bytes) -> None:
        self._held.append(data)
        if not self.holding:
            self.flush()

    def writeSequence(self, iovec: Iterable[bytes]) -> None:
        self._held.extend(iovec)
        if not self.holding:
            self.flush()

    def flush(self) -> None:
        """Sends what is held: at once if nothing is buffered, else after what is."""
        if not self._held:
            return
        data = b"".join(self._held)
        self._held = []
        transport = self._transport
        if (transport.connected and not transport.disconnecting
                and not getattr(transport, "_writeDisconnected", False)
                and not transport.dataBuffer and not transport._tempDataBuffer):
            try:
                sent = transport.socket.send(data)
            except OSError:
                # Full (EAGAIN) or broken: the buffered write waits or reports the error, as
                # it would have anyway.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

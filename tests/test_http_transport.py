"""Tests for EagerTransport (coreactors.fastpaths.twisted_web, the ``eager_send`` fast path):
answers sent with one send() where nothing is buffered.

The transport here stands in for Twisted's TCP transport (the attributes EagerTransport reads,
and a buffered ``write`` that records what it was given); its socket is a real one, from a
socketpair, so what the kernel takes is what the other end reads.
"""

import socket

import pytest
from twisted.internet.testing import StringTransport

from coreactors.fastpaths.twisted_web import EagerTransport


class BufferedTransport:
    """Twisted's FileDescriptor as EagerTransport sees it: buffers, flags, a socket."""

    def __init__(self, sock):
        self.socket = sock
        self.dataBuffer = b""
        self._tempDataBuffer = []
        self.connected = True
        self.disconnecting = False
        self.buffered = []  # what went through the buffered write, in order

    def write(self, data):
        self.buffered.append(data)
        self._tempDataBuffer.append(data)

    def getPeer(self):
        return "the peer"


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(5)
    yield ours, theirs
    ours.close()
    theirs.close()


def read_all(sock, size):
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def test_only_plain_tcp_transports_fit(pair):
    assert EagerTransport.fits(BufferedTransport(pair[0]))
    assert not EagerTransport.fits(StringTransport())


def test_a_write_with_nothing_buffered_is_sent_at_once(pair):
    ours, theirs = pair
    transport = BufferedTransport(ours)
    eager = EagerTransport(transport)
    eager.write(b"HTTP/1.1 200 OK\r\n\r\nhello")
    assert transport.buffered == []
    assert read_all(theirs, 24) == b"HTTP/1.1 200 OK\r\n\r\nhello"


def test_held_headers_leave_with_the_body_in_one_send(pair):
    ours, theirs = pair
    transport = BufferedTransport(ours)
    eager = EagerTransport(transport)
    eager.holding = True
    eager.writeSequence([b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n", b"\r\n"])
    eager.holding = False
    theirs.setblocking(False)
    with pytest.raises(BlockingIOError):
        theirs.recv(100)  # nothing sent yet
    theirs.settimeout(5)
    eager.write(b"hi")
    expected = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    assert read_all(theirs, len(expected)) == expected
    assert transport.buffered == []


def test_flush_sends_held_headers_of_an_answer_without_body(pair):
    ours, theirs = pair
    eager = EagerTransport(BufferedTransport(ours))
    eager.holding = True
    eager.writeSequence([b"HTTP/1.1 204 No Content\r\n\r\n"])
    eager.holding = False
    eager.flush()
    eager.flush()  # nothing left: nothing more sent
    assert read_all(theirs, 27) == b"HTTP/1.1 204 No Content\r\n\r\n"


def test_while_anything_is_buffered_writes_queue_behind_it(pair):
    ours, theirs = pair
    transport = BufferedTransport(ours)
    eager = EagerTransport(transport)
    transport._tempDataBuffer = [b"earlier"]
    eager.write(b"later")
    assert transport.buffered == [b"later"]
    transport._tempDataBuffer = []
    transport.dataBuffer = b"partly sent"
    eager.write(b"more")
    assert transport.buffered == [b"later", b"more"]
    theirs.setblocking(False)
    with pytest.raises(BlockingIOError):
        theirs.recv(100)


def test_the_rest_of_a_partial_send_goes_to_the_buffered_write(pair):
    ours, theirs = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport = BufferedTransport(ours)
    eager = EagerTransport(transport)
    payload = bytes(range(256)) * 4096  # 1 MiB: more than the socket takes at once
    eager.write(payload)
    assert len(transport.buffered) == 1
    rest = transport.buffered[0]
    assert 0 < len(rest) < len(payload)
    sent = read_all(theirs, len(payload) - len(rest))
    assert sent + rest == payload


def test_a_broken_or_closing_connection_is_left_to_the_buffered_write(pair):
    ours, theirs = pair
    transport = BufferedTransport(ours)
    eager = EagerTransport(transport)
    transport.disconnecting = True
    eager.write(b"one")
    transport.disconnecting = False
    theirs.close()
    ours.close()  # send() now fails with an OSError
    eager.write(b"two")
    assert transport.buffered == [b"one", b"two"]


def test_everything_else_is_the_transports(pair):
    transport = BufferedTransport(pair[0])
    eager = EagerTransport(transport)
    assert eager.getPeer() == "the peer"
    assert eager.connected is True
    assert eager.disconnecting is False
    transport.disconnecting = True
    assert eager.disconnecting is True

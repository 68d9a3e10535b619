"""Transport.adopt and plugins.adopt_socket: the one wrapper for sockets connected elsewhere."""

from __future__ import annotations

import socket

import pytest
from pyrite.core import plugins
from pyrite.core.errors import CommunicationError, ConnectionClosedError
from pyrite.transports.adopted import BorrowedSocketConnection
from pyrite.transports.sockets import SocketConnection
from pyrite.transports.tcp import TcpTransport
from pyrite.transports.unix import UnixTransport

WAIT = 5.0


def tcp_pair(family: int = socket.AF_INET) -> tuple[socket.socket, socket.socket]:
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    with socket.socket(family) as listener:
        listener.bind((host, 0))
        listener.listen(1)
        client = socket.socket(family)
        client.settimeout(WAIT)
        client.connect(listener.getsockname()[:2])
        server, _ = listener.accept()
        server.settimeout(WAIT)
    return client, server


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    "family", [socket.AF_INET, pytest.param(socket.AF_INET6, marks=pytest.mark.skipif(not has_ipv6(), reason="no ::1"))]
)
def test_adopt_socket_picks_tcp_by_family(family):
    a, b = tcp_pair(family)
    try:
        conn = plugins.adopt_socket(a)
        assert isinstance(conn, BorrowedSocketConnection)
        conn.send(b"hello")
        assert b.recv(5) == b"hello"
        b.sendall(b"world!")
        assert bytes(conn.recv(6)) == b"world!"
        assert conn.timeout == WAIT  # the socket's own timeout is kept
        conn.close()
        # borrowed: the socket is still the owner's, and still connected
        a.sendall(b"still")
        assert b.recv(5) == b"still"
        with pytest.raises(ConnectionClosedError):
            conn.recv(1)
    finally:
        a.close()
        b.close()


def test_owned_adoption_closes_the_socket():
    a, b = tcp_pair()
    try:
        conn = TcpTransport().adopt(a, owned=True)
        assert type(conn) is SocketConnection
        conn.close()
        assert a.fileno() == -1
        b.settimeout(WAIT)
        assert b.recv(1) == b""  # the peer sees the close
    finally:
        a.close()
        b.close()


def test_adopt_socket_picks_unix_for_a_socketpair():
    a, b = socket.socketpair()
    a.settimeout(WAIT)
    b.settimeout(WAIT)
    try:
        conn = plugins.adopt_socket(a)
        assert isinstance(conn, BorrowedSocketConnection)
        conn.send(b"ping")
        assert b.recv(4) == b"ping"
        conn.close()
        a.sendall(b"x")  # still open
        assert b.recv(1) == b"x"
    finally:
        a.close()
        b.close()


def test_adopt_refuses_wrong_family_and_unconnected_sockets():
    a, b = socket.socketpair()
    try:
        with pytest.raises(CommunicationError, match="family"):
            TcpTransport().adopt(a)
    finally:
        a.close()
        b.close()
    with socket.socket() as lone:
        with pytest.raises(CommunicationError, match="not connected"):
            TcpTransport().adopt(lone)
    with socket.socket(socket.AF_UNIX) as lone:
        with pytest.raises(CommunicationError, match="not connected"):
            UnixTransport().adopt(lone)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect(("127.0.0.1", 9))
        # a datagram socket is AF_INET too, but it is no stream: refuse it rather than misbehave
        with pytest.raises(CommunicationError):
            plugins.adopt_socket(udp)

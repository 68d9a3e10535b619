"""SocketConnection.send_some: the non-blocking write the multiplex engine's output buffer uses.
It never waits, with or without a connection timeout, plain and over a Unix socket, and it
reports a broken connection as ConnectionClosedError.  Also SocketConnection.send with a
timeout, which writes what fits at once and waits only for room for the rest."""

from __future__ import annotations

import time

import pytest
from pyrite.core.errors import ConnectionClosedError
from pyrite.transports.tcp import TcpTransport
from pyrite.transports.unix import UnixTransport


@pytest.fixture(params=["tcp", "unix"])
def pair(request, tmp_path):
    if request.param == "tcp":
        transport, location = TcpTransport(), "127.0.0.1:0"
    else:
        transport, location = UnixTransport(), f"./u:{tmp_path / 's.sock'}"
    listener = transport.listen(location)
    listener.timeout = 5.0
    client = transport.connect(listener.location, timeout=5.0)
    server = listener.accept()
    assert server is not None
    yield client, server
    client.close()
    server.close()
    listener.close()


@pytest.mark.parametrize("timeout", [None, 2.0])
def test_send_some_fills_the_socket_without_waiting(pair, timeout):
    client, server = pair
    server.timeout = timeout
    chunk = b"x" * 65536
    total = 0
    start = time.monotonic()
    while True:
        sent = server.send_some(chunk)
        if not sent:
            break
        total += sent
        assert total < 512 * 1024 * 1024, "the socket never filled up"
    assert time.monotonic() - start < 1.0  # never waited for room (a 2 s timeout would show)
    assert total > 0
    got = 0
    while got < total:
        got += len(client.recv(min(65536, total - got)))
    assert server.send_some(b"more") == 4  # room again once the peer read


def test_send_some_on_a_broken_connection(pair):
    client, server = pair
    client.close()
    with pytest.raises(ConnectionClosedError):
        for _ in range(100):
            server.send_some(b"x" * 65536)
            time.sleep(0.01)
    server.close()
    with pytest.raises(ConnectionClosedError):
        server.send_some(b"x")


@pytest.mark.parametrize("timeout", [None, 2.0])
def test_send_with_a_timeout_delivers_what_did_not_fit_at_once(pair, timeout):
    """send() writes what fits first, then waits for room for the rest: a peer that reads
    slowly still gets every byte, in order."""
    import threading

    client, server = pair
    server.timeout = timeout
    data = bytes(range(256)) * (32 * 1024)  # 8 MiB: far more than the socket buffers hold
    received = bytearray()

    def read_slowly():
        while len(received) < len(data):
            received.extend(client.recv(min(256 * 1024, len(data) - len(received))))
            time.sleep(0.002)

    reader = threading.Thread(target=read_slowly, daemon=True)
    reader.start()
    server.send(data)
    server.send(b"tail")
    reader.join(10)
    assert not reader.is_alive()
    assert bytes(received) == data
    assert client.recv(4) == b"tail"


def test_send_with_a_timeout_to_a_peer_that_never_reads_times_out(pair):
    from pyrite.core.errors import TimeoutError as PyroTimeoutError

    client, server = pair
    server.timeout = 0.3
    start = time.monotonic()
    with pytest.raises(PyroTimeoutError):
        server.send(b"x" * (64 * 1024 * 1024))
    assert time.monotonic() - start < 5.0


def test_accepted_connections_know_their_addresses_as_the_socket_reports_them(pair):
    """accept() hands the peer address (and, on a specifically bound listener, the local one)
    to the connection; they equal what getsockname()/getpeername() say."""
    from pyrite.transports.sockopts import decode_address

    client, server = pair
    sock = server.socket
    assert server.local_address == decode_address(sock.getsockname())
    assert server.peer_address == decode_address(sock.getpeername())
    assert client.local_address == server.peer_address or not client.local_address  # unnamed Unix client

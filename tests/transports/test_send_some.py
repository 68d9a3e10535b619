"""SocketConnection.send_some: the non-blocking write the multiplex engine's output buffer uses.
It never waits, with or without a connection timeout, plain and over a Unix socket, and it
reports a broken connection as ConnectionClosedError."""

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

"""The UDP broadcast responder, on the loopback broadcast address only."""

from __future__ import annotations

import selectors
import socket
import time

import pytest
from pyrite.core.uri import URI
from pyrite.nameserver import broadcast
from pyrite.nameserver.broadcast import BroadcastServer

BCHOST = "127.255.255.255"
NS_URI = "PYRO:Pyro.NameServer@127.0.0.1:9999"


def ask(port: int, payload: bytes = b"GET_NSURI", timeout: float = 2.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.settimeout(timeout)
        sock.sendto(payload, (BCHOST, port))
        try:
            return sock.recvfrom(200)[0]
        except socket.timeout:
            return None


@pytest.fixture
def responder():
    server = BroadcastServer(URI(NS_URI), bchost=BCHOST, bcport=0)
    thread = server.runInThread()
    yield server
    server.close()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_answers_get_nsuri(responder):
    assert responder.getPort() > 0
    assert responder.locationStr == f"{BCHOST}:{responder.getPort()}"
    assert ask(responder.getPort()) == NS_URI.encode("iso-8859-1")


def test_ignores_everything_else(responder):
    port = responder.getPort()
    for junk in (b"", b"GET_NSUR", b"GET_NSURI\n", b"get_nsuri", b"\x00" * 500, b"GET_NSURI" * 10):
        assert ask(port, junk, timeout=0.3) is None
    assert ask(port) == NS_URI.encode()  # still alive and answering


def test_any_address_is_replaced_by_the_interface_address():
    server = BroadcastServer("PYRO:Pyro.NameServer@0.0.0.0:9999", bchost=BCHOST, bcport=0)
    thread = server.runInThread()
    try:
        assert ask(server.getPort()) == b"PYRO:Pyro.NameServer@127.0.0.1:9999"
    finally:
        server.close()
        thread.join(timeout=5)


def test_replies_are_rate_limited(responder, monkeypatch):
    monkeypatch.setattr(broadcast, "MAX_REPLIES_PER_SECOND", 3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.settimeout(0.5)
        for _ in range(10):
            sock.sendto(b"GET_NSURI", (BCHOST, responder.getPort()))
        replies = 0
        try:
            while True:
                sock.recvfrom(200)
                replies += 1
        except socket.timeout:
            pass
    assert 1 <= replies <= 6  # at most two one-second windows' worth


def test_in_an_external_event_loop():
    server = BroadcastServer(URI(NS_URI), bchost=BCHOST, bcport=0)
    try:
        assert server.sockets == [server] and server.transportServer.sockets == [server]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client, selectors.DefaultSelector() as sel:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            client.settimeout(2.0)
            sel.register(server.fileno(), selectors.EVENT_READ, server)
            client.sendto(b"GET_NSURI", (BCHOST, server.getPort()))
            ready = [key.data for key, _ in sel.select(timeout=2.0)]
            assert ready == [server]
            server.events(ready)
            assert client.recvfrom(200)[0] == NS_URI.encode()
    finally:
        server.close()


def test_close_ends_the_thread_quickly():
    with BroadcastServer(URI(NS_URI), bchost=BCHOST, bcport=0) as server:
        thread = server.runInThread()
        time.sleep(0.1)
    start = time.monotonic()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - start < 3

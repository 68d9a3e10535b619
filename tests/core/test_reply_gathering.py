"""Replies to pipelined requests that one read brought in are written together (engines/serving.py).

A client that writes many requests back to back (an ``aio.Proxy`` shared by many tasks, a
``SharedProxy``) gets their replies in a few writes, not one write per reply, on the thread
and multiplex engines; in order, complete, with replies before a bad message still sent, a
large reply sent at once, and no reply held for long behind slow calls after it.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from pyrite.core import protocol
from pyrite.core.config import config
from pyrite.core.connection import ClientConnection
from pyrite.core.daemon import Daemon
from pyrite.core.engines import serving
from pyrite.core.exposure import expose
from pyrite.core.protocol import MSG_RESULT
from pyrite.core.session import CLIENT, Session
from pyrite.serializers.marshal_serializer import MarshalSerializer

from tests.support import running

HOST = "127.0.0.1"
IO_TIMEOUT = 10.0
SER = MarshalSerializer()


@pytest.fixture(autouse=True)
def _settings():
    config.POLLTIMEOUT = 0.1
    config.COMMTIMEOUT = 5.0


@expose
class Work:
    def square(self, value):
        return value * value

    def nap(self, seconds, value):
        time.sleep(seconds)
        return value

    def blob(self, size):
        return b"b" * size


class WriteCounter:
    """Counts the daemon's writes on its client connections (send / send_parts calls)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes = 0
        self.lock = threading.Lock()
        send, send_parts = ClientConnection.send, ClientConnection.send_parts

        def counted_send(conn, data):
            with self.lock:
                self.writes += 1
            return send(conn, data)

        def counted_send_parts(conn, parts):
            with self.lock:
                self.writes += 1
            return send_parts(conn, parts)

        monkeypatch.setattr(ClientConnection, "send", counted_send)
        monkeypatch.setattr(ClientConnection, "send_parts", counted_send_parts)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionError("closed by the daemon")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_reply(sock: socket.socket) -> protocol.ReceivingMessage:
    msg = protocol.ReceivingMessage(_recv_exactly(sock, protocol.HEADER_SIZE))
    msg.add_payload(_recv_exactly(sock, msg.data_size + msg.annotations_size))
    return msg


def _connected(uri) -> tuple[socket.socket, Session]:
    sock = socket.create_connection((HOST, uri.port), timeout=IO_TIMEOUT)
    session = Session(CLIENT)
    payload = SER.dumps({"handshake": None, "object": uri.object})
    sock.sendall(session.connect_request(SER.serializer_id, payload).data)
    assert session.accept_connect_reply(_read_reply(sock))
    return sock, session


def _calls(uri, session: Session, calls: list[tuple[str, tuple]]) -> bytes:
    return b"".join(
        session.invoke(SER.serializer_id, SER.dumpsCall(uri.object, name, args, {})).data for name, args in calls
    )


def _results(sock: socket.socket, session: Session, count: int) -> list:
    out = []
    for _ in range(count):
        reply = _read_reply(sock)
        session.accept_reply(reply)
        assert reply.type == MSG_RESULT
        out.append(SER.loads(reply.data))
    return out


@pytest.fixture(params=["thread", "multiplex"])
def daemon_uri(request):
    config.SERVERTYPE = request.param
    daemon = Daemon(host=HOST)
    uri = daemon.register(Work(), "work")
    with running(daemon):
        yield uri


def test_pipelined_replies_come_in_order_in_few_writes(daemon_uri, monkeypatch):
    counter = WriteCounter(monkeypatch)
    sock, session = _connected(daemon_uri)
    with sock:
        counter.writes = 0
        sock.sendall(_calls(daemon_uri, session, [("square", (n,)) for n in range(100)]))
        assert _results(sock, session, 100) == [n * n for n in range(100)]
        # one read may bring part of the 100 requests: a handful of writes, never one per reply
        assert counter.writes <= 20, counter.writes


def test_replies_do_not_wait_long_behind_slow_calls(daemon_uri, monkeypatch):
    """After each call, gathered replies older than GATHER_DELAY are written: with calls that
    each take longer than that, no reply waits for more than the one call after it."""
    counter = WriteCounter(monkeypatch)
    sock, session = _connected(daemon_uri)
    nap = serving.GATHER_DELAY * 5
    with sock:
        counter.writes = 0
        sock.sendall(_calls(daemon_uri, session, [("nap", (nap, n)) for n in range(12)]))
        started = time.monotonic()
        first = _read_reply(sock)
        first_after = time.monotonic() - started
        session.accept_reply(first)
        assert SER.loads(first.data) == 0
        assert _results(sock, session, 11) == list(range(1, 12))
        total = time.monotonic() - started
    assert first_after < total / 2, (first_after, total)
    assert counter.writes >= 6, counter.writes


def test_a_large_reply_goes_out_at_once_and_in_order(daemon_uri):
    sock, session = _connected(daemon_uri)
    size = protocol.SCATTER_THRESHOLD * 4
    with sock:
        calls = [("square", (1,)), ("blob", (size,)), ("square", (3,)), ("blob", (10,)), ("square", (5,))]
        sock.sendall(_calls(daemon_uri, session, calls))
        assert _results(sock, session, 5) == [1, b"b" * size, 9, b"b" * 10, 25]


def test_replies_before_a_bad_message_are_sent_before_the_close(daemon_uri):
    sock, session = _connected(daemon_uri)
    with sock:
        good = _calls(daemon_uri, session, [("square", (n,)) for n in range(5)])
        sock.sendall(good + b"NOT A PYRO MESSAGE, JUST GARBAGE BYTES....")
        assert _results(sock, session, 5) == [0, 1, 4, 9, 16]
        sock.settimeout(IO_TIMEOUT)
        assert sock.recv(100) == b""  # then the connection is closed

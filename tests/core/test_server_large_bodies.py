"""A large request body is read straight into one buffer on the server, never collected in
pieces and joined: ``framing.FrameReader.into``/``advance`` through ``Session.read_target``/
``received_into``, the engines' ``common.read_into`` and the transport's ``large_buffer`` (a
memory map, reused once the last request is let go of)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrite.core import protocol
from pyrite.core.config import config
from pyrite.core.daemon import Daemon
from pyrite.core.exposure import expose
from pyrite.core.framing import LARGE_BODY
from pyrite.core.protocol import MSG_INVOKE, SendingMessage
from pyrite.core.session import SERVER, Session
from pyrite.serializers import marshal_serializer
from pyrite.transports import connection as transport_connection

from tests.support import pyrite_proxy, running

HOST = "127.0.0.1"


def _message(size: int, seq: int = 1) -> bytes:
    return SendingMessage(MSG_INVOKE, 0, seq, 4, bytes(range(256)) * (size // 256) + b"x" * (size % 256)).data


def _bytearray_allocator(made: list[int]):
    def allocate(size: int) -> memoryview:
        made.append(size)
        return memoryview(bytearray(size))

    return allocate


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=200_000), min_size=1, max_size=12), st.booleans())
def test_large_bodies_read_into_a_buffer_equal_the_bytes_sent(cuts, into_first):
    """Any mix of fed reads and reads into the offered buffer gives the frames as sent."""
    big, small = _message(LARGE_BODY + 12_345, 1), _message(300, 2)
    stream = big + small + big[:0]
    made: list[int] = []
    session = Session(SERVER)
    session.handshake_done = True  # past the pre-handshake size cap
    session.allocator = _bytearray_allocator(made)
    pos, turn = 0, 0
    while pos < len(stream):
        step = cuts[turn % len(cuts)]
        turn += 1
        target = session.read_target()
        if target is not None and (into_first or turn % 2):
            count = min(step, len(target), len(stream) - pos)
            target[:count] = stream[pos : pos + count]
            del target
            session.received_into(count)
        else:
            session.receive_data(stream[pos : pos + step])
            count = min(step, len(stream) - pos)
        pos += count
    first, second = session.next_event(), session.next_event()
    assert bytes(first.data) == big[protocol.HEADER_SIZE :] and first.seq == 1
    assert bytes(second.data) == small[protocol.HEADER_SIZE :] and second.seq == 2
    assert len(made) <= 1 and all(size == LARGE_BODY + 12_345 for size in made)


def test_a_declared_size_alone_takes_no_buffer_and_a_close_keeps_what_came():
    made: list[int] = []
    session = Session(SERVER)
    session.handshake_done = True  # past the pre-handshake size cap
    session.allocator = _bytearray_allocator(made)
    message = _message(LARGE_BODY * 2)
    session.receive_data(message[: protocol.HEADER_SIZE])
    assert made == []  # nothing asked for the rest yet
    target = session.read_target()
    assert target is not None and len(target) == LARGE_BODY * 2 and made == [LARGE_BODY * 2]
    target[:1000] = message[protocol.HEADER_SIZE : protocol.HEADER_SIZE + 1000]
    del target
    session.received_into(1000)
    session.receive_data(message[protocol.HEADER_SIZE + 1000 : protocol.HEADER_SIZE + 5000])
    session.received_into(0)  # the peer closed
    closed = session.next_event()
    assert closed.partial == message[: protocol.HEADER_SIZE + 5000]
    assert session.read_target() is None


def test_small_bodies_and_no_allocator_take_the_fed_path():
    session = Session(SERVER)
    session.handshake_done = True
    session.receive_data(_message(LARGE_BODY * 2)[:100])
    assert session.read_target() is None  # no allocator
    session = Session(SERVER)
    session.handshake_done = True
    session.allocator = _bytearray_allocator([])
    session.receive_data(_message(LARGE_BODY - 1)[:100])
    assert session.read_target() is None  # below LARGE_BODY


@expose
class Echo:
    def echo(self, data):
        return data


@pytest.mark.parametrize("servertype", ["thread", "multiplex", "asyncio"])
def test_engines_read_large_requests_into_one_reused_map(servertype, monkeypatch):
    """Each engine hands the serializer a large request body as a view of one memory map (no
    joined copy), and reuses that map for the next request once the last one is let go of."""
    config.SERVERTYPE = servertype
    config.SERIALIZER = "marshal"
    config.COMMTIMEOUT = 10.0
    fresh: dict[int, int] = {}
    plain_free_map = transport_connection.SocketConnection._free_map

    def counting(self, size):
        before = self._map
        block = plain_free_map(self, size)
        if block is not before:
            fresh[id(self)] = fresh.get(id(self), 0) + 1
        return block

    bodies: list[type] = []
    plain_loads_call = marshal_serializer.MarshalSerializer.loadsCall

    def recording(self, data):
        if len(data) > LARGE_BODY:
            bodies.append(type(getattr(data, "obj", data)))
        return plain_loads_call(self, data)

    monkeypatch.setattr(transport_connection.SocketConnection, "_free_map", counting)
    monkeypatch.setattr(marshal_serializer.MarshalSerializer, "loadsCall", recording)
    daemon = Daemon(host=HOST)
    uri = daemon.register(Echo(), "echo")
    payloads = [os.urandom(size) for size in (1_000_000, 3_000_000, 1_000_000, 3_000_000, 2_000_000, 3_000_000)]
    with running(daemon), pyrite_proxy(uri, timeout=10.0) as proxy:
        for payload in payloads:
            assert proxy.echo(payload) == payload
    assert len(bodies) == len(payloads)
    assert all(kind.__name__ == "mmap" for kind in bodies), bodies
    # each connection made two maps for the six calls (three when a reply was still held)
    assert fresh and max(fresh.values()) <= 3, fresh  # without reuse: 6

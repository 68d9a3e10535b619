"""How often the client copies a large payload between the socket and the serializer.

Counted with tracemalloc, which sees every buffer Python allocates (bytes,
bytearray, joined pieces) but not the anonymous memory map a large read lands
in: so a path that joins pieces, or copies a payload behind its header, shows
up as a peak of at least one payload, and the zero-copy path as (almost)
nothing.  The peer is a plain socket thread that allocates nothing while the
client is measured (it receives into a buffer made beforehand and sends a reply
built beforehand).
"""

from __future__ import annotations

import mmap
import socket
import threading
import tracemalloc
from typing import Any

import pytest
from pyrite.core import plugins, protocol
from pyrite.core.channel import Channel
from pyrite.core.protocol import MSG_RESULT, SendingMessage

WAIT = 10.0
SLACK = 256 * 1024  # headers, message objects, the read-ahead buffer: far below one payload
SIZES = [200_000, 1_000_000, 10_000_000]


class EchoPeer:
    """A listening socket that answers one request of ``size`` payload bytes with ``reply``."""

    def __init__(self, size: int, reply: SendingMessage) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.inbox = bytearray(protocol.HEADER_SIZE + size)
        self.reply = reply
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def location(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"{host}:{port}"

    def _serve(self) -> None:
        try:
            sock, _ = self.listener.accept()
            with sock:
                sock.settimeout(WAIT)
                view = memoryview(self.inbox)
                have = 0
                while have < len(view):
                    count = sock.recv_into(view[have:])
                    if not count:
                        return
                    have += count
                for part in self.reply.parts:
                    sock.sendall(part)
                sock.recv(1)  # wait for the client to hang up
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def close(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


def measured(call: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("size", SIZES)
def test_client_sends_and_receives_a_large_payload_without_copying_it(size):
    ser = plugins.get_serializer("marshal")
    payload = bytes(range(256)) * (size // 256)
    reply = SendingMessage(MSG_RESULT, 0, 1, ser.serializer_id, payload, compress=False)
    peer = EchoPeer(len(payload), reply)
    channel = Channel.open(peer.location, WAIT)
    try:
        got, peak = measured(lambda: channel.call(ser.serializer_id, payload))
        assert peer.error is None
        # the request went out as header + payload, unjoined (a gathering write) ...
        assert bytes(peer.inbox[protocol.HEADER_SIZE :]) == payload
        # ... and the reply was read into one buffer, with no Python-level copy on either path
        assert got is not None and bytes(got.data) == payload
        assert peak < SLACK, f"{peak} bytes allocated around a {size} byte payload"
        assert isinstance(got.data, memoryview) and isinstance(got.data.obj, mmap.mmap)
    finally:
        channel.close()
        peer.close()


def test_the_serializer_makes_the_one_copy_of_a_large_reply():
    # what a proxy adds to the zero-copy channel: marshal's loads, which builds the result
    ser = plugins.get_serializer("marshal")
    value = bytes(range(256)) * (10_000_000 // 256)
    reply = SendingMessage(MSG_RESULT, 0, 1, ser.serializer_id, ser.dumps(value), compress=False)
    peer = EchoPeer(len(value), reply)
    channel = Channel.open(peer.location, WAIT)
    try:
        got, peak = measured(lambda: ser.loads(channel.call(ser.serializer_id, value).data))
        assert got == value
        assert len(value) <= peak < len(value) + SLACK, peak
    finally:
        channel.close()
        peer.close()


@pytest.mark.parametrize("size", SIZES)
def test_async_client_reads_a_large_reply_without_copying_it(size):
    """The asyncio client on asyncio's own loop (BufferedChannel): a large reply body goes from the
    socket into one memory map, with no Python-level buffer in between."""
    import asyncio

    from pyrite.core.aio.channel import BufferedChannel
    from pyrite.core.aio.connect import open_channel

    ser = plugins.get_serializer("marshal")
    payload = bytes(range(256)) * (size // 256)
    request = b"ping"
    reply = SendingMessage(MSG_RESULT, 0, 1, ser.serializer_id, payload, compress=False)
    peer = EchoPeer(len(request), reply)

    async def main() -> tuple[Any, int, Any]:
        channel = await open_channel(peer.location, WAIT)
        try:
            msg = channel.session.invoke(ser.serializer_id, request)
            got, peak = await measured_async(channel.request(msg, WAIT))
            return got, peak, channel
        finally:
            channel.close()

    try:
        got, peak, channel = asyncio.run(main())
        assert peer.error is None
        assert isinstance(channel, BufferedChannel)
        assert bytes(got.data) == payload
        assert peak < SLACK, f"{peak} bytes allocated around a {size} byte reply"
        assert isinstance(got.data, memoryview) and isinstance(got.data.obj, mmap.mmap)
    finally:
        peer.close()


async def measured_async(awaitable: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = await awaitable
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak

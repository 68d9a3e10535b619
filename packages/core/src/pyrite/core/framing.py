"""The framing layer: the bytes of one stream, as they arrive, become complete frames.

A frame is a message whose 40-byte header is parsed and checked, with its body
(annotations + payload) not yet parsed: ``message.add_payload(body)`` does that
wherever the work is best done.  ``session.Session`` uses one ``FrameReader``;
the server engines read through the session.

Bytes come in two ways.  ``feed(data)`` takes what a read returned; that is how
headers and small bodies arrive, and how every body arrives when nobody offers a
buffer.  For a large body (``LARGE_BODY`` and up) a reader that was given an
``allocator`` offers the rest of the body's buffer instead (``into()``): the
caller reads straight into it (``recv_into``) and says how much came
(``advance(count)``), so the body is never collected in pieces and joined.
"""

from __future__ import annotations

from collections.abc import Callable

from . import protocol
from .protocol import HEADER_SIZE, ReceivingMessage

__all__ = ["BIG_READ_SIZE", "LARGE_BODY", "READ_SIZE", "START_SIZE", "VALID_START", "Frame", "FrameReader"]

READ_SIZE = 64 * 1024
"""A good read size while no payload size is known yet."""
BIG_READ_SIZE = 1024 * 1024
"""The largest read ``want()`` suggests while a big payload streams in."""
LARGE_BODY = 256 * 1024
"""Bodies this large go into a buffer from the reader's ``allocator``, if it has one."""
START_SIZE = 6
"""Tag + version: enough to refuse a stranger's bytes."""
VALID_START = b"PYRO" + protocol.PROTOCOL_VERSION.to_bytes(2, "big")

Frame = tuple[ReceivingMessage, bytes | memoryview]
"""A message whose header is parsed and checked, with its body (annotations + payload) not yet parsed."""

Allocator = Callable[[int], memoryview]
"""Gives a writable buffer of exactly the size asked for (``SocketConnection.large_buffer``)."""


class FrameReader:
    """Turns the bytes of one stream, as they arrive, into complete frames.

    ``feed(data)`` returns the ``(message, body)`` pairs completed by ``data``;
    each message has its header parsed and checked (tag, version, magic, and
    the declared size against ``max_size``, default ``config.MAX_MESSAGE_SIZE``)
    but not yet its body.  Payload bytes are collected as they come, never
    reserved up front; with an ``allocator``, a large body's buffer is taken
    once its first bytes after the header are being read (``into``), so a
    declared size alone reserves nothing either::

        reader = FrameReader()
        for msg, body in reader.feed(conn.recv_some(reader.want()) or b""):
            msg.add_payload(body)
    """

    __slots__ = (
        "_head",
        "_msg",
        "_msghead",
        "_chunks",
        "_have",
        "_need",
        "_buf",
        "max_size",
        "allocator",
        "large_body",
    )

    def __init__(self, max_size: int | None = None, allocator: Allocator | None = None) -> None:
        self._head = b""
        self._msg: ReceivingMessage | None = None
        self._msghead = b""  # the raw header of _msg, for buffered()
        self._chunks: list[bytes] = []
        self._have = 0
        self._need = 0
        self._buf: memoryview | None = None  # the large body's buffer, once into() took one
        self.max_size = max_size
        self.allocator = allocator
        self.large_body = LARGE_BODY  # bodies this large go to into(), given an allocator

    @property
    def partial(self) -> bool:
        """True while part of a message has arrived and the rest has not."""
        return bool(self._head) or self._msg is not None

    def want(self) -> int:
        """A good size for the next (non-blocking) read."""
        if self._msg is None:
            return READ_SIZE
        return max(READ_SIZE, min(self._need - self._have, BIG_READ_SIZE))

    def need(self) -> int:
        """Exactly how many bytes complete the next piece (tag+version, header, or body):
        the size for a blocking read that must not read past the current message."""
        if self._msg is not None:
            return self._need - self._have
        if len(self._head) < START_SIZE:
            return START_SIZE - len(self._head)
        return HEADER_SIZE - len(self._head)

    def buffered(self) -> bytes:
        """The bytes received so far of the message that has begun (b"" between messages)."""
        if self._msg is None:
            return self._head
        if self._buf is not None:
            return self._msghead + bytes(self._buf[: self._have])
        return b"".join([self._msghead, *self._chunks])

    def into(self) -> memoryview | None:
        """Where the next bytes of the current body may be read straight to (the rest of its
        buffer), or None: then read and ``feed``.  Only for a body of ``large_body`` bytes and up
        (default ``LARGE_BODY``), and only with an ``allocator``; the bytes of it that came with
        earlier reads are moved in."""
        msg = self._msg
        if msg is None or self.allocator is None or self._need < self.large_body:
            return None
        buf = self._buf
        if buf is None:
            buf = self._buf = self.allocator(self._need)
            have = 0
            for chunk in self._chunks:  # at most one read's worth
                buf[have : have + len(chunk)] = chunk
                have += len(chunk)
            self._chunks = []
        return buf[self._have : self._need]

    def advance(self, count: int, out: list[Frame]) -> None:
        """``count`` bytes were read into the buffer ``into()`` gave; a completed frame goes to ``out``."""
        msg, buf = self._msg, self._buf
        if msg is None or buf is None or count < 0 or self._have + count > self._need:
            raise ValueError("advance() without a matching into()")
        self._have += count
        if self._have == self._need:
            out.append((msg, buf))
            self._msg = None
            self._buf = None

    def _header(self, head: bytes | memoryview) -> ReceivingMessage:
        return ReceivingMessage(bytes(head), max_size=self.max_size)

    def feed(self, data: bytes, out: list[Frame] | None = None) -> list[Frame]:
        """Take in the next bytes of the stream; return the frames they complete, in order.

        With ``out``, frames are appended to it as they complete, so the ones before
        garbage in the same ``data`` are kept when ProtocolError is raised."""
        frames: list[Frame] = [] if out is None else out
        end = len(data)
        if self._msg is None and not self._head and end > HEADER_SIZE:
            # the usual case: one whole message arrived in one read
            msg = self._header(data[:HEADER_SIZE])
            if HEADER_SIZE + msg.data_size + msg.annotations_size == end:
                frames.append((msg, data[HEADER_SIZE:]))
                return frames
        pos = 0
        while pos < end:
            if self._msg is None:
                if self._head:
                    take = min(HEADER_SIZE - len(self._head), end - pos)
                    head = self._head + data[pos : pos + take]
                    pos += take
                elif end - pos >= HEADER_SIZE:
                    head = data[pos : pos + HEADER_SIZE]
                    pos += HEADER_SIZE
                else:
                    head = data[pos:]
                    pos = end
                if len(head) < HEADER_SIZE:
                    if len(head) >= 4:
                        # refuse garbage now rather than after waiting for 40 bytes that may never come
                        protocol.validate_header_start(head)
                    self._head = head
                    break
                self._head = b""
                msg = self._header(head)
                need = msg.data_size + msg.annotations_size
                if need == 0:
                    frames.append((msg, b""))
                    continue
                self._msg = msg
                self._msghead = head
                self._need = need
                self._have = 0
                self._chunks = []
            take = min(self._need - self._have, end - pos)
            buf = self._buf
            if buf is not None:  # a large body whose buffer into() gave out: the rest goes there too
                buf[self._have : self._have + take] = data[pos : pos + take]
                pos += take
                self.advance(take, frames)
                continue
            self._chunks.append(data if (pos == 0 and take == end) else data[pos : pos + take])
            self._have += take
            pos += take
            if self._have == self._need:
                chunks = self._chunks
                frames.append((self._msg, chunks[0] if len(chunks) == 1 else b"".join(chunks)))
                self._msg = None
                self._chunks = []
        return frames

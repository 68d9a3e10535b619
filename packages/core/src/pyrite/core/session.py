"""The sans-IO protocol session: one Pyro connection's state, bytes in and events out.

Nothing here touches a socket, a thread or an event loop.  The sync client
(``channel``), the server engines and the asyncio layer all drive a
``Session`` and differ only in how they wait for bytes::

    from pyrite.core.session import Session, CLIENT, SERVER, NEED_DATA, Closed

    s = Session(SERVER)
    s.receive_data(data)          # what the socket gave; b"" means the peer closed
    ev = s.next_event()           # a ReceivingMessage, NEED_DATA, or a Closed
    msgs = s.feed(data)           # receive_data + every complete message, in order

The session owns framing (``framing.FrameReader``), the handshake messages of both
sides, sequence numbers (16 bits, wrapping), correlation ids (a reply carries
one only if its request did), matching replies to requests in request order
(several requests may be in flight: ``expecting``), annotations, and the size
limits: ``max_message_size`` for declared and inflated sizes, the ratio rule of
``protocol.inflate_limit`` for compressed payloads, and before the server side
has accepted a handshake, the smaller ``config.MAX_PREHANDSHAKE_SIZE``.
Garbage raises ``ProtocolError`` as soon as its first 4 (or 6, or 40) bytes are in.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Final

from . import protocol
from .config import config
from .errors import ConnectionClosedError, ProtocolError, SerializeError
from .framing import BIG_READ_SIZE, LARGE_BODY, READ_SIZE, START_SIZE, VALID_START, Allocator, Frame, FrameReader
from .protocol import (
    FLAGS_COMPRESSED,
    FLAGS_CORR_ID,
    FLAGS_ONEWAY,
    HEADER_SIZE,
    MSG_CONNECT,
    MSG_CONNECTFAIL,
    MSG_CONNECTOK,
    MSG_INVOKE,
    MSG_PING,
    MSG_RESULT,
    ReceivingMessage,
    SendingMessage,
)

__all__ = ["CLIENT", "SERVER", "NEED_DATA", "Closed", "Event", "Frame", "FrameReader", "Session"]
__all__ += ["READ_SIZE", "BIG_READ_SIZE", "LARGE_BODY"]

CLIENT: Final = "client"
"""The role of a session that sends requests (a proxy's connection)."""
SERVER: Final = "server"
"""The role of a session that answers requests (a daemon's client connection)."""

_RESULT_REPLY = (MSG_RESULT,)
_PING_REPLY = (MSG_PING,)
Bytes = bytes | bytearray | memoryview
Annotations = Mapping[str, Bytes] | None
CorrId = uuid.UUID | bytes | None


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()
"""``next_event()`` result: no complete message yet; feed more bytes."""


class Closed:
    """``next_event()`` result: the peer closed the stream.

    ``partial`` holds the bytes of a message that had begun but not ended
    (empty after a clean close, between messages)."""

    __slots__ = ("partial",)

    def __init__(self, partial: bytes = b"") -> None:
        self.partial = partial

    def error(self) -> ConnectionClosedError:
        """The ConnectionClosedError a blocking caller raises for this close, with Pyro5's
        ``partialData`` attribute holding what was received of the unfinished message."""
        if self.partial:
            exc = ConnectionClosedError(
                f"receiving: peer closed the connection in the middle of a message ({len(self.partial)} bytes in)"
            )
        else:
            exc = ConnectionClosedError("receiving: peer closed the connection")
        exc.partialData = self.partial  # type: ignore[attr-defined]
        return exc

    def __repr__(self) -> str:
        return f"Closed(partial={len(self.partial)} bytes)"


Event = ReceivingMessage | _NeedData | Closed


class Session:
    """The protocol state of one connection, for either end (``CLIENT`` or ``SERVER``).

    Incoming: ``receive_data`` / ``next_event`` / ``feed`` (or ``receive_from``
    for a blocking byte source).  Outgoing messages are ``SendingMessage``
    objects built here (write ``.parts`` in order): ``connect_request`` and
    ``invoke`` on the client side, ``reply`` and ``refusal`` on the server side.

    Client side, a call::

        s = Session(CLIENT)
        out = s.invoke(serializer_id, payload)        # takes the next seq; expects a reply
        ...write out.parts, read bytes...
        for reply in s.feed(data):
            s.accept_reply(reply)                     # ProtocolError when out of step

    ``seq`` is the last sequence number used (a connect request uses it as is,
    each invoke takes the next, wrapping at 65536).  ``max_message_size``
    defaults to ``config.MAX_MESSAGE_SIZE`` (read per message) and applies to
    outgoing messages as well.
    """

    __slots__ = ("role", "seq", "_reader", "_frames", "_error", "_closed", "_expect", "_handshake_done", "_limits")

    def __init__(
        self, role: str, *, seq: int = 0, max_message_size: int | None = None, max_prehandshake_size: int | None = None
    ) -> None:
        if role not in (CLIENT, SERVER):
            raise ValueError(f"a session's role is {CLIENT!r} or {SERVER!r}, not {role!r}")
        self.role = role
        self.seq = seq & 0xFFFF
        self._reader = FrameReader()
        self._frames: deque[Frame] = deque()
        self._error: BaseException | None = None
        self._closed = False
        # (seq, accepted reply types, serializer id the reply must use or -1), oldest first
        self._expect: deque[tuple[int, tuple[int, ...], int]] = deque()
        self._handshake_done = False
        self._limits = (max_message_size, max_prehandshake_size)
        self._apply_limit()

    # ------------------------------------------------------------------ limits and state

    @property
    def max_message_size(self) -> int:
        """The largest message (declared and inflated) accepted after the handshake."""
        return config.MAX_MESSAGE_SIZE if self._limits[0] is None else self._limits[0]

    @property
    def handshake_done(self) -> bool:
        """Server: set by the dispatcher once it accepted the client's handshake (lifts the
        pre-handshake cap).  Client: set when ``accept_reply`` takes a MSG_CONNECTOK."""
        return self._handshake_done

    @handshake_done.setter
    def handshake_done(self, value: bool) -> None:
        self._handshake_done = bool(value)
        self._apply_limit()

    def _apply_limit(self) -> None:
        if self.role == SERVER and not self._handshake_done:
            cap = config.MAX_PREHANDSHAKE_SIZE if self._limits[1] is None else self._limits[1]
            self._reader.max_size = min(cap, self.max_message_size)
        else:
            self._reader.max_size = self._limits[0]  # None: config, read per message

    @property
    def partial(self) -> bool:
        """True while a message is half in."""
        return self._reader.partial

    @property
    def closed(self) -> bool:
        """True once ``receive_data(b"")`` said the peer closed."""
        return self._closed

    @property
    def framed(self) -> int:
        """Complete messages waiting, bodies not parsed yet (``next_event`` parses, where called)."""
        return len(self._frames)

    @property
    def compressed_waiting(self) -> int:
        """Compressed body bytes among the complete messages not parsed yet: inflating them is
        the costly part of ``next_event`` (an engine with one thread for everyone does it elsewhere)."""
        return sum(len(body) for msg, body in self._frames if msg.flags & FLAGS_COMPRESSED) if self._frames else 0

    def want(self) -> int:
        """A good size for the next non-blocking read."""
        return self._reader.want()

    def need(self) -> int:
        """Exactly the bytes that complete the next piece of the current message (blocking reads)."""
        return self._reader.need()

    # ------------------------------------------------------------------ incoming

    def receive_data(self, data: Bytes) -> None:
        """Take in bytes from the peer; ``b""`` means it closed the stream.

        Bad framing is remembered and raised by ``next_event`` once the complete
        messages before it have been returned."""
        if not data:
            self._closed = True
            return
        if self._error is not None:
            return
        done: list[Frame] = []
        try:
            self._reader.feed(data if isinstance(data, bytes) else bytes(data), done)
        except ProtocolError as exc:
            self._error = exc
        self._frames.extend(done)

    @property
    def allocator(self) -> Allocator | None:
        """Gives buffers for large bodies (``LARGE_BODY`` and up), e.g. the transport connection's
        ``large_buffer``; None (the default): every body arrives through ``receive_data``."""
        return self._reader.allocator

    @allocator.setter
    def allocator(self, value: Allocator | None) -> None:
        self._reader.allocator = value

    @property
    def large_body(self) -> int:
        """The smallest body the ``allocator`` is asked for (default ``LARGE_BODY``)."""
        return self._reader.large_body

    @large_body.setter
    def large_body(self, value: int) -> None:
        self._reader.large_body = max(1, int(value))

    def read_target(self) -> memoryview | None:
        """Where the next bytes may be read straight to (the rest of a large body's buffer, see
        ``allocator``), or None: read and ``receive_data`` then.  After reading into it, call
        ``received_into(count)``."""
        if self._error is not None or self._closed:
            return None
        return self._reader.into()

    def received_into(self, count: int) -> None:
        """``count`` bytes were read into the buffer ``read_target()`` gave; 0 means the peer closed."""
        if not count:
            self._closed = True
            return
        done: list[Frame] = []
        self._reader.advance(count, done)
        self._frames.extend(done)

    def next_event(self) -> Event:
        """The next complete message (body parsed: annotations split, payload decompressed
        within the limits), else NEED_DATA, or a Closed once the peer closed.

        Raises ProtocolError (MessageTooLargeError for sizes) for hostile input."""
        if self._frames:
            msg, body = self._frames.popleft()
            msg.add_payload(body)
            return msg
        if self._error is not None:
            raise self._error
        if self._closed:
            return Closed(self._reader.buffered())
        return NEED_DATA

    def feed(self, data: Bytes) -> list[ReceivingMessage]:
        """``receive_data(data)``, then every complete message, in order (a close is seen in ``closed``)."""
        self.receive_data(data)
        out: list[ReceivingMessage] = []
        while True:
            ev = self.next_event()
            if not isinstance(ev, ReceivingMessage):
                return out
            out.append(ev)

    def receive_from(self, recv: Callable[[int], Bytes]) -> ReceivingMessage:
        """Read one whole message with a blocking ``recv(n)`` that returns exactly n bytes.

        The framing is the same as ``feed``'s, in three exact reads (tag and
        version, rest of the header, body), so a stranger's bytes are refused
        after 6.  A ConnectionClosedError from ``recv`` gets Pyro5's
        ``partialData`` attribute: every byte of the message that had arrived (the
        header so far, plus what the connection's own ``partialData`` says it got)."""
        reader = self._reader
        if self._frames or reader._head or reader._msg is not None:
            raise ProtocolError("receive_from() on a session that holds buffered bytes; use next_event()")
        got: Bytes = b""  # the complete pieces of this message so far
        try:
            head = got = recv(START_SIZE)
            if head != VALID_START:
                protocol.validate_header_start(bytes(head))
            head = got = bytes(head) + recv(HEADER_SIZE - START_SIZE)
            msg = ReceivingMessage(head, None, reader.max_size)
            size = msg.data_size + msg.annotations_size
            msg.add_payload(recv(size) if size else b"")
        except ConnectionClosedError as exc:
            exc.partialData = bytes(got) + bytes(getattr(exc, "partialData", b""))  # type: ignore[attr-defined]
            raise
        return msg

    # ------------------------------------------------------------------ client side

    @property
    def expecting(self) -> tuple[int, ...]:
        """Sequence numbers of requests still waiting for their reply, oldest first."""
        return tuple(entry[0] for entry in self._expect)

    def connect_request(
        self, serializer_id: int, payload: Bytes, annotations: Annotations = None, corr_id: CorrId = None
    ) -> SendingMessage:
        """The MSG_CONNECT that opens a connection (it uses the current ``seq``); expects
        MSG_CONNECTOK or MSG_CONNECTFAIL back."""
        size = self._limits[0]
        msg = SendingMessage(
            MSG_CONNECT, 0, self.seq, serializer_id, payload, annotations, corr_id=corr_id, max_size=size
        )
        self._expect.append((self.seq, (MSG_CONNECTOK, MSG_CONNECTFAIL), -1))
        return msg

    def invoke(
        self,
        serializer_id: int,
        payload: Bytes,
        flags: int = 0,
        annotations: Annotations = None,
        corr_id: CorrId = None,
        *,
        msgtype: int = MSG_INVOKE,
    ) -> SendingMessage:
        """A request (MSG_INVOKE, or ``msgtype=MSG_PING``) with the next sequence number;
        unless ``flags`` has FLAGS_ONEWAY its reply is expected, in request order."""
        seq = (self.seq + 1) & 0xFFFF
        msg = SendingMessage(msgtype, flags, seq, serializer_id, payload, annotations, None, corr_id, self._limits[0])
        self.seq = seq
        if not flags & FLAGS_ONEWAY:
            self._expect.append((seq, _PING_REPLY if msgtype == MSG_PING else _RESULT_REPLY, serializer_id))
        return msg

    def accept_reply(self, msg: ReceivingMessage) -> int:
        """Match an incoming reply to the oldest expected request; return that request's seq.

        Raises ProtocolError when nothing is expected, the message type is not a
        reply to that request, or the seq is out of step; SerializeError when a
        call's reply uses another serializer than its request."""
        expect = self._expect
        if expect:
            seq, types, serializer_id = expect[0]
            if msg.seq == seq and msg.type in types and (serializer_id < 0 or msg.serializer_id == serializer_id):
                expect.popleft()
                if msg.type == MSG_CONNECTOK:
                    self.handshake_done = True
                return seq
        raise self._reply_error(msg)

    def _reply_error(self, msg: ReceivingMessage) -> ProtocolError:
        if not self._expect:
            return ProtocolError(f"unexpected message type {msg.type} (seq {msg.seq}): no request is waiting")
        seq, types, serializer_id = self._expect[0]
        if msg.type not in types:
            exc = ProtocolError(f"invalid msg type {msg.type} received (expected: {','.join(str(t) for t in types)})")
            exc.pyroMsg = msg  # type: ignore[attr-defined]
            return exc
        if msg.seq != seq:
            what = "connect" if MSG_CONNECTOK in types else "invoke"
            return ProtocolError(f"{what}: reply sequence out of sync, got {msg.seq} expected {seq}")
        return SerializeError(f"invalid serializer in response: {msg.serializer_id}")

    def accept_connect_reply(self, msg: ReceivingMessage) -> bool:
        """``accept_reply`` for the handshake reply; True for MSG_CONNECTOK, False for MSG_CONNECTFAIL."""
        if not self._expect or MSG_CONNECTOK not in self._expect[0][1]:
            raise ProtocolError(f"unexpected message type {msg.type}: no connect request is waiting")
        self.accept_reply(msg)
        return bool(msg.type == MSG_CONNECTOK)

    def forget_expected(self) -> None:
        """Drop every expected reply (after the connection broke and before it is reused)."""
        self._expect.clear()

    # ------------------------------------------------------------------ server side

    def reply(
        self,
        request: ReceivingMessage,
        msgtype: int,
        payload: Bytes,
        flags: int = 0,
        annotations: Annotations = None,
        *,
        serializer_id: int | None = None,
        compress: bool | None = None,
    ) -> SendingMessage:
        """The answer to ``request``: its seq, its serializer id (unless ``serializer_id``
        says otherwise) and its correlation id, only if the request carried one."""
        corr = request.corr_id if request.flags & FLAGS_CORR_ID else None
        return SendingMessage(
            msgtype,
            flags,
            request.seq,
            request.serializer_id if serializer_id is None else serializer_id,
            payload,
            annotations,
            compress=compress,
            corr_id=corr,
            max_size=self._limits[0],
        )

    def refusal(
        self, request: ReceivingMessage, serializer_id: int, payload: Bytes, annotations: Annotations = None
    ) -> SendingMessage:
        """The MSG_CONNECTFAIL that refuses ``request``'s handshake (never compressed)."""
        return self.reply(
            request, MSG_CONNECTFAIL, payload, 0, annotations, serializer_id=serializer_id, compress=False
        )

    def __repr__(self) -> str:
        state = "handshake done" if self._handshake_done else "before handshake"
        return f"<Session {self.role} seq={self.seq} {state} expecting={list(self.expecting)}>"

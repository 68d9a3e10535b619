"""A stand-in for ``pyrite.core.session.Session`` (client side) until that module lands.

Only the part of the session contract (packages/core/README.md, "The session")
that the pipelining channel drives: ``feed``, ``connect_request``, ``invoke``,
``expecting`` and ``accept_reply``.  The header codec is ``protocol``'s; nothing
here packs or parses a header itself.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Mapping

from ..errors import ProtocolError, SerializeError
from ..protocol import (
    FLAGS_ONEWAY,
    HEADER_SIZE,
    MSG_CONNECT,
    MSG_CONNECTFAIL,
    MSG_CONNECTOK,
    MSG_INVOKE,
    MSG_RESULT,
    ReceivingMessage,
    SendingMessage,
    validate_header_start,
)

CLIENT = "client"
_REPLY_TYPES = (MSG_RESULT, MSG_CONNECTOK, MSG_CONNECTFAIL)


class Session:
    """Client-side protocol state: sequence numbers, the replies still expected, incremental parsing."""

    def __init__(self, role: str = CLIENT, max_message_size: int | None = None) -> None:
        self.role = role
        self.max_message_size = max_message_size
        self.expecting: deque[int] = deque()
        self.handshake_done = False
        self._seq = 0
        self._buffer = bytearray()
        self._current: ReceivingMessage | None = None
        self._serializer_ids: deque[int] = deque()

    @property
    def partial(self) -> bool:
        """True while a message is half in."""
        return bool(self._buffer) or self._current is not None

    def feed(self, data: bytes | bytearray | memoryview) -> list[ReceivingMessage]:
        """Take received bytes; return every message they complete, in order."""
        buf = self._buffer
        buf += data
        out: list[ReceivingMessage] = []
        while True:
            msg = self._current
            if msg is None:
                if len(buf) < HEADER_SIZE:
                    if len(buf) >= 4:
                        validate_header_start(bytes(buf[:6]))
                    return out
                msg = ReceivingMessage(bytes(buf[:HEADER_SIZE]), max_size=self.max_message_size)
                if msg.type not in _REPLY_TYPES:
                    raise ProtocolError(f"invalid msg type {msg.type} received by a client")
                del buf[:HEADER_SIZE]
                self._current = msg
            size = msg.annotations_size + msg.data_size
            if len(buf) < size:
                return out
            msg.add_payload(bytes(buf[:size]))
            del buf[:size]
            self._current = None
            out.append(msg)

    def _message(
        self,
        msgtype: int,
        seq: int,
        serializer_id: int,
        payload: bytes,
        flags: int,
        annotations: Mapping[str, bytes] | None,
        corr_id: uuid.UUID | bytes | None,
    ) -> SendingMessage:
        msg = SendingMessage(msgtype, flags, seq, serializer_id, payload, annotations, corr_id=corr_id)
        if not flags & FLAGS_ONEWAY:
            self.expecting.append(seq)
            self._serializer_ids.append(serializer_id)
        return msg

    def connect_request(
        self,
        serializer_id: int,
        payload: bytes,
        annotations: Mapping[str, bytes] | None = None,
        corr_id: uuid.UUID | bytes | None = None,
    ) -> SendingMessage:
        """The MSG_CONNECT message (it uses the current sequence number)."""
        return self._message(MSG_CONNECT, self._seq, serializer_id, payload, 0, annotations, corr_id)

    def invoke(
        self,
        serializer_id: int,
        payload: bytes,
        flags: int = 0,
        annotations: Mapping[str, bytes] | None = None,
        corr_id: uuid.UUID | bytes | None = None,
    ) -> SendingMessage:
        """A MSG_INVOKE message with the next sequence number."""
        self._seq = (self._seq + 1) & 0xFFFF
        return self._message(MSG_INVOKE, self._seq, serializer_id, payload, flags, annotations, corr_id)

    def accept_reply(self, msg: ReceivingMessage) -> int:
        """Match a reply against the oldest expected request; return its sequence number."""
        if not self.expecting:
            raise ProtocolError(f"unexpected reply with seq {msg.seq}: no request is waiting")
        seq = self.expecting[0]
        if msg.seq != seq:
            raise ProtocolError(f"reply sequence out of step: got {msg.seq}, expected {seq}")
        serializer_id = self._serializer_ids[0]
        if msg.type == MSG_RESULT and msg.serializer_id != serializer_id:
            raise SerializeError(f"invalid serializer in response: {msg.serializer_id}")
        self.expecting.popleft()
        self._serializer_ids.popleft()
        if msg.type == MSG_CONNECTOK:
            self.handshake_done = True
        return seq

"""Pyro5's wire protocol, version 502: where a message is framed and parsed.

A message is a 40-byte header, then annotation chunks, then the payload::

    offset  fmt  size  field
    0x00    4s   4     b"PYRO"
    0x04    H    2     protocol version (502)
    0x06    B    1     message type (MSG_*)
    0x07    B    1     serializer id
    0x08    H    2     flags (FLAGS_*)
    0x0a    H    2     sequence number (wraps at 65536)
    0x0c    I    4     payload length
    0x10    I    4     total annotations length
    0x14    16s  16    correlation id (uuid bytes, or zeros)
    0x24    H    2     reserved (0)
    0x26    H    2     magic 0x4dc5

Each annotation chunk is a 4-letter ASCII id, a 4-byte big-endian length and
that many bytes.  Everything is big-endian.  The payload (never the
annotations) may be zlib-compressed, flagged by FLAGS_COMPRESSED.

``SendingMessage`` builds the bytes of one message and ``ReceivingMessage``
parses one; ``pyrite.core.session`` drives them for a whole connection
(framing, sequence numbers, the handshake, limits).  ``recv_message`` reads one
message from a blocking connection.  None of them knows about serializers.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from .config import config
from .constants import PROTOCOL_VERSION
from .errors import MessageTooLargeError, ProtocolError

MSG_CONNECT = 1
MSG_CONNECTOK = 2
MSG_CONNECTFAIL = 3
MSG_INVOKE = 4
MSG_RESULT = 5
MSG_PING = 6

FLAGS_EXCEPTION = 1 << 0
FLAGS_COMPRESSED = 1 << 1
FLAGS_ONEWAY = 1 << 2
FLAGS_BATCH = 1 << 3
FLAGS_ITEMSTREAMRESULT = 1 << 4
FLAGS_KEEPSERIALIZED = 1 << 5
FLAGS_CORR_ID = 1 << 6

MAGIC = 0x4DC5
HEADER_FORMAT = "!4sHBBHHII16sHH"
HEADER_SIZE = struct.calcsize(HEADER_FORMAT)  # 40
_header = struct.Struct(HEADER_FORMAT)
_chunk_header = struct.Struct("!4sI")
_MAGIC_BYTES = MAGIC.to_bytes(2, "big")
_VERSION_BYTES = PROTOCOL_VERSION.to_bytes(2, "big")
_VALID_START = b"PYRO" + _VERSION_BYTES  # the first 6 bytes of every valid message
EMPTY_CORRELATION_ID = b"\0" * 16
COMPRESSION_THRESHOLD = 100  # payloads this small are never worth compressing
SCATTER_THRESHOLD = 64 * 1024  # payloads this large are sent beside their header, not copied behind it
RATIO_FREE_SIZE = 1024 * 1024
"""Inflated payloads up to this size are never refused for their compression ratio."""

__all__ = [
    "MSG_CONNECT",
    "MSG_CONNECTOK",
    "MSG_CONNECTFAIL",
    "MSG_INVOKE",
    "MSG_RESULT",
    "MSG_PING",
    "FLAGS_EXCEPTION",
    "FLAGS_COMPRESSED",
    "FLAGS_ONEWAY",
    "FLAGS_BATCH",
    "FLAGS_ITEMSTREAMRESULT",
    "FLAGS_KEEPSERIALIZED",
    "FLAGS_CORR_ID",
    "PROTOCOL_VERSION",
    "MAGIC",
    "HEADER_FORMAT",
    "HEADER_SIZE",
    "EMPTY_CORRELATION_ID",
    "COMPRESSION_THRESHOLD",
    "SCATTER_THRESHOLD",
    "RATIO_FREE_SIZE",
    "next_seq",
    "SendingMessage",
    "ReceivingMessage",
    "validate_header_start",
    "decompress",
    "inflate_limit",
    "recv_message",
    "send_message",
]


def next_seq(seq: int) -> int:
    """The sequence number after ``seq``: 16 bits, wrapping to 0."""
    return (seq + 1) & 0xFFFF


def _max_size() -> int:
    return int(config.MAX_MESSAGE_SIZE)


class SendingMessage:
    """The bytes of one outgoing message: ``.parts`` to send in order, joined in ``.data``.

    A large payload (SCATTER_THRESHOLD and up) stays a separate part, so sending it
    with ``send_message`` costs no copy; ``.data`` joins the parts on first use.

    ``annotations`` maps 4-letter ids to bytes.  The payload is compressed when
    ``compress`` is true (default: ``config.COMPRESSION``) and longer than 100
    bytes.  The message carries the correlation id ``corr_id`` (a UUID or 16
    bytes) only if one is given: the caller decides (the client passes its
    thread's ``current_context.correlation_id``, a server echoes the request's).
    ``max_size`` defaults to ``config.MAX_MESSAGE_SIZE``.  Raises MessageTooLargeError
    if payload plus annotations exceed ``config.MAX_MESSAGE_SIZE``.
    """

    __slots__ = ("type", "flags", "seq", "serializer_id", "corr_id", "parts", "_data", "payload_offset")

    def __init__(
        self,
        msgtype: int,
        flags: int,
        seq: int,
        serializer_id: int,
        payload: bytes | bytearray | memoryview,
        annotations: Mapping[str, bytes | bytearray | memoryview] | None = None,
        compress: bool | None = None,
        corr_id: uuid.UUID | bytes | None = None,
        max_size: int | None = None,
    ) -> None:
        flags &= ~FLAGS_COMPRESSED
        if compress is None:
            compress = config.COMPRESSION
        if compress and len(payload) > COMPRESSION_THRESHOLD:
            payload = zlib.compress(payload, 4)
            flags |= FLAGS_COMPRESSED
        parts: list[Any] = []
        ann_size = 0
        if annotations:
            for key, value in annotations.items():
                if not isinstance(value, (bytes, bytearray, memoryview)):
                    raise ProtocolError(f"annotation {key!r} data must be bytes, bytearray or memoryview")
                try:
                    raw_key = key.encode("ascii")
                except UnicodeEncodeError:
                    raw_key = b""
                if len(raw_key) != 4:
                    raise ProtocolError(f"annotation keys are exactly 4 ASCII characters; {key!r} is not")
                parts.append(_chunk_header.pack(raw_key, len(value)))
                parts.append(value)
                ann_size += 8 + len(value)
        total = len(payload) + ann_size
        if max_size is None:
            max_size = config.MAX_MESSAGE_SIZE
        if total > max_size:
            raise MessageTooLargeError(f"message too large ({total}, max={max_size})")
        if corr_id is not None:
            flags |= FLAGS_CORR_ID
            raw_corr = corr_id.bytes if isinstance(corr_id, uuid.UUID) else bytes(corr_id)
        else:
            raw_corr = EMPTY_CORRELATION_ID
        self.type = msgtype
        self.flags = flags
        self.seq = seq
        self.serializer_id = serializer_id
        self.corr_id = raw_corr
        header = _header.pack(
            b"PYRO",
            PROTOCOL_VERSION,
            msgtype,
            serializer_id,
            flags,
            seq & 0xFFFF,
            len(payload),
            ann_size,
            raw_corr,
            0,
            MAGIC,
        )
        self.payload_offset = HEADER_SIZE + ann_size
        if len(payload) >= SCATTER_THRESHOLD:
            self._data: bytes | None = None
            self.parts: tuple[Any, ...] = (b"".join([header, *parts]) if parts else header, payload)
        else:
            self._data = b"".join([header, *parts, payload]) if parts else header + payload
            self.parts = (self._data,)

    @property
    def data(self) -> bytes:
        """The whole message as one bytes object."""
        if self._data is None:
            self._data = b"".join(self.parts)
        return self._data

    @property
    def payload(self) -> memoryview:
        """The payload bytes as sent (compressed if the flag says so)."""
        if self._data is None:
            return memoryview(self.parts[1])
        return memoryview(self._data)[self.payload_offset :]

    def __repr__(self) -> str:
        return (
            f"<SendingMessage type={self.type} flags={self.flags} seq={self.seq} "
            f"ser={self.serializer_id} size={sum(len(p) for p in self.parts)}>"
        )


def validate_header_start(data: bytes) -> None:
    """Check the first bytes of a would-be message (at least 4): tag, version, magic."""
    if len(data) < 4:
        raise ValueError("need at least 4 bytes to identify a message")
    if data[:4] != b"PYRO":
        raise ProtocolError("invalid data: not a PYRO message")
    if len(data) >= 6 and data[4:6] != _VERSION_BYTES:
        raise ProtocolError(
            f"invalid protocol version: {int.from_bytes(data[4:6], 'big')} (expected {PROTOCOL_VERSION})"
        )
    if len(data) >= HEADER_SIZE and data[38:40] != _MAGIC_BYTES:
        raise ProtocolError(f"bad magic bytes {bytes(data[38:40])!r} in message header")


class ReceivingMessage:
    """One incoming message: header fields, ``annotations`` (id -> bytes) and ``data`` (the payload).

    Build it from the 40 header bytes, then ``add_payload()`` the rest.  The
    payload is decompressed if flagged, never beyond ``max_size`` and the ratio
    rule of ``inflate_limit``.
    """

    __slots__ = (
        "type",
        "serializer_id",
        "flags",
        "seq",
        "data_size",
        "annotations_size",
        "corr_id",
        "annotations",
        "data",
        "max_size",
    )

    def __init__(self, header: bytes, payload: bytes | None = None, max_size: int | None = None) -> None:
        if len(header) != HEADER_SIZE:
            raise ProtocolError(f"header must be {HEADER_SIZE} bytes, got {len(header)}")
        (
            tag,
            version,
            self.type,
            self.serializer_id,
            self.flags,
            self.seq,
            self.data_size,
            self.annotations_size,
            self.corr_id,
            _,
            magic,
        ) = _header.unpack(header)
        # unpacked fields compare without slicing the header (this runs for every message)
        if tag != b"PYRO" or version != PROTOCOL_VERSION or magic != MAGIC:
            validate_header_start(header)
        self.max_size = config.MAX_MESSAGE_SIZE if max_size is None else max_size
        if self.data_size + self.annotations_size > self.max_size:
            raise MessageTooLargeError(
                f"message too large ({self.data_size + self.annotations_size}, max={self.max_size})"
            )
        self.annotations: dict[str, bytes] = {}
        self.data: Any = None
        if payload is not None:
            self.add_payload(payload)

    @property
    def correlation_id(self) -> uuid.UUID | None:
        """The correlation id as a UUID, or None if the message carries none."""
        if self.flags & FLAGS_CORR_ID or self.corr_id != EMPTY_CORRELATION_ID:
            return uuid.UUID(bytes=bytes(self.corr_id))
        return None

    def add_payload(self, payload: bytes | bytearray | memoryview) -> None:
        """Parse the annotation chunks and the payload that follow the header."""
        size = self.annotations_size
        if len(payload) != self.data_size + size:
            raise ProtocolError(f"message body is {len(payload)} bytes, header announced {self.data_size + size}")
        if not size and not self.flags & FLAGS_COMPRESSED:
            self.data = payload  # the usual reply: no annotations, nothing to inflate
            return
        view = memoryview(payload)
        pos = 0
        while pos < size:
            if pos + 8 > size:
                raise ProtocolError("truncated annotation chunk header")
            raw_key, length = _chunk_header.unpack_from(view, pos)
            if pos + 8 + length > size:
                raise ProtocolError(f"annotation chunk of {length} bytes runs past the end of the annotations")
            try:
                key = raw_key.decode("ascii")
            except UnicodeDecodeError:
                raise ProtocolError("annotation id is not ascii") from None
            self.annotations[key] = bytes(view[pos + 8 : pos + 8 + length])
            pos += 8 + length
        data = view[size:] if size else payload
        if self.flags & FLAGS_COMPRESSED:
            data = decompress(data, self.max_size, config.MAX_DECOMPRESSION_RATIO)
            self.flags &= ~FLAGS_COMPRESSED
            self.data_size = len(data)
        self.data = data

    def __repr__(self) -> str:
        return (
            f"<ReceivingMessage type={self.type} flags={self.flags} seq={self.seq} "
            f"ser={self.serializer_id} size={self.data_size}>"
        )


def inflate_limit(compressed_size: int, max_size: int, max_ratio: float | None) -> int:
    """How many bytes ``compressed_size`` bytes of zlib data may inflate to.

    The rule: never more than ``max_size``; and beyond the first
    ``RATIO_FREE_SIZE`` (1 MiB) bytes, never more than ``max_ratio`` times the
    compressed size (``config.MAX_DECOMPRESSION_RATIO``; 0 or None switches the
    ratio rule off).  So ordinary payloads, however repetitive, pass, and a
    small message cannot claim a huge amount of memory.
    """
    if not max_ratio or max_ratio <= 0:
        return max_size
    return min(max_size, max(RATIO_FREE_SIZE, int(compressed_size * max_ratio)))


_INFLATE_STEP = 64 * 1024  # compressed bytes handed to zlib per step
_INFLATE_PIECE = 4 * 1024 * 1024  # the most one decompress step returns (see decompress)


def decompress(data: bytes | bytearray | memoryview, max_size: int, max_ratio: float | None = None) -> bytes:
    """zlib-decompress ``data``, streamed: output beyond ``inflate_limit(len(data), max_size,
    max_ratio)`` is refused with MessageTooLargeError as soon as it appears, so a zip bomb
    never costs more than that limit (plus one step) in memory."""
    limit = inflate_limit(len(data), max_size, max_ratio)
    inflater = zlib.decompressobj()
    view = memoryview(data)
    out: list[bytes] = []
    have = 0
    pos = 0
    try:
        while True:
            if inflater.unconsumed_tail:
                chunk: bytes | memoryview = inflater.unconsumed_tail
            elif pos < len(view):
                chunk = view[pos : pos + _INFLATE_STEP]
                pos += len(chunk)
            else:
                chunk = b""  # all input is in: what zlib still holds comes out now
            # pieces of at most _INFLATE_PIECE: each is its own mapping, given back to the system when
            # freed (zlib's growing output buffers for one huge piece stay in the allocator's heap)
            piece = inflater.decompress(chunk, min(limit - have + 1, _INFLATE_PIECE))
            have += len(piece)
            if have > limit:
                break
            if piece:
                out.append(piece)
            if inflater.eof or (not chunk and not piece):
                break
    except zlib.error as exc:
        raise ProtocolError(f"invalid compressed payload: {exc}") from None
    if have > limit:
        del out
        if limit < max_size:
            raise MessageTooLargeError(
                f"decompressed payload exceeds {limit} bytes ({max_ratio}x its {len(view)} compressed "
                f"bytes, see MAX_DECOMPRESSION_RATIO)"
            )
        raise MessageTooLargeError(f"decompressed payload exceeds max message size ({max_size})")
    if not inflater.eof:
        raise ProtocolError("invalid compressed payload: truncated")
    return out[0] if len(out) == 1 else b"".join(out)


def recv_message(
    connection: Any, accepted_types: Iterable[int] | None = None, max_size: int | None = None
) -> ReceivingMessage:
    """Read one whole message from ``connection`` (anything with ``recv(n)`` returning exactly n bytes).

    Raises ProtocolError for a bad tag, version or magic, a message type not in
    ``accepted_types``, or broken annotations; MessageTooLargeError before
    reading the payload if the declared sizes exceed ``max_size``.
    """
    head = connection.recv(6)
    if head != _VALID_START:
        validate_header_start(head)
    header = head + connection.recv(HEADER_SIZE - 6)
    msg = ReceivingMessage(header, max_size=max_size)
    if accepted_types is not None and msg.type not in accepted_types:
        exc = ProtocolError(
            f"invalid msg type {msg.type} received (expected: {','.join(str(t) for t in accepted_types)})"
        )
        exc.pyroMsg = msg  # type: ignore[attr-defined]
        raise exc
    msg.add_payload(connection.recv(msg.annotations_size + msg.data_size))
    return msg


def send_message(connection: Any, msg: SendingMessage) -> None:
    """Write one message to ``connection``: its parts with one gathering write if the
    connection has ``send_parts``, else its joined bytes with ``send``."""
    parts = msg.parts
    if len(parts) == 1:
        connection.send(parts[0])
        return
    send_parts = getattr(connection, "send_parts", None)
    if send_parts is None:
        connection.send(msg.data)
    else:
        send_parts(parts)

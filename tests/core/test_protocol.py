"""Wire framing (pyrite.core.protocol) checked byte for byte against Pyro5 5.17's."""

from __future__ import annotations

import struct
import uuid
import zlib

import Pyro5.callcontext
import Pyro5.errors
import Pyro5.protocol
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrite.core import protocol
from pyrite.core.callcontext import current_context
from pyrite.core.config import config
from pyrite.core.errors import ConnectionClosedError, MessageTooLargeError, ProtocolError


class FakeConnection:
    """Serves ``data`` to ``recv(n)`` exactly like a transport Connection; records each read size."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.reads: list[int] = []

    def recv(self, size: int) -> bytes:
        self.reads.append(size)
        if self.pos + size > len(self.data):
            raise ConnectionClosedError("receiving: connection lost")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk


@pytest.fixture(autouse=True)
def _clean_contexts():
    """Both libraries' correlation ids and configs start empty and default."""
    current_context.correlation_id = None
    Pyro5.callcontext.current_context.correlation_id = None
    saved = Pyro5.config.COMPRESSION, Pyro5.config.MAX_MESSAGE_SIZE
    yield
    current_context.correlation_id = None
    Pyro5.callcontext.current_context.correlation_id = None
    Pyro5.config.COMPRESSION, Pyro5.config.MAX_MESSAGE_SIZE = saved


def pyro5_bytes(msgtype, flags, seq, serializer_id, payload, annotations=None, corr_id=None, compress=False):
    Pyro5.config.COMPRESSION = compress
    Pyro5.callcontext.current_context.correlation_id = corr_id
    return Pyro5.protocol.SendingMessage(msgtype, flags, seq, serializer_id, payload, annotations).data


def test_constants_match_pyro5():
    for name in (
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
    ):
        assert getattr(protocol, name) == getattr(Pyro5.protocol, name), name
    assert protocol.HEADER_SIZE == Pyro5.protocol._header_size == 40
    assert protocol.MAGIC == Pyro5.protocol._magic_number == 0x4DC5


def test_header_layout_byte_by_byte():
    corr = uuid.UUID("0123456789abcdef0123456789abcdef")
    msg = protocol.SendingMessage(
        protocol.MSG_INVOKE,
        protocol.FLAGS_ONEWAY,
        0x1234,
        7,
        b"payload",
        annotations={"ABCD": b"xy"},
        compress=False,
        corr_id=corr,
    )
    data = msg.data
    assert data[0:4] == b"PYRO"
    assert data[4:6] == (502).to_bytes(2, "big")
    assert data[6] == protocol.MSG_INVOKE
    assert data[7] == 7
    assert data[8:10] == (protocol.FLAGS_ONEWAY | protocol.FLAGS_CORR_ID).to_bytes(2, "big")
    assert data[10:12] == b"\x12\x34"
    assert data[12:16] == (7).to_bytes(4, "big")  # payload length
    assert data[16:20] == (8 + 2).to_bytes(4, "big")  # annotation chunks, headers included
    assert data[20:36] == corr.bytes
    assert data[36:38] == b"\0\0"
    assert data[38:40] == b"\x4d\xc5"
    assert data[40:44] == b"ABCD" and data[44:48] == (2).to_bytes(4, "big") and data[48:50] == b"xy"
    assert data[50:] == b"payload"
    assert len(data) == 57
    assert bytes(msg.payload) == b"payload"


@pytest.mark.parametrize(
    "msgtype, flags, seq, ser, payload, annotations",
    [
        (protocol.MSG_INVOKE, 0, 1, 1, b"hello", None),
        (protocol.MSG_CONNECT, 0, 0, 2, b"", {}),
        (protocol.MSG_RESULT, protocol.FLAGS_EXCEPTION | protocol.FLAGS_BATCH, 65535, 4, b"x" * 99, {"CORR": b"1234"}),
        (protocol.MSG_PING, 0, 42, 42, b"ping", {"AAAA": b"", "BBBB": b"\0" * 300, "Zz9_": bytearray(b"ab")}),
        (
            protocol.MSG_INVOKE,
            protocol.FLAGS_KEEPSERIALIZED | protocol.FLAGS_ITEMSTREAMRESULT,
            7,
            5,
            b"\xff" * 1000,
            {"BLBI": memoryview(b"blob info")},
        ),
    ],
)
@pytest.mark.parametrize("with_corr", [False, True])
def test_sending_message_bytes_identical_to_pyro5(msgtype, flags, seq, ser, payload, annotations, with_corr):
    corr = uuid.uuid4() if with_corr else None
    # the caller passes the correlation id (protocol.py does not read current_context)
    ours = protocol.SendingMessage(msgtype, flags, seq, ser, payload, annotations, compress=False, corr_id=corr).data
    theirs = pyro5_bytes(msgtype, flags, seq, ser, payload, annotations, corr)
    assert ours == theirs


@pytest.mark.parametrize("size", [0, 100, 101, 5000])
def test_compressed_bytes_identical_to_pyro5(size):
    payload = (b"compressible " * 1000)[:size]
    config.COMPRESSION = True
    ours = protocol.SendingMessage(protocol.MSG_RESULT, 0, 3, 1, payload, {"ANNO": b"not compressed"}).data
    theirs = pyro5_bytes(protocol.MSG_RESULT, 0, 3, 1, payload, {"ANNO": b"not compressed"}, compress=True)
    assert ours == theirs
    flags = struct.unpack_from("!H", ours, 8)[0]
    assert bool(flags & protocol.FLAGS_COMPRESSED) == (size > 100)
    assert b"not compressed" in ours  # annotations are never compressed


def test_compressed_flag_given_by_caller_is_ignored():
    msg = protocol.SendingMessage(protocol.MSG_RESULT, protocol.FLAGS_COMPRESSED, 1, 1, b"abc", compress=False)
    assert not msg.flags & protocol.FLAGS_COMPRESSED
    assert bytes(msg.payload) == b"abc"


def test_pyro5_parses_our_message_and_we_parse_pyro5s():
    corr = uuid.uuid4()
    ours = protocol.SendingMessage(
        protocol.MSG_INVOKE, protocol.FLAGS_ONEWAY, 9, 3, b"data" * 50, {"XTRA": b"123"}, compress=True, corr_id=corr
    ).data
    theirs = Pyro5.protocol.recv_stub(FakeConnection(ours))
    assert (theirs.type, theirs.seq, theirs.serializer_id) == (protocol.MSG_INVOKE, 9, 3)
    assert bytes(theirs.data) == b"data" * 50
    assert bytes(theirs.annotations["XTRA"]) == b"123"
    assert theirs.flags & protocol.FLAGS_ONEWAY and theirs.flags & protocol.FLAGS_CORR_ID
    assert bytes(theirs.corr_id) == corr.bytes

    pyro5_data = pyro5_bytes(
        protocol.MSG_RESULT,
        protocol.FLAGS_EXCEPTION,
        9,
        3,
        b"result" * 40,
        {"ANN1": b"a", "ANN2": b"bb"},
        corr_id=corr,
        compress=True,
    )
    msg = protocol.recv_message(FakeConnection(pyro5_data))
    assert (msg.type, msg.seq, msg.serializer_id) == (protocol.MSG_RESULT, 9, 3)
    assert msg.flags & protocol.FLAGS_EXCEPTION and not msg.flags & protocol.FLAGS_COMPRESSED
    assert bytes(msg.data) == b"result" * 40
    assert msg.annotations == {"ANN1": b"a", "ANN2": b"bb"}
    assert msg.correlation_id == corr


def test_recv_message_reads_header_then_payload_only():
    data = protocol.SendingMessage(protocol.MSG_RESULT, 0, 1, 1, b"abc", {"ABCD": b"1"}, compress=False).data
    conn = FakeConnection(data + b"NEXT")
    msg = protocol.recv_message(conn, [protocol.MSG_RESULT])
    assert bytes(msg.data) == b"abc"
    assert conn.reads == [6, 34, 9 + 3]
    assert conn.data[conn.pos :] == b"NEXT"  # the next message is left alone


def test_correlation_id_only_when_the_caller_passes_one():
    # protocol.py never reads current_context: the client passes its thread's id
    # (tests/core/test_client_wire.py checks that end to end)
    corr = uuid.uuid4()
    current_context.correlation_id = corr
    msg = protocol.SendingMessage(protocol.MSG_INVOKE, 0, 1, 1, b"")
    assert not msg.flags & protocol.FLAGS_CORR_ID and msg.corr_id == b"\0" * 16
    msg = protocol.SendingMessage(protocol.MSG_INVOKE, 0, 1, 1, b"", corr_id=corr)
    assert msg.flags & protocol.FLAGS_CORR_ID and msg.corr_id == corr.bytes
    other = uuid.uuid4()
    msg = protocol.SendingMessage(protocol.MSG_INVOKE, 0, 1, 1, b"", corr_id=other)
    assert msg.corr_id == other.bytes
    current_context.correlation_id = None
    msg = protocol.SendingMessage(protocol.MSG_INVOKE, 0, 1, 1, b"")
    assert not msg.flags & protocol.FLAGS_CORR_ID and msg.corr_id == b"\0" * 16
    parsed = protocol.recv_message(FakeConnection(msg.data))
    assert parsed.correlation_id is None


def test_sequence_numbers_wrap_at_16_bits():
    assert protocol.next_seq(0) == 1
    assert protocol.next_seq(0xFFFE) == 0xFFFF
    assert protocol.next_seq(0xFFFF) == 0
    msg = protocol.SendingMessage(protocol.MSG_INVOKE, 0, 0x10005, 1, b"")
    assert protocol.recv_message(FakeConnection(msg.data)).seq == 5


@pytest.mark.parametrize("key", ["ABC", "ABCDE", "", "ÄBCD"])
def test_annotation_key_must_be_four_ascii_chars(key):
    with pytest.raises(ProtocolError):
        protocol.SendingMessage(protocol.MSG_INVOKE, 0, 1, 1, b"", {key: b"x"})


@pytest.mark.parametrize("value", ["text", 42, None, [1, 2]])
def test_annotation_value_must_be_bytes_like(value):
    with pytest.raises(ProtocolError):
        protocol.SendingMessage(protocol.MSG_INVOKE, 0, 1, 1, b"", {"ABCD": value})


def header(
    msgtype=protocol.MSG_RESULT,
    flags=0,
    seq=1,
    ser=1,
    data_size=0,
    ann_size=0,
    corr=b"\0" * 16,
    tag=b"PYRO",
    version=502,
    magic=0x4DC5,
):
    return struct.pack("!4sHBBHHII16sHH", tag, version, msgtype, ser, flags, seq, data_size, ann_size, corr, 0, magic)


@pytest.mark.parametrize(
    "bad, match",
    [
        (header(tag=b"HTTP"), "not a PYRO message"),
        (header(version=501), "protocol version"),
        (header(version=0xFFFF), "protocol version"),
        (header(magic=0x1234), "magic"),
    ],
)
def test_wrong_tag_version_or_magic(bad, match):
    with pytest.raises(ProtocolError, match=match):
        protocol.recv_message(FakeConnection(bad))
    with pytest.raises(ProtocolError):
        protocol.ReceivingMessage(bad)


def test_wrong_tag_is_detected_after_six_bytes():
    conn = FakeConnection(b"GET / HTTP/1.1\r\n")
    with pytest.raises(ProtocolError):
        protocol.recv_message(conn)
    assert conn.reads == [6]


def test_validate_header_start():
    with pytest.raises(ValueError):
        protocol.validate_header_start(b"PYR")
    protocol.validate_header_start(b"PYRO")
    protocol.validate_header_start(b"PYRO\x01\xf6")
    with pytest.raises(ProtocolError):
        protocol.validate_header_start(b"PYRO\x01\xf5")


def test_truncated_messages():
    data = protocol.SendingMessage(protocol.MSG_RESULT, 0, 1, 1, b"abcdef", {"ABCD": b"12"}).data
    for cut in (3, 6, 20, 39, 40, 45, len(data) - 1):
        with pytest.raises(ConnectionClosedError):
            protocol.recv_message(FakeConnection(data[:cut]))
    with pytest.raises(ProtocolError):
        protocol.ReceivingMessage(data[:39])
    msg = protocol.ReceivingMessage(data[:40])
    with pytest.raises(ProtocolError, match="body is 15 bytes, header announced 16"):
        msg.add_payload(data[40:-1])


def test_oversized_message_refused_before_reading_payload():
    config.MAX_MESSAGE_SIZE = 1000
    conn = FakeConnection(header(data_size=900, ann_size=200))
    with pytest.raises(MessageTooLargeError):
        protocol.recv_message(conn)
    assert sum(conn.reads) == 40
    conn = FakeConnection(header(data_size=0xFFFFFFFF, ann_size=0xFFFFFFFF))
    with pytest.raises(MessageTooLargeError):
        protocol.recv_message(conn, max_size=10**9)
    assert sum(conn.reads) == 40


def test_oversized_outgoing_message():
    config.MAX_MESSAGE_SIZE = 100
    protocol.SendingMessage(protocol.MSG_INVOKE, 0, 1, 1, b"x" * 90, {"ABCD": b"12"})
    with pytest.raises(MessageTooLargeError):
        protocol.SendingMessage(protocol.MSG_INVOKE, 0, 1, 1, b"x" * 91, {"ABCD": b"12"})
    # compression happens before the size check
    protocol.SendingMessage(protocol.MSG_INVOKE, 0, 1, 1, b"x" * 5000, compress=True)


def test_malformed_annotation_chunks():
    # a chunk that claims more bytes than the annotation area has
    body = b"ABCD" + struct.pack("!I", 100) + b"xx"
    with pytest.raises(ProtocolError, match="chunk of 100 bytes runs past the end"):
        protocol.recv_message(FakeConnection(header(ann_size=len(body)) + body))
    # an annotation area too short for a chunk header
    body = b"ABCD\0\0"
    with pytest.raises(ProtocolError, match="truncated"):
        protocol.recv_message(FakeConnection(header(ann_size=len(body)) + body))
    # a non-ascii id
    body = b"\xff\xfe\xfd\xfc" + struct.pack("!I", 0)
    with pytest.raises(ProtocolError, match="ascii"):
        protocol.recv_message(FakeConnection(header(ann_size=len(body)) + body))


def test_unexpected_message_type_carries_the_message():
    data = protocol.SendingMessage(protocol.MSG_PING, 0, 1, 1, b"ping").data
    with pytest.raises(ProtocolError, match="invalid msg type") as info:
        protocol.recv_message(FakeConnection(data), [protocol.MSG_RESULT])
    assert info.value.pyroMsg.type == protocol.MSG_PING


def test_compression_roundtrip_and_threshold():
    payload = bytes(range(256)) * 40
    msg = protocol.SendingMessage(protocol.MSG_RESULT, 0, 1, 1, payload, compress=True)
    assert msg.flags & protocol.FLAGS_COMPRESSED
    assert len(msg.data) < len(payload)
    parsed = protocol.recv_message(FakeConnection(msg.data))
    assert bytes(parsed.data) == payload
    assert not parsed.flags & protocol.FLAGS_COMPRESSED
    assert parsed.data_size == len(payload)
    small = protocol.SendingMessage(protocol.MSG_RESULT, 0, 1, 1, b"s" * 100, compress=True)
    assert not small.flags & protocol.FLAGS_COMPRESSED


def test_zip_bomb_is_capped():
    bomb = zlib.compress(b"\0" * (50 * 1024 * 1024), 9)  # 50 MB of zeros in ~50 KB
    assert len(bomb) < 100_000
    config.MAX_MESSAGE_SIZE = 1024 * 1024
    data = header(flags=protocol.FLAGS_COMPRESSED, data_size=len(bomb)) + bomb
    with pytest.raises(MessageTooLargeError):
        protocol.recv_message(FakeConnection(data))
    with pytest.raises(MessageTooLargeError):
        protocol.decompress(bomb, 1024)
    assert protocol.decompress(zlib.compress(b"a" * 1024), 1024) == b"a" * 1024


@pytest.mark.parametrize("garbage", [b"not zlib at all", zlib.compress(b"x" * 1000)[:-5]])
def test_invalid_or_truncated_compressed_payload(garbage):
    data = header(flags=protocol.FLAGS_COMPRESSED, data_size=len(garbage)) + garbage
    with pytest.raises(ProtocolError):
        protocol.recv_message(FakeConnection(data))


@settings(max_examples=60, deadline=None)
@given(
    msgtype=st.integers(1, 6),
    flags=st.integers(0, 0xFFFF),
    seq=st.integers(0, 0xFFFF),
    ser=st.integers(1, 255),
    payload=st.binary(max_size=400),
    annotations=st.dictionaries(
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4), st.binary(max_size=50), max_size=4
    ),
    compress=st.booleans(),
)
def test_roundtrip_property(msgtype, flags, seq, ser, payload, annotations, compress):
    current_context.correlation_id = None
    flags &= ~(protocol.FLAGS_COMPRESSED | protocol.FLAGS_CORR_ID)
    sent = protocol.SendingMessage(msgtype, flags, seq, ser, payload, annotations, compress=compress)
    got = protocol.recv_message(FakeConnection(sent.data))
    assert (got.type, got.seq, got.serializer_id) == (msgtype, seq, ser)
    assert got.flags == flags
    assert bytes(got.data) == payload
    assert got.annotations == annotations
    if not compress:
        assert sent.data == pyro5_bytes(msgtype, flags, seq, ser, payload, annotations)


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0, max_size=120))
def test_random_bytes_never_crash_the_parser(junk):
    """Arbitrary bytes after a valid start give a pyrite error, never another exception."""
    config.MAX_MESSAGE_SIZE = 4096
    for data in (junk, b"PYRO\x01\xf6" + junk):
        try:
            protocol.recv_message(FakeConnection(data))
        except (ProtocolError, ConnectionClosedError):
            pass


@pytest.mark.parametrize("size", [protocol.SCATTER_THRESHOLD - 1, protocol.SCATTER_THRESHOLD, 3 * 1024 * 1024])
def test_large_payload_stays_a_separate_part_with_identical_bytes(size):
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    ours = protocol.SendingMessage(protocol.MSG_RESULT, 0, 7, 2, payload, {"XYZW": b"abc"})
    theirs = Pyro5.protocol.SendingMessage(protocol.MSG_RESULT, 0, 7, 2, payload, {"XYZW": b"abc"})
    assert len(ours.parts) == (2 if size >= protocol.SCATTER_THRESHOLD else 1)
    assert b"".join(ours.parts) == ours.data == theirs.data
    assert bytes(ours.payload) == payload


class _Recorder:
    def __init__(self, with_parts):
        self.sent = []
        if with_parts:
            self.send_parts = lambda parts: self.sent.append(("parts", b"".join(parts)))

    def send(self, data):
        self.sent.append(("send", bytes(data)))


@pytest.mark.parametrize("with_parts", [True, False])
def test_send_message_gathers_parts_when_the_connection_can(with_parts):
    msg = protocol.SendingMessage(protocol.MSG_RESULT, 0, 1, 2, b"y" * protocol.SCATTER_THRESHOLD)
    conn = _Recorder(with_parts)
    protocol.send_message(conn, msg)
    assert conn.sent == [("parts" if with_parts else "send", msg.data)]
    small = protocol.SendingMessage(protocol.MSG_RESULT, 0, 1, 2, b"y")
    protocol.send_message(conn, small)
    assert conn.sent[-1] == ("send", small.data)

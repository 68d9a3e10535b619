"""The sans-IO session: framing in any split, hostile input, limits, seqs, pipelined replies."""

import struct
import uuid
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrite.core import protocol
from pyrite.core.config import config
from pyrite.core.errors import ConnectionClosedError, MessageTooLargeError, ProtocolError, SerializeError
from pyrite.core.protocol import (
    FLAGS_COMPRESSED,
    FLAGS_CORR_ID,
    FLAGS_ONEWAY,
    MSG_CONNECT,
    MSG_CONNECTFAIL,
    MSG_CONNECTOK,
    MSG_INVOKE,
    MSG_PING,
    MSG_RESULT,
    ReceivingMessage,
    SendingMessage,
)
from pyrite.core.session import CLIENT, NEED_DATA, SERVER, Closed, FrameReader, Session


def message(seq=1, payload=b"payload", msgtype=MSG_INVOKE, annotations=None, flags=0, ser=1, compress=False, corr=None):
    return SendingMessage(msgtype, flags, seq, ser, payload, annotations, compress=compress, corr_id=corr).data


def server_after_handshake():
    s = Session(SERVER)
    s.handshake_done = True
    return s


def test_one_message_whole():
    s = server_after_handshake()
    corr = uuid.uuid4()
    [msg] = s.feed(message(7, b"abc", annotations={"ABCD": b"1", "XY12": b""}, corr=corr))
    assert (msg.type, msg.seq, msg.serializer_id, bytes(msg.data)) == (MSG_INVOKE, 7, 1, b"abc")
    assert msg.annotations == {"ABCD": b"1", "XY12": b""}
    assert msg.correlation_id == corr
    assert s.next_event() is NEED_DATA
    assert not s.partial


def test_bytes_one_at_a_time():
    s = server_after_handshake()
    data = message(3, b"x" * 300, annotations={"ANNO": b"zz"}) + message(4, b"")
    got = []
    for i in range(len(data)):
        got += s.feed(data[i : i + 1])
        if i < len(data) - 1 and not got:
            assert s.partial
    assert [(m.seq, bytes(m.data)) for m in got] == [(3, b"x" * 300), (4, b"")]
    assert got[0].annotations == {"ANNO": b"zz"}


def test_several_messages_in_one_chunk_and_a_partial_tail():
    s = server_after_handshake()
    data = b"".join(message(i, bytes([i]) * i) for i in range(1, 6))
    tail = message(6, b"tail")
    msgs = s.feed(data + tail[:10])
    assert [m.seq for m in msgs] == [1, 2, 3, 4, 5]
    assert s.partial and s.next_event() is NEED_DATA
    [last] = s.feed(tail[10:])
    assert bytes(last.data) == b"tail"


@settings(max_examples=150, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=400), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
    compress=st.booleans(),
)
def test_random_splits_give_the_same_messages(payloads, cuts, compress):
    data = b"".join(
        message(i, p, annotations={"SEQN": str(i).encode()}, compress=compress) for i, p in enumerate(payloads)
    )
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    s = server_after_handshake()
    got = []
    for a, b in zip(points, points[1:]):
        got += s.feed(data[a:b])
    assert [bytes(m.data) for m in got] == payloads
    assert [m.annotations["SEQN"] for m in got] == [str(i).encode() for i in range(len(payloads))]
    assert not any(m.flags & FLAGS_COMPRESSED for m in got)
    assert not s.partial


def test_close_between_messages_and_in_the_middle():
    s = server_after_handshake()
    s.receive_data(b"")
    ev = s.next_event()
    assert isinstance(ev, Closed) and ev.partial == b"" and s.closed
    data = message(1, b"hello world")
    s = server_after_handshake()
    s.feed(data[:45])
    s.receive_data(b"")
    ev = s.next_event()
    assert isinstance(ev, Closed) and ev.partial == data[:45]
    err = ev.error()
    assert isinstance(err, ConnectionClosedError) and err.partialData == data[:45]
    s = server_after_handshake()
    s.feed(data[:5])
    s.receive_data(b"")
    assert s.next_event().partial == data[:5]


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\n", b"PYRX", b"PYRO\x01\xf4", b"PYRO\x00\x01" + b"\0" * 34],
)
def test_bad_tag_or_version_refused_early(garbage):
    s = server_after_handshake()
    s.receive_data(garbage)
    with pytest.raises(ProtocolError):
        s.next_event()


def test_bad_magic_refused():
    data = bytearray(message(1, b"abc"))
    data[38:40] = b"\x00\x00"
    with pytest.raises(ProtocolError, match="magic"):
        server_after_handshake().feed(bytes(data))


def test_good_messages_before_garbage_are_delivered_first():
    s = server_after_handshake()
    s.receive_data(message(1, b"ok") + b"JUNKJUNK" + b"\0" * 40)
    assert bytes(s.next_event().data) == b"ok"
    with pytest.raises(ProtocolError):
        s.next_event()


def test_huge_declared_size_refused_before_any_payload():
    header = bytearray(message(1, b""))
    struct.pack_into("!I", header, 12, 2**31)
    s = server_after_handshake()
    with pytest.raises(MessageTooLargeError):
        s.feed(bytes(header))
    big = message(1, b"x" * 1001)
    config.MAX_MESSAGE_SIZE = 1000
    with pytest.raises(MessageTooLargeError):
        Session(CLIENT).feed(big)
    assert len(Session(CLIENT, max_message_size=2000).feed(big)) == 1


@pytest.mark.parametrize(
    "chunks",
    [
        b"ABC",  # shorter than a chunk header
        b"ABCD\x00\x00\x00\x09abc",  # chunk runs past the end
        b"\xff\xfe\xfd\xfc\x00\x00\x00\x00",  # id is not ascii
    ],
)
def test_bad_annotation_chunks(chunks):
    header = protocol._header.pack(
        b"PYRO", protocol.PROTOCOL_VERSION, MSG_INVOKE, 1, 0, 1, 3, len(chunks), b"\0" * 16, 0, protocol.MAGIC
    )
    with pytest.raises(ProtocolError):
        server_after_handshake().feed(header + chunks + b"xyz")


def test_zip_bomb_refused_by_size_without_inflating_it_all():
    bomb = zlib.compress(b"\0" * (20 * 1024 * 1024), 9)
    config.MAX_DECOMPRESSION_RATIO = 0  # only the size limit here
    s = Session(CLIENT, max_message_size=1024 * 1024)
    header = protocol._header.pack(
        b"PYRO",
        protocol.PROTOCOL_VERSION,
        MSG_RESULT,
        1,
        FLAGS_COMPRESSED,
        0,
        len(bomb),
        0,
        b"\0" * 16,
        0,
        protocol.MAGIC,
    )
    with pytest.raises(MessageTooLargeError, match="max message size"):
        s.feed(header + bomb)


def test_compression_ratio_rule():
    assert protocol.inflate_limit(100, 10**9, 500) == protocol.RATIO_FREE_SIZE
    assert protocol.inflate_limit(10_000, 10**9, 500) == 5_000_000
    assert protocol.inflate_limit(10_000, 1000, 500) == 1000
    assert protocol.inflate_limit(10_000, 10**9, 0) == 10**9
    zeros = b"\0" * (3 * 1024 * 1024)  # compresses about 1000:1
    packed = zlib.compress(zeros, 9)
    with pytest.raises(MessageTooLargeError, match="MAX_DECOMPRESSION_RATIO"):
        protocol.decompress(packed, 10**9, 500)
    assert protocol.decompress(packed, 10**9, 2000) == zeros
    assert protocol.decompress(packed, 10**9, None) == zeros
    # ordinary data passes the default rule
    text = repr([{"name": "x", "value": i % 10} for i in range(100_000)]).encode()
    assert protocol.decompress(zlib.compress(text), 10**9, config.MAX_DECOMPRESSION_RATIO) == text
    # small payloads, however repetitive, are never refused for their ratio
    small = b"a" * 1_000_000
    assert protocol.decompress(zlib.compress(small, 9), 10**9, 2) == small


def test_ratio_rule_applies_to_received_messages():
    config.MAX_DECOMPRESSION_RATIO = 10
    payload = b"ab" * (2 * 1024 * 1024)
    data = message(1, payload, compress=True)
    with pytest.raises(MessageTooLargeError):
        server_after_handshake().feed(data)
    config.MAX_DECOMPRESSION_RATIO = 0
    assert bytes(server_after_handshake().feed(data)[0].data) == payload


def test_invalid_and_truncated_compressed_payloads():
    for body in (b"not zlib at all", zlib.compress(b"hello" * 100)[:-6]):
        header = protocol._header.pack(
            b"PYRO", protocol.PROTOCOL_VERSION, MSG_RESULT, 1, FLAGS_COMPRESSED, 0, len(body), 0, b"\0" * 16, 0,
            protocol.MAGIC,
        )  # fmt: skip
        with pytest.raises(ProtocolError, match="compressed"):
            Session(CLIENT).feed(header + body)


def test_prehandshake_cap_on_declared_and_inflated_size():
    assert config.MAX_PREHANDSHAKE_SIZE == 64 * 1024
    s = Session(SERVER)
    with pytest.raises(MessageTooLargeError):
        s.feed(message(0, b"x" * (64 * 1024 + 1), msgtype=MSG_CONNECT))
    # a small compressed message that would inflate past the cap
    s = Session(SERVER)
    data = message(0, b"\0" * (200 * 1024), msgtype=MSG_CONNECT, compress=True)
    assert len(data) < 64 * 1024
    with pytest.raises(MessageTooLargeError):
        s.feed(data)
    # after the handshake the normal limit applies
    s = Session(SERVER)
    s.handshake_done = True
    assert len(s.feed(data)) == 1
    # the client side has no pre-handshake cap, and the cap is configurable
    assert len(Session(CLIENT).feed(data)) == 1
    config.MAX_PREHANDSHAKE_SIZE = 300 * 1024
    assert len(Session(SERVER).feed(data)) == 1
    assert len(Session(SERVER, max_prehandshake_size=10**6).feed(message(0, b"y" * 100_000))) == 1


def test_client_seq_wraps_at_16_bits():
    s = Session(CLIENT, seq=0xFFFE)
    assert [s.invoke(1, b"").seq for _ in range(3)] == [0xFFFF, 0, 1]
    assert s.expecting == (0xFFFF, 0, 1)
    for seq in (0xFFFF, 0, 1):
        [reply] = Session(SERVER).feed(message(seq, b"r", msgtype=MSG_RESULT))
        assert s.accept_reply(reply) == seq
    assert s.expecting == ()


def test_connect_request_and_reply():
    s = Session(CLIENT, seq=5)
    corr = uuid.uuid4()
    req = s.connect_request(2, b"hello", {"HSHK": b"1"}, corr_id=corr)
    assert (req.type, req.seq, req.serializer_id) == (MSG_CONNECT, 5, 2) and req.flags & FLAGS_CORR_ID
    server = Session(SERVER)
    [incoming] = server.feed(req.data)
    assert incoming.annotations == {"HSHK": b"1"} and not server.handshake_done
    ok = server.reply(incoming, MSG_CONNECTOK, b"welcome")
    assert (ok.seq, ok.serializer_id, ok.corr_id) == (5, 2, corr.bytes)
    [back] = s.feed(ok.data)
    assert not s.handshake_done
    assert s.accept_connect_reply(back) is True and s.handshake_done
    # a refusal
    s = Session(CLIENT)
    req = s.connect_request(1, b"hi")
    [incoming] = Session(SERVER).feed(req.data)
    fail = Session(SERVER).refusal(incoming, 3, b"go away")
    assert (fail.type, fail.serializer_id, fail.flags & FLAGS_CORR_ID) == (MSG_CONNECTFAIL, 3, 0)
    assert s.accept_connect_reply(s.feed(fail.data)[0]) is False and not s.handshake_done


def test_reply_carries_correlation_id_only_if_the_request_did():
    server = server_after_handshake()
    corr = uuid.uuid4()
    [with_id, without] = server.feed(message(1, b"a", corr=corr) + message(2, b"b"))
    r1 = server.reply(with_id, MSG_RESULT, b"1")
    r2 = server.reply(without, MSG_RESULT, b"2")
    assert r1.flags & FLAGS_CORR_ID and r1.corr_id == corr.bytes
    assert not r2.flags & FLAGS_CORR_ID and r2.corr_id == b"\0" * 16
    assert (r1.seq, r2.seq) == (1, 2)
    assert server.reply(without, MSG_RESULT, b"x", serializer_id=4).serializer_id == 4


def test_pipelined_replies_in_order():
    c = Session(CLIENT)
    server = server_after_handshake()
    requests = [c.invoke(1, f"call{i}".encode()) for i in range(5)]
    oneway = c.invoke(1, b"fire", FLAGS_ONEWAY)
    ping = c.invoke(1, b"ping", msgtype=MSG_PING)
    assert c.expecting == (1, 2, 3, 4, 5, 7)  # the oneway (6) expects nothing
    incoming = server.feed(b"".join(m.data for m in [*requests, oneway, ping]))
    assert [m.seq for m in incoming] == [1, 2, 3, 4, 5, 6, 7]
    replies = b"".join(
        server.reply(m, MSG_PING if m.type == MSG_PING else MSG_RESULT, b"r" + m.data).data
        for m in incoming
        if not m.flags & FLAGS_ONEWAY
    )
    # replies arrive in random-ish pieces; matching still goes oldest first
    got = []
    for i in range(0, len(replies), 17):
        for msg in c.feed(replies[i : i + 17]):
            got.append((c.accept_reply(msg), bytes(msg.data)))
    assert got == [(1, b"rcall0"), (2, b"rcall1"), (3, b"rcall2"), (4, b"rcall3"), (5, b"rcall4"), (7, b"rping")]
    assert c.expecting == ()


def test_replies_out_of_step_are_refused():
    c = Session(CLIENT)
    c.invoke(1, b"a")
    c.invoke(1, b"b")
    [second_first] = Session(CLIENT).feed(message(2, b"", msgtype=MSG_RESULT))
    with pytest.raises(ProtocolError, match="out of sync, got 2 expected 1"):
        c.accept_reply(second_first)
    assert c.expecting == (1, 2)  # nothing consumed: the connection has to go
    [wrong_type] = Session(CLIENT).feed(message(1, b"", msgtype=MSG_CONNECTOK))
    with pytest.raises(ProtocolError, match="invalid msg type 2"):
        c.accept_reply(wrong_type)
    [wrong_ser] = Session(CLIENT).feed(message(1, b"", msgtype=MSG_RESULT, ser=3))
    with pytest.raises(SerializeError):
        c.accept_reply(wrong_ser)
    c.forget_expected()
    [stray] = Session(CLIENT).feed(message(9, b"", msgtype=MSG_RESULT))
    with pytest.raises(ProtocolError, match="no request is waiting"):
        c.accept_reply(stray)
    with pytest.raises(ProtocolError, match="no connect request"):
        Session(CLIENT).accept_connect_reply(stray)


def test_receive_from_a_blocking_source():
    data = message(3, b"blocking", annotations={"ANNO": b"v"}) + message(4, b"")
    pos = 0
    reads = []

    def recv(n):
        nonlocal pos
        reads.append(n)
        if pos + n > len(data):
            chunk = data[pos:]
            pos = len(data)
            err = ConnectionClosedError("peer went away")
            raise err if not chunk else ConnectionClosedError(f"closed after {len(chunk)}")
        chunk = data[pos : pos + n]
        pos += n
        return chunk

    s = Session(CLIENT)
    msg = s.receive_from(recv)
    assert (msg.seq, bytes(msg.data), msg.annotations) == (3, b"blocking", {"ANNO": b"v"})
    assert reads[:2] == [6, 34]
    assert s.receive_from(recv).seq == 4
    with pytest.raises(ConnectionClosedError) as info:
        s.receive_from(recv)
    assert info.value.partialData == b""

    stranger = iter([b"HTTP/1", b""])
    with pytest.raises(ProtocolError):
        Session(CLIENT).receive_from(lambda n: next(stranger))


def test_receive_from_keeps_what_arrived_before_the_close():
    data = message(1, b"x" * 100)
    pieces = [data[:6], data[6:40]]

    def recv(n):
        if pieces:
            return pieces.pop(0)
        raise ConnectionClosedError("gone")

    with pytest.raises(ConnectionClosedError) as info:
        Session(CLIENT).receive_from(recv)
    assert info.value.partialData == data[:40]

    # a connection that says what it got of its last read (as SocketConnection does) adds that
    pieces = [data[:6], data[6:40]]

    def recv_part(n):
        if pieces:
            return pieces.pop(0)
        err = ConnectionClosedError("gone")
        err.partialData = data[40:70]
        raise err

    with pytest.raises(ConnectionClosedError) as info:
        Session(CLIENT).receive_from(recv_part)
    assert info.value.partialData == data[:70]


def test_outgoing_size_limit_and_roles():
    with pytest.raises(MessageTooLargeError):
        Session(CLIENT, max_message_size=10).invoke(1, b"x" * 11)
    with pytest.raises(ValueError):
        Session("peer")


def test_frame_reader_defers_the_body_and_honours_its_cap():
    reader = FrameReader(max_size=100)
    [(msg, body)] = reader.feed(message(1, b"abc", annotations={"ANNO": b"1"}))
    assert isinstance(msg, ReceivingMessage) and msg.data is None
    msg.add_payload(body)
    assert bytes(msg.data) == b"abc" and msg.annotations == {"ANNO": b"1"}
    with pytest.raises(MessageTooLargeError):
        reader.feed(message(2, b"y" * 101))
    assert FrameReader().need() == 6

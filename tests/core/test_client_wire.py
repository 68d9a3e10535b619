"""Proxy behaviour on the wire, against a scripted server on 127.0.0.1.

The scripted server speaks just enough of the protocol for each test and can
misbehave on purpose: wrong sequence numbers, garbage payloads, oversized or
truncated replies, refused handshakes, dropped connections.  It also lets the
tests check the exact messages a proxy sends.
"""

from __future__ import annotations

import marshal
import socket
import struct
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from pyrite.core import plugins, protocol
from pyrite.core.blob import SerializedBlob
from pyrite.core.callcontext import current_context
from pyrite.core.client import BatchProxy, Proxy
from pyrite.core.config import config
from pyrite.core.errors import (
    CommunicationError,
    ConnectionClosedError,
    MessageTooLargeError,
    ProtocolError,
    PyroError,
    SerializeError,
    TimeoutError,
)

WAIT = 10.0
META = {"methods": {"add", "gen", "ow"}, "oneway": {"ow"}, "attrs": {"value"}}


class Peer:
    """The server end of one client connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(WAIT)
        self.ser = plugins.get_serializer("serpent")

    def recv(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionClosedError("peer closed")
            data += chunk
        return data

    def read(self) -> protocol.ReceivingMessage:
        """One message; its header as it arrived (before decompression) is kept in ``raw_header``."""
        header = self.recv(protocol.HEADER_SIZE)
        self.raw_header = header
        msg = protocol.ReceivingMessage(header)
        msg.add_payload(self.recv(msg.data_size + msg.annotations_size))
        return msg

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(
        self,
        request: protocol.ReceivingMessage,
        value: Any = None,
        *,
        msgtype: int = protocol.MSG_RESULT,
        flags: int = 0,
        seq: int | None = None,
        serializer_id: int | None = None,
        payload: bytes | None = None,
        annotations: dict[str, bytes] | None = None,
    ) -> None:
        if payload is None:
            payload = self.ser.dumps(value)
        msg = protocol.SendingMessage(
            msgtype,
            flags,
            request.seq if seq is None else seq,
            request.serializer_id if serializer_id is None else serializer_id,
            payload,
            annotations,
            compress=False,
            corr_id=b"\0" * 16,
        )
        self.send_raw(msg.data)

    def handshake(self, meta: Any = META, response: Any = "hello") -> protocol.ReceivingMessage:
        request = self.read()
        assert request.type == protocol.MSG_CONNECT
        self.reply(request, {"handshake": response, "meta": meta}, msgtype=protocol.MSG_CONNECTOK)
        return request

    def call(self) -> tuple[protocol.ReceivingMessage, tuple]:
        request = self.read()
        return request, self.ser.loadsCall(request.data)


class ScriptedServer:
    """Accepts connections on 127.0.0.1 and runs ``script(peer, index)`` for each in its own thread."""

    def __init__(self, script: Callable[[Peer, int], None]) -> None:
        self.script = script
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(5)
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.uri = f"PYRO:thing@127.0.0.1:{self.port}"
        self.errors: list[BaseException] = []
        self.peers: list[threading.Thread] = []
        self.connections = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                continue
            index = self.connections
            self.connections += 1
            worker = threading.Thread(target=self._run, args=(sock, index), daemon=True)
            self.peers.append(worker)
            worker.start()

    def _run(self, sock: socket.socket, index: int) -> None:
        try:
            self.script(Peer(sock), index)
        except ConnectionClosedError:
            pass
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)
        finally:
            sock.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(WAIT)
        for worker in self.peers:
            worker.join(WAIT)
        self.listener.close()
        assert not self.errors, self.errors


@pytest.fixture
def scripted():
    servers: list[ScriptedServer] = []

    def start(script: Callable[[Peer, int], None]) -> ScriptedServer:
        server = ScriptedServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class _Bytes:
    """A byte string read like a connection."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def recv(self, size: int) -> bytes:
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk


def make_proxy(server: ScriptedServer) -> Proxy:
    p = Proxy(server.uri)
    p._pyroTimeout = WAIT
    return p


# ---------------------------------------------------------------------------------------- what goes out


def test_handshake_and_call_messages(scripted):
    seen: dict[str, Any] = {}

    def script(peer: Peer, index: int) -> None:
        connect = peer.handshake()
        seen["connect"] = connect
        seen["connect_data"] = peer.ser.loads(connect.data)
        request, call = peer.call()
        seen["invoke"], seen["call"] = request, call
        peer.reply(request, 3)

    server = scripted(script)
    with make_proxy(server) as p:
        p._pyroHandshake = {"token": "abc"}
        assert p.add(1, 2) == 3
    connect = seen["connect"]
    assert (connect.type, connect.seq, connect.serializer_id, connect.flags) == (protocol.MSG_CONNECT, 0, 1, 0)
    assert seen["connect_data"] == {"handshake": {"token": "abc"}, "object": "thing"}
    invoke = seen["invoke"]
    assert (invoke.type, invoke.seq, invoke.flags) == (protocol.MSG_INVOKE, 1, 0)
    assert seen["call"] == ("thing", "add", (1, 2), {})


def test_oneway_batch_and_correlation_flags(scripted):
    seen: list[protocol.ReceivingMessage] = []
    corr = uuid.uuid4()

    def script(peer: Peer, index: int) -> None:
        peer.handshake()
        request, call = peer.call()  # the oneway call: no reply expected
        seen.append(request)
        request, call = peer.call()  # the batch
        seen.append(request)
        assert call[1] == "<batch>"
        assert [tuple(c)[:2] for c in call[2]] == [("add", (1, 2)), ("add", (3, 4))]
        peer.reply(request, [3, 7])

    server = scripted(script)
    current_context.correlation_id = corr
    try:
        with make_proxy(server) as p:
            assert p.ow() is None
            batch = BatchProxy(p)
            batch.add(1, 2)
            batch.add(3, 4)
            assert list(batch()) == [3, 7]
    finally:
        current_context.correlation_id = None
    oneway, batch_msg = seen
    assert oneway.flags & protocol.FLAGS_ONEWAY
    assert batch_msg.flags & protocol.FLAGS_BATCH and not batch_msg.flags & protocol.FLAGS_ONEWAY
    for msg in seen:
        assert msg.flags & protocol.FLAGS_CORR_ID and msg.correlation_id == corr
    assert (oneway.seq, batch_msg.seq) == (1, 2)


def test_blob_call_message(scripted):
    seen: dict[str, Any] = {}

    def script(peer: Peer, index: int) -> None:
        peer.handshake()
        request, call = peer.call()
        seen["request"], seen["call"] = request, call
        peer.reply(request, "ok")

    server = scripted(script)
    with make_proxy(server) as p:
        assert p.add(SerializedBlob({"name": "blobby"}, ["the", "data"])) == "ok"
    request = seen["request"]
    assert request.flags & protocol.FLAGS_KEEPSERIALIZED
    assert marshal.loads(request.annotations["BLBI"]) == ({"name": "blobby"}, "thing", "add")
    assert seen["call"] == ("thing", "add", ["the", "data"], {})
    assert "BLBI" not in current_context.annotations


def test_received_blob_is_forwarded_byte_for_byte(scripted):
    seen: dict[str, Any] = {}
    json_ser = plugins.get_serializer("json")
    original = protocol.SendingMessage(
        protocol.MSG_INVOKE, 0, 1, json_ser.serializer_id, json_ser.dumpsCall("x", "y", [1, 2, 3], {})
    )
    received = protocol.recv_message(_Bytes(original.data))

    def script(peer: Peer, index: int) -> None:
        peer.handshake()
        request = peer.read()
        seen["request"] = request
        peer.reply(request, None, payload=json_ser.dumps("ok"))

    server = scripted(script)
    with make_proxy(server) as p:
        assert p.add(SerializedBlob("info", received, is_blob=True)) == "ok"
    request = seen["request"]
    assert bytes(request.data) == bytes(received.data)
    assert request.serializer_id == json_ser.serializer_id  # the blob's serializer, not the proxy's
    assert marshal.loads(request.annotations["BLBI"]) == ("info", "thing", "add")


def test_compression(scripted):
    seen: dict[str, Any] = {}

    def script(peer: Peer, index: int) -> None:
        peer.handshake()
        request, call = peer.call()
        seen["request"], seen["call"], seen["header"] = request, call, peer.raw_header
        payload = peer.ser.dumps("y" * 5000)
        msg = protocol.SendingMessage(protocol.MSG_RESULT, 0, request.seq, 1, payload, compress=True)
        peer.send_raw(msg.data)

    config.COMPRESSION = True
    server = scripted(script)
    with make_proxy(server) as p:
        assert p.add("x" * 5000, "") == "y" * 5000
    assert seen["call"][2] == ("x" * 5000, "")
    flags, _, size = struct.unpack_from("!HHI", seen["header"], 8)
    assert flags & protocol.FLAGS_COMPRESSED and size < 1000  # it went out compressed


# ---------------------------------------------------------------------------------------- bad replies


def _one_bad_reply(send_bad: Callable[[Peer, protocol.ReceivingMessage], None]) -> Callable[[Peer, int], None]:
    def script(peer: Peer, index: int) -> None:
        peer.handshake()
        request = peer.read()
        send_bad(peer, request)
        # a well-behaved client closes this connection now; wait for that
        try:
            peer.sock.recv(1)
        except OSError:
            pass

    return script


BAD_REPLIES = {
    "wrong sequence": (lambda peer, req: peer.reply(req, 3, seq=(req.seq + 1) & 0xFFFF), ProtocolError),
    "wrong serializer": (lambda peer, req: peer.reply(req, None, serializer_id=3, payload=b"3"), SerializeError),
    "garbage payload": (lambda peer, req: peer.reply(req, payload=b"\x00\xff not serpent ("), ProtocolError),
    "bad magic": (lambda peer, req: peer.send_raw(b"PYRO\x01\xf6" + b"\0" * 32 + b"\x12\x34"), ProtocolError),
    "not pyro": (lambda peer, req: peer.send_raw(b"HTTP/1.1 400 Bad Request\r\n\r\n"), ProtocolError),
    "wrong type": (lambda peer, req: peer.reply(req, 3, msgtype=protocol.MSG_PING), ProtocolError),
    "exception flag, no exception": (
        lambda peer, req: peer.reply(req, 3, flags=protocol.FLAGS_EXCEPTION),
        ProtocolError,
    ),
    "stream without id": (
        lambda peer, req: peer.reply(req, None, flags=protocol.FLAGS_ITEMSTREAMRESULT),
        ProtocolError,
    ),
    "truncated": (
        lambda peer, req: (
            peer.send_raw(protocol.SendingMessage(protocol.MSG_RESULT, 0, req.seq, 1, b"12345").data[:-2]),
            peer.sock.shutdown(socket.SHUT_WR),
        ),
        ConnectionClosedError,
    ),
    "oversized": (
        lambda peer, req: peer.send_raw(
            struct.pack(
                "!4sHBBHHII16sHH", b"PYRO", 502, protocol.MSG_RESULT, 1, 0, req.seq, 2**31, 0, b"\0" * 16, 0, 0x4DC5
            )
        ),
        MessageTooLargeError,
    ),
    "bad compressed data": (
        lambda peer, req: peer.reply(req, payload=b"not zlib", flags=protocol.FLAGS_COMPRESSED),
        ProtocolError,
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REPLIES))
def test_bad_reply_raises_and_closes(scripted, case):
    send_bad, error = BAD_REPLIES[case]
    server = scripted(_one_bad_reply(send_bad))
    p = make_proxy(server)
    p._pyroBind()
    with pytest.raises(error):
        p.add(1, 2)
    assert p._pyroConnection is None
    p._pyroRelease()


def test_server_closes_mid_call(scripted):
    def script(peer: Peer, index: int) -> None:
        peer.handshake()
        peer.read()  # then hang up without answering

    server = scripted(script)
    p = make_proxy(server)
    with pytest.raises(ConnectionClosedError):
        p.add(1, 2)
    assert p._pyroConnection is None


def test_reply_timeout(scripted):
    done = threading.Event()

    def script(peer: Peer, index: int) -> None:
        peer.handshake()
        peer.read()
        done.wait(WAIT)

    server = scripted(script)
    p = make_proxy(server)
    p._pyroTimeout = 0.2
    try:
        with pytest.raises(TimeoutError):
            p.add(1, 2)
        assert p._pyroConnection is None
    finally:
        done.set()


# ---------------------------------------------------------------------------------------- bad handshakes


def _handshake_reply(**kwargs: Any) -> Callable[[Peer, int], None]:
    def script(peer: Peer, index: int) -> None:
        request = peer.read()
        peer.reply(request, **kwargs)
        try:
            peer.sock.recv(1)
        except OSError:
            pass

    return script


BAD_HANDSHAKES = {
    "refused": (dict(value="not welcome", msgtype=protocol.MSG_CONNECTFAIL), CommunicationError, "not welcome"),
    "not a dict": (dict(value=[1, 2], msgtype=protocol.MSG_CONNECTOK), ProtocolError, "handshake"),
    "metadata not a dict": (
        dict(value={"handshake": "hi", "meta": 5}, msgtype=protocol.MSG_CONNECTOK),
        ProtocolError,
        "metadata",
    ),
    "metadata names not strings": (
        dict(
            value={"handshake": "hi", "meta": {"methods": [1], "oneway": [], "attrs": []}},
            msgtype=protocol.MSG_CONNECTOK,
        ),
        ProtocolError,
        "metadata",
    ),
    "nothing exposed": (
        dict(
            value={"handshake": "hi", "meta": {"methods": [], "oneway": [], "attrs": []}},
            msgtype=protocol.MSG_CONNECTOK,
        ),
        PyroError,
        "expose",
    ),
    "garbage": (dict(payload=b"(((", msgtype=protocol.MSG_CONNECTOK), ProtocolError, "serpent"),
    "wrong sequence": (
        dict(value={"handshake": "hi", "meta": META}, msgtype=protocol.MSG_CONNECTOK, seq=77),
        ProtocolError,
        "sequence",
    ),
    "unknown serializer": (dict(value="x", serializer_id=200, msgtype=protocol.MSG_CONNECTOK), PyroError, "200"),
    "result instead": (dict(value="x", msgtype=protocol.MSG_RESULT), ProtocolError, "msg type"),
}


@pytest.mark.parametrize("case", sorted(BAD_HANDSHAKES))
def test_bad_handshake(scripted, case):
    kwargs, error, match = BAD_HANDSHAKES[case]
    server = scripted(_handshake_reply(**kwargs))
    p = make_proxy(server)
    with pytest.raises(error, match=match):
        p._pyroBind()
    assert p._pyroConnection is None


def test_metadata_fetched_when_handshake_has_none(scripted):
    calls: list[tuple] = []

    def script(peer: Peer, index: int) -> None:
        peer.handshake(meta=None)
        request, call = peer.call()
        calls.append(call)
        peer.reply(request, {"methods": ["add"], "oneway": [], "attrs": []})
        request, call = peer.call()
        calls.append(call)
        peer.reply(request, 3)

    server = scripted(script)
    with make_proxy(server) as p:
        assert p.add(1, 2) == 3
        assert p._pyroMethods == {"add"}
    assert calls[0] == ("Pyro.Daemon", "get_metadata", ["thing"], {})
    assert calls[1][:2] == ("thing", "add")


# ---------------------------------------------------------------------------------------- retries


def _drop_first_call(answers: list[int]) -> Callable[[Peer, int], None]:
    def script(peer: Peer, index: int) -> None:
        peer.handshake()
        if index == 0:
            peer.read()  # first connection: take the call and hang up
            return
        while True:
            request, call = peer.call()
            answers.append(index)
            peer.reply(request, call[2][0] + call[2][1])

    return script


def test_auto_retry_after_connection_closed(scripted):
    answers: list[int] = []
    server = scripted(_drop_first_call(answers))
    with make_proxy(server) as p:
        p._pyroMaxRetries = 2
        assert p.add(1, 2) == 3
    assert answers == [1]
    assert server.connections == 2


def test_no_retry_by_default(scripted):
    server = scripted(_drop_first_call([]))
    p = make_proxy(server)
    with pytest.raises(ConnectionClosedError):
        p.add(1, 2)
    assert p.add(2, 3) == 5  # the next call reconnects by itself
    p._pyroRelease()


def test_retries_run_out(scripted):
    def script(peer: Peer, index: int) -> None:
        peer.handshake()
        peer.read()

    server = scripted(script)
    p = make_proxy(server)
    p._pyroMaxRetries = 2
    with pytest.raises(ConnectionClosedError):
        p.add(1, 2)
    assert server.connections == 3


def test_stream_item_calls(scripted):
    seen: list[tuple] = []

    def script(peer: Peer, index: int) -> None:
        peer.handshake()
        request, call = peer.call()
        peer.reply(request, None, flags=protocol.FLAGS_ITEMSTREAMRESULT, annotations={"STRM": b"stream-1"})
        for item in ("a", "b"):
            request, call = peer.call()
            seen.append(call)
            peer.reply(request, item)
        request, call = peer.call()
        seen.append(call)
        peer.reply(request, StopIteration(), flags=protocol.FLAGS_EXCEPTION)

    server = scripted(script)
    with make_proxy(server) as p:
        assert list(p.gen()) == ["a", "b"]
    assert seen == [("Pyro.Daemon", "get_next_stream_item", ["stream-1"], {})] * 3

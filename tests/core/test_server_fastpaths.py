"""The server's fast paths keep their behaviour: the call context set in one step (and per task
under asyncio), the thread engine parsing message bodies on its workers (not its selector
thread), the session's framed counter, the cached peer address, the per-client poller."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid

import pytest
from pyrite.core import protocol
from pyrite.core.callcontext import current_context
from pyrite.core.config import config
from pyrite.core.connection import ClientConnection
from pyrite.core.daemon import Daemon
from pyrite.core.engines.common import Client
from pyrite.core.exposure import expose
from pyrite.core.plugins import adopt_socket
from pyrite.core.protocol import MSG_INVOKE, SendingMessage
from pyrite.core.session import SERVER, Session

from tests.support import pyrite_proxy, pyro5_proxy, running

HOST = "127.0.0.1"


@pytest.fixture(autouse=True)
def _settings():
    config.POLLTIMEOUT = 0.1
    config.COMMTIMEOUT = 5.0


def _context() -> dict:
    return {
        name: getattr(current_context, name)
        for name in ("client", "client_sock_addr", "seq", "msg_flags", "serializer_id", "annotations", "correlation_id")
    }


# -- the call context --------------------------------------------------------------------------


def test_serve_sets_every_field_and_empties_response_annotations():
    corr = uuid.uuid4()
    current_context.response_annotations = {"XTRA": b"1"}
    current_context.serve("conn", ("127.0.0.1", 5), {"ANNO": b"x"}, corr, (7, 0x40, 2))
    assert _context() == {
        "client": "conn",
        "client_sock_addr": ("127.0.0.1", 5),
        "seq": 7,
        "msg_flags": 0x40,
        "serializer_id": 2,
        "annotations": {"ANNO": b"x"},
        "correlation_id": corr,
    }
    assert current_context.response_annotations == {}
    assert current_context.serving("conn", 7)
    assert not current_context.serving("conn", 8)
    assert not current_context.serving("other", 7)
    # without a request part, seq/flags/serializer stay as they were (the handshake)
    current_context.serve("conn2", None, {}, None)
    assert (current_context.client, current_context.seq, current_context.serializer_id) == ("conn2", 7, 2)


def test_to_global_and_from_global_round_trip_between_threads():
    current_context.serve("conn", "addr", {"A": b"1"}, None, (3, 0, 1))
    captured = current_context.to_global()
    seen = {}

    def other():
        current_context.from_global(captured)
        seen.update(_context())
        seen["response_annotations"] = current_context.response_annotations

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(5.0)
    assert seen == {**_context(), "response_annotations": current_context.response_annotations}
    assert set(captured) == set(seen)


def test_serve_inside_an_event_loop_stays_in_its_task():
    current_context.serve("thread-conn", None, {}, None, (1, 0, 1))

    async def task(name: str, seq: int) -> tuple:
        current_context.serve(name, None, {}, None, (seq, 0, 1))
        await asyncio.sleep(0.01)
        snapshot = current_context.to_global()
        return current_context.client, current_context.seq, current_context.serving(name, seq), snapshot["client"]

    async def main() -> list:
        return list(await asyncio.gather(task("a", 10), task("b", 20)))

    assert asyncio.run(main()) == [("a", 10, True, "a"), ("b", 20, True, "b")]
    assert current_context.client == "thread-conn" and current_context.seq == 1


# -- the thread engine parses bodies on its workers ------------------------------------------------


@expose
class Echo:
    def echo(self, value):
        return value

    def where(self):
        return current_context.annotations.get("XTRA", b"").decode(), threading.current_thread().name


def test_thread_engine_parses_message_bodies_on_a_worker(monkeypatch):
    """Body parsing (annotations, decompression) never runs on the selector thread, and the
    results are the same: a compressed request and a request with annotations are served."""
    config.SERVERTYPE = "thread"
    parsed_on: list[str] = []
    original = protocol.ReceivingMessage.add_payload

    def recording(self, payload):
        parsed_on.append(threading.current_thread().name)
        return original(self, payload)

    monkeypatch.setattr(protocol.ReceivingMessage, "add_payload", recording)
    daemon = Daemon(host=HOST)
    uri = daemon.register(Echo(), "echo")
    with running(daemon, name="test-daemon"):
        config.COMPRESSION = True
        try:
            with pyrite_proxy(uri) as proxy:
                assert proxy.echo("*" * 5000) == "*" * 5000
                proxy._pyroAnnotations = lambda: {"XTRA": b"yes"}
                value, thread_name = proxy.where()
                assert value == "yes"
                assert thread_name.startswith("pyrite-worker")
        finally:
            config.COMPRESSION = False
        with pyro5_proxy(uri) as proxy5:
            assert proxy5.echo([1, 2, 3]) == [1, 2, 3]
    assert parsed_on, "no message body was parsed"
    assert "test-daemon" not in parsed_on


def test_thread_engine_drops_a_client_whose_body_is_bad_and_serves_the_next():
    """A body that only fails when parsed (a truncated annotation chunk) costs its connection,
    now on the worker: the daemon keeps serving other clients."""
    config.SERVERTYPE = "thread"
    daemon = Daemon(host=HOST)
    uri = daemon.register(Echo(), "echo")
    with running(daemon):
        with pyrite_proxy(uri) as proxy:
            assert proxy.echo(1) == 1
        header = SendingMessage(MSG_INVOKE, 0, 1, 2, b"").data
        # declare 5 bytes of annotations: too short for a chunk header, so parsing must fail
        bad = header[:16] + (5).to_bytes(4, "big") + header[20:] + b"ABCDE"
        with socket.create_connection((HOST, uri.port), timeout=5.0) as sock:
            sock.sendall(bad)
            sock.settimeout(5.0)
            assert sock.recv(100) == b""  # closed by the server
        with pyrite_proxy(uri) as proxy:
            assert proxy.echo(2) == 2


# -- session counters, peer address, poller ---------------------------------------------------


def test_session_framed_counts_complete_messages_before_parsing():
    session = Session(SERVER)
    one = SendingMessage(protocol.MSG_CONNECT, 0, 0, 2, b"x" * 10).data
    assert session.framed == 0
    session.receive_data(one + one[:20])
    assert session.framed == 1 and session.partial
    session.receive_data(one[20:])
    assert session.framed == 2
    assert session.next_event().data == b"x" * 10  # parsed only now
    assert session.framed == 1
    session.receive_data(b"GARBAGE!")
    assert session.framed == 1  # the bad bytes wait behind the complete message
    assert session.next_event().data == b"x" * 10
    with pytest.raises(protocol.ProtocolError):
        session.next_event()


def test_client_connection_reads_the_peer_address_once_and_right():
    left, right = socket.socketpair()
    try:
        conn = ClientConnection(adopt_socket(left))
        first = conn.peer_address
        assert first == conn.conn.peer_address
        assert conn.peer_address is first
    finally:
        left.close()
        right.close()


def test_client_wait_readable_uses_one_poller():
    left, right = socket.socketpair()
    try:
        client = Client(ClientConnection(adopt_socket(left)))
        assert client.wait_readable(0.01) is False
        poller = client.poller
        right.sendall(b"x")
        assert client.wait_readable(1.0) is True
        assert client.poller is poller
    finally:
        left.close()
        right.close()


# -- the thread engine reads a new client's first message right after accepting it -------------


def _connect_request() -> bytes:
    from pyrite.core import plugins

    serpent = plugins.get_serializer("serpent")
    payload = serpent.dumps({"handshake": "hello", "object": "echo"})
    return SendingMessage(protocol.MSG_CONNECT, 0, 0, serpent.serializer_id, payload).data


def _reply_type(sock: socket.socket) -> int:
    header = b""
    while len(header) < protocol.HEADER_SIZE:
        chunk = sock.recv(protocol.HEADER_SIZE - len(header))
        assert chunk, "the daemon closed the connection"
        header += chunk
    return header[6]  # after the tag and the protocol version: the message type byte


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_thread_engine_answers_a_connect_request_sent_at_once_or_later(delay):
    """Sent with the connect (usually read at accept) or after a pause (watched for): both are
    answered, and the connection then serves calls, for pyrite and Pyro5 proxies alike."""
    import time

    config.SERVERTYPE = "thread"
    daemon = Daemon(host=HOST)
    uri = daemon.register(Echo(), "echo")
    with running(daemon):
        with socket.create_connection((HOST, uri.port), timeout=5.0) as sock:
            sock.settimeout(5.0)
            if delay:
                time.sleep(delay)
            sock.sendall(_connect_request())
            assert _reply_type(sock) == protocol.MSG_CONNECTOK
        with pyrite_proxy(uri) as proxy:
            assert proxy.echo(1) == 1
        with pyro5_proxy(uri) as proxy5:
            assert proxy5.echo(2) == 2


def test_thread_engine_drops_garbage_or_a_close_that_came_with_the_connect():
    config.SERVERTYPE = "thread"
    daemon = Daemon(host=HOST)
    uri = daemon.register(Echo(), "echo")
    with running(daemon):
        with socket.create_connection((HOST, uri.port), timeout=5.0) as sock:
            sock.sendall(b"NOT PYRO AT ALL, JUST BYTES" * 4)
            sock.settimeout(5.0)
            assert sock.recv(100) == b""  # closed by the server
        for _ in range(20):
            socket.create_connection((HOST, uri.port), timeout=5.0).close()  # gone before a byte
        with pyrite_proxy(uri) as proxy:
            assert proxy.echo(3) == 3

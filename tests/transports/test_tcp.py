"""The TCP transport and the shared socket Connection/Listener, on real loopback sockets."""

from __future__ import annotations

import errno
import mmap
import selectors
import socket
import threading
import time
import tracemalloc

import pytest
from pyrite.core import plugins, protocol
from pyrite.core.config import config
from pyrite.core.errors import CommunicationError, ConnectionClosedError, TimeoutError
from pyrite.core.interfaces import Connection, Listener, Transport
from pyrite.transports import sockets
from pyrite.transports.connection import LARGE_READ_SIZE
from pyrite.transports.tcp import TcpTransport, format_location, parse_location
from pyrite.transports.unix import UnixTransport

WAIT = 10.0  # upper bound for every wait in these tests


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6(), reason="this host has no IPv6 loopback (::1)")


@pytest.fixture
def tcp() -> TcpTransport:
    return plugins.get_transport("127.0.0.1:0")


@pytest.fixture
def pair(tcp):
    """A connected (client, server) pair of TCP connections over 127.0.0.1, closed afterwards."""
    listener = tcp.listen("127.0.0.1:0")
    client = tcp.connect(listener.location, timeout=WAIT)
    server = listener.accept()
    server.timeout = WAIT
    yield client, server
    client.close()
    server.close()
    listener.close()


def _accept_within(listener, seconds: float = WAIT):
    """Accept on a non-blocking listener, waiting with a selector, bounded."""
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as sel:
        sel.register(listener.fileno(), selectors.EVENT_READ)
        while time.monotonic() < deadline:
            sel.select(0.2)
            conn = listener.accept()
            if conn is not None:
                return conn
    raise AssertionError("no connection accepted in time")


# -- plugin lookup --------------------------------------------------------------------------


def test_lookup_through_entry_points():
    plugins.reset()
    assert type(plugins.get_transport("127.0.0.1:1234")) is TcpTransport
    assert type(plugins.get_transport("localhost:9090")) is TcpTransport
    assert type(plugins.get_transport("[::1]:1234")) is TcpTransport
    assert type(plugins.get_transport("./u:/x")) is UnixTransport
    # one shared instance per class
    assert plugins.get_transport("127.0.0.1:1") is plugins.get_transport("example.com:2")


def test_transports_implement_the_protocols(tcp, tmp_path):
    assert isinstance(tcp, Transport)
    assert isinstance(UnixTransport(), Transport)
    with tcp.listen("127.0.0.1:0") as listener:
        assert isinstance(listener, Listener)
        with tcp.connect(listener.location, timeout=WAIT) as conn:
            assert isinstance(conn, Connection)


@pytest.mark.parametrize(
    "location", ["127.0.0.1:0", "localhost:9090", "[::1]:80", "[fe80::1%eth0]:7", "my-host.example.com:65535", ":9090"]
)
def test_tcp_serves(location):
    assert TcpTransport.serves(location)
    assert not UnixTransport.serves(location)


@pytest.mark.parametrize(
    "location",
    [
        "./u:/tmp/x",
        "./u:x",
        "localhost",
        "localhost:",
        "host:70000",
        "[::1]",
        "::1:80",
        "[[::1]]:80",
        "a b:1",
        "host:port",
        "",
    ],
)
def test_tcp_does_not_serve(location):
    assert not TcpTransport.serves(location)


def test_unknown_location_is_a_clear_error():
    with pytest.raises(plugins.UnknownPluginError, match="pip install pyrite-transports"):
        plugins.get_transport("no port here")


def test_parse_and_format_location():
    assert parse_location("[::1]:80") == ("::1", 80)
    assert parse_location("localhost:0") == ("localhost", 0)
    assert format_location("::1", 5) == "[::1]:5"
    assert format_location("127.0.0.1", 5) == "127.0.0.1:5"
    with pytest.raises(ValueError):
        parse_location("./u:/x")


# -- listening and connecting -------------------------------------------------------------------


def test_ipv4_roundtrip_and_addresses(tcp):
    with tcp.listen("127.0.0.1:0") as listener:
        host, port = parse_location(listener.location)
        assert host == "127.0.0.1" and port != 0
        assert listener.address == ("127.0.0.1", port)
        with tcp.connect(listener.location, timeout=WAIT) as client, listener.accept() as server:
            assert client.peer_address == ("127.0.0.1", port)
            assert server.local_address == ("127.0.0.1", port)
            assert server.peer_address == client.local_address
            client.send(b"hello, server")
            assert server.recv(13) == b"hello, server"
            server.send(bytearray(b"and back"))
            assert client.recv(8) == b"and back"
            assert client.getpeercert() is None  # plain TCP


@needs_ipv6
def test_ipv6_roundtrip(tcp):
    with tcp.listen("[::1]:0") as listener:
        assert listener.location.startswith("[::1]:")
        port = parse_location(listener.location)[1]
        with tcp.connect(listener.location, timeout=WAIT) as client, listener.accept() as server:
            assert client.peer_address[:2] == ("::1", port)
            client.send(memoryview(b"six"))
            assert server.recv(3) == b"six"


def test_listen_keeps_host_name_and_reports_real_port(tcp):
    with tcp.listen("localhost:0") as listener:
        host, port = parse_location(listener.location)
        assert host == "localhost" and port > 0
        with tcp.connect(listener.location, timeout=WAIT) as client, listener.accept() as server:
            client.send(b"x")
            assert server.recv(1) == b"x"


@needs_ipv6
def test_prefer_ipv6_for_all_interfaces(tcp):
    config.PREFER_IP_VERSION = 6
    with tcp.listen(":0") as listener:
        assert listener.location.startswith("[::]:")
        port = parse_location(listener.location)[1]
        with tcp.connect(f"[::1]:{port}", timeout=WAIT) as client, listener.accept() as server:
            client.send(b"z")
            assert server.recv(1) == b"z"


def test_address_in_use_is_oserror_naming_location(tcp):
    with tcp.listen("127.0.0.1:0", reuse=False) as listener:
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1:") as info:
            tcp.listen(listener.location, reuse=False)
        assert info.value.errno == errno.EADDRINUSE


def test_listener_sets_reuseaddr_from_config(tcp):
    config.SOCK_REUSE = True
    with tcp.listen("127.0.0.1:0") as listener:
        assert listener.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
    with tcp.listen("127.0.0.1:0", reuse=False) as listener:
        assert not listener.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)


def test_connections_have_nodelay_and_keepalive(pair):
    for conn in pair:
        assert conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert conn.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)


def test_connect_refused_is_communication_error(tcp):
    with tcp.listen("127.0.0.1:0") as listener:
        location = listener.location
    with pytest.raises(CommunicationError, match=f"cannot connect to {location}"):
        tcp.connect(location, timeout=WAIT)


def test_unresolvable_host_is_communication_error(tcp):
    with pytest.raises(CommunicationError, match="cannot resolve host"):
        tcp.connect("no-such-host.invalid:1234", timeout=WAIT)


def test_nonblocking_listener_accept_returns_none(tcp):
    with tcp.listen("127.0.0.1:0") as listener:
        listener.setblocking(False)
        assert listener.timeout == 0
        assert listener.accept() is None
        with tcp.connect(listener.location, timeout=WAIT) as client:
            with _accept_within(listener) as server:
                client.send(b"ok")
                assert server.recv(2) == b"ok"
        assert listener.accept() is None


def test_listener_timeout_accept_returns_none(tcp):
    with tcp.listen("127.0.0.1:0") as listener:
        listener.timeout = 0.1
        assert listener.accept() is None


def test_accepted_connection_timeout_from_config(tcp):
    config.COMMTIMEOUT = 3.5
    with tcp.listen("127.0.0.1:0") as listener:
        with tcp.connect(listener.location) as client, listener.accept() as server:
            assert server.timeout == 3.5
            assert client.timeout is None
    config.COMMTIMEOUT = 0.0
    with tcp.listen("127.0.0.1:0") as listener:
        with tcp.connect(listener.location, timeout=0.0) as client, listener.accept() as server:
            assert server.timeout is None and client.timeout is None


def test_close_wakes_blocked_accept(tcp):
    listener = tcp.listen("127.0.0.1:0")
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(listener.accept())
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.2)
    listener.close()
    thread.join(WAIT)
    assert not thread.is_alive(), "accept() stayed blocked after close()"
    assert len(outcome) == 1
    assert outcome[0] is None or isinstance(outcome[0], ConnectionClosedError)
    with pytest.raises(ConnectionClosedError):
        listener.accept()
    listener.close()  # idempotent


# -- recv semantics -------------------------------------------------------------------------


def test_recv_exact_sizes_across_many_sends(pair):
    client, server = pair
    data = bytes(range(256)) * 400  # 102400 bytes
    sender = threading.Thread(target=lambda: [client.send(data[i : i + 1000]) for i in range(0, len(data), 1000)])
    sender.start()
    got = [server.recv(n) for n in (1, 39, 0, 5000, 17, 97343)]
    sender.join(WAIT)
    assert [len(g) for g in got] == [1, 39, 0, 5000, 17, 97343]
    # small reads are bytes; a large one is a view of the one buffer it was received into
    assert all(type(g) is bytes for g in got[:5])
    assert isinstance(got[5], memoryview) and isinstance(got[5].obj, mmap.mmap)
    assert b"".join(got) == data


def test_large_payload_roundtrip(pair):
    client, server = pair
    payload = bytes(range(251)) * 20000  # ~5 MB: crosses several chunks
    sender = threading.Thread(target=client.send, args=(payload,))
    sender.start()
    assert server.recv(len(payload)) == payload
    sender.join(WAIT)
    assert not sender.is_alive()


def test_protocol_messages_over_connection(pair):
    client, server = pair
    for size in (0, 10, 40_000, 3_000_000):
        msg = protocol.SendingMessage(protocol.MSG_INVOKE, 0, 7, 1, b"p" * size, annotations={"XYZZ": b"ann"})
        sender = threading.Thread(target=client.send, args=(msg.data,))
        sender.start()
        got = protocol.recv_message(server)
        sender.join(WAIT)
        assert got.seq == 7 and got.annotations == {"XYZZ": b"ann"} and bytes(got.data) == b"p" * size
    assert server.pending() == 0


def test_negative_recv_size_refused(pair):
    with pytest.raises(ValueError):
        pair[1].recv(-1)


def test_recv_timeout_on_silent_peer(pair):
    client, server = pair
    server.timeout = 0.3
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        server.recv(10)
    assert time.monotonic() - started < WAIT


def test_timeout_keeps_partial_data(pair):
    client, server = pair
    server.timeout = 0.3
    client.send(b"first-")
    with pytest.raises(TimeoutError):
        server.recv(12)
    client.send(b"second")
    assert server.recv(12) == b"first-second"


def test_timeout_keeps_partial_data_of_large_read(pair):
    client, server = pair
    server.timeout = 0.3
    part = b"a" * 100_000
    client.send(part)
    with pytest.raises(TimeoutError):
        server.recv(200_000)
    client.send(b"b" * 100_000)
    assert server.recv(200_000) == part + b"b" * 100_000


def test_timeout_property():
    a, b = socket.socketpair()
    conn = sockets.SocketConnection(a)
    try:
        assert conn.timeout is None
        conn.timeout = 2
        assert conn.timeout == 2.0 and a.gettimeout() == 2.0
        conn.timeout = 0.0  # like config.COMMTIMEOUT: 0 means no timeout
        assert conn.timeout is None and a.gettimeout() is None
        with pytest.raises(ValueError):
            conn.timeout = -1
    finally:
        conn.close()
        b.close()


# -- closed peers and closed connections ---------------------------------------------------------


def test_peer_close_raises_connection_closed(pair):
    client, server = pair
    client.close()
    with pytest.raises(ConnectionClosedError, match="closed by the peer"):
        server.recv(1)


def test_peer_close_midway_raises_connection_closed(pair):
    client, server = pair
    client.send(b"12345")
    client.close()
    with pytest.raises(ConnectionClosedError, match="after 5 of 10 bytes"):
        server.recv(10)


def test_send_to_closed_peer_raises_connection_closed(pair):
    client, server = pair
    server.close()
    with pytest.raises(ConnectionClosedError):
        for _ in range(1000):
            client.send(b"x" * 65536)
            time.sleep(0.001)


def test_own_close_is_idempotent_and_final(pair):
    client, _ = pair
    client.close()
    client.close()
    assert client.closed and client.fileno() == -1
    with pytest.raises(ConnectionClosedError):
        client.recv(1)
    with pytest.raises(ConnectionClosedError):
        client.send(b"x")
    with pytest.raises(ConnectionClosedError):
        client.recv_some(1)
    assert client.pending() == 0
    assert client.peer_address is not None  # remembered from before the close


def test_close_from_another_thread_wakes_blocked_recv(pair):
    client, server = pair
    server.timeout = None
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            server.recv(10)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    time.sleep(0.2)
    server.close()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ConnectionClosedError)


def test_huge_declared_recv_reserves_no_memory(pair):
    client, server = pair
    client.send(b"tiny")

    def close_soon() -> None:
        time.sleep(0.3)
        client.close()

    closer = threading.Thread(target=close_soon)
    tracemalloc.start()
    try:
        closer.start()
        with pytest.raises(ConnectionClosedError):
            server.recv(1024 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        closer.join(WAIT)
    assert peak < 4 * sockets.CHUNK_SIZE, f"peak {peak} bytes for a 1 GB declared read"


def test_huge_declared_recv_times_out_without_memory(pair):
    client, server = pair
    server.timeout = 0.3
    client.send(b"tiny")
    tracemalloc.start()
    try:
        with pytest.raises(TimeoutError):
            server.recv(1024 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * sockets.CHUNK_SIZE


# -- recv_some and pending ---------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_recv_some_and_pending(pair, timeout):
    client, server = pair
    server.timeout = timeout
    assert server.recv_some(100) is None  # nothing there yet, and no blocking
    assert server.pending() == 0
    client.send(b"0123456789" * 10)
    assert server.recv(10) == b"0123456789"  # the read-ahead took the rest in
    assert server.pending() == 90
    assert server.recv_some(30) == b"0123456789" * 3
    assert server.pending() == 60
    assert server.recv_some(1000) == b"0123456789" * 6
    assert server.pending() == 0
    assert server.recv_some(10) is None
    assert server.timeout == timeout  # recv_some leaves the timeout alone
    client.send(b"abc")
    deadline = time.monotonic() + WAIT
    got = None
    while got is None and time.monotonic() < deadline:
        with selectors.DefaultSelector() as sel:
            sel.register(server.fileno(), selectors.EVENT_READ)
            sel.select(0.5)
        got = server.recv_some(10)
    assert got == b"abc"
    client.close()
    deadline = time.monotonic() + WAIT
    while (got := server.recv_some(10)) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == b""  # end of stream


def test_pending_data_invisible_to_selector(pair):
    client, server = pair
    client.send(b"header+payload")
    assert server.recv(6) == b"header"
    with selectors.DefaultSelector() as sel:
        sel.register(server.fileno(), selectors.EVENT_READ)
        assert sel.select(0.1) == []  # why engines must check pending()
    assert server.pending() == 8
    assert server.recv(8) == b"+payload"


def test_send_parts_and_large_recv_deliver_the_stream_intact(pair):
    # 6 MiB through a socket buffer far smaller forces partial gathering writes, and the
    # receiving side's large-read path (an anonymous map filled in place)
    client, server = pair
    header, payload = b"H" * 40, bytes(range(256)) * (6 * 4096)
    sender = threading.Thread(target=client.send_parts, args=((header, payload, b"tail"),))
    sender.start()
    assert server.recv(40) == header
    got = server.recv(len(payload))
    assert len(got) > sockets.CHUNK_SIZE and bytes(got) == payload
    assert server.recv(4) == b"tail"
    sender.join(WAIT)
    assert not sender.is_alive()


def test_large_recv_keeps_partial_data_after_a_timeout(pair):
    client, server = pair
    server.timeout = 0.2
    size = sockets.CHUNK_SIZE * 2
    client.send(b"a" * 1000)
    with pytest.raises(TimeoutError):
        server.recv(size)
    client.send(b"b" * (size - 1000))
    assert bytes(server.recv(size)) == b"a" * 1000 + b"b" * (size - 1000)


def test_large_reads_reuse_their_buffer_only_once_it_is_free(pair):
    # the buffer of a large read is used again for the next one (its pages are in place
    # already), but never while any view of the previous data is still alive
    client, server = pair
    size = LARGE_READ_SIZE * 4
    first, second, third = (bytes([n]) * size for n in (1, 2, 3))
    sender = threading.Thread(target=lambda: [client.send(d) for d in (first, second, third)])
    sender.start()
    held = server.recv(size)
    kept = held[10:20]  # a slice alone keeps the buffer in use too
    block = held.obj
    del held
    got = server.recv(size)
    assert got.obj is not block, "a buffer still in use was reused"
    assert bytes(kept) == first[10:20] and bytes(got) == second
    del kept
    again = got.obj
    del got
    last = server.recv(size)
    assert last.obj is again and bytes(last) == third
    sender.join(WAIT)
    assert not sender.is_alive()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"])
def test_address_literals_resolve_as_getaddrinfo_does_without_calling_it(host, monkeypatch):
    from pyrite.transports import tcp as tcp_module

    expected = socket.getaddrinfo(host, 4321, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP, 0)[:1]
    monkeypatch.setattr(tcp_module.socket, "getaddrinfo", None)  # must not be called
    assert tcp_module._resolve(host, 4321, passive=False) == expected


@pytest.mark.parametrize("host", ["localhost", "127.1", "::1%lo"])
def test_other_hosts_are_resolved_by_getaddrinfo(host, monkeypatch):
    from pyrite.transports import tcp as tcp_module

    asked: list[str] = []
    real = socket.getaddrinfo

    def recording(name, *args):
        asked.append(name)
        return real(name, *args)

    monkeypatch.setattr(tcp_module.socket, "getaddrinfo", recording)
    try:
        tcp_module._resolve(host, 4321, passive=False)
    except CommunicationError:
        pass  # a scope id this machine has no interface for
    assert asked == [host]

"""The server engines (SERVERTYPE "thread" and "multiplex") under real daemons on loopback,
called by pyrite's Proxy and by Pyro5 5.17's Proxy: concurrency, idle clients, hand-back,
disconnect and housekeeping hooks, shutdown and close, external event loops, combine, TLS;
plus the frame reader and the worker pool on their own."""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import Pyro5.client
import Pyro5.errors
import pytest
from pyrite.core import plugins, protocol
from pyrite.core.config import config
from pyrite.core.daemon import Daemon
from pyrite.core.engines import engine_class
from pyrite.core.engines.base import BIG_READ_SIZE, FrameReader
from pyrite.core.engines.multiplex import MultiplexEngine
from pyrite.core.engines.threadpool import LINGER, ThreadPoolEngine
from pyrite.core.errors import CommunicationError, MessageTooLargeError, ProtocolError, PyroError
from pyrite.core.exposure import behavior, expose
from Pyro5 import config as pyro5_config

from tests.support import JOIN, pyrite_proxy, pyro5_proxy, running, wait_for

HOST = "127.0.0.1"
CERTS = Path(__file__).resolve().parent.parent / "transports" / "certs"


# -- set-up ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _settings():
    config.POLLTIMEOUT = 0.1
    config.COMMTIMEOUT = 5.0
    saved = (pyro5_config.COMMTIMEOUT, pyro5_config.SERIALIZER)
    pyro5_config.COMMTIMEOUT = 5.0
    pyro5_config.SERIALIZER = "serpent"
    yield
    pyro5_config.COMMTIMEOUT, pyro5_config.SERIALIZER = saved


@pytest.fixture(params=["thread", "multiplex"])
def servertype(request):
    config.SERVERTYPE = request.param
    return request.param


@pytest.fixture(params=["pyrite", "pyro5"])
def make_proxy(request):
    return {"pyrite": pyrite_proxy, "pyro5": pyro5_proxy}[request.param]


def worker_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pyrite-worker") and t.is_alive()]


@expose
class Service:
    def __init__(self):
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.daemon = None

    def add(self, a, b):
        return a + b

    def echo(self, value):
        return value

    def wait_gate(self, timeout):
        self.entered.set()
        return self.gate.wait(timeout)

    def open_gate(self):
        self.gate.set()
        return True

    def stop_daemon(self):
        self.daemon.shutdown()
        return "stopping"


@expose
@behavior(instance_mode="session")
class SessionThing:
    def __init__(self):
        self.count = 0

    def increment(self):
        self.count += 1
        return id(self), self.count


def make_daemon(cls=Daemon, **kwargs):
    kwargs.setdefault("host", HOST)
    daemon = cls(**kwargs)
    service = Service()
    service.daemon = daemon
    uri = daemon.register(service, "service")
    return daemon, service, uri


# -- the engine classes --------------------------------------------------------------------------


def test_engine_class_by_servertype():
    assert engine_class("thread") is ThreadPoolEngine
    assert engine_class("multiplex") is MultiplexEngine
    with pytest.raises(PyroError, match="invalid server type"):
        engine_class("forking")


def test_daemon_uses_the_configured_engine(servertype):
    daemon, _, _ = make_daemon()
    with daemon:
        assert type(daemon.transportServer) is engine_class(servertype)
        assert daemon.locationStr == daemon.transportServer.location
        assert daemon.locationStr.startswith(HOST + ":")
        assert repr(daemon.transportServer).startswith(f"<{type(daemon.transportServer).__name__} on {HOST}:")


def test_bad_pool_sizes_are_refused_before_listening():
    config.SERVERTYPE = "thread"
    config.THREADPOOL_SIZE, config.THREADPOOL_SIZE_MIN = 2, 5
    before = len(worker_threads())
    with pytest.raises(ValueError, match="min_size 5 exceeds its size 2"):
        Daemon(host=HOST)
    assert len(worker_threads()) == before


# -- calls -----------------------------------------------------------------------------------


def test_calls_small_and_large(servertype, make_proxy):
    daemon, _, uri = make_daemon()
    big = "x" * (3 * 1024 * 1024 + 17)  # several reads and a partial last one
    with running(daemon), make_proxy(uri) as proxy:
        assert proxy.add(2, 3) == 5
        assert proxy.echo(big) == big
        assert [proxy.add(i, i) for i in range(50)] == [2 * i for i in range(50)]


def test_compressed_requests(servertype, make_proxy):
    daemon, _, uri = make_daemon()
    saved = pyro5_config.COMPRESSION
    config.COMPRESSION = pyro5_config.COMPRESSION = True
    try:
        with running(daemon), make_proxy(uri) as proxy:
            assert proxy.echo("*" * 5000) == "*" * 5000
    finally:
        pyro5_config.COMPRESSION = saved


def test_unix_socket(servertype, tmp_path):
    path = str(tmp_path / "engine.sock")
    daemon, _, uri = make_daemon(host=None, unixsocket=path)
    with running(daemon), pyrite_proxy(uri) as proxy:
        assert os.path.exists(path)
        assert proxy.add(1, 1) == 2
        with pyro5_proxy(uri) as proxy5:
            assert proxy5.add(2, 2) == 4
    assert not os.path.exists(path)


def _has_ipv6():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="this host has no IPv6 loopback (::1)")
def test_ipv6(servertype):
    daemon, _, uri = make_daemon(host="::1")
    with running(daemon), pyrite_proxy(uri) as proxy:
        assert daemon.locationStr.startswith("[::1]:")
        assert proxy.add(1, 2) == 3


def test_pipelined_oneway_messages_in_one_read(servertype):
    """Several messages that arrive in one read are all handled, in order."""
    daemon, _, uri = make_daemon()
    received = []

    @expose
    class Sink:
        def put(self, value):
            received.append(value)

    sink_uri = daemon.register(Sink(), "sink")
    with running(daemon), pyro5_proxy(sink_uri) as proxy:
        proxy._pyroBind()
        proxy._pyroOneway.add("put")
        for i in range(30):
            proxy.put(i)
        assert wait_for(lambda: len(received) == 30)
        assert sorted(received) == list(range(30))


def test_requests_just_before_a_hang_up_are_served(servertype):
    """Oneway calls sent right before the client closes still run (end of stream comes after them)."""
    daemon, _, uri = make_daemon()
    received = []

    @expose
    class Sink:
        def put(self, value):
            received.append(value)

    daemon.register(Sink(), "sink")
    serpent = plugins.get_serializer("serpent")
    with running(daemon):
        sock = socket.create_connection((HOST, uri.port), timeout=5)
        with sock:
            sock.sendall(
                protocol.SendingMessage(
                    protocol.MSG_CONNECT, 0, 0, 1, serpent.dumps({"handshake": "hi", "object": "sink"})
                ).data
            )
            reply = protocol.recv_message(_SocketReader(sock))
            assert reply.type == protocol.MSG_CONNECTOK
            calls = b"".join(
                protocol.SendingMessage(
                    protocol.MSG_INVOKE, protocol.FLAGS_ONEWAY, seq, 1, serpent.dumpsCall("sink", "put", (seq,), {})
                ).data
                for seq in range(1, 6)
            )
            sock.sendall(calls)
            sock.shutdown(socket.SHUT_WR)
        assert wait_for(lambda: len(received) == 5)
        assert sorted(received) == [1, 2, 3, 4, 5]


class _SocketReader:
    def __init__(self, sock):
        self.sock = sock

    def recv(self, size):
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data


# -- the thread pool engine --------------------------------------------------------------------


def test_thread_engine_runs_calls_of_different_clients_concurrently():
    config.SERVERTYPE = "thread"
    daemon, service, uri = make_daemon()
    result = []

    def wait():
        with pyrite_proxy(uri) as waiter:
            result.append(waiter.wait_gate(5.0))

    with running(daemon), pyro5_proxy(uri) as opener:
        thread = threading.Thread(target=wait)
        thread.start()
        assert service.entered.wait(5.0)
        assert opener.open_gate() is True  # would deadlock if the first call blocked the engine
        thread.join(JOIN)
        assert result == [True]


def test_more_clients_than_workers():
    """Connections do not pin workers: twelve clients share a pool of two."""
    config.SERVERTYPE = "thread"
    config.THREADPOOL_SIZE = 2
    config.THREADPOOL_SIZE_MIN = 1
    daemon, _, uri = make_daemon()
    proxies = [pyro5_proxy(uri) if i % 2 else pyrite_proxy(uri) for i in range(12)]
    try:
        with running(daemon):
            for rounds in range(3):
                for i, proxy in enumerate(proxies):
                    assert proxy.add(i, rounds) == i + rounds
            assert daemon.transportServer.pool.num_workers <= 2
            errors = []

            def hammer(proxy, base):
                try:
                    proxy._pyroClaimOwnership()
                    for i in range(20):
                        assert proxy.add(base, i) == base + i
                except Exception as exc:  # collected and asserted below
                    errors.append(exc)

            threads = [threading.Thread(target=hammer, args=(p, n)) for n, p in enumerate(proxies)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(JOIN)
            assert not errors
            assert daemon.transportServer.pool.num_workers <= 2
    finally:
        for proxy in proxies:
            proxy._pyroClaimOwnership()
            proxy._pyroRelease()


def test_quiet_client_goes_back_to_the_selector_and_keeps_its_session():
    config.SERVERTYPE = "thread"
    config.THREADPOOL_SIZE = 1
    config.THREADPOOL_SIZE_MIN = 1
    daemon, _, _ = make_daemon()
    uri = daemon.register(SessionThing, "session")
    with running(daemon), pyrite_proxy(uri) as first, pyro5_proxy(uri) as second:
        ident1, count = first.increment()
        assert count == 1
        engine = daemon.transportServer
        # after LINGER without a request the client is watched by the selector again...
        assert wait_for(lambda: len(engine.sockets) == 3, 5.0)  # listener, wakeup, the client
        # ...and the single worker is free for another client
        ident2, count = second.increment()
        assert (ident2 != ident1, count) == (True, 1)
        time.sleep(LINGER * 2)
        assert first.increment() == (ident1, 2)
        assert second.increment() == (ident2, 2)


def test_new_clients_are_refused_when_the_queue_is_full():
    config.SERVERTYPE = "thread"
    config.THREADPOOL_SIZE = 1
    config.THREADPOOL_SIZE_MIN = 1
    daemon, service, uri = make_daemon()
    with running(daemon):
        busy = pyrite_proxy(uri)
        waiting = pyrite_proxy(uri)
        busy_result, waiting_result = [], []

        def claim_and(proxy, call):
            proxy._pyroClaimOwnership()
            call()

        t1 = threading.Thread(target=claim_and, args=(busy, lambda: busy_result.append(busy.wait_gate(8.0))))
        t1.start()
        assert service.entered.wait(5.0)  # the only worker is now busy
        t2 = threading.Thread(target=claim_and, args=(waiting, lambda: waiting_result.append(waiting.add(1, 2))))
        t2.start()  # its handshake waits in the queue (limit 1)
        pool = daemon.transportServer.pool
        assert wait_for(lambda: pool.queued == 1)
        refused = pyro5_proxy(uri)
        with pytest.raises(Pyro5.errors.CommunicationError, match="no free worker thread"):
            refused._pyroBind()
        refused2 = pyrite_proxy(uri)
        with pytest.raises(CommunicationError, match="no free worker thread"):
            refused2._pyroBind()
        service.gate.set()
        t1.join(JOIN)
        t2.join(JOIN)
        assert busy_result == [True] and waiting_result == [3]
        with pyrite_proxy(uri) as later:
            assert later.add(2, 2) == 4
        for proxy in (busy, waiting):
            proxy._pyroClaimOwnership()
            proxy._pyroRelease()


# -- hooks ---------------------------------------------------------------------------------


class CountingDaemon(Daemon):
    def __init__(self, *args, **kwargs):
        self.disconnected = []
        self.housekeeps = 0
        super().__init__(*args, **kwargs)

    def validateHandshake(self, conn, data):
        if data == "let me out":
            raise ValueError("no entry")
        return super().validateHandshake(conn, data)

    def clientDisconnect(self, conn):
        self.disconnected.append(conn)

    def housekeeping(self):
        self.housekeeps += 1


def test_client_disconnect_once_per_client(servertype):
    daemon, _, uri = make_daemon(CountingDaemon)
    with running(daemon):
        proxies = [pyrite_proxy(uri) if i % 2 else pyro5_proxy(uri) for i in range(5)]
        for proxy in proxies:
            assert proxy.add(1, 1) == 2
        refused = pyrite_proxy(uri)
        refused._pyroHandshake = "let me out"
        with pytest.raises(CommunicationError, match="no entry"):
            refused._pyroBind()
        for proxy in proxies[:3]:
            proxy._pyroRelease()
        assert wait_for(lambda: len(daemon.disconnected) == 3)
        time.sleep(0.2)
        assert len(daemon.disconnected) == 3  # the refused client never got in
    # the two still connected are disconnected when the daemon closes
    assert len(daemon.disconnected) == 5
    assert len(set(map(id, daemon.disconnected))) == 5
    for proxy in proxies[3:]:
        proxy._pyroRelease()


def test_housekeeping_runs_every_polltimeout(servertype):
    daemon, _, uri = make_daemon(CountingDaemon)
    with running(daemon), pyrite_proxy(uri) as proxy:
        assert wait_for(lambda: daemon.housekeeps >= 3, 5.0)
        assert proxy.add(1, 2) == 3  # and it stays responsive
        before = daemon.housekeeps
        time.sleep(0.5)
        assert before < daemon.housekeeps < before + 20  # periodic, not on every loop pass


# -- shutdown and close --------------------------------------------------------------------


def test_shutdown_from_another_thread_is_prompt(servertype, start_daemon):
    daemon, _, uri = make_daemon()
    loop = start_daemon(daemon)
    proxy = pyrite_proxy(uri)
    assert proxy.add(1, 2) == 3
    half = socket.create_connection((HOST, uri.port), timeout=5)
    half.sendall(b"PYRO\x01\xf6")  # half a header: must not hold anything up
    time.sleep(0.2)
    started = time.monotonic()
    daemon.shutdown()
    assert loop.join()
    assert time.monotonic() - started < JOIN
    with pytest.raises(CommunicationError):
        proxy.add(1, 2)
    with pytest.raises(OSError):
        socket.create_connection((HOST, uri.port), timeout=2).close()
    half.settimeout(5)
    assert half.recv(10) == b""  # the server closed it
    half.close()
    proxy._pyroRelease()


def test_shutdown_from_inside_a_call(servertype, make_proxy, start_daemon):
    daemon, _, uri = make_daemon()
    loop = start_daemon(daemon)
    with make_proxy(uri) as proxy:
        assert proxy.stop_daemon() == "stopping"  # the caller still gets its reply
    assert loop.join()
    assert wait_for(lambda: not worker_threads())


def test_close_releases_everything(servertype, tmp_path, start_daemon):
    path = str(tmp_path / "close.sock")
    daemon, _, uri = make_daemon(host=None, unixsocket=path)
    engine = daemon.transportServer
    loop = start_daemon(daemon)
    proxies = [pyrite_proxy(uri) for _ in range(3)]
    for proxy in proxies:
        assert proxy.add(1, 1) == 2
    daemon.close()
    assert loop.join()
    assert not os.path.exists(path)
    assert engine.clients == []
    assert engine.sockets == []
    assert engine._wake_r.fileno() == -1 and engine._wake_w.fileno() == -1
    assert wait_for(lambda: not worker_threads())
    for proxy in proxies:
        with pytest.raises(CommunicationError):
            proxy.add(1, 1)
        proxy._pyroRelease()
    engine.close()  # idempotent


def test_loop_condition_is_checked(servertype, start_daemon):
    daemon, _, uri = make_daemon()
    stop = threading.Event()
    loop = start_daemon(daemon, loopCondition=lambda: not stop.is_set())
    with pyrite_proxy(uri) as proxy:
        assert proxy.add(1, 2) == 3
    stop.set()
    assert loop.join()  # within about POLLTIMEOUT


# -- external event loops and combine -------------------------------------------------------------


def test_external_event_loop(servertype, make_proxy):
    daemon, _, uri = make_daemon()
    stop = threading.Event()
    errors = []

    def external_loop():
        try:
            while not stop.is_set():
                sockets = daemon.sockets
                ready, _, _ = select.select(sockets, [], [], 0.1)
                if ready:
                    daemon.events(ready)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=external_loop, daemon=True)
    thread.start()
    try:
        assert daemon.transportServer.listener in daemon.sockets
        with make_proxy(uri) as one, make_proxy(uri) as two:
            for i in range(3):
                assert one.add(i, 1) == i + 1
                assert two.add(i, 2) == i + 2
                time.sleep(LINGER * 2)  # thread engine: workers hand the clients back in between
            assert len(daemon.sockets) >= 4  # listener, wakeup, and both idle clients
    finally:
        stop.set()
        thread.join(JOIN)
        daemon.close()
    assert not errors


@pytest.mark.parametrize(
    "first, second",
    [("thread", "thread"), ("multiplex", "multiplex"), ("thread", "multiplex"), ("multiplex", "thread")],
)
def test_combine_serves_two_daemons_in_one_loop(first, second, make_proxy):
    config.SERVERTYPE = first
    main, _, uri_main = make_daemon()
    config.SERVERTYPE = second
    other, _, uri_other = make_daemon(CountingDaemon)
    main.combine(other)
    with running(main):
        with make_proxy(uri_main) as p1, make_proxy(uri_other) as p2:
            for i in range(3):
                assert p1.add(i, 10) == i + 10
                assert p2.add(i, 20) == i + 20
                time.sleep(LINGER * 2)
        assert wait_for(lambda: other.housekeeps >= 2)  # the combined daemon's housekeeping too
        assert wait_for(lambda: len(other.disconnected) == 1)
    other.close()


class UdpEcho:
    """A non-engine server with Pyro5's ``sockets``/``events`` shape (like a broadcast responder)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(1.0)

    @property
    def sockets(self):
        return [self.sock]

    def events(self, ready):
        for sock in ready:
            data, addr = sock.recvfrom(100)
            sock.sendto(data.upper(), addr)


def test_combine_with_a_foreign_server(servertype):
    daemon, _, uri = make_daemon()
    echo = UdpEcho()
    daemon.transportServer.combine_loop(echo)
    with running(daemon), pyrite_proxy(uri) as proxy, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5.0)
        client.sendto(b"hello", echo.sock.getsockname())
        assert client.recvfrom(100)[0] == b"HELLO"
        assert proxy.add(1, 2) == 3
    echo.sock.close()
    with make_daemon()[0] as other, pytest.raises(TypeError):
        other.transportServer.combine_loop(object())


# -- TLS -----------------------------------------------------------------------------------


def test_tls(servertype):
    config.SSL = True
    config.SSL_SERVERCERT = str(CERTS / "server.crt")
    config.SSL_SERVERKEY = str(CERTS / "server.key")
    config.SSL_CACERTS = str(CERTS / "ca.crt")
    daemon, _, uri = make_daemon()
    big = "tls" * 300_000  # many TLS records: decrypted bytes wait in the TLS buffer
    saved = (pyro5_config.SSL, pyro5_config.SSL_CACERTS)
    pyro5_config.SSL, pyro5_config.SSL_CACERTS = True, str(CERTS / "ca.crt")
    try:
        with running(daemon), pyrite_proxy(uri) as proxy, pyro5_proxy(uri) as proxy5:
            assert proxy.add(1, 2) == 3
            assert proxy.echo(big) == big
            assert proxy5.echo(big) == big
            time.sleep(LINGER * 2)
            assert proxy.add(2, 3) == 5
            assert proxy5.add(3, 3) == 6
    finally:
        pyro5_config.SSL, pyro5_config.SSL_CACERTS = saved


# -- the frame reader ----------------------------------------------------------------------


def _message(payload=b"payload", msgtype=protocol.MSG_INVOKE, seq=1, annotations=None):
    return protocol.SendingMessage(msgtype, 0, seq, 1, payload, annotations, compress=False).data


def _complete(frames):
    out = []
    for msg, payload in frames:
        msg.add_payload(payload)
        out.append((msg.type, msg.seq, bytes(msg.data), msg.annotations))
    return out


def test_frame_reader_byte_by_byte_and_pipelined():
    parts = [_message(b"one", seq=1), _message(b"two" * 100, seq=2, annotations={"XTRA": b"ann"}), _message(b"", seq=3)]
    stream = b"".join(parts)
    boundaries = {len(parts[0]), len(parts[0]) + len(parts[1]), len(stream)}
    reader = FrameReader()
    frames = []
    for i in range(len(stream)):
        frames += reader.feed(stream[i : i + 1])
        assert reader.partial == (i + 1 not in boundaries)
    expected = [
        (protocol.MSG_INVOKE, 1, b"one", {}),
        (protocol.MSG_INVOKE, 2, b"two" * 100, {"XTRA": b"ann"}),
        (protocol.MSG_INVOKE, 3, b"", {}),
    ]
    assert _complete(frames) == expected
    reader = FrameReader()
    assert _complete(reader.feed(stream)) == expected
    reader = FrameReader()
    first = reader.feed(stream[:50])
    assert _complete(first + reader.feed(stream[50:])) == expected


def test_frame_reader_refuses_garbage_early():
    with pytest.raises(ProtocolError, match="not a PYRO message"):
        FrameReader().feed(b"GET ")
    with pytest.raises(ProtocolError, match="protocol version"):
        FrameReader().feed(b"PYRO\x01\xf5")
    bad_magic = bytearray(_message())
    bad_magic[38:40] = b"\x12\x34"
    with pytest.raises(ProtocolError, match="magic"):
        FrameReader().feed(bytes(bad_magic))


def test_frame_reader_checks_size_before_payload_and_reserves_nothing():
    config.MAX_MESSAGE_SIZE = 1000
    header = bytearray(_message(b"x"))[: protocol.HEADER_SIZE]
    struct.pack_into("!I", header, 12, 1001)
    with pytest.raises(MessageTooLargeError):
        FrameReader().feed(bytes(header))
    config.MAX_MESSAGE_SIZE = 2**31
    struct.pack_into("!I", header, 12, 2**30)
    reader = FrameReader()
    assert reader.feed(bytes(header)) == []
    assert reader.want() <= BIG_READ_SIZE
    assert reader.feed(b"x" * 1000) == [] and reader.partial


def test_frame_reader_leaves_decompression_to_add_payload():
    config.MAX_MESSAGE_SIZE = 10_000
    bomb = zlib.compress(b"\0" * 1_000_000)
    data = bytearray(_message(bomb))
    struct.pack_into("!H", data, 8, protocol.FLAGS_COMPRESSED)
    [(msg, payload)] = FrameReader().feed(bytes(data))
    with pytest.raises(MessageTooLargeError):
        msg.add_payload(payload)

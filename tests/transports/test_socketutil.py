"""pyrite.transports.socketutil: Pyro5's socketutil functions, on real loopback and Unix sockets."""

from __future__ import annotations

import inspect
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import Pyro5.errors
import Pyro5.socketutil
import pytest
from pyrite.core.config import config
from pyrite.core.errors import CommunicationError, ConnectionClosedError, TimeoutError
from pyrite.transports import sockets, socketutil

CERTS = Path(__file__).parent / "certs"
WAIT = 10.0
PYRO5_FUNCTIONS = [
    "get_ip_address",
    "get_interface",
    "create_socket",
    "create_bc_socket",
    "send_data",
    "receive_data",
    "set_reuseaddr",
    "set_nodelay",
    "set_keepalive",
    "set_noinherit",
    "find_probably_unused_port",
    "bind_unused_port",
    "interrupt_socket",
    "get_ssl_context",
    "family_str",
]


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback on this host")


@pytest.fixture
def pair():
    """A connected (client, server-side) pair of TCP sockets on 127.0.0.1, both with timeouts."""
    listener = socketutil.create_socket(bind=("127.0.0.1", 0), timeout=WAIT)
    client = socketutil.create_socket(connect=listener.getsockname(), timeout=WAIT)
    server_side, _ = listener.accept()
    server_side.settimeout(WAIT)
    yield client, server_side
    for s in (client, server_side, listener):
        s.close()


@pytest.mark.parametrize("name", PYRO5_FUNCTIONS)
def test_same_signature_as_pyro5(name):
    ours = inspect.signature(getattr(socketutil, name))
    theirs = inspect.signature(getattr(Pyro5.socketutil, name))
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()
    ]


def test_socket_connection_signature_and_errno_lists_match_pyro5():
    ours = inspect.signature(socketutil.SocketConnection)
    theirs = inspect.signature(Pyro5.socketutil.SocketConnection)
    assert list(ours.parameters) == list(theirs.parameters)
    for name in ("ERRNO_RETRIES", "ERRNO_BADF", "ERRNO_ENOTSOCK", "ERRNO_EADDRNOTAVAIL", "ERRNO_EADDRINUSE"):
        assert sorted(getattr(socketutil, name)) == sorted(getattr(Pyro5.socketutil, name)), name
    assert socketutil.USE_MSG_WAITALL == Pyro5.socketutil.USE_MSG_WAITALL


@pytest.mark.parametrize(
    "host, kwargs",
    [
        ("127.0.0.1", {}),
        ("::1", {}),
        ("localhost", {"version": 4}),
        ("localhost", {"version": 0}),
        ("127.0.0.1", {"workaround127": True}),
        ("localhost", {"workaround127": True, "version": 4}),
    ],
)
def test_get_ip_address_matches_pyro5(host, kwargs):
    ours = socketutil.get_ip_address(host, **kwargs)
    assert ours == Pyro5.socketutil.get_ip_address(host, **kwargs)
    assert isinstance(ours, (ipaddress.IPv4Address, ipaddress.IPv6Address))


def test_get_ip_address_follows_prefer_ip_version_and_refuses_bad_versions():
    config.PREFER_IP_VERSION = 4
    assert socketutil.get_ip_address("localhost") == ipaddress.ip_address("127.0.0.1")
    with pytest.raises(ValueError):
        socketutil.get_ip_address("localhost", version=5)
    with pytest.raises(ValueError):
        Pyro5.socketutil.get_ip_address("localhost", version=5)


@needs_ipv6
def test_get_ip_address_ipv6_and_interfaces():
    assert socketutil.get_ip_address("::1", version=6) == ipaddress.ip_address("::1")
    assert socketutil.get_interface("::1") == Pyro5.socketutil.get_interface("::1")


def test_get_interface_matches_pyro5():
    ours = socketutil.get_interface("127.0.0.1")
    assert ours == Pyro5.socketutil.get_interface("127.0.0.1")
    assert ours.ip == ipaddress.ip_address("127.0.0.1")
    assert socketutil.get_interface(ipaddress.ip_address("127.0.0.1")) == ours


def test_create_socket_bind_connect_send_receive(pair):
    client, server_side = pair
    socketutil.send_data(client, b"hello there")
    assert socketutil.receive_data(server_side, 11) == b"hello there"
    big = bytes(range(256)) * 5000  # larger than one socket buffer: several recv calls
    sender = threading.Thread(target=socketutil.send_data, args=(server_side, big))
    sender.start()
    assert bytes(socketutil.receive_data(client, len(big))) == big
    sender.join(WAIT)
    assert not sender.is_alive()


def test_create_socket_options():
    plain = socketutil.create_socket(nodelay=False, keepalive=False)
    with plain:
        assert plain.family == socket.AF_INET and plain.type == socket.SOCK_STREAM
        assert plain.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        assert plain.gettimeout() is None  # timeout=-1: left blocking
    listener = socketutil.create_socket(bind=("127.0.0.1", 0), reuseaddr=True, noinherit=True, timeout=3.5)
    with listener:
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1  # bind also listens
        assert listener.get_inheritable() is False
        assert listener.gettimeout() == 3.5
        client = socketutil.create_socket(connect=listener.getsockname(), timeout=0)
        with client:
            assert client.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert client.gettimeout() is None  # 0 means blocking, as in Pyro5
    with socketutil.create_socket(bind=("127.0.0.1", 0), reuseaddr=False) as other:
        assert other.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
    with pytest.raises(ValueError):
        socketutil.create_socket(bind=("127.0.0.1", 0), connect=("127.0.0.1", 1))
    with pytest.raises(ValueError):
        socketutil.create_socket(bind=("127.0.0.1", 0), ipv6=True)


def test_create_socket_connect_refused_raises_oserror():
    port = socketutil.find_probably_unused_port()
    with pytest.raises(OSError):
        socketutil.create_socket(connect=("127.0.0.1", port), timeout=WAIT)


@needs_ipv6
def test_create_socket_ipv6():
    listener = socketutil.create_socket(bind=("::1", 0), timeout=WAIT)
    with listener:
        assert listener.family == socket.AF_INET6
        client = socketutil.create_socket(connect=("::1", listener.getsockname()[1]), timeout=WAIT)
        with client:
            conn, _ = listener.accept()
            with conn:
                socketutil.send_data(client, b"six")
                assert socketutil.receive_data(conn, 3) == b"six"
    with socketutil.create_socket(ipv6=True) as six:
        assert six.family == socket.AF_INET6
    config.PREFER_IP_VERSION = 6
    with socketutil.create_socket(ipv6=None) as preferred:
        assert preferred.family == socket.AF_INET6


def test_create_socket_unix(tmp_path):
    path = str(tmp_path / "s.sock")
    listener = socketutil.create_socket(bind=path, timeout=WAIT)
    with listener:
        assert listener.family == socket.AF_UNIX
        client = socketutil.create_socket(connect=path, timeout=WAIT)
        with client:
            conn, _ = listener.accept()
            with conn:
                socketutil.send_data(conn, b"unix!")
                assert socketutil.receive_data(client, 5) == b"unix!"
                assert socketutil.family_str(client) == "Unix"


def test_create_socket_tls_with_get_ssl_context():
    socketutil._ssl_contexts.clear()
    try:
        server_ctx = socketutil.get_ssl_context(
            servercert=str(CERTS / "server.crt"), serverkey=str(CERTS / "server.key")
        )
        client_ctx = socketutil.get_ssl_context(cacerts=str(CERTS / "ca.crt"))
        assert server_ctx.verify_mode == ssl.CERT_NONE  # SSL_REQUIRECLIENTCERT is off
        assert client_ctx.verify_mode == ssl.CERT_REQUIRED and client_ctx.check_hostname
        # cached as in Pyro5: the same objects, whatever later calls ask for
        assert socketutil.get_ssl_context(servercert="ignored-now") is server_ctx
        assert socketutil.get_ssl_context() is client_ctx
        listener = socketutil.create_socket(bind=("127.0.0.1", 0), sslContext=server_ctx, timeout=WAIT)
        got: list = []

        def serve() -> None:
            conn, _ = listener.accept()  # the TLS handshake happens here
            with conn:
                got.append(socketutil.receive_data(conn, 6))
                socketutil.send_data(conn, b"secret")

        thread = threading.Thread(target=serve)
        thread.start()
        port = listener.getsockname()[1]
        client = socketutil.create_socket(connect=("localhost", port), sslContext=client_ctx, timeout=WAIT)
        with client:
            assert isinstance(client, ssl.SSLSocket)
            socketutil.send_data(client, b"shh..!")
            assert socketutil.receive_data(client, 6) == b"secret"
        thread.join(WAIT)
        assert not thread.is_alive() and got == [b"shh..!"]
        listener.close()
    finally:
        socketutil._ssl_contexts.clear()


def test_get_ssl_context_errors():
    socketutil._ssl_contexts.clear()
    with pytest.raises(ValueError):
        socketutil.get_ssl_context(servercert=str(CERTS / "server.crt"), clientcert=str(CERTS / "client.crt"))
    with pytest.raises(OSError):
        socketutil.get_ssl_context(servercert=str(CERTS / "missing.crt"))
    with pytest.raises(OSError):
        socketutil.get_ssl_context(clientcert=str(CERTS / "missing.crt"))
    config.SSL_REQUIRECLIENTCERT = True
    ctx = socketutil.get_ssl_context(servercert=str(CERTS / "server.crt"), serverkey=str(CERTS / "server.key"))
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    socketutil._ssl_contexts.clear()


def test_create_bc_socket_broadcasts_on_loopback():
    receiver = socketutil.create_bc_socket(bind=("127.0.0.1", 0), reuseaddr=True, timeout=WAIT)
    sender = socketutil.create_bc_socket(timeout=None)
    with receiver, sender:
        assert receiver.type == socket.SOCK_DGRAM
        assert receiver.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
        assert receiver.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert receiver.gettimeout() == WAIT and sender.gettimeout() is None
        sender.sendto(b"ping", receiver.getsockname())
        data, _ = receiver.recvfrom(100)
        assert data == b"ping"
    fixed_port = socketutil.find_probably_unused_port(socktype=socket.SOCK_DGRAM)
    with socketutil.create_bc_socket(bind=("127.0.0.1", fixed_port)) as fixed:
        assert fixed.getsockname()[1] == fixed_port
    with pytest.raises(ValueError):
        socketutil.create_bc_socket(bind="not-a-tuple")  # type: ignore[arg-type]


def test_receive_data_keeps_partial_data_when_peer_closes(pair):
    client, server_side = pair
    client.sendall(b"abc")
    client.close()
    with pytest.raises(ConnectionClosedError) as info:
        socketutil.receive_data(server_side, 10)
    assert bytes(info.value.partialData) == b"abc"
    # Pyro5 does the same against the same kind of socket
    assert isinstance(info.value, CommunicationError)


def test_receive_data_timeout(pair):
    client, server_side = pair
    server_side.settimeout(0.2)
    with pytest.raises(TimeoutError):
        socketutil.receive_data(server_side, 1)


def test_send_data_on_a_closed_peer_raises_connection_closed(pair):
    client, server_side = pair
    server_side.close()
    with pytest.raises(ConnectionClosedError):
        for _ in range(200):  # the first sends may still land in the kernel's buffer
            socketutil.send_data(client, b"x" * 65536)
    client.settimeout(None)
    with pytest.raises(ConnectionClosedError):
        for _ in range(200):
            socketutil.send_data(client, b"x" * 65536)


def test_set_option_functions():
    with socket.socket() as sock:
        socketutil.set_reuseaddr(sock)
        socketutil.set_nodelay(sock)
        socketutil.set_keepalive(sock)
        socketutil.set_noinherit(sock)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert not sock.get_inheritable()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        socketutil.set_nodelay(unix)  # not a TCP option: ignored, as in Pyro5
        socketutil.set_keepalive(unix)


def test_ports():
    port = socketutil.find_probably_unused_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # it really was free
    with socket.socket() as sock:
        bound = socketutil.bind_unused_port(sock)
        assert sock.getsockname() == ("127.0.0.1", bound)
    with socket.socket() as sock:
        assert socketutil.bind_unused_port(sock, ipaddress.ip_address("127.0.0.1")) == sock.getsockname()[1]
    with socket.socket(socket.AF_UNIX) as unix, pytest.raises(CommunicationError):
        socketutil.bind_unused_port(unix)


def test_interrupt_socket_wakes_a_blocked_accept():
    listener = socketutil.create_socket(bind=("127.0.0.1", 0))
    got: list = []

    def blocked() -> None:
        conn, _ = listener.accept()  # no timeout: only the interrupt gets it out
        with conn:
            conn.settimeout(WAIT)
            got.append(socketutil.receive_data(conn, 16))

    thread = threading.Thread(target=blocked)
    thread.start()
    socketutil.interrupt_socket(listener.getsockname())
    thread.join(WAIT)
    listener.close()
    assert not thread.is_alive() and got == [b"!" * 16]
    socketutil.interrupt_socket(("127.0.0.1", socketutil.find_probably_unused_port()))  # nobody there: no error


def test_pyro5_style_socket_connection(pair):
    client, server_side = pair
    ours = socketutil.SocketConnection(server_side, objectId="obj-1")
    peer = Pyro5.socketutil.SocketConnection(client, keep_open=True)  # Pyro5's own, on the other end
    ours.send(b"to pyro5")
    assert peer.recv(8) == b"to pyro5"
    peer.send(b"to pyrite")
    assert ours.recv(9) == b"to pyrite"
    assert ours.objectId == "obj-1" and ours.family() == "IPv4" and ours.getpeercert() is None
    assert ours.fileno() == server_side.fileno()
    ours.timeout = 1.5
    assert ours.gettimeout() == 1.5 == server_side.gettimeout()

    class Resource:
        closed = False

        def close(self) -> None:
            self.closed = True

    resource = Resource()
    ours.tracked_resources.add(resource)
    ours.pyroInstances[Resource] = resource
    kept = socketutil.SocketConnection(server_side, keep_open=True)
    kept.close()
    assert server_side.fileno() != -1  # keep_open: still open
    with ours:
        pass
    assert resource.closed and server_side.fileno() == -1 and ours.pyroInstances == {}
    with pytest.raises(Pyro5.errors.ConnectionClosedError):
        peer.recv(1)


def test_transport_connection_keeps_partial_data_too(pair):
    client, server_side = pair
    conn = sockets.SocketConnection(server_side, WAIT)
    client.sendall(b"half")
    client.close()
    with pytest.raises(ConnectionClosedError) as info:
        conn.recv(8)
    assert info.value.partialData == b"half"

"""The Unix-domain-socket transport, with sockets in tmp_path."""

from __future__ import annotations

import errno
import os
import socket
import sys
import uuid

import pytest
from pyrite.core import plugins, protocol
from pyrite.core.errors import CommunicationError, ConnectionClosedError
from pyrite.transports.unix import UnixTransport

WAIT = 10.0


@pytest.fixture
def unix() -> UnixTransport:
    return plugins.get_transport("./u:/any")


@pytest.fixture
def sockpath(tmp_path) -> str:
    return str(tmp_path / "pyrite.sock")


def test_serves_only_unix_locations():
    assert UnixTransport.serves("./u:/tmp/x")
    assert UnixTransport.serves("./u:relative.sock")
    assert not UnixTransport.serves("./u:")
    assert not UnixTransport.serves("localhost:9090")
    assert not UnixTransport.serves("/tmp/x")


def test_roundtrip_and_file_removed_on_close(unix, sockpath):
    listener = unix.listen("./u:" + sockpath)
    try:
        assert listener.location == "./u:" + sockpath
        assert os.path.exists(sockpath)
        with unix.connect(listener.location, timeout=WAIT) as client, listener.accept() as server:
            assert client.peer_address == sockpath
            assert server.local_address == sockpath
            msg = protocol.SendingMessage(protocol.MSG_INVOKE, 0, 3, 1, b"unix" * 50000)
            client.send(msg.data)
            got = protocol.recv_message(server)
            assert bytes(got.data) == b"unix" * 50000
            server.close()
            with pytest.raises(ConnectionClosedError):
                client.recv(1)
    finally:
        listener.close()
    assert not os.path.exists(sockpath)
    listener.close()  # idempotent


def test_stale_socket_file_is_replaced(unix, sockpath):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sockpath)
    stale.close()  # the file stays behind, nobody listens
    assert os.path.exists(sockpath)
    with unix.listen("./u:" + sockpath) as listener:
        with unix.connect(listener.location, timeout=WAIT) as client, listener.accept() as server:
            client.send(b"fresh")
            assert server.recv(5) == b"fresh"


def test_live_socket_is_not_taken_over(unix, sockpath):
    with unix.listen("./u:" + sockpath) as first:
        with pytest.raises(OSError, match="another server is listening there") as info:
            unix.listen("./u:" + sockpath)
        assert info.value.errno == errno.EADDRINUSE
        # the liveness probe was an empty connection; the first listener sees it end, then works on
        with first.accept() as probe:
            probe.timeout = WAIT
            with pytest.raises(ConnectionClosedError):
                probe.recv(1)
        with unix.connect(first.location, timeout=WAIT) as client, first.accept() as server:
            client.send(b"still here")
            assert server.recv(10) == b"still here"


def test_regular_file_is_never_removed(unix, tmp_path):
    path = tmp_path / "not-a-socket"
    path.write_text("precious")
    with pytest.raises(OSError, match="is not a socket"):
        unix.listen(f"./u:{path}")
    assert path.read_text() == "precious"


def test_close_leaves_a_replacement_socket_alone(unix, sockpath):
    first = unix.listen("./u:" + sockpath)
    os.unlink(sockpath)  # someone removed our file ...
    second = unix.listen("./u:" + sockpath)  # ... and another server took the path
    try:
        first.close()
        assert os.path.exists(sockpath)
        with unix.connect(second.location, timeout=WAIT) as client, second.accept() as server:
            client.send(b"2")
            assert server.recv(1) == b"2"
    finally:
        second.close()
    assert not os.path.exists(sockpath)


def test_connect_to_missing_socket(unix, tmp_path):
    with pytest.raises(CommunicationError, match="no such socket"):
        unix.connect(f"./u:{tmp_path / 'nothing'}", timeout=WAIT)


def test_listen_in_missing_directory_is_clear(unix, tmp_path):
    with pytest.raises(OSError, match="cannot listen on ./u:"):
        unix.listen(f"./u:{tmp_path / 'no' / 'dir.sock'}")


def test_recv_some_on_unix(unix, sockpath):
    with unix.listen("./u:" + sockpath) as listener:
        with unix.connect(listener.location, timeout=WAIT) as client, listener.accept() as server:
            assert server.recv_some(10) is None
            client.send(b"abc")
            server.timeout = WAIT
            assert server.recv(1) == b"a"
            assert server.pending() == 2
            assert server.recv_some(10) == b"bc"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the abstract socket namespace is Linux-only")
def test_abstract_namespace(unix):
    location = f"./u:\0pyrite-test-{uuid.uuid4().hex}"
    with unix.listen(location) as listener:
        assert listener.location == location
        with unix.connect(location, timeout=WAIT) as client, listener.accept() as server:
            assert client.peer_address == location[4:]
            client.send(b"abstract")
            assert server.recv(8) == b"abstract"
    with pytest.raises(CommunicationError):
        unix.connect(location, timeout=WAIT)

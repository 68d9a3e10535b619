"""Issue 8, item 4: deadlines (handshake incl. TLS, frame, idle), MAX_CONNECTIONS, accept back-off.

Silent, half-sent and TLS-silent connections are closed by the server on time; beyond
MAX_CONNECTIONS a client is refused at once with CONNECTFAIL; out of descriptors, the
server backs off and logs accept failures at most about once a second; and descriptors
come back once the hostile connections are gone.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import time

import pytest
from pyrite.core.config import config
from pyrite.core.errors import CommunicationError

from .conftest import (
    CERTS,
    MSG_CONNECTFAIL,
    LegitClient,
    handshaked_socket,
    invoke,
    needs_proc,
    raw_socket,
    read_message,
    wait_until,
)


def _timed_close(sock: socket.socket, timeout: float) -> float:
    """Seconds until the peer closed ``sock`` (fails if it did not within ``timeout``)."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except socket.timeout:
        pytest.fail(f"server kept the connection open for {timeout} s")
    except OSError:
        pass
    return time.monotonic() - start


def _close_times(socks: list[socket.socket], timeout: float) -> list[float | None]:
    """Seconds until the peer closed each socket (None: still open after ``timeout``), read concurrently."""
    start = time.monotonic()
    closed: list[float | None] = [None] * len(socks)
    for sock in socks:
        sock.setblocking(False)
    while time.monotonic() - start < timeout and None in closed:
        waiting = [s for i, s in enumerate(socks) if closed[i] is None]
        ready, _, _ = select.select(waiting, [], [], 0.05)
        for sock in ready:
            index = socks.index(sock)
            try:
                if sock.recv(65536):
                    continue
            except BlockingIOError:
                continue
            except OSError:
                pass
            closed[index] = time.monotonic() - start
    return closed


def test_silent_half_sent_and_idle_connections_closed_on_time(server):
    proc = server(HANDSHAKE_TIMEOUT=1.0, FRAME_TIMEOUT=1.0, IDLE_TIMEOUT=2.0)
    silent = raw_socket(proc.address)
    half_header = raw_socket(proc.address)
    half_header.sendall(b"PYRO\x01\xf6\x01\x03" + bytes(12))  # 20 of a header's 40 bytes
    half_frame = handshaked_socket(proc.address)
    data = invoke("echo", ["x" * 1000])
    half_frame.sendall(data[: len(data) // 2])
    idle = handshaked_socket(proc.address)
    idle.sendall(invoke("echo", [1]))
    read_message(idle)
    socks = [silent, half_header, half_frame, idle]
    try:
        with LegitClient(proc) as legit:
            silent_t, header_t, frame_t, idle_t = _close_times(socks, 4.0)
        legit.check(p99_bound=1.0)  # served while the hostile sockets wait out their deadlines
    finally:
        for sock in socks:
            sock.close()
    assert silent_t is not None and 0.8 < silent_t < 2.5, silent_t  # HANDSHAKE_TIMEOUT
    assert header_t is not None and header_t < 2.5, header_t
    assert frame_t is not None and 0.8 < frame_t < 2.5, frame_t  # FRAME_TIMEOUT
    assert idle_t is not None and 1.8 < idle_t < 3.5, idle_t  # IDLE_TIMEOUT


def test_without_idle_timeout_a_quiet_connection_stays(server):
    proc = server(FRAME_TIMEOUT=0.5, HANDSHAKE_TIMEOUT=0.5)
    with handshaked_socket(proc.address) as quiet:
        quiet.settimeout(1.2)
        with pytest.raises(socket.timeout):
            quiet.recv(1)
        quiet.sendall(invoke("echo", ["still here"]))
        assert b"still here" in read_message(quiet)[3]


def test_tls_silent_client_closed_and_tls_clients_served(server):
    settings = {
        "SSL": True,
        "SSL_SERVERCERT": str(CERTS / "server.crt"),
        "SSL_SERVERKEY": str(CERTS / "server.key"),
        "HANDSHAKE_TIMEOUT": 1.0,
    }
    proc = server(**settings)
    config.SSL = True
    config.SSL_CACERTS = str(CERTS / "ca.crt")
    with raw_socket(proc.address) as silent, raw_socket(proc.address) as partial:
        # a TLS client that stops after half a ClientHello
        context = ssl.create_default_context(cafile=str(CERTS / "ca.crt"))
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = outgoing.read()
        partial.sendall(hello[: len(hello) // 2])
        with LegitClient(proc) as legit:
            assert 0.8 < _timed_close(silent, 4.0) < 3.0
            assert _timed_close(partial, 3.0) < 3.0
        legit.check(p99_bound=1.0)  # served while the hostile sockets wait out their deadlines


def test_max_connections_refuses_at_once_with_connectfail(server):
    needs_proc()
    proc = server(MAX_CONNECTIONS=20, HANDSHAKE_TIMEOUT=1.2)
    with proc.proxy() as proxy:
        proxy.echo(1)
    time.sleep(0.3)
    base_fds = proc.fds()
    silent = [raw_socket(proc.address) for _ in range(20)]
    try:
        assert wait_until(lambda: proc.fds() >= base_fds + 20, 3.0)
        start = time.monotonic()
        with pytest.raises(CommunicationError) as refused, proc.proxy() as extra:
            extra.echo(1)
        assert time.monotonic() - start < 1.0
        assert "MAX_CONNECTIONS" in str(refused.value)
        # many more: past the refusals that may wait, a client gets an unsolicited CONNECTFAIL and is closed
        more = [raw_socket(proc.address) for _ in range(12)]
        silent += more
        msgtype, _, _, body = read_message(more[-1])
        assert msgtype == MSG_CONNECTFAIL and b"MAX_CONNECTIONS" in body
        # the silent ones go at the handshake deadline; then clients are served again
        with proc.proxy() as later:
            assert wait_until(lambda: _works(later), 5.0)
    finally:
        for sock in silent:
            sock.close()
    assert wait_until(lambda: proc.fds() <= base_fds, 5.0), (proc.fds(), base_fds)
    assert proc.alive()


def _works(proxy) -> bool:
    try:
        return proxy.echo("ok") == "ok"
    except CommunicationError:
        proxy._pyroRelease()
        return False


def test_out_of_descriptors_backs_off_and_logs_at_most_once_a_second(server):
    needs_proc()
    # MAX_CONNECTIONS above what the descriptor limit allows: accept() itself fails (EMFILE)
    proc = server(nofile=64, MAX_CONNECTIONS=1000, HANDSHAKE_TIMEOUT=2.0)
    with proc.proxy() as proxy:
        proxy.echo(1)
    time.sleep(0.3)
    base_fds = proc.fds()
    socks = []
    try:
        for _ in range(90):
            socks.append(raw_socket(proc.address))
        time.sleep(1.6)
        failures = [line for line in proc.log().splitlines() if "accept failed" in line]
        assert failures, "the server never ran out of descriptors: test set-up is wrong"
        assert len(failures) <= 3, f"{len(failures)} accept-failure lines in 1.6 s"
        assert any(re.search(r"failed \d+ time", line) for line in failures), failures  # with a count
        # the silent clients are closed at the handshake deadline; backlogged ones get in and go too
        with proc.proxy() as later:
            assert wait_until(lambda: _works(later), 10.0)
    finally:
        for sock in socks:
            sock.close()
    assert wait_until(lambda: proc.fds() <= base_fds, 6.0), (proc.fds(), base_fds)
    assert proc.alive()


def test_default_connection_cap_follows_descriptor_limit(server):
    needs_proc()
    proc = server(nofile=64, HANDSHAKE_TIMEOUT=1.0)
    socks = [raw_socket(proc.address) for _ in range(60)]
    try:
        with pytest.raises(CommunicationError), proc.proxy() as extra:
            extra.echo(1)
        assert "accept failed" not in proc.log()
    finally:
        for sock in socks:
            sock.close()
    with proc.proxy() as later:
        assert wait_until(lambda: _works(later), 5.0)

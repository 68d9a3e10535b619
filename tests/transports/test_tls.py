"""TLS over the TCP transport, with the test certificates in tests/transports/certs."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from pyrite.core import plugins, protocol
from pyrite.core.config import config
from pyrite.core.errors import CommunicationError, ConnectionClosedError, TimeoutError
from pyrite.transports import tls
from pyrite.transports.tcp import TcpTransport

CERTS = Path(__file__).parent / "certs"
WAIT = 10.0


@pytest.fixture(autouse=True)
def _tls_config():
    """One-way TLS: the server has a certificate, the client trusts the test CA."""
    tls.clear_cache()
    config.SSL = True
    config.SSL_SERVERCERT = str(CERTS / "server.crt")
    config.SSL_SERVERKEY = str(CERTS / "server.key")
    config.SSL_CACERTS = str(CERTS / "ca.crt")
    yield
    tls.clear_cache()


@pytest.fixture
def tcp() -> TcpTransport:
    return plugins.get_transport("127.0.0.1:0")


def _serve_echo(listener, results: list, count: int = 1) -> threading.Thread:
    """Accept ``count`` clients; echo one 5-byte message each; record the result or the error."""

    def run() -> None:
        for _ in range(count):
            conn = listener.accept()
            if conn is None:
                results.append(None)
                continue
            conn.timeout = WAIT
            try:
                data = conn.recv(5)
                results.append(("cert", conn.getpeercert()))
                conn.send(data)
            except CommunicationError as exc:
                results.append(exc)
            finally:
                conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_one_way_tls_roundtrip(tcp):
    results: list = []
    with tcp.listen("127.0.0.1:0") as listener:
        server = _serve_echo(listener, results)
        with tcp.connect(listener.location, timeout=WAIT) as client:
            assert client.is_tls
            cert = client.getpeercert()
            assert dict(x[0] for x in cert["subject"])["commonName"] == "pyrite test server"
            client.send(b"hello")
            assert client.recv(5) == b"hello"
        server.join(WAIT)
    assert results == [("cert", None)]  # the server asked for no client certificate


@pytest.mark.parametrize("host", ["localhost", "[::1]"])
def test_tls_by_host_name_and_ipv6(tcp, host):
    try:
        listener = tcp.listen(f"{host}:0")
    except OSError as exc:
        pytest.skip(f"cannot listen on {host} here: {exc}")
    results: list = []
    with listener:
        server = _serve_echo(listener, results)
        with tcp.connect(listener.location, timeout=WAIT) as client:
            client.send(b"v6 ok")
            assert client.recv(5) == b"v6 ok"
        server.join(WAIT)


def test_large_message_over_tls(tcp):
    payload = bytes(range(256)) * 8000
    with tcp.listen("127.0.0.1:0") as listener:
        box: dict = {}

        def client_side() -> None:
            # the client's handshake needs the server to read: run it beside the server
            with tcp.connect(listener.location, timeout=WAIT) as client:
                client.send(protocol.SendingMessage(protocol.MSG_INVOKE, 0, 1, 1, payload).data)
                box["echo"] = client.recv(len(payload))

        thread = threading.Thread(target=client_side, daemon=True)
        thread.start()
        with listener.accept() as server:
            server.timeout = WAIT
            got = protocol.recv_message(server)
            server.send(got.data)
            thread.join(WAIT)
        assert bytes(got.data) == payload and box["echo"] == payload


def test_two_way_tls_with_client_certificate(tcp):
    config.SSL_REQUIRECLIENTCERT = True
    config.SSL_CLIENTCERT = str(CERTS / "client.crt")
    config.SSL_CLIENTKEY = str(CERTS / "client.key")
    results: list = []
    with tcp.listen("127.0.0.1:0") as listener:
        server = _serve_echo(listener, results)
        with tcp.connect(listener.location, timeout=WAIT) as client:
            client.send(b"2-way")
            assert client.recv(5) == b"2-way"
        server.join(WAIT)
    ((kind, cert),) = results
    assert dict(x[0] for x in cert["subject"])["commonName"] == "pyrite test client"


def test_required_client_certificate_missing_is_refused(tcp):
    config.SSL_REQUIRECLIENTCERT = True
    results: list = []
    with tcp.listen("127.0.0.1:0") as listener:
        server = _serve_echo(listener, results, count=2)
        # TLS 1.3 lets the client finish its side of the handshake; the refusal arrives as
        # an alert on the client's first read (or already in connect with TLS 1.2).
        with pytest.raises(CommunicationError):
            with tcp.connect(listener.location, timeout=WAIT) as client:
                client.send(b"nocrt")
                client.recv(5)
        # the listener is unharmed: a client with a certificate gets through
        config.SSL_CLIENTCERT = str(CERTS / "client.crt")
        config.SSL_CLIENTKEY = str(CERTS / "client.key")
        with tcp.connect(listener.location, timeout=WAIT) as client:
            client.send(b"good!")
            assert client.recv(5) == b"good!"
        server.join(WAIT)
    assert isinstance(results[0], CommunicationError) and "TLS" in str(results[0])
    assert results[1][0] == "cert"


def test_untrusted_server_is_refused(tcp):
    config.SSL_SERVERCERT = str(CERTS / "untrusted.crt")
    config.SSL_SERVERKEY = str(CERTS / "untrusted.key")
    results: list = []
    with tcp.listen("127.0.0.1:0") as listener:
        server = _serve_echo(listener, results)
        with pytest.raises(CommunicationError, match="TLS handshake failed.*certificate verify failed"):
            tcp.connect(listener.location, timeout=WAIT)
        server.join(WAIT)
    assert isinstance(results[0], CommunicationError)


def test_plain_client_to_tls_server_fails_only_its_connection(tcp):
    results: list = []
    with tcp.listen("127.0.0.1:0") as listener:
        server = _serve_echo(listener, results, count=2)
        config.SSL = False
        with tcp.connect(listener.location, timeout=WAIT) as plain:
            plain.send(b"PYRO\x01\xf6" + b"\0" * 100)
            with pytest.raises(CommunicationError):
                plain.recv(5)
        config.SSL = True
        with tcp.connect(listener.location, timeout=WAIT) as client:
            client.send(b"after")
            assert client.recv(5) == b"after"
        server.join(WAIT)
    assert isinstance(results[0], CommunicationError)


def test_silent_client_does_not_block_accept(tcp):
    with tcp.listen("127.0.0.1:0") as listener:
        listener.timeout = WAIT
        silent = socket.create_connection(("127.0.0.1", int(listener.location.rsplit(":", 1)[1])), timeout=WAIT)
        try:
            started = time.monotonic()
            quiet = listener.accept()  # returns at once: the handshake is not done in accept
            assert quiet is not None
            assert time.monotonic() - started < WAIT
            results: list = []
            server = _serve_echo(listener, results)
            with tcp.connect(listener.location, timeout=WAIT) as client:
                client.send(b"first")
                assert client.recv(5) == b"first"
            server.join(WAIT)
            assert results[0][0] == "cert"
            # the silent one times out on its own connection
            quiet.timeout = 0.3
            with pytest.raises(TimeoutError):
                quiet.recv(1)
            assert quiet.getpeercert() is None  # no handshake happened
            quiet.close()
        finally:
            silent.close()


def test_tls_recv_some_completes_handshake_without_blocking(tcp):
    with tcp.listen("127.0.0.1:0") as listener:
        listener.timeout = WAIT
        box: dict = {}
        connector = threading.Thread(target=lambda: box.setdefault("c", tcp.connect(listener.location, timeout=WAIT)))
        connector.start()
        server = listener.accept()
        try:
            server.timeout = WAIT
            deadline = time.monotonic() + WAIT
            data = None
            sent = False
            while time.monotonic() < deadline:
                data = server.recv_some(100)  # drives the handshake step by step; never blocks
                if data:
                    break
                if not sent and "c" in box:
                    box["c"].send(b"hi there")
                    sent = True
                time.sleep(0.01)
            assert data is not None and b"hi there".startswith(data)
            rest = server.recv(len(b"hi there") - len(data))
            assert data + rest == b"hi there"
            assert server.pending() == 0
        finally:
            connector.join(WAIT)
            server.close()
            if "c" in box:
                box["c"].close()


def test_encrypted_server_key_with_password(tcp):
    config.SSL_SERVERKEY = str(CERTS / "server_encrypted.key")
    config.SSL_SERVERKEYPASSWD = "pyrite"
    results: list = []
    with tcp.listen("127.0.0.1:0") as listener:
        server = _serve_echo(listener, results)
        with tcp.connect(listener.location, timeout=WAIT) as client:
            client.send(b"crypt")
            assert client.recv(5) == b"crypt"
        server.join(WAIT)


def test_encrypted_key_without_password_is_clear_error(tcp, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: no prompt
    config.SSL_SERVERKEY = str(CERTS / "server_encrypted.key")
    with pytest.raises(CommunicationError, match="SSL_SERVERKEYPASSWD"):
        tcp.listen("127.0.0.1:0")


def test_missing_server_certificate_config(tcp):
    config.SSL_SERVERCERT = ""
    with pytest.raises(CommunicationError, match="SSL_SERVERCERT is not set"):
        tcp.listen("127.0.0.1:0")
    config.SSL_SERVERCERT = str(CERTS / "nope.crt")
    with pytest.raises(FileNotFoundError, match="nope.crt"):
        tcp.listen("127.0.0.1:0")


def test_contexts_follow_config_and_are_cached():
    first = tls.server_context()
    assert tls.server_context() is first
    assert first.verify_mode == ssl.CERT_NONE
    config.SSL_REQUIRECLIENTCERT = True
    second = tls.server_context()
    assert second is not first and second.verify_mode == ssl.CERT_REQUIRED
    client = tls.client_context()
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname


def test_cacerts_directory(tcp, tmp_path):
    # a capath directory holds certificates under their subject-hash names
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to compute the subject hash")
    digest = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(CERTS / "ca.crt")], capture_output=True, text=True, check=True
    ).stdout.strip()
    (tmp_path / f"{digest}.0").write_bytes((CERTS / "ca.crt").read_bytes())
    config.SSL_CACERTS = str(tmp_path)
    results: list = []
    with tcp.listen("127.0.0.1:0") as listener:
        server = _serve_echo(listener, results)
        with tcp.connect(listener.location, timeout=WAIT) as client:
            client.send(b"cadir")
            assert client.recv(5) == b"cadir"
        server.join(WAIT)


def test_closed_tls_peer(tcp):
    with tcp.listen("127.0.0.1:0") as listener:

        def client_side() -> None:
            with tcp.connect(listener.location, timeout=WAIT) as client:
                client.send(b"bye")

        thread = threading.Thread(target=client_side, daemon=True)
        thread.start()
        with listener.accept() as server:
            server.timeout = WAIT
            assert server.recv(3) == b"bye"
            thread.join(WAIT)
            with pytest.raises(ConnectionClosedError):
                server.recv(1)

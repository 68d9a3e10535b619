"""aio.Proxy over Unix sockets, IPv6, TLS (from the SSL_* config) and a given connected socket,
against pyrite and Pyro5 5.17 daemons; large messages that span many reads."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import Pyro5.api
import pytest
from pyrite.core import aio, errors
from pyrite.core.config import config as pyrite_config

from tests.interop import services

from .conftest import Server, proxy, start_server

CERTS = Path(__file__).parents[2] / "transports" / "certs"


def _lib(name: str) -> services.Lib:
    return services.pyrite() if name == "pyrite" else services.pyro5()


@pytest.mark.parametrize("lib", ["pyrite", "Pyro5"])
def test_unix_socket(lib: str, tmp_path: Path, run: Any) -> None:
    path = str(tmp_path / "aio.sock")
    srv = start_server(_lib(lib), unixsocket=path)
    try:
        assert srv.svc_uri.endswith(f"@./u:{path}")

        async def main() -> None:
            async with proxy(srv.svc_uri) as p:
                assert await p.add(1, 2) == 3
                assert await asyncio.gather(*(p.echo(i) for i in range(50))) == list(range(50))

        run(main())
    finally:
        srv.served.stop()


@pytest.mark.parametrize("lib", ["pyrite", "Pyro5"])
def test_ipv6_loopback(lib: str, run: Any) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        srv = start_server(_lib(lib), host="::1", port=0)
    except OSError as exc:
        pytest.skip(f"cannot listen on ::1: {exc}")
    try:
        assert "@[::1]:" in srv.svc_uri

        async def main() -> None:
            async with proxy(srv.svc_uri) as p:
                assert await p.add(2, 3) == 5

        run(main())
    finally:
        srv.served.stop()


@pytest.fixture
def tls_config() -> Iterator[None]:
    """One-way TLS on both libraries: the daemon has the test certificate, clients trust the test CA."""
    from pyrite.transports import tls

    tls.clear_cache()
    for cfg in (pyrite_config, Pyro5.api.config):
        cfg.SSL = True
        cfg.SSL_SERVERCERT = str(CERTS / "server.crt")
        cfg.SSL_SERVERKEY = str(CERTS / "server.key")
        cfg.SSL_CACERTS = str(CERTS / "ca.crt")
    yield
    tls.clear_cache()


@pytest.mark.usefixtures("tls_config")
@pytest.mark.parametrize("lib", ["pyrite", "Pyro5"])
def test_tls_from_ssl_config(lib: str, run: Any) -> None:
    srv = start_server(_lib(lib), host="localhost", port=0)
    try:

        async def main() -> None:
            async with proxy(srv.svc_uri) as p:
                assert await p.add(1, 1) == 2
                channel = p._pyroConnection
                assert channel is not None and channel.transport is not None
                assert channel.transport.get_extra_info("ssl_object") is not None
                assert await asyncio.gather(*(p.echo(i) for i in range(30))) == list(range(30))
                blob = "t" * 1_500_000  # a large body arrives in many TLS records
                assert await asyncio.gather(p.echo(blob), p.echo(2)) == [blob, 2]
            pyrite_config.SSL_CACERTS = str(CERTS / "client.crt")  # not the CA: the server is not trusted
            from pyrite.transports import tls

            tls.clear_cache()
            with pytest.raises(errors.CommunicationError, match="TLS|certificate"):
                await proxy(srv.svc_uri)._pyroBind()

        run(main())
    finally:
        srv.served.stop()


@pytest.mark.parametrize("lib", ["pyrite", "Pyro5"])
def test_connected_socket(lib: str, run: Any) -> None:
    """A proxy on one end of a socketpair whose other end a daemon serves (no handshake, as Pyro5);
    the socket stays the caller's."""
    api = _lib(lib).api
    ours, theirs = socket.socketpair()
    daemon = api.Daemon(connected_socket=theirs)
    classes = services.build(_lib(lib))
    daemon.register(classes.Service(), "svc")
    served = services.serve(daemon, f"{lib} socketpair daemon")
    try:

        async def main() -> None:
            p = aio.Proxy("svc", connected_socket=ours)
            p._pyroTimeout = 5
            await p._pyroGetMetadata(known_metadata={"methods": ["add", "echo"], "oneway": [], "attrs": []})
            assert await p.add(4, 5) == 9
            assert await asyncio.gather(*(p.echo(i) for i in range(20))) == list(range(20))
            await p._pyroRelease()

        run(main())
        assert ours.fileno() != -1  # still open: it belongs to the caller
    finally:
        ours.close()
        served.stop()


def test_large_payloads(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.probe_uri) as p:
            blob = "x" * 3_000_000
            results = await asyncio.gather(p.echo(blob), p.echo(1), p.echo(blob[:70_000]))
            assert results == [blob, 1, blob[:70_000]]

    run(main())


@pytest.mark.parametrize("serializer", ["marshal", "msgpack", "serpent", "json"])
def test_large_bytes_replies_per_serializer(server: Server, run: Any, serializer: str) -> None:
    """Bodies above the large-body size are read straight into their own buffer; each reply is
    whole and its own, with small replies pipelined around it."""
    if serializer in ("json", "serpent"):
        big: Any = serializer[0] * 2_000_000  # serpent sends bytes as a base64 dict, as Pyro5
    else:
        big = bytes(range(256)) * 8_000  # 2 MB

    async def main() -> None:
        async with proxy(server.probe_uri) as p:
            p._pyroSerializer = serializer
            first = await asyncio.gather(p.echo(big), p.echo(7), p.echo(big[:300_000]), p.echo("z"))
            assert first == [big, 7, big[:300_000], "z"]
            again = await p.echo(big)
            assert again == big and again is not first[0]

    run(main())


class _Trickle:
    """A TCP relay on loopback that passes the daemon's replies on in pieces of ``piece`` bytes,
    pausing now and then, so every reply reaches the client over many reads."""

    def __init__(self, target: tuple[str, int], piece: int) -> None:
        self.target = target
        self.piece = piece
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(self.target, timeout=10)
            client.settimeout(10)
            up = threading.Thread(target=self._pump, args=(client, upstream, 65536), daemon=True)
            up.start()
            self._pump(upstream, client, self.piece)
            up.join(10)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            self.errors.append(exc)

    def _pump(self, src: socket.socket, dst: socket.socket, piece: int) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                if not data:
                    break
                for start in range(0, len(data), piece):
                    dst.sendall(data[start : start + piece])
                    sent += 1
                    if sent % 64 == 0:
                        time.sleep(0.001)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_replies_that_arrive_in_small_pieces(server: Server, run: Any, piece: int) -> None:
    """Headers, annotations and bodies split anywhere across reads, a large body included."""
    uri = Pyro5.api.URI(server.probe_uri)
    relay = _Trickle((uri.host, uri.port), piece)
    try:
        relayed = f"PYRO:{uri.object}@127.0.0.1:{relay.port}"
        big = "b" * (300_000 if piece > 1 else 40_000)

        async def main() -> None:
            async with proxy(relayed) as p:
                p._pyroTimeout = 30
                assert await asyncio.gather(p.echo(1), p.echo("two"), p.echo(big)) == [1, "two", big]
                assert await p.echo([3, {"four": 4}]) == [3, {"four": 4}]

        run(main())
    finally:
        relay.close()
    assert relay.errors == []


def test_many_proxies_on_one_loop_share_one_read_buffer(server: Server, run: Any) -> None:
    """Twenty proxies on one loop, calls in flight on all of them at once, each reply its own
    (small, medium and large bodies); on asyncio's loops they read through one shared buffer."""
    from pyrite.core.aio.channel import BufferedChannel

    async def main() -> None:
        proxies = [proxy(server.probe_uri) for _ in range(20)]
        try:
            values = [f"v{i}" * (1 + (i % 3) * 40_000) for i in range(20)]
            for _ in range(3):
                got = await asyncio.gather(*(p.echo(v) for p, v in zip(proxies, values)))
                assert got == values
            channels = [p._pyroConnection for p in proxies]
            if isinstance(channels[0], BufferedChannel):
                assert all(c._scratch is channels[0]._scratch for c in channels)
        finally:
            for p in proxies:
                await p._pyroRelease()

    run(main())

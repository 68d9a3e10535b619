"""aio.Proxy over Unix sockets, IPv6, TLS (from the SSL_* config) and a given connected socket,
against pyrite and Pyro5 5.17 daemons; large messages that span many reads."""

from __future__ import annotations

import asyncio
import socket
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

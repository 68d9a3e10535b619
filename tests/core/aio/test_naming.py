"""Async name-server access: aio.locate_ns, aio.resolve, PYRONAME and PYROMETA proxies, against a
pyrite name server and a Pyro5 5.17 name server (threads of this process, loopback only)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pyrite.core import aio, errors
from pyrite.core.config import config as pyrite_config
from pyrite.core.uri import URI

from tests.interop import services
from tests.interop.services import serve

from .conftest import TIMEOUT, Server, proxy

NAME = "aio.test.svc"
META = {"aio:svc", "aio:test"}


@pytest.fixture(scope="module", params=["pyrite", "Pyro5"])
def ns_lib(request: pytest.FixtureRequest) -> Iterator[tuple[services.Lib, str, int]]:
    lib = services.pyrite() if request.param == "pyrite" else services.pyro5()
    ns_uri, ns_daemon, _ = lib.api.start_ns(host="127.0.0.1", port=0, enableBroadcast=False)
    served = serve(ns_daemon, f"{lib.name} name server")
    yield lib, ns_uri.host, ns_uri.port
    served.stop()


@pytest.fixture
def registered(ns_lib: tuple[services.Lib, str, int], server: Server) -> Iterator[tuple[str, int]]:
    lib, host, port = ns_lib
    with lib.api.locate_ns(host, port) as ns:
        ns.register(NAME, server.svc_uri, metadata=META)
    yield host, port
    with lib.api.locate_ns(host, port) as ns:
        ns.remove(NAME)


def test_locate_ns_and_lookup(registered: tuple[str, int], server: Server, run: Any) -> None:
    host, port = registered

    async def main() -> None:
        ns = await aio.locate_ns(host, port)
        async with ns:
            assert isinstance(ns, aio.Proxy)
            assert await ns.ping() is None
            assert str(await ns.lookup(NAME)) == server.svc_uri
            listed = await ns.list(prefix="aio.test.")
            assert list(listed) == [NAME]

    run(main())


def test_resolve_pyroname_and_pyrometa(registered: tuple[str, int], server: Server, run: Any) -> None:
    host, port = registered

    async def main() -> None:
        uri = await aio.resolve(f"PYRONAME:{NAME}@{host}:{port}")
        assert isinstance(uri, URI) and str(uri) == server.svc_uri
        meta = await aio.resolve(f"PYROMETA:aio:svc,aio:test@{host}:{port}")
        assert str(meta) == server.svc_uri
        assert await aio.resolve(server.svc_uri) == URI(server.svc_uri)
        with pytest.raises(errors.NamingError):
            await aio.resolve(f"PYRONAME:aio.nobody@{host}:{port}")
        with pytest.raises(errors.NamingError):
            await aio.resolve(f"PYROMETA:aio:none@{host}:{port}")

    run(main())


def test_proxy_on_pyroname_binds_to_the_pyro_uri(registered: tuple[str, int], server: Server, run: Any) -> None:
    host, port = registered

    async def main() -> None:
        p = proxy(f"PYRONAME:{NAME}@{host}:{port}")
        async with p:
            assert await p.add(20, 22) == 42
            assert p._pyroUri.protocol == "PYRONAME"  # an implicit connect keeps the uri
        p = proxy(f"PYROMETA:aio:svc@{host}:{port}")
        async with p:
            await p._pyroBind()
            assert str(p._pyroUri) == server.svc_uri  # _pyroBind replaces it

    run(main())


def test_locate_ns_from_config_and_none_there(registered: tuple[str, int], run: Any) -> None:
    host, port = registered
    pyrite_config.NS_HOST, pyrite_config.NS_PORT = host, port

    async def main() -> None:
        async with await aio.locate_ns() as ns:
            assert await ns.ping() is None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            free = s.getsockname()[1]
        pyrite_config.COMMTIMEOUT = 2.0
        with pytest.raises(errors.NamingError):
            await aio.locate_ns("127.0.0.1", free)

    run(main())


def test_locate_ns_by_broadcast(run: Any) -> None:
    from pyrite.nameserver import BroadcastServer, start_ns

    ns_uri, ns_daemon, _ = start_ns(host="127.0.0.1", port=0, enableBroadcast=False)
    served = serve(ns_daemon, "pyrite name server")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        bcport = s.getsockname()[1]
    bc = BroadcastServer(ns_uri, bchost="127.255.255.255", bcport=bcport)
    bc_thread = bc.runInThread()
    try:
        pyrite_config.NS_HOST = "192.0.2.1"  # TEST-NET-1: not local, so the broadcast is tried
        pyrite_config.NS_BCPORT = bcport
        pyrite_config.BROADCAST_ADDRS = ["127.255.255.255"]
        pyrite_config.COMMTIMEOUT = 2.0

        async def main() -> None:
            async with await aio.locate_ns() as ns:
                ns._pyroTimeout = TIMEOUT
                assert str(ns._pyroUri) == str(ns_uri)
                assert await ns.ping() is None

        run(main())
    finally:
        bc.close()
        bc_thread.join(TIMEOUT)
        served.stop()


def test_a_misconfigured_serializer_is_not_no_name_server(registered: tuple[str, int], run: Any) -> None:
    # as the sync locate_ns: the config error itself, at once, not "no name server reachable"
    # (the name server is there) after a broadcast round
    from pyrite.core.plugins import UnknownSerializerError

    host, port = registered
    configured = pyrite_config.SERIALIZER
    pyrite_config.NS_HOST, pyrite_config.NS_PORT = host, port

    async def main() -> None:
        for attempt in (aio.locate_ns(host, port), aio.locate_ns(), aio.resolve(f"PYRONAME:{NAME}@{host}:{port}")):
            with pytest.raises(UnknownSerializerError, match="no-such-serializer"):
                await attempt

    pyrite_config.SERIALIZER = "no-such-serializer"
    try:
        run(main())
    finally:
        pyrite_config.SERIALIZER = configured  # the fixture's clean-up needs a working one

"""Many tasks, one aio.Proxy: 100 concurrent calls share one connection and each gets its own
result, against pyrite and Pyro5 daemons, with every serializer (cbor2 against pyrite only)."""

from __future__ import annotations

import asyncio
from typing import Any

import Pyro5.api
import pytest
from pyrite.core import errors
from pyrite.core.config import config as pyrite_config

from tests.interop import services

from .conftest import Server, proxy, set_serializer, start_server

SERIALIZERS = ["serpent", "marshal", "json", "msgpack", "cbor2"]


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_100_tasks_one_connection(server: Server, run: Any, serializer: str) -> None:
    set_serializer(serializer)
    if serializer == "cbor2" and server.name != "pyrite":
        # Pyro5 has no cbor2 serializer: its daemon drops the connection, and the bind says so at once
        async def refused() -> None:
            p = proxy(server.probe_uri)
            p._pyroTimeout = 5.0
            with pytest.raises(errors.ConnectionClosedError):
                await p._pyroBind()
            await p._pyroRelease()

        run(refused())
        return

    async def main() -> None:
        async with proxy(server.probe_uri) as p:
            await p._pyroBind()
            channel = p._pyroConnection
            port = p._pyroLocalSocket[1]
            values = [{"n": i, "text": f"value {i}", "items": [i, i * 2]} for i in range(100)]
            results = await asyncio.gather(*(p.echo(v) for v in values))
            assert results == values
            ports = await asyncio.gather(*(p.peer_port() for _ in range(100)))
            assert set(ports) == {port}  # the daemon saw one client connection for all 100
            assert p._pyroConnection is channel
            assert channel is not None and not channel.waiters

    run(main())


def test_interleaved_slow_and_fast_calls_keep_their_replies(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.probe_uri) as p:
            calls = [p.pause(0.01) if i % 10 == 0 else p.echo(i) for i in range(200)]
            results = await asyncio.gather(*calls)
            assert results == [0.01 if i % 10 == 0 else i for i in range(200)]

    run(main())


def test_timeouts_and_cancellations_among_many_tasks(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.probe_uri) as p:
            await p._pyroBind()

            async def call(i: int) -> Any:
                if i % 7 == 0:
                    task = asyncio.ensure_future(p.pause(0.05))
                    await asyncio.sleep(0)
                    task.cancel()
                    try:
                        return await task
                    except asyncio.CancelledError:
                        return "cancelled"
                return await p.echo(i)

            results = await asyncio.gather(*(call(i) for i in range(100)))
            assert results == ["cancelled" if i % 7 == 0 else i for i in range(100)]
            p._pyroTimeout = 0.05
            timed_out = await asyncio.gather(*(p.pause(0.2) for _ in range(3)), return_exceptions=True)
            assert all(isinstance(r, errors.TimeoutError) for r in timed_out)
            p._pyroTimeout = 10.0
            assert await asyncio.gather(*(p.echo(i) for i in range(50))) == list(range(50))

    run(main())


def test_first_calls_share_one_connect(server: Server, run: Any) -> None:
    async def main() -> None:
        p = proxy(server.probe_uri)
        ports = await asyncio.gather(*(p.peer_port() for _ in range(30)))  # all before any connection
        assert len(set(ports)) == 1
        await p._pyroRelease()

    run(main())


def test_release_fails_the_waiting_calls(server: Server, run: Any) -> None:
    async def main() -> None:
        p = proxy(server.probe_uri, _pyroMaxRetries=0)
        await p._pyroBind()
        waiting = [asyncio.ensure_future(p.pause(0.3)) for _ in range(3)]
        await asyncio.sleep(0.05)
        await p._pyroRelease()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, errors.ConnectionClosedError) for r in results)
        assert await p.echo("again") == "again"
        await p._pyroRelease()

    run(main())


def test_oneway_calls_gathered_then_release_all_arrive(server: Server, run: Any) -> None:
    server.service.counter = 0

    async def main() -> None:
        p = proxy(server.svc_uri)
        await p._pyroBind()
        # oneway calls never wait, so these go out in one loop turn: the first at once, the rest
        # gathered into one write; the release right after must still put every one on the wire
        for _ in range(50):
            await p.bump(1)
        await p._pyroRelease()
        async with proxy(server.svc_uri) as check:
            for _ in range(200):
                if await check.count() == 50:
                    break
                await asyncio.sleep(0.02)
            assert await check.count() == 50

    run(main())
    server.service.counter = 0


@pytest.mark.parametrize("lib", ["pyrite", "Pyro5"])
def test_100_tasks_against_a_multiplex_daemon(lib: str, run: Any) -> None:
    (pyrite_config if lib == "pyrite" else Pyro5.api.config).SERVERTYPE = "multiplex"
    srv = start_server(services.pyrite() if lib == "pyrite" else services.pyro5(), host="127.0.0.1", port=0)
    try:

        async def main() -> None:
            async with proxy(srv.probe_uri) as p:
                values = list(range(100))
                assert await asyncio.gather(*(p.echo(v) for v in values)) == values
                ports = await asyncio.gather(*(p.peer_port() for _ in range(100)))
                assert len(set(ports)) == 1

        run(main())
    finally:
        srv.served.stop()

"""aio.Proxy where the sync Proxy and Pyro5's own client set the behaviour: what a remote
communication error does to the connection, against pyrite and Pyro5 5.17 daemons."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pyrite.api import BatchProxy, SharedProxy
from pyrite.core import aio, errors

from tests.support import wait_for

from .conftest import TIMEOUT, Server, proxy, set_serializer


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_a_remote_serialize_error_gives_the_next_calls_a_fresh_connection(
    server: Server, run: Any, serializer: str
) -> None:
    # A batch holding a generator cannot be serialized: the daemon replies with a SerializeError,
    # and a Pyro5 daemon then drops the connection.  As the sync Proxy (and Pyro5's client), the
    # proxy lets that connection go: the next oneway call and the next call go over a new one.
    set_serializer(serializer)
    server.service.counter = 0

    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            await p._pyroBind()
            batch = aio.BatchProxy(p)
            batch.generate(3)
            with pytest.raises(errors.SerializeError):
                await batch()
            await p.bump(4)  # oneway: lost if written to the connection the daemon drops
            assert await p.add(1, 2) == 3
            for _ in range(100):
                if await p.count() == 4:
                    break
                await asyncio.sleep(0.02)
            assert await p.count() == 4

    run(main())


def test_calls_in_flight_keep_the_connection_a_remote_serialize_error_let_go(server: Server, run: Any) -> None:
    # The call already waiting on the old connection gets its own reply where the daemon keeps
    # the connection (pyrite's), ConnectionClosedError where it drops it (Pyro5's); the old
    # connection is closed once nothing waits on it any more.
    set_serializer("json")

    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            await p._pyroBind()
            old = p._pyroConnection
            assert old is not None
            batch = aio.BatchProxy(p)
            batch.generate(1)
            failing = asyncio.ensure_future(batch())
            in_flight = asyncio.ensure_future(p.slow())  # sent after the batch: its reply comes after
            # (a pyrite daemon that read both requests at once writes both replies at once)
            asyncio.get_running_loop().call_later(0.3, server.service.release.set)
            with pytest.raises(errors.SerializeError):
                await failing
            if server.name == "pyrite":
                assert await in_flight == "slow done"
            else:
                with pytest.raises(errors.ConnectionClosedError):
                    await in_flight
            assert old.closed
            assert await p.echo("new") == "new"
            assert p._pyroConnection is not old

    run(main())


def test_a_shared_proxy_lets_go_of_the_connection_after_a_remote_serialize_error(server: Server) -> None:
    # As aio.Proxy above, for the threads of a SharedProxy: the connection the daemon answered
    # with a SerializeError is let go, and the next calls (a oneway one first) go over a new one.
    set_serializer("json")
    server.service.counter = 0
    shared = SharedProxy(server.svc_uri)
    shared._pyroTimeout = TIMEOUT
    with shared:
        shared._pyroBind()
        old = shared._pyroConnection
        batch = BatchProxy(shared)
        batch.generate(3)
        with pytest.raises(errors.SerializeError):
            batch()
        assert shared._pyroConnection is not old
        shared.bump(4)
        assert shared.add(1, 2) == 3
        assert wait_for(lambda: shared.count() == 4, TIMEOUT)
        assert shared._pyroConnection is not None and shared._pyroConnection is not old
        assert wait_for(lambda: old.closed, TIMEOUT)

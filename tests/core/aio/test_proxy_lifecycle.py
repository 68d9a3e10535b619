"""aio.Proxy around its connection: connects that get cancelled or released, metadata fetched
before any call, streams whose connection belongs to an event loop that is gone, abandoned
streams, a proxy wanted by the event loops of two threads at once; pyrite and Pyro5 daemons."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from pyrite.core import aio, errors

from tests.support import wait_for_async

from .conftest import TIMEOUT, Server, proxy


class SlowConnectProxy(aio.Proxy):
    """Its handshake check takes a while, so a test can act while the connect is under way."""

    async def _pyroValidateHandshake(self, response: Any) -> None:
        await asyncio.sleep(0.3)


def test_cancelling_the_connecting_task_leaves_the_waiting_ones_alone(server: Server, run: Any) -> None:
    async def main() -> None:
        p = SlowConnectProxy(server.svc_uri)
        p._pyroTimeout = TIMEOUT
        async with p:
            first = asyncio.ensure_future(p.echo("first"))  # makes the connect
            await asyncio.sleep(0.1)
            waiting = [asyncio.ensure_future(p.echo(i)) for i in range(5)]  # wait for that connect
            await asyncio.sleep(0.1)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            # one task gave up; the others still want their calls made
            assert await asyncio.wait_for(asyncio.gather(*waiting), TIMEOUT) == list(range(5))
            assert await p.echo("after") == "after"

    run(main())


def test_release_during_a_connect_leaves_the_proxy_released(server: Server, run: Any) -> None:
    async def main() -> None:
        p = SlowConnectProxy(server.svc_uri)
        p._pyroTimeout = TIMEOUT
        binding = asyncio.ensure_future(p._pyroBind())
        await asyncio.sleep(0.1)
        await asyncio.wait_for(p._pyroRelease(), TIMEOUT)
        assert await binding is True
        assert p._pyroConnection is None  # not connected behind the caller's back
        assert await p.echo(1) == 1  # and it connects again when used
        await p._pyroRelease()

    run(main())


def test_get_metadata_connects_first(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            assert p._pyroConnection is None
            await p._pyroGetMetadata()  # as the sync Proxy: connects, which brings the metadata
            assert {"echo", "add"} <= p._pyroMethods
            assert p._pyroAttrs == {"value", "readonly"}
            assert p._pyroConnection is not None
            await p._pyroGetMetadata()  # connected: asks the daemon
            assert "echo" in p._pyroMethods

    run(main())


def test_stream_of_a_closed_loop_is_a_clear_error(server: Server, run: Any) -> None:
    p = proxy(server.svc_uri)
    streams: list[Any] = []

    async def first() -> None:
        it = await p.endless()
        assert await it.__anext__() == 0
        streams.append(it)

    async def second() -> None:
        with pytest.raises(errors.ConnectionClosedError, match="another event loop"):
            await asyncio.wait_for(streams[0].__anext__(), TIMEOUT)
        await p._pyroGetMetadata()  # the proxy itself connects afresh on this loop
        assert await p.echo(2) == 2
        await p._pyroRelease()

    run(first())
    run(second())


async def _streams_settle(server: Server, count: int) -> int:
    await wait_for_async(lambda: len(server.daemon.streaming_responses) == count, 2.5)
    return len(server.daemon.streaming_responses)


def test_a_stream_nobody_waits_for_is_closed_on_the_daemon(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.svc_uri, _pyroTimeout=0.3) as p:
            await p._pyroBind()
            before = len(server.daemon.streaming_responses)
            held = asyncio.ensure_future(p.slow())  # keeps the daemon busy with this connection
            await asyncio.sleep(0.05)
            with pytest.raises(errors.TimeoutError):
                await p.endless()  # its reply, a new stream, comes after the timeout
            cancelled = asyncio.ensure_future(p.generate(3))
            await asyncio.sleep(0.05)
            cancelled.cancel()
            server.service.release.set()
            await asyncio.gather(held, return_exceptions=True)
            p._pyroTimeout = TIMEOUT
            assert await p.echo(1) == 1
            assert await _streams_settle(server, before) == before
            async for item in await p.generate(3):  # streams still work
                assert item == 0
                break

    run(main())


def test_a_proxy_in_use_on_another_threads_loop_is_a_clear_error(server: Server, run: Any) -> None:
    p = proxy(server.svc_uri)
    in_flight = threading.Event()
    results: list[Any] = []

    async def owner() -> None:
        call = asyncio.ensure_future(p.slow())
        await asyncio.sleep(0.1)
        in_flight.set()
        results.append(await call)

    thread = threading.Thread(target=run, args=(owner(),))
    thread.start()
    try:
        assert in_flight.wait(TIMEOUT)

        async def intruder() -> None:
            with pytest.raises(errors.PyroError, match="another thread"):
                await p.echo(1)  # would take the connection away from the owner's call
            server.service.release.set()

        run(intruder())
    finally:
        server.service.release.set()
        thread.join(TIMEOUT)
    assert results == ["slow done"]  # the owner's call was left alone

    async def afterwards() -> None:  # the owner's loop is gone: this loop may connect now
        assert await p.echo(2) == 2
        await p._pyroRelease()

    run(afterwards())


@pytest.mark.parametrize("timeout", [None, TIMEOUT])
def test_a_stream_whose_reply_came_as_its_task_was_cancelled_is_closed(
    server: Server, run: Any, monkeypatch: pytest.MonkeyPatch, timeout: Any
) -> None:
    """The reply settles the waiter and the task is cancelled before it resumes: the task never
    sees the stream its call opened, so the channel closes it on the daemon (it used to live as
    long as the connection)."""
    from pyrite.core.aio import channel as channel_module

    settle = channel_module._settle
    victim: list[asyncio.Task[Any]] = []

    def settle_then_cancel(waiter: Any, reply: Any, error: Any = None) -> None:
        settle(waiter, reply, error)
        if victim and reply is not None:
            victim.pop().cancel()  # the waiter has its result; the task has not resumed yet

    async def main() -> None:
        async with proxy(server.svc_uri, _pyroTimeout=timeout) as p:
            await p._pyroBind()
            before = len(server.daemon.streaming_responses)
            monkeypatch.setattr(channel_module, "_settle", settle_then_cancel)
            task = asyncio.ensure_future(p.generate(3))
            victim.append(task)
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, TIMEOUT)
            monkeypatch.setattr(channel_module, "_settle", settle)
            assert await p.echo(1) == 1
            assert await _streams_settle(server, before) == before

    run(main())

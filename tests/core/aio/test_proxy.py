"""aio.Proxy against a pyrite daemon and a Pyro5 5.17 daemon: calls, attributes, errors, oneway,
streams, autoproxies, batches, handshakes, settings and the call context, on both event loops."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from pyrite.core import aio, errors
from pyrite.core.callcontext import current_context

from .conftest import TIMEOUT, Server, proxy


def test_calls_and_keyword_arguments(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            assert await p.add(1, 2) == 3
            assert await p.greet("world") == "hello world!"
            assert await p.greet("you", punctuation="?") == "hello you?"
            assert await p.echo({"a": [1, 2]}) == {"a": [1, 2]}
            assert "add" in p._pyroMethods and "value" in p._pyroAttrs and "hold" in p._pyroOneway

    run(main())


def test_remote_attributes(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            assert await p.value == 1
            assert await p._pyroGetAttr("readonly") == "read only"
            await p._pyroSetAttr("value", 5)
            assert await p._pyroGetAttr("value") == 5
            with pytest.raises(AttributeError, match="_pyroSetAttr"):
                p.value = 6
            with pytest.raises(AttributeError, match="no exposed attribute"):
                await p._pyroGetAttr("nothing")
            with pytest.raises(AttributeError, match="no exposed attribute or method"):
                await p.nothing()
            with pytest.raises(AttributeError, match="is an attribute"):
                await p.value()
            await p._pyroSetAttr("value", 1)

    run(main())
    assert server.service.value == 1


def test_remote_exceptions_keep_type_and_traceback(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            with pytest.raises(ValueError, match="boom") as info:
                await p.fail("boom")
            assert "fail" in "".join(info.value._pyroTraceback)  # type: ignore[attr-defined]
            with pytest.raises(KeyError):
                await p.fail_key()
            assert await p.add(2, 2) == 4  # the connection is fine after an exception reply

    run(main())


def test_oneway_returns_once_written(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            # hold() blocks in the daemon until released: awaiting its reply would time out
            assert await asyncio.wait_for(p.hold(), 2.0) is None
            assert not server.service.oneway_done.is_set()
            server.service.release.set()
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, server.service.oneway_done.wait, TIMEOUT)

    run(main())


def test_remote_generator_is_an_async_iterator(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            items = [item async for item in await p.generate(5)]
            assert items == [0, 10, 20, 30, 40]
            assert [x async for x in await p.iterator(["a", "b"])] == ["a", "b"]

    run(main())


def _open_streams(server: Server) -> int:
    return len(server.daemon.streaming_responses)


def test_break_closes_the_remote_generator(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            before = _open_streams(server)
            it = await p.endless()
            async for item in it:
                if item == 3:
                    break
            assert _open_streams(server) == before + 1
            del it  # dropping the iterator after break sends the close
            assert await p.add(1, 1) == 2  # the close went out before this call
            for _ in range(100):
                if _open_streams(server) == before:
                    break
                await asyncio.sleep(0.02)
            assert _open_streams(server) == before
            async with await p.endless() as it2:
                assert await it2.__anext__() == 0
            assert await p.add(1, 1) == 2
            for _ in range(100):
                if _open_streams(server) == before:
                    break
                await asyncio.sleep(0.02)
            assert _open_streams(server) == before

    run(main())


def test_autoproxied_results_are_aio_proxies(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            child = await p.make_child("kid")
            assert isinstance(child, aio.Proxy)
            async with child:
                assert await child.whoami() == "child kid"

    run(main())


def test_batch_proxy_one_round_trip(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            batch = aio.BatchProxy(p)
            batch.add(1, 2)
            batch.greet("batch")
            batch.fail("in batch")
            batch.add(3, 4)
            results = await batch()
            assert results is not None
            assert next(results) == 3
            assert next(results) == "hello batch!"
            with pytest.raises(ValueError, match="in batch"):
                next(results)
            batch.bump(2)
            batch.bump(3)
            assert await batch(oneway=True) is None
            for _ in range(100):
                if await p.count() == 5:
                    break
                await asyncio.sleep(0.02)
            assert await p.count() == 5

    run(main())
    server.service.counter = 0


def test_bind_release_reconnect(server: Server, run: Any) -> None:
    async def main() -> None:
        p = proxy(server.svc_uri)
        assert p._pyroConnection is None
        assert await p._pyroBind() is True
        assert await p._pyroBind() is False
        first = p._pyroLocalSocket
        assert first is not None
        await p._pyroRelease()
        assert p._pyroConnection is None
        assert await p.add(1, 1) == 2  # reconnects by itself
        await p._pyroReconnect()
        assert p._pyroConnection is not None and p._pyroLocalSocket != first
        async with p:
            pass
        assert p._pyroConnection is None

    run(main())


def test_timeout_raises_and_the_proxy_stays_usable(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.svc_uri, _pyroTimeout=0.3) as p:
            await p._pyroBind()
            channel = p._pyroConnection
            with pytest.raises(errors.TimeoutError):
                await p.slow()
            server.service.release.set()
            p._pyroTimeout = TIMEOUT
            # the late "slow done" reply is dropped; each call still gets its own reply
            assert await asyncio.gather(*(p.echo(i) for i in range(20))) == list(range(20))
            assert p._pyroConnection is channel

    run(main())


def test_cancelled_call_never_misaligns_the_others(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            await p._pyroBind()
            slow = asyncio.ensure_future(p.slow())
            queued = [asyncio.ensure_future(p.echo(i)) for i in range(10)]  # behind slow() on the wire
            await asyncio.sleep(0.1)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            server.service.release.set()
            assert await asyncio.gather(*queued) == list(range(10))
            assert await p.echo("after") == "after"

    run(main())


def test_max_retries_after_a_dropped_connection(server: Server, run: Any) -> None:
    async def main() -> None:
        async with proxy(server.probe_uri) as p:
            await p._pyroBind()
            channel = p._pyroConnection
            assert channel is not None and channel.transport is not None
            p._pyroMaxRetries = 0
            asyncio.get_running_loop().call_soon(channel.transport.abort)
            with pytest.raises(errors.ConnectionClosedError):
                await p.pause(0.2)
            p._pyroMaxRetries = 2
            await p._pyroBind()
            channel = p._pyroConnection
            assert channel is not None and channel.transport is not None
            asyncio.get_running_loop().call_soon(channel.transport.abort)
            assert await p.pause(0.2) == 0.2  # retried on a new connection

    run(main())


class CheckingProxy(aio.Proxy):
    async def _pyroValidateHandshake(self, response: Any) -> None:
        self.__dict__["_pyroSeen"] = response


def test_handshake_data_and_validation(server: Server, run: Any) -> None:
    async def main() -> None:
        p = CheckingProxy(server.svc_uri)
        p._pyroTimeout = TIMEOUT
        p._pyroHandshake = {"user": "ann", "password": "secret"}
        async with p:
            assert await p.add(1, 1) == 2
            assert p.__dict__["_pyroSeen"] == {"welcome": "ann"}
        bad = proxy(server.svc_uri, _pyroHandshake={"user": "eve", "password": "guess"})
        with pytest.raises(errors.CommunicationError, match="rejected"):
            await bad._pyroBind()
        assert bad._pyroConnection is None

    run(main())


def test_serializer_per_proxy(server: Server, run: Any) -> None:
    async def main() -> None:
        for name in ("json", "marshal", "serpent"):
            async with proxy(server.svc_uri, _pyroSerializer=name) as p:
                assert await p.echo([1, "two"]) in ([1, "two"], (1, "two"))

    run(main())


def test_correlation_ids_and_annotations_per_task(server: Server, run: Any) -> None:
    sent: set[str] = set()

    async def one(p: aio.Proxy, tag: str) -> None:
        cid = uuid.uuid4()
        sent.add(str(cid))
        current_context.correlation_id = cid
        current_context.annotations = {"XTRA": tag.encode()}
        for _ in range(5):
            assert await p.corr() == str(cid)
            assert await p.annotation() == tag
            assert current_context.response_annotations["ECHO"] == tag.encode() + b"!"
            await asyncio.sleep(0)

    async def main() -> None:
        async with proxy(server.probe_uri) as p:
            await asyncio.gather(*(one(p, f"task{i}") for i in range(8)))
            # the main task set nothing: the daemon gives the call a fresh id (Pyro5 does the same)
            fresh = await p.corr()
            assert fresh is not None and fresh not in sent
            assert uuid.UUID(fresh)
        assert current_context.correlation_id is None

    run(main())
    assert current_context.correlation_id is None and current_context.annotations == {}


def test_proxy_works_on_a_second_loop(server: Server, run: Any) -> None:
    p = proxy(server.svc_uri)

    async def use() -> int:
        return int(await p.add(2, 3))

    assert run(use()) == 5
    assert run(use()) == 5  # the first loop is gone: the proxy connected again on this one
    run(p._pyroRelease())


def test_unknown_object_and_unreachable_daemon(server: Server, run: Any) -> None:
    async def main() -> None:
        host_port = server.svc_uri.split("@")[1]
        with pytest.raises(errors.CommunicationError, match="rejected"):  # as the sync Proxy
            await proxy(f"PYRO:nobody@{host_port}")._pyroBind()
        with pytest.raises(errors.CommunicationError):
            await proxy("PYRO:svc@127.0.0.1:1")._pyroBind()

    run(main())


def test_proxies_travel_as_arguments(server: Server, run: Any) -> None:
    """An aio.Proxy (and a SharedProxy) passed to a call travels as Pyro5's proxy and comes back
    as an aio.Proxy for the same object."""
    from pyrite.api import SharedProxy

    async def main() -> None:
        async with proxy(server.svc_uri) as p:
            other = aio.Proxy(server.probe_uri)
            back = await p.echo(other)
            assert isinstance(back, aio.Proxy) and back == other
            shared = SharedProxy(server.probe_uri)
            back = await p.echo([shared])
            assert isinstance(back[0], aio.Proxy) and str(back[0]._pyroUri) == server.probe_uri
            async with back[0]:
                assert await back[0].echo("through the returned proxy") == "through the returned proxy"

    run(main())

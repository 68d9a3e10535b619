"""Async-generator results of ``aio.Daemon``, streamed item by item, on real sockets.

The next item of an async generator is awaited on the daemon's event loop, as an ``async def``
call is: a stream waiting for its generator holds no worker thread, so many streams wait at
once and plain calls of other clients still find a worker.  Otherwise such a stream behaves as
a generator's: its end, an error in it, an early close, a client going away, the lifetime and
linger limits, concurrent fetches and the daemon closing meanwhile.

The clients are sync proxies (pyrite's and Pyro5 5.17's) on threads of a bounded executor, so
the loop under test serves them while the test awaits; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pyrite.core import aio
from pyrite.core.callcontext import current_context
from pyrite.core.config import config
from pyrite.core.errors import PyroError
from pyrite.core.exposure import expose

from tests.core.test_aio_daemon import (
    HOST,
    WAIT,
    _settings,  # noqa: F401  (its autouse settings hold here too)
    call,
    in_thread,
    run,
)
from tests.support import pyrite_proxy, pyro5_proxy, wait_for_async


@pytest.fixture
def clients() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    """Client threads (sync proxies); every thread is joined at the end."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="test-client") as pool:
        yield pool


@expose
class Streams:
    """Async generators (and one sync generator to compare with)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()  # the gated generators wait for it before every item
        self.waiting = 0
        self.most_waiting = 0
        self.ended: dict[Any, str] = {}  # tag -> the thread its generator's ``finally`` ran on
        self.cancelled: list[Any] = []

    async def gated(self, count: int, tag: Any) -> Any:
        try:
            for i in range(count):
                self.waiting += 1
                self.most_waiting = max(self.most_waiting, self.waiting)
                try:
                    await self.gate.wait()
                except asyncio.CancelledError:
                    self.cancelled.append(tag)
                    raise
                finally:
                    self.waiting -= 1
                yield i
        finally:
            self.ended[tag] = threading.current_thread().name

    async def slow(self, count: int, delay: float) -> Any:
        for i in range(count):
            await asyncio.sleep(delay)
            yield i

    def sync_slow(self, count: int, delay: float) -> Any:
        for i in range(count):
            time.sleep(delay)
            yield i

    async def endless(self, tag: Any) -> Any:
        try:
            i = 0
            while True:
                await asyncio.sleep(0)
                yield i
                i += 1
        finally:
            self.ended[tag] = threading.current_thread().name

    async def breaks(self, good: int) -> Any:
        for i in range(good):
            await asyncio.sleep(0)
            yield i
        raise ValueError(f"broke after {good} items")

    def sync_breaks(self, good: int) -> Any:
        yield from range(good)
        raise ValueError(f"broke after {good} items")

    async def at_once(self, count: int) -> Any:
        for i in range(count):  # no await at all: every item is there at the first step
            yield i

    async def seen(self, count: int) -> Any:
        for _ in range(count):
            await asyncio.sleep(0.01)
            yield str(current_context.correlation_id), current_context.client_sock_addr[1]

    def plain_add(self, a: Any, b: Any) -> Any:
        return a + b


def daemon_object(daemon: Any) -> Any:
    """A proxy for the daemon's own ``Pyro.Daemon`` object (stream items by id)."""
    return pyrite_proxy(f"PYRO:Pyro.Daemon@{daemon.locationStr}")


def fetch(daemon: Any, stream_id: str) -> Any:
    """The next item of a stream, fetched by id over a connection of its own."""
    with daemon_object(daemon) as proxy:
        return proxy.get_next_stream_item(stream_id)


def outcome(func: Any, *args: Any) -> Any:
    """``func(*args)``, or the exception it raised (to compare across threads)."""
    try:
        return func(*args)
    except Exception as exc:
        return exc


# -- no worker is held while an item is awaited ------------------------------------------------


def test_waiting_streams_hold_no_worker(clients: Any) -> None:
    config.THREADPOOL_SIZE = config.THREADPOOL_SIZE_MIN = 2

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            service = Streams()
            uri = daemon.register(service, "streams")
            streams = [
                asyncio.ensure_future(in_thread(clients, lambda t=t: list(call_gen(uri, 2, t)))) for t in range(8)
            ]
            try:
                # eight streams wait inside their generators at once, with two workers
                assert await wait_for_async(lambda: service.waiting == 8, WAIT), service.most_waiting
                # and a plain call of another client finds a worker meanwhile
                assert await in_thread(clients, call, uri, "plain_add", 2, 3) == 5
            finally:
                service.gate.set()
            assert await asyncio.gather(*streams) == [[0, 1]] * 8
            assert not daemon.streaming_responses  # each one ended: gone from the registry
            assert set(service.ended) == set(range(8))

    run(main())


def call_gen(uri: Any, count: int, tag: Any) -> Iterator[Any]:
    with pyrite_proxy(uri) as proxy:
        yield from proxy.gated(count, tag)


def test_slow_streams_of_many_clients_overlap(clients: Any) -> None:
    config.THREADPOOL_SIZE = config.THREADPOOL_SIZE_MIN = 2
    count, delay, streams = 3, 0.3, 8

    def take(uri: Any) -> list[int]:
        with pyrite_proxy(uri) as proxy:
            return list(proxy.slow(count, delay))

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            uri = daemon.register(Streams(), "streams")
            started = time.monotonic()
            results = await asyncio.gather(*(in_thread(clients, take, uri) for _ in range(streams)))
            elapsed = time.monotonic() - started
            assert results == [[0, 1, 2]] * streams
            one_after_another = streams * count * delay / config.THREADPOOL_SIZE  # two at a time: 3.6 s
            assert elapsed < 0.6 * one_after_another, elapsed  # about one stream's time (0.9 s)

    run(main())


# -- a stream behaves as a generator's --------------------------------------------------------


def only_stream(daemon: Any) -> str:
    (stream_id,) = daemon.streaming_responses
    return str(stream_id)


@pytest.mark.parametrize("method", ["at_once", "slow", "sync_slow"])
def test_the_end_is_stop_iteration_on_the_wire(clients: Any, method: str) -> None:
    def items_by_id(daemon: Any, uri: Any) -> list[Any]:
        with pyrite_proxy(uri) as proxy:
            args = (3,) if method == "at_once" else (3, 0.01)
            stream = getattr(proxy, method)(*args)
            stream_id = only_stream(daemon)
            items = []
            with pytest.raises(StopIteration):  # as the sync path sends it, for every client to see
                while len(items) < 10:
                    items.append(fetch(daemon, stream_id))
            assert not daemon.streaming_responses  # ended: gone from the registry
            with pytest.raises(PyroError, match="no open item stream"):
                fetch(daemon, stream_id)
            stream.proxy = None  # nothing left to close
            return items

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            uri = daemon.register(Streams(), "streams")
            assert await in_thread(clients, items_by_id, daemon, uri) == [0, 1, 2]

    run(main())


@pytest.mark.parametrize("lib", ["pyrite", "pyro5"])
def test_end_and_error_reach_the_client_as_with_a_generator(clients: Any, lib: str) -> None:
    def take(uri: Any, method: str, *args: Any) -> tuple[list[Any], Any]:
        items: list[Any] = []
        with (pyrite_proxy if lib == "pyrite" else pyro5_proxy)(uri) as proxy:
            try:
                for item in getattr(proxy, method)(*args):
                    items.append(item)
            except Exception as exc:
                return items, exc
            finally:
                assert proxy.plain_add(1, 1) == 2  # the connection goes on after the stream
        return items, None

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            uri = daemon.register(Streams(), "streams")
            assert await in_thread(clients, take, uri, "at_once", 4) == ([0, 1, 2, 3], None)
            assert await in_thread(clients, take, uri, "slow", 3, 0.01) == ([0, 1, 2], None)
            async_items, async_error = await in_thread(clients, take, uri, "breaks", 2)
            sync_items, sync_error = await in_thread(clients, take, uri, "sync_breaks", 2)
            assert async_items == sync_items == [0, 1]
            assert type(async_error) is type(sync_error) is ValueError
            assert str(async_error) == str(sync_error) == "broke after 2 items"
            assert not daemon.streaming_responses

    run(main())


def test_items_see_their_own_request_context(clients: Any) -> None:
    def take(uri: Any) -> tuple[str, list[Any]]:
        corr = uuid.uuid4()
        current_context.correlation_id = corr
        try:
            with pyrite_proxy(uri) as proxy:
                return str(corr), list(proxy.seen(4))
        finally:
            current_context.correlation_id = None

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            uri = daemon.register(Streams(), "streams")
            for corr, items in await asyncio.gather(*(in_thread(clients, take, uri) for _ in range(4))):
                assert [seen for seen, _ in items] == [corr] * 4  # this client's, in every item
                assert len({port for _, port in items}) == 1

    run(main())


def test_closed_early_the_generator_is_closed_on_the_loop(clients: Any) -> None:
    def take_two(uri: Any, lib: str) -> list[int]:
        with (pyrite_proxy if lib == "pyrite" else pyro5_proxy)(uri) as proxy:
            stream = proxy.endless(lib)
            items = [next(stream), next(stream)]
            stream.close()
            return items

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            service = Streams()
            uri = daemon.register(service, "streams")
            for lib in ("pyrite", "pyro5"):
                assert await in_thread(clients, take_two, uri, lib) == [0, 1]
                assert await wait_for_async(lambda lib=lib: lib in service.ended, WAIT)
                assert service.ended[lib] == threading.current_thread().name  # the loop's thread
            assert not daemon.streaming_responses

    run(main())


def test_a_client_gone_mid_item(clients: Any) -> None:
    config.ITER_STREAM_LINGER = 0  # its stream goes with its connection

    def hang_up(uri: Any) -> Any:
        proxy = pyro5_proxy(uri, timeout=0.5)
        with proxy:
            stream = proxy.gated(3, "gone")
            return outcome(next, stream)  # times out: Pyro5 closes the connection

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            service = Streams()
            uri = daemon.register(service, "streams")
            timed_out = await in_thread(clients, hang_up, uri)
            assert "timeout" in str(timed_out).lower(), timed_out
            assert await in_thread(clients, call, uri, "plain_add", 1, 2) == 3  # others are served meanwhile
            # as with any call in flight, the connection is let go of once the call is done:
            # the item comes, for nobody; then the stream goes and its
            # generator is closed on the loop
            service.gate.set()
            assert await wait_for_async(lambda: not daemon.streaming_responses, WAIT)
            assert await wait_for_async(lambda: "gone" in service.ended, WAIT)
            assert service.ended["gone"] == threading.current_thread().name
            assert await in_thread(clients, lambda: list(call_gen(uri, 2, "next"))) == [0, 1]

    run(main())


def test_a_lingering_stream_goes_on_on_another_connection(clients: Any) -> None:
    config.ITER_STREAM_LINGER = 30

    def first_item(daemon: Any, uri: Any) -> tuple[str, Any]:
        proxy = pyrite_proxy(uri)
        with proxy:
            stream = proxy.endless("linger")
            item = next(stream)
            stream.proxy = None  # leave it to linger: no close_stream
        return only_stream(daemon), item

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            uri = daemon.register(Streams(), "streams")
            stream_id, item = await in_thread(clients, first_item, daemon, uri)
            assert item == 0
            assert await wait_for_async(lambda: daemon.streaming_responses[stream_id][0] is None, WAIT)
            assert await in_thread(clients, fetch, daemon, stream_id) == 1
            assert await in_thread(clients, fetch, daemon, stream_id) == 2

    run(main())


def test_past_its_lifetime_a_stream_is_gone(clients: Any) -> None:
    config.ITER_STREAM_LIFETIME = 0.5

    def two_tries(uri: Any) -> tuple[Any, Any]:
        with pyrite_proxy(uri) as proxy:
            stream = proxy.endless("expired")
            first = next(stream)
            time.sleep(1.0)  # housekeeping (every POLLTIMEOUT) expires it meanwhile
            return first, outcome(next, stream)

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            service = Streams()
            uri = daemon.register(service, "streams")
            first, late = await in_thread(clients, two_tries, uri)
            assert first == 0
            assert isinstance(late, PyroError) and "no open item stream" in str(late), late
            assert await wait_for_async(lambda: "expired" in service.ended, WAIT)
            assert service.ended["expired"] == threading.current_thread().name

    run(main())


def test_two_fetches_of_one_stream_at_once(clients: Any) -> None:
    def first(uri: Any) -> Any:
        with pyrite_proxy(uri) as proxy:
            stream = proxy.gated(3, "shared")
            item = next(stream)
            stream.proxy = None
            return item

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            service = Streams()
            uri = daemon.register(service, "streams")
            opened = asyncio.ensure_future(in_thread(clients, first, uri))
            try:
                assert await wait_for_async(lambda: service.waiting == 1, WAIT)
                stream_id = only_stream(daemon)
                # a second fetch while the first waits: refused at once, as a generator that is
                # already running refuses it, and the stream is gone after it, as there
                second = await in_thread(clients, outcome, fetch, daemon, stream_id)
                assert isinstance(second, RuntimeError) and "already running" in str(second), second
            finally:
                service.gate.set()
            assert await opened == 0  # the first one still gets its item
            assert not daemon.streaming_responses

    run(main())


def test_closing_the_daemon_while_an_item_is_awaited(clients: Any) -> None:
    def wait_for_item(uri: Any, lib: str) -> Any:
        with (pyrite_proxy if lib == "pyrite" else pyro5_proxy)(uri) as proxy:
            return outcome(next, proxy.gated(3, lib))

    async def main() -> None:
        daemon = aio.Daemon(host=HOST)
        async with daemon:
            service = Streams()
            uri = daemon.register(service, "streams")
            waiting = [
                asyncio.ensure_future(in_thread(clients, wait_for_item, uri, lib)) for lib in ("pyrite", "pyro5")
            ]
            assert await wait_for_async(lambda: service.waiting == 2, WAIT)
        results = await asyncio.gather(*waiting)
        for result in results:
            assert "DaemonError" in type(result).__name__ and "closed" in str(result), result
        assert sorted(service.cancelled) == ["pyrite", "pyro5"]
        assert sorted(service.ended) == ["pyrite", "pyro5"]

    run(main())

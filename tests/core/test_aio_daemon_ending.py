"""``aio.Daemon``: how ``async def`` calls end when they do not simply return or raise an Exception.

User code raising SystemExit, KeyboardInterrupt, GeneratorExit or CancelledError gets an error
reply, as on the worker threads; the daemon and the connection go on.  Closing the daemon while
calls are awaited cancels them: their clients get a DaemonError, ``clientDisconnect`` runs once
for each connection, and ``close()`` returns promptly.  Real sockets, bounded waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pyrite.core import aio
from pyrite.core.config import config
from pyrite.core.daemon import Daemon as SyncDaemon
from pyrite.core.errors import DaemonError, PyroError
from pyrite.core.exposure import expose
from Pyro5 import config as pyro5_config

from tests.support import LoopThread, pyrite_proxy, pyro5_proxy, wait_for

HOST = "127.0.0.1"
WAIT = 10.0
KINDS: dict[str, type[BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "CancelledError": asyncio.CancelledError,
}


@pytest.fixture(autouse=True)
def _settings() -> Iterator[None]:
    config.POLLTIMEOUT = 0.1
    config.SERIALIZER = "marshal"
    saved = pyro5_config.SERIALIZER
    pyro5_config.SERIALIZER = "marshal"
    yield
    pyro5_config.SERIALIZER = saved


@pytest.fixture
def threads() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="test-client") as pool:
        yield pool


def run(coro: Any) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 45)

    return asyncio.run(bounded())


async def in_thread(pool: concurrent.futures.Executor, func: Any, *args: Any) -> Any:
    return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(pool, func, *args), WAIT)


@expose
class Service:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.finished = 0

    async def exits(self, kind: str, first_await: bool) -> None:
        if first_await:
            await asyncio.sleep(0.01)
        raise KINDS[kind]()

    async def long(self) -> str:
        self.started.set()
        try:
            await asyncio.sleep(60)
        finally:
            self.finished += 1
        return "late"

    async def add(self, a: Any, b: Any) -> Any:
        return a + b


class Counting(aio.Daemon):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.disconnects = 0

    def clientDisconnect(self, conn: Any) -> None:
        self.disconnects += 1


def add(uri: Any) -> Any:
    with pyrite_proxy(uri) as proxy:
        return proxy.add(2, 3)


@pytest.mark.parametrize("lib", ["pyrite", "pyro5"])
def test_async_methods_raising_base_exceptions_get_error_replies(threads: Any, lib: str) -> None:
    def calls(uri: Any) -> list[str]:
        messages = []
        with (pyrite_proxy if lib == "pyrite" else pyro5_proxy)(uri, timeout=3.0) as proxy:
            for kind in KINDS:
                for first_await in (False, True):
                    try:
                        proxy.exits(kind, first_await)
                    except Exception as exc:  # the Pyro5 proxy raises Pyro5's own PyroError
                        messages.append(f"{type(exc).__name__}: {exc}")
                    assert proxy.add(1, 2) == 3  # the same connection goes on
        return messages

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            uri = daemon.register(Service(), "service")
            messages = await in_thread(threads, calls, uri)
            assert len(messages) == 2 * len(KINDS)
            for message, kind in zip(messages, [k for k in KINDS for _ in (0, 1)]):
                assert message.startswith("PyroError") and kind in message
            assert await in_thread(threads, add, uri) == 5  # a new connection is served too

    run(main())


@pytest.mark.parametrize("lib", ["pyrite", "pyro5"])
def test_close_cancels_awaited_calls_and_their_clients_get_an_error(threads: Any, lib: str) -> None:
    def long_call(uri: Any) -> tuple[str, float]:
        with (pyrite_proxy if lib == "pyrite" else pyro5_proxy)(uri, timeout=8.0) as proxy:
            began = time.monotonic()
            try:
                proxy.long()
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}", time.monotonic() - began
            return "replied", time.monotonic() - began

    async def main() -> None:
        daemon = Counting(host=HOST)
        service = Service()
        uri = daemon.register(service, "service")
        async with daemon:
            pending = [asyncio.ensure_future(in_thread(threads, long_call, uri)) for _ in range(3)]
            assert await in_thread(threads, service.started.wait, WAIT)
            await asyncio.sleep(0.2)  # all three are awaiting
            began = time.monotonic()
            await asyncio.wait_for(daemon.close(), WAIT)
            assert time.monotonic() - began < 3.0
            assert service.finished == 3  # cancelled: their finally blocks ran
            assert daemon.disconnects == 3  # once per connection
            for outcome, took in await asyncio.gather(*pending):
                assert outcome.startswith("DaemonError") and "closed" in outcome, outcome
                assert took < 5.0
        assert daemon.disconnects == 3

    run(main())


def asyncio_sync_daemon() -> Any:
    """A sync Daemon on the asyncio engine (SERVERTYPE "asyncio"), served with requestLoop()."""
    config.SERVERTYPE = "asyncio"
    try:
        return SyncDaemon(host=HOST)
    finally:
        config.SERVERTYPE = "thread"


def long_call(uri: Any) -> Any:
    with pyrite_proxy(uri, timeout=8.0) as proxy:
        return proxy.long()


def test_request_loop_ending_cancels_awaited_calls(threads: Any) -> None:
    """SERVERTYPE "asyncio" with requestLoop(): shutdown() from another thread while a call is
    awaited; the caller gets a DaemonError instead of waiting for its timeout."""
    daemon = asyncio_sync_daemon()
    service = Service()
    uri = daemon.register(service, "service")
    server = LoopThread(daemon, name="test-request-loop")
    try:
        outcome = threads.submit(long_call, uri)
        assert service.started.wait(WAIT)
        time.sleep(0.2)
        daemon.shutdown()
        began = time.monotonic()
        with pytest.raises(DaemonError, match="closed"):
            outcome.result(WAIT)
        assert time.monotonic() - began < 5.0
    finally:
        server.stop(close=False)  # asserts the loop ended
    assert wait_for(lambda: service.finished == 1)


def test_close_from_inside_an_awaited_call_still_replies(threads: Any) -> None:
    @expose
    class Closer:
        daemon: Any = None

        async def close_daemon(self) -> str:
            await asyncio.sleep(0.01)
            await self.daemon.close()
            return "closed"

    def close_daemon(uri: Any) -> Any:
        with pyrite_proxy(uri) as proxy:
            return proxy.close_daemon()

    async def main() -> None:
        daemon = aio.Daemon(host=HOST)
        closer = Closer()
        closer.daemon = daemon
        uri = daemon.register(closer, "closer")
        async with daemon:
            assert await in_thread(threads, close_daemon, uri) == "closed"
        with pytest.raises(PyroError, match="closed"):
            async with daemon:
                pass

    run(main())


@expose
class Streams:
    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.finished = 0

    async def slow(self, delay: float) -> float:
        self.waiting.set()
        try:
            await asyncio.sleep(delay)
        finally:
            self.finished += 1
        return delay

    def fast(self) -> int:
        return 1

    async def stalls(self) -> Any:
        yield 1
        self.waiting.set()
        try:
            await asyncio.sleep(60)
            yield 2
        finally:
            self.finished += 1


def batch_with_slow_call(uri: Any) -> Any:
    import Pyro5.api

    with pyro5_proxy(uri, timeout=8.0) as proxy:
        batch = Pyro5.api.BatchProxy(proxy)
        batch.fast()
        batch.slow(60)
        results = batch()
        try:
            return list(results)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"


def second_item(uri: Any) -> Any:
    with pyrite_proxy(uri, timeout=8.0) as proxy:
        items = proxy.stalls()
        assert next(items) == 1
        try:
            return next(items)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("client", [batch_with_slow_call, second_item])
def test_close_ends_what_workers_await_on_the_loop(threads: Any, client: Any) -> None:
    """A worker waiting for the loop (an async method in a batch, the next item of an async
    generator) is not left waiting when the daemon closes: the client gets a DaemonError."""
    pyro5_config.SERIALIZER = "serpent"  # batches: not with marshal

    async def main() -> None:
        daemon = aio.Daemon(host=HOST)
        service = Streams()
        uri = daemon.register(service, "streams")
        async with daemon:
            outcome = asyncio.ensure_future(in_thread(threads, client, uri))
            assert await in_thread(threads, service.waiting.wait, WAIT)
            began = time.monotonic()
            await asyncio.wait_for(daemon.close(), WAIT)
            message = await outcome
            assert message.startswith("DaemonError") and "closed" in message, message
            assert time.monotonic() - began < 3.0
            assert service.finished == 1

    run(main())


def test_request_loop_ending_ends_a_batch_awaiting_on_the_loop(threads: Any) -> None:
    """With requestLoop() the loop itself goes: a worker awaiting on it got stuck for good."""
    pyro5_config.SERIALIZER = "serpent"
    daemon = asyncio_sync_daemon()
    service = Streams()
    uri = daemon.register(service, "streams")
    server = LoopThread(daemon, name="test-request-loop")
    try:
        outcome = threads.submit(batch_with_slow_call, uri)
        assert service.waiting.wait(WAIT)
        daemon.shutdown()
        message = outcome.result(WAIT)
        assert message.startswith("DaemonError") and "closed" in message, message
    finally:
        server.stop(close=False)  # not closed: the workers must end by themselves (below)
    assert wait_for(lambda: service.finished == 1)
    assert wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("pyrite-worker")])


def test_clear_errors_for_the_wrong_event_loop() -> None:
    daemon = aio.Daemon(host=HOST)
    try:
        with pytest.raises(PyroError, match="needs a running event loop"):
            daemon.start()  # no loop runs here

        async def start() -> None:
            daemon.start()

        asyncio.run(start())  # that loop is gone now; the daemon was not closed

        async def serve() -> None:
            await asyncio.wait_for(daemon.serve_forever(), WAIT)

        with pytest.raises(PyroError, match="another event loop"):
            asyncio.run(serve())
    finally:
        daemon.close()


def test_request_loop_whose_condition_ends_cancels_awaited_calls(threads: Any) -> None:
    """The loop of requestLoop(condition) goes when the condition is false, daemon open or not:
    an awaited call ends with a DaemonError instead of leaving its client to its timeout."""
    daemon = asyncio_sync_daemon()
    service = Service()
    uri = daemon.register(service, "service")
    stop = threading.Event()
    server = LoopThread(daemon, loopCondition=lambda: not stop.is_set())
    try:
        outcome = threads.submit(long_call, uri)
        assert service.started.wait(WAIT)
        stop.set()
        with pytest.raises(DaemonError, match="request loop ended"):
            outcome.result(WAIT)
        assert server.join(WAIT)
    finally:
        stop.set()
        server.join(WAIT)
        daemon.close()

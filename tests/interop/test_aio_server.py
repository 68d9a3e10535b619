"""A Pyro5 5.17 client against pyrite's ``aio.Daemon`` serving ``async def`` methods, every
serializer both speak: calls, errors, remote attributes, batches, oneway calls, streamed
async generators, and calls of several Pyro5 clients in flight at once.

The daemon runs on an event loop in a thread of this process (``AioServer``); each test
makes its calls from the test thread with Pyro5 proxies that have a timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import Pyro5.api
import Pyro5.errors
import pytest
from pyrite.core import aio
from pyrite.core.exposure import expose, oneway

TIMEOUT = 10.0


@expose
class AsyncService:
    def __init__(self) -> None:
        self._value = 7
        self.fired: list[Any] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def echo(self, value: Any) -> Any:
        await asyncio.sleep(0)
        return value

    async def add(self, a: Any, b: Any) -> Any:
        return a + b

    async def fail(self, message: str) -> None:
        await asyncio.sleep(0)
        raise ValueError(message)

    async def numbers(self, count: int) -> Any:
        for i in range(count):
            await asyncio.sleep(0)
            yield i * 10

    async def sleepy(self, delay: float) -> str:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
        return "rested"

    @oneway
    async def fire(self, value: Any) -> None:
        await asyncio.sleep(0.05)
        self.fired.append(value)

    def fired_so_far(self) -> list[Any]:
        return list(self.fired)

    @property
    def value(self) -> int:
        return self._value

    @value.setter
    def value(self, new: int) -> None:
        self._value = new


class AioServer:
    """An ``aio.Daemon`` serving on an event loop in its own thread."""

    def __init__(self) -> None:
        self.service = AsyncService()
        self.ready = threading.Event()
        self.uri: Any = None
        self.daemon: Any = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="aio server", daemon=True)
        self.thread.start()
        assert self.ready.wait(TIMEOUT), "the asyncio daemon did not start"

    async def _main(self) -> None:
        async with aio.Daemon(host="127.0.0.1") as daemon:
            self.daemon = daemon
            self.uri = daemon.register(self.service, "service")
            self.ready.set()
            await daemon.serve_forever()

    def stop(self) -> None:
        self.daemon.shutdown()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the asyncio daemon did not stop"


@pytest.fixture(scope="module")
def server() -> Iterator[AioServer]:
    served = AioServer()
    yield served
    served.stop()


def proxy(uri: Any) -> Any:
    p = Pyro5.api.Proxy(str(uri))
    p._pyroTimeout = TIMEOUT
    return p


def test_calls_and_errors(server: AioServer, serializer: str) -> None:
    with proxy(server.uri) as p:
        assert p.add(40, 2) == 42
        value = {"text": "héllo", "list": [1, 2.5, None, True], "nested": {"a": [1, 2]}}
        assert p.echo(value) == value
        with pytest.raises(ValueError, match="async trouble") as info:
            p.fail("async trouble")
        assert "".join(Pyro5.errors.get_pyro_traceback(info.type, info.value, info.tb))


def test_attributes(server: AioServer, serializer: str, request: pytest.FixtureRequest) -> None:
    if serializer == "marshal":  # Pyro5's own client cannot do this with marshal (see test_calls.py)
        request.node.add_marker(pytest.mark.xfail(reason="Pyro5 client with marshal cannot do attributes", strict=True))
    with proxy(server.uri) as p:
        p.value = 11
        assert p.value == 11


def test_batch_of_async_methods(server: AioServer, serializer: str, request: pytest.FixtureRequest) -> None:
    if serializer == "marshal":
        request.node.add_marker(pytest.mark.xfail(reason="Pyro5 client with marshal cannot do batch", strict=True))
    with proxy(server.uri) as p:
        batch = Pyro5.api.BatchProxy(p)
        batch.add(1, 2)
        batch.echo("x")
        batch.add(3, 4)
        assert list(batch()) == [3, "x", 7]


def test_async_generator_streams(server: AioServer, serializer: str) -> None:
    with proxy(server.uri) as p:
        assert list(p.numbers(6)) == [0, 10, 20, 30, 40, 50]
        taken = []
        for item in p.numbers(10_000):
            taken.append(item)
            if len(taken) == 3:
                break
        assert taken == [0, 10, 20]


def test_oneway_async(server: AioServer, serializer: str) -> None:
    with proxy(server.uri) as p:
        p.fire(serializer)
        deadline = time.monotonic() + TIMEOUT
        while serializer not in p.fired_so_far():
            assert time.monotonic() < deadline, "the oneway call never ran"
            time.sleep(0.01)


def test_pyro5_clients_in_flight_at_once(server: AioServer, serializer: str) -> None:
    results: list[Any] = []

    def client() -> None:
        with proxy(server.uri) as p:
            results.append(p.sleepy(0.5))

    server.service.most_in_flight = 0
    threads = [threading.Thread(target=client, daemon=True) for _ in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert results == ["rested"] * 6
    assert server.service.most_in_flight >= 3
    assert time.monotonic() - started < 2.9  # six 0.5 s calls one after another take 3 s

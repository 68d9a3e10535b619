"""``aio.Daemon``: how ``async def`` calls end when they do not simply return or raise an Exception.

User code raising SystemExit, KeyboardInterrupt, GeneratorExit or CancelledError gets an error
reply, as on the worker threads; the daemon and the connection go on.  Real sockets, bounded waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pyrite.core import aio
from pyrite.core.config import config
from pyrite.core.exposure import expose
from Pyro5 import config as pyro5_config

from tests.support import pyrite_proxy, pyro5_proxy

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

"""5,000 concurrent idle connections held by one ``aio.Daemon`` while a client is served.

The soft RLIMIT_NOFILE is raised for the test when it is too low for both ends of every
connection (and put back afterwards); every socket is closed and the daemon is stopped,
with bounded waits throughout.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pyrite.core import aio
from pyrite.core.config import config
from pyrite.core.exposure import expose

from tests.support import pyrite_proxy, wait_for

HOST = "127.0.0.1"
CROWD = 5000
NEEDED_FDS = 2 * CROWD + 500  # both ends live in this process, plus the test's own


@expose
class Service:
    async def add(self, a: int, b: int) -> int:
        return a + b

    def plain_add(self, a: int, b: int) -> int:
        return a + b


@pytest.fixture
def enough_fds() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < NEEDED_FDS:
        if hard != resource.RLIM_INFINITY and hard < NEEDED_FDS:
            pytest.skip(f"needs {NEEDED_FDS} file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (NEEDED_FDS, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class LoopThread:
    """An aio.Daemon serving on an event loop in its own thread."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.daemon: Any = None
        self.uri: Any = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="crowd server", daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the asyncio daemon did not start"

    async def _main(self) -> None:
        async with aio.Daemon(host=HOST) as daemon:
            self.daemon = daemon
            self.uri = daemon.register(Service(), "service")
            self.ready.set()
            await daemon.serve_forever()

    def stop(self) -> None:
        self.daemon.shutdown()
        self.thread.join(15)
        assert not self.thread.is_alive(), "the asyncio daemon did not stop"


def test_five_thousand_idle_connections_while_a_client_is_served(enough_fds: None) -> None:
    config.COMMTIMEOUT = 10.0
    config.POLLTIMEOUT = 0.2
    # the crowd stands for idle clients that connected and wait: on a busy machine opening 5,000
    # takes longer than the handshake deadline, which would close the first ones (issue 8)
    config.HANDSHAKE_TIMEOUT = 0
    server = LoopThread()
    crowd: list[socket.socket] = []
    try:
        port = server.uri.port
        deadline = time.monotonic() + 40
        for _ in range(CROWD):
            assert time.monotonic() < deadline, f"only {len(crowd)} connections in 40 s"
            crowd.append(socket.create_connection((HOST, port), timeout=10))
        engine = server.daemon.transportServer
        assert wait_for(lambda: len(engine.clients) >= CROWD, 20), f"{len(engine.clients)} connections accepted"
        with pyrite_proxy(server.uri, timeout=5) as proxy:
            for i in range(20):
                started = time.monotonic()
                assert proxy.add(i, 1) == i + 1
                assert proxy.plain_add(i, 2) == i + 2
                assert time.monotonic() - started < 5  # served, not stuck behind the crowd
        half = len(crowd) // 2
        for sock in crowd[:half]:
            sock.close()
        assert wait_for(lambda: len(engine.clients) <= CROWD - half, 20), "closed connections were not noticed"
        with pyrite_proxy(server.uri, timeout=5) as proxy:
            assert proxy.add(2, 2) == 4
    finally:
        for sock in crowd:
            sock.close()
        server.stop()

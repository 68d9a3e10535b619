"""Running daemons in tests: the one place that starts a request loop in a thread.

Works for pyrite and Pyro5 daemons alike (both have ``requestLoop``,
``shutdown`` and ``close``).  Every wait is bounded by ``JOIN``.

* ``LoopThread(daemon)``: the daemon's request loop in a thread; ``stop()``
  shuts the daemon down and asserts the loop ended, ``join()`` waits for a loop
  that ends by itself (shutdown from inside a call, a closed connection).
* ``running(daemon)``: a context manager around a ``LoopThread``.
* the ``start_daemon`` fixture: ``start_daemon(daemon)`` returns a
  ``LoopThread`` that is stopped at teardown, whatever the test did.

Example::

    def test_add(start_daemon):
        daemon = Daemon(host="127.0.0.1")
        uri = daemon.register(Calculator(), "calc")
        start_daemon(daemon)
        with pyrite_proxy(uri) as calc:
            assert calc.add(1, 2) == 3
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = ["JOIN", "LoopThread", "running", "start_daemon"]

JOIN = 10.0  # seconds any thread join may take at most


class LoopThread:
    """``daemon.requestLoop(**kwargs)`` (or ``target(**kwargs)``) running in a daemon thread."""

    def __init__(
        self,
        server: Any,
        /,
        *,
        target: Callable[..., Any] | None = None,
        name: str = "test-daemon",
        **kwargs: Any,
    ) -> None:
        self.daemon = server
        self.thread = threading.Thread(target=target or server.requestLoop, kwargs=kwargs, name=name, daemon=True)
        self.thread.start()

    @property
    def alive(self) -> bool:
        """True while the loop runs."""
        return self.thread.is_alive()

    def join(self, timeout: float = JOIN) -> bool:
        """Wait (bounded) for the loop to end by itself; True if it did."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def stop(self, close: bool = True) -> None:
        """Shut the daemon down, wait (bounded) for the loop, close the daemon; assert the loop ended."""
        with contextlib.suppress(Exception):
            self.daemon.shutdown()
        ended = self.join()
        if close:
            with contextlib.suppress(Exception):
                self.daemon.close()
        assert ended, f"request loop of {self.daemon!r} did not stop"


@contextlib.contextmanager
def running(daemon: Any, /, **kwargs: Any) -> Iterator[Any]:
    """Run the daemon's request loop in a thread; shut it down (bounded) afterwards."""
    loop = LoopThread(daemon, **kwargs)
    try:
        yield daemon
    finally:
        loop.stop(close=False)


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., LoopThread]]:
    """``start_daemon(daemon, **kwargs)``: a ``LoopThread``, stopped at teardown."""
    loops: list[LoopThread] = []

    def start(daemon: Any, /, **kwargs: Any) -> LoopThread:
        loop = LoopThread(daemon, **kwargs)
        loops.append(loop)
        return loop

    yield start
    for loop in loops:
        loop.stop()

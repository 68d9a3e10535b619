"""Helpers shared by the test modules: ``from tests.support import running, wait_for, ...``."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

JOIN = 10.0  # seconds any thread join may take at most


@contextlib.contextmanager
def running(daemon: Any) -> Iterator[Any]:
    """Run the daemon's request loop in a thread; shut it down (bounded) afterwards."""
    thread = threading.Thread(target=daemon.requestLoop, daemon=True)
    thread.start()
    try:
        yield daemon
    finally:
        daemon.shutdown()
        thread.join(JOIN)
        assert not thread.is_alive(), "request loop did not stop"


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def pyrite_proxy(uri: Any, timeout: float = 5.0) -> Any:
    """A pyrite Proxy with a bounded timeout."""
    from pyrite.core.client import Proxy

    proxy = Proxy(str(uri))
    proxy._pyroTimeout = timeout
    return proxy


def pyro5_proxy(uri: Any, timeout: float = 5.0) -> Any:
    """A Pyro5 5.17 Proxy with a bounded timeout."""
    import Pyro5.client

    proxy = Pyro5.client.Proxy(str(uri))
    proxy._pyroTimeout = timeout
    return proxy

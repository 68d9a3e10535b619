"""Helpers shared by the test modules: ``from tests.support import running, wait_for, ...``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tests.daemons import JOIN, LoopThread, running

__all__ = ["JOIN", "LoopThread", "running", "wait_for", "wait_for_async", "pyrite_proxy", "pyro5_proxy"]


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


async def wait_for_async(predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
    """``wait_for`` for a coroutine: the event loop goes on running between the polls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
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

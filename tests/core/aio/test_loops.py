"""Event-loop choice: asyncio's own loop by default, uvloop when asked for (if installed)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from pyrite.core import aio
from pyrite.core.shared import SharedProxy, shutdown_loop

from .conftest import TIMEOUT, Server

needs_uvloop = pytest.mark.skipif(not aio.uvloop_available(), reason="uvloop is not installed")


def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_default_is_asyncios_loop() -> None:
    assert not aio.using_uvloop()
    assert aio.run(_async(_loop_module)).startswith("asyncio")
    loop = aio.new_event_loop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop) and type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()


async def _async(fn: Any) -> Any:
    return fn()


@needs_uvloop
def test_uvloop_per_run_and_as_the_default(server: Server) -> None:
    assert aio.run(_async(_loop_module), uvloop=True).startswith("uvloop")
    aio.use_uvloop()
    try:
        assert aio.using_uvloop()
        assert asyncio.run(_async(_loop_module)).startswith("uvloop")  # the policy: plain asyncio.run too
        shutdown_loop()
        p = SharedProxy(server.svc_uri)  # the SharedProxy loop thread starts on uvloop now
        p._pyroTimeout = TIMEOUT
        with p:
            assert p.add(1, 2) == 3
        from pyrite.core import sharedloop

        assert sharedloop.running() is not None
        assert type(sharedloop.running().loop).__module__.startswith("uvloop")
    finally:
        aio.use_uvloop(False)
        shutdown_loop()
    assert not aio.using_uvloop()
    assert asyncio.run(_async(_loop_module)).startswith("asyncio")


def test_missing_uvloop_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an environment without uvloop looks like
    assert not aio.uvloop_available()
    with pytest.raises(ImportError, match=r"pip install pyrite-core\[uvloop\]"):
        aio.use_uvloop()
    assert not aio.using_uvloop()

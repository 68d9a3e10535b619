"""Which event loop runs pyrite's asyncio code: the default asyncio loop, or uvloop when asked for.

pyrite works on any asyncio loop.  uvloop (``pip install pyrite-core[uvloop]``)
is used only when you ask for it::

    from pyrite.core import aio

    aio.use_uvloop()            # new loops are uvloop loops from now on (asyncio.run, SharedProxy)
    asyncio.run(main())

or per run: ``aio.run(main(), uvloop=True)``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["use_uvloop", "uvloop_available", "new_event_loop", "run", "using_uvloop"]

T = TypeVar("T")

_state = {"uvloop": False}


def uvloop_available() -> bool:
    """True if uvloop can be imported."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _uvloop() -> Any:
    try:
        import uvloop
    except ImportError:
        raise ImportError("uvloop is not installed: pip install pyrite-core[uvloop]") from None
    return uvloop


def use_uvloop(enable: bool = True) -> None:
    """Make new event loops (``aio.run``, ``aio.new_event_loop``, ``SharedProxy``'s loop thread and
    ``asyncio.run``) uvloop loops; ``use_uvloop(False)`` goes back to asyncio's own loop.
    ImportError (with the pip command) when uvloop is not installed."""
    if enable:
        asyncio.set_event_loop_policy(_uvloop().EventLoopPolicy())
    elif _state["uvloop"]:
        asyncio.set_event_loop_policy(None)
    _state["uvloop"] = enable


def using_uvloop() -> bool:
    """True after ``use_uvloop()``."""
    return _state["uvloop"]


def new_event_loop(uvloop: bool | None = None) -> asyncio.AbstractEventLoop:
    """A new event loop: a uvloop loop if ``uvloop`` (default: ``using_uvloop()``), else asyncio's."""
    if uvloop is None:
        uvloop = _state["uvloop"]
    if uvloop:
        loop: asyncio.AbstractEventLoop = _uvloop().new_event_loop()
        return loop
    return asyncio.SelectorEventLoop() if os.name == "posix" else asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T], *, uvloop: bool | None = None, debug: bool | None = None) -> T:
    """``asyncio.run(main)`` on the loop ``new_event_loop(uvloop)`` makes."""
    loop = new_event_loop(uvloop)
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            leftover = asyncio.all_tasks(loop)
            for task in leftover:
                task.cancel()
            if leftover:
                loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

"""``LoopInbox``: how the asyncio engine's worker threads hand work back to the loop.

A worker that finished a plain method hands its reply (and whatever else must
happen on the loop thread) to the loop.  ``loop.call_soon_threadsafe`` wakes
the loop once per call: a write to the loop's self-pipe, and a read of it on
the loop.  The inbox keeps one FIFO of such calls per loop and wakes the loop
only when the FIFO goes from empty to not empty; calls posted while that
wake-up is pending run in the same loop callback, in the order they came.  So
with many workers replying while the loop is busy, the loop is woken once
for all of them.

Everything the engine hands from another thread to its loop goes through
one inbox, so those calls keep their order among each other::

    inbox = LoopInbox(loop)              # made on the loop's thread
    inbox.call(client.write, (parts,))   # now on the loop's thread, else posted to it
    inbox.post(client.write, (parts,))   # always posted; False once the loop is closed
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LoopInbox"]

log = logging.getLogger("pyrite.core.engines.aio")


class LoopInbox:
    """Calls from other threads to run on ``loop``, in order, one loop wake-up per batch.
    Make it on the loop's thread (``call`` tells that thread by it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.get_ident()
        self._lock = threading.Lock()
        self._calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._woken = False  # a _run is scheduled on the loop and has not taken the calls yet

    def post(self, func: Callable[..., Any], args: tuple[Any, ...] = ()) -> bool:
        """Run ``func(*args)`` on the loop soon (any thread); False if the loop is closed.

        An exception from ``func`` is logged and does not stop the calls after it."""
        with self._lock:
            self._calls.append((func, args))
            if self._woken:
                return True
            self._woken = True
        try:
            self._loop.call_soon_threadsafe(self._run)
        except RuntimeError:  # the loop is closed: nothing posted will run
            with self._lock:
                self._calls.clear()
                self._woken = False
            return False
        return True

    def call(self, func: Callable[..., Any], args: tuple[Any, ...] = ()) -> bool:
        """Run ``func(*args)`` now on the loop's thread, else ``post`` it; False if the loop is closed."""
        if threading.get_ident() == self._thread:
            func(*args)
            return True
        return self.post(func, args)

    def _run(self) -> None:
        # the loop thread: every call posted up to now, oldest first
        with self._lock:
            calls, self._calls = self._calls, []
            self._woken = False
        for func, args in calls:
            try:
                func(*args)
            except Exception:
                log.exception("error in a call handed to the event loop: %r", func)

    def __repr__(self) -> str:
        return f"<LoopInbox {len(self._calls)} waiting, woken={self._woken}>"

"""The one background event-loop thread that every ``SharedProxy`` of a process shares.

It starts with the first SharedProxy call (``loop_thread``), stops at interpreter exit or
with ``shutdown_loop()`` (a later call starts a new one), and is forgotten in a forked child,
which starts its own.  ``wait`` is how a calling thread waits for what it handed the loop.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import weakref
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import TypeVar

from .aio.channel import PipelineChannel
from .aio.loops import new_event_loop
from .errors import ConnectionClosedError

__all__ = ["LoopThread", "loop_thread", "running", "shutdown_loop", "wait"]

T = TypeVar("T")
JOIN_TIMEOUT = 10.0  # seconds shutdown_loop waits for the loop thread
WATCH_INTERVAL = 1.0  # seconds between checks that the loop thread still runs, while a call waits


class LoopThread:
    """The one background thread running the event loop of every SharedProxy."""

    def __init__(self) -> None:
        self.loop = new_event_loop()
        self.channels: weakref.WeakSet[PipelineChannel] = weakref.WeakSet()  # those calls go to directly
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pyrite-shared-proxy-loop", daemon=True)
        self.thread.start()
        self._ready.wait(JOIN_TIMEOUT)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                # calls the loop took as it stopped: cancelled, so their callers hear of it now
                while pending := asyncio.all_tasks(self.loop):  # (one may come in meanwhile)
                    for task in pending:
                        task.cancel()
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()  # a call handed in after this never starts (_wait sees the thread end)

    def stop(self) -> None:
        """Cancel what is still running (its callers get an error instead of waiting forever),
        close the connections, stop the loop and join the thread."""

        def finish() -> None:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            for channel in list(self.channels):
                channel.close()  # calls waiting on it get ConnectionClosedError
            self.loop.call_soon(self.loop.stop)  # after the cancellations and errors are delivered

        if not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(finish)
        self.thread.join(JOIN_TIMEOUT)


_lock = threading.Lock()
_loop_thread: LoopThread | None = None


def running() -> LoopThread | None:
    """The loop thread if one was started (it may have stopped meanwhile), else None."""
    return _loop_thread


def loop_thread() -> LoopThread:
    """The running loop thread, started if there is none (or it died)."""
    global _loop_thread
    runner = _loop_thread
    if runner is None or not runner.thread.is_alive():
        with _lock:
            runner = _loop_thread
            if runner is None or not runner.thread.is_alive():
                runner = _loop_thread = LoopThread()
    return runner


def shutdown_loop() -> None:
    """Stop the SharedProxy loop thread (its connections close); the next call starts a new one."""
    global _loop_thread
    with _lock:
        runner, _loop_thread = _loop_thread, None
    if runner is not None:
        runner.stop()


atexit.register(shutdown_loop)


def _forget_after_fork() -> None:
    """In a forked child: the loop thread stayed in the parent, whose loop and connections the child
    must not touch (it shares their descriptors, epoll's too); its first call starts its own loop."""
    global _loop_thread, _lock
    runner, _loop_thread, _lock = _loop_thread, None, threading.Lock()  # (a parent thread held it?)
    for channel in list(runner.channels) if runner is not None else []:  # its proxies connect anew
        channel.error = channel.error or ConnectionClosedError(
            f"connection to {channel.location} stayed with the parent process (os.fork)"
        )


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def wait(future: Future[T], runner: LoopThread) -> T:
    """The result of a call handed to the loop thread, waited for in bounded steps: a loop that
    stops before it settles the call (shut down, or stopped as it took the call) cannot hang us."""
    try:
        while True:
            try:
                return future.result(WATCH_INTERVAL)
            except FutureTimeoutError:
                if not runner.thread.is_alive() and not future.done():
                    break  # nothing left to cancel: the loop is gone
    except CancelledError:
        raise ConnectionClosedError("the SharedProxy event loop was shut down during the call") from None
    except BaseException:
        future.cancel()  # e.g. ^C in the caller: the loop drops the call, the connection stays in step
        raise
    finally:
        del future  # (as in SharedProxy._pyroRun: no cycle between the error and its future)
    raise ConnectionClosedError("the SharedProxy event loop stopped before it answered the call")

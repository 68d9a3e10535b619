"""Calls the asyncio engine awaits on its loop, and async iterators streamed like iterators.

``run_coroutine`` starts a task for an ``async def`` method (or for an
awaitable a plain method returned); the task sends the reply and, when it
held the client's turn, serves the client's next request.  A task runs in a
copy of the context with ``current_context`` set to its request's values.

An async generator result becomes an ``AsyncIteratorBridge``: an iterator
that the daemon's item streams treat like any generator.  Its next item is
awaited on the loop: ``get_next_stream_item`` of such a stream is made here
as an ``async def`` call is (``calls.loop_call_when``), so a stream that waits
for its generator holds no worker thread; the generator's end reaches the
client as a generator's does (StopIteration).  A ``next()`` from a worker
thread (a batch) waits for the item the loop produces.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import types
from collections.abc import Generator
from typing import Any

from ..callcontext import current_context
from ..calls import PendingCall
from ..errors import DaemonError, PyroError

__all__ = ["AsyncIteratorBridge", "StreamEnded", "await_from_worker", "run_coroutine"]

ITEM_POLL = 1.0  # how often a worker waiting for the loop looks whether the loop still runs
CLOSED_MESSAGE = "the daemon was closed (or its request loop ended) while this call was running"


def run_coroutine(client: Any, call: PendingCall, holds_turn: bool, awaitable: Any = None) -> None:
    """Make ``call`` on the running loop (call this on the loop thread).

    The coroutine's first step runs right here: a method that finishes without
    waiting for anything (the common case for small async methods) costs no
    task at all.  One that waits continues in a task, from where it stopped.
    """
    host = client.host
    context = contextvars.copy_context()  # run_call puts the request's current_context in place
    try:
        if awaitable is None:
            awaitable = context.run(host.run_call, call)  # the coroutine (or async generator) of the method
        if type(awaitable) is types.CoroutineType:
            try:
                yielded = context.run(awaitable.send, None)
            except StopIteration as stop:
                _finish(client, call, holds_turn, stop.value, context)
                return
            awaitable = _resume(awaitable, yielded)
        elif not hasattr(awaitable, "__await__"):
            _finish(client, call, holds_turn, awaitable, context)  # an async generator: nothing to await
            return
    except BaseException as exc:  # noqa: BLE001 - user code's SystemExit too: an error reply, as on workers
        exc = _as_sent(exc)
        # the reply is built in the call's context: what the method set there (response
        # annotations) goes out with it
        if call.method is not None and awaitable is not None:
            context.run(host.call_failed, call, exc)
        client.finish_call(call, context.run(host.fail_call, call, exc), holds_turn)
        return
    # created inside the context: the task runs in (a copy of) it
    task = context.run(asyncio.get_running_loop().create_task, _await_call(client, call, holds_turn, awaitable))
    tasks = client.engine.tasks
    tasks.add(task)  # the loop keeps only a weak reference to a task
    task.add_done_callback(tasks.discard)


@types.coroutine
def _resume(coro: Any, yielded: Any) -> Generator[Any, Any, Any]:
    """Go on driving ``coro``, which has already run up to yielding ``yielded``, under a task."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation and the like go to the coroutine, as in a task
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _await_call(client: Any, call: PendingCall, holds_turn: bool, awaitable: Any) -> None:
    host = client.host
    try:
        data = await awaitable
    except BaseException as exc:  # noqa: BLE001 - a SystemExit or a cancellation ends this call only
        exc = _as_sent(exc)
        host.call_failed(call, exc)
        if isinstance(exc, asyncio.CancelledError) and client.orphaned:  # the loop let go of it
            exc = DaemonError(CLOSED_MESSAGE)
        client.finish_call(call, host.fail_call(call, exc), holds_turn)
        return
    _finish(client, call, holds_turn, data)


def _finish(
    client: Any, call: PendingCall, holds_turn: bool, data: Any, context: contextvars.Context | None = None
) -> None:
    """Send the reply carrying ``data``, built in ``context`` (the call's, when this runs outside
    it; None: this runs in the call's task already), then go on with the client's queue."""
    if hasattr(data, "__anext__"):
        data = AsyncIteratorBridge(data, asyncio.get_running_loop(), client.engine.tasks)
    finish = client.host.finish_call
    reply = finish(call, data) if context is None else context.run(finish, call, data)
    client.finish_call(call, reply, holds_turn)


class StreamEnded(Exception):
    """An async iterator's end (StopAsyncIteration), while its item was awaited as a call.

    A coroutine cannot raise StopIteration (PEP 479 makes a RuntimeError of it), yet that is
    what a stream's end is on the wire: the call's error reply carries StopIteration instead."""


def _as_sent(exc: BaseException) -> BaseException:
    """The exception an awaited call's error reply carries for ``exc``."""
    if type(exc) is StreamEnded:
        end = StopIteration()
        end.__traceback__ = exc.__traceback__
        return end
    return exc


async def _tracked(tasks: set[asyncio.Task[Any]], awaitable: Any, context: dict[str, Any]) -> Any:
    """``await awaitable`` in a task that is in ``tasks`` meanwhile (the engine cancels those at
    close), with the ``current_context`` of the worker that handed it over (``to_global``);
    what the awaited code left in ``response_annotations`` goes back into ``context``."""
    task = asyncio.current_task()
    if task is not None:
        tasks.add(task)
    current_context.from_global(context)
    try:
        return await awaitable
    finally:
        context["response_annotations"] = current_context.response_annotations
        if task is not None:
            tasks.discard(task)


def await_from_worker(awaitable: Any, loop: asyncio.AbstractEventLoop, tasks: set[asyncio.Task[Any]]) -> Any:
    """Await ``awaitable`` on ``loop`` from a worker thread, as a task kept in ``tasks``; its result.

    The awaited code sees the worker's ``current_context`` (the request it serves: an ``async
    def`` method in a batch sees its client, annotations and correlation id), and the response
    annotations it sets come back to the worker.  The wait ends with a PyroError when the loop
    stops, and with a DaemonError when the task is cancelled (the engine closing), so a worker
    never waits for a loop that is gone."""
    context = current_context.to_global()
    try:
        future = asyncio.run_coroutine_threadsafe(_tracked(tasks, awaitable, context), loop)
    except RuntimeError:
        if hasattr(awaitable, "close"):
            awaitable.close()  # never awaited: no warning about that
        raise PyroError("the event loop of this daemon is closed") from None
    try:
        while True:
            try:
                return future.result(ITEM_POLL)
            except concurrent.futures.TimeoutError:
                if loop.is_closed() or not loop.is_running():
                    future.cancel()
                    raise PyroError("the event loop of this daemon stopped") from None
            except concurrent.futures.CancelledError:
                raise DaemonError(CLOSED_MESSAGE) from None
    finally:
        if future.done():
            current_context.response_annotations = context["response_annotations"]


class AsyncIteratorBridge:
    """A sync iterator over an async iterator that lives on ``loop``.

    On the loop's thread, ``anext_here()`` is an awaitable of the next item (its end:
    ``StreamEnded``).  ``next()`` must come from another thread (a worker): it waits
    for the loop to produce the item (a task kept in ``tasks``, which the engine
    cancels when it closes).  ``close()`` closes an async generator on the loop.
    """

    def __init__(self, aiterator: Any, loop: asyncio.AbstractEventLoop, tasks: set[asyncio.Task[Any]]) -> None:
        self._aiterator = aiterator
        self._loop = loop
        self._tasks = tasks
        self._loop_thread = threading.get_ident()

    def __iter__(self) -> AsyncIteratorBridge:
        return self

    def __next__(self) -> Any:
        if threading.get_ident() == self._loop_thread:
            raise PyroError("an async iterator result cannot be iterated on its own event loop's thread")
        try:
            return await_from_worker(self._next(), self._loop, self._tasks)
        except StopAsyncIteration:
            raise StopIteration from None

    async def _next(self) -> Any:
        return await self._aiterator.__anext__()

    def anext_here(self) -> Any:
        """On the loop's thread: an awaitable of the next item (ending with ``StreamEnded``);
        None on any other thread."""
        if threading.get_ident() != self._loop_thread:
            return None
        return self._anext()

    async def _anext(self) -> Any:
        try:
            return await self._aiterator.__anext__()
        except StopAsyncIteration:
            raise StreamEnded from None

    def close(self) -> None:
        """Close the async generator behind it (on its loop), if it is one."""
        aclose = getattr(self._aiterator, "aclose", None)
        if aclose is not None and not self._loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(aclose(), self._loop)
            except RuntimeError:
                pass

    def __repr__(self) -> str:
        return f"<AsyncIteratorBridge over {self._aiterator!r}>"

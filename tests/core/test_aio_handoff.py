"""LoopInbox: calls handed from other threads to an event loop run in order, one wake-up per batch."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from pyrite.core.engines._aio_handoff import LoopInbox

from tests.support import wait_for_async


class CountingLoop(asyncio.SelectorEventLoop):
    """An asyncio loop that counts its cross-thread wake-ups."""

    wakeups = 0

    def call_soon_threadsafe(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.wakeups += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def test_calls_from_many_threads_run_in_order_on_the_loop_with_few_wakeups() -> None:
    loop = CountingLoop()
    inbox = LoopInbox(loop)
    seen: list[tuple[int, int, bool]] = []
    loop_thread = threading.get_ident()
    go = threading.Event()

    def record(sender: int, n: int) -> None:
        seen.append((sender, n, threading.get_ident() == loop_thread))

    def sender(me: int) -> None:
        go.wait(5)
        for n in range(500):
            assert inbox.post(record, (me, n))

    async def main() -> None:
        threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            await asyncio.to_thread(t.join, 10)
        await wait_for_async(lambda: len(seen) == 2000, 2)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert len(seen) == 2000 and all(on_loop for *_, on_loop in seen)
    for me in range(4):  # each thread's calls ran in the order it posted them
        assert [n for sender_, n, _ in seen if sender_ == me] == list(range(500))
    # a post while a wake-up is pending adds to that batch (four threads race, so some do)
    assert 1 <= loop.wakeups < 2000


def test_a_failing_call_is_logged_and_the_rest_still_run(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    inbox = LoopInbox(loop)
    ran: list[str] = []

    def fail() -> None:
        raise ValueError("boom in a handed-off call")

    def post_all() -> None:
        inbox.post(ran.append, ("first",))
        inbox.post(fail)
        inbox.post(ran.append, ("last",))

    async def main() -> None:
        await asyncio.to_thread(post_all)
        await wait_for_async(lambda: len(ran) == 2, 1)

    try:
        with caplog.at_level(logging.ERROR, logger="pyrite.core.engines.aio"):
            loop.run_until_complete(main())
    finally:
        loop.close()
    assert ran == ["first", "last"]
    assert "boom in a handed-off call" in caplog.text


def test_post_to_a_closed_loop_says_so_and_keeps_nothing() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    inbox = LoopInbox(loop)
    assert inbox.post(print, ("never",)) is False
    assert "0 waiting" in repr(inbox) and "woken=False" in repr(inbox)


def test_call_runs_now_on_the_loop_thread_and_posts_from_others() -> None:
    loop = asyncio.new_event_loop()
    inbox = LoopInbox(loop)  # made on the thread that runs the loop
    order: list[str] = []

    async def main() -> None:
        assert inbox.call(order.append, ("on the loop, at once",))
        order.append("after the call")
        assert await asyncio.to_thread(inbox.call, order.append, ("from a worker, later",))
        await wait_for_async(lambda: len(order) == 3, 1)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert order == ["on the loop, at once", "after the call", "from a worker, later"]

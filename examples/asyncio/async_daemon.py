"""An asyncio daemon: ``aio.Daemon`` serving ``async def`` methods on the running event loop.

    python async_daemon.py            # serves until Ctrl-C; prints the object's URI
    python async_daemon.py --demo     # serves, lets a few clients call it, then exits

``async def`` methods run as tasks on the loop, so the ten slow calls of the
demo are cooked at the same time; a plain method (``inventory``) runs on a
worker thread, so it may block without stopping the loop; an async generator
(``menu``) streams to the client item by item; a ``@oneway`` method returns to
the caller at once.  Any client works: pyrite's ``Proxy``, ``aio.Proxy``, or Pyro5's.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyrite.api as api
from pyrite.core import aio

OBJECT_ID = "example.kitchen"


@api.expose
class Kitchen:
    """A kitchen whose dishes take a while; it cooks many at once."""

    def __init__(self) -> None:
        self.on_stove = 0
        self.most_on_stove = 0
        self.orders: list[str] = []

    async def cook(self, dish: str, minutes: int) -> str:
        self.on_stove += 1
        self.most_on_stove = max(self.most_on_stove, self.on_stove)
        try:
            await asyncio.sleep(minutes / 100)  # a "minute" is 10 ms here
        finally:
            self.on_stove -= 1
        return f"{dish} is ready"

    async def menu(self) -> Any:
        for dish in ("soup", "bread", "pie"):
            await asyncio.sleep(0)
            yield dish

    def inventory(self) -> str:
        time.sleep(0.05)  # blocking is fine here: plain methods run on worker threads
        return f"{threading.current_thread().name} counted 12 eggs"

    @api.oneway
    async def order(self, dish: str) -> None:
        await asyncio.sleep(0.1)
        self.orders.append(dish)

    def orders_taken(self) -> list[str]:
        return list(self.orders)

    def stove_record(self) -> int:
        return self.most_on_stove


async def serve(demo: bool) -> None:
    async with aio.Daemon(host="127.0.0.1") as daemon:
        uri = daemon.register(Kitchen(), OBJECT_ID)
        print("Ready. Object uri =", uri, flush=True)
        if demo:
            await asyncio.get_running_loop().run_in_executor(None, run_clients, str(uri))
            print("Done.")
            return
        await daemon.serve_forever()  # until Ctrl-C


def run_clients(uri: str) -> None:
    """What a few sync clients in threads see (the daemon's loop serves them meanwhile)."""

    def cook(n: int) -> str:
        with api.Proxy(uri) as kitchen:
            return str(kitchen.cook(f"dish {n}", 50))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        ready = list(pool.map(cook, range(10)))
    took = time.monotonic() - started
    with api.Proxy(uri) as kitchen:
        print(f"{len(ready)} dishes in {took:.1f} s, at most {kitchen.stove_record()} on the stove at once")
        print("menu:", ", ".join(kitchen.menu()))
        print("inventory:", kitchen.inventory())
        started = time.monotonic()
        kitchen.order("tea")
        print(f"oneway order returned in {time.monotonic() - started:.2f} s")
        deadline = time.monotonic() + 5
        while not kitchen.orders_taken() and time.monotonic() < deadline:
            time.sleep(0.02)
        print("orders taken:", kitchen.orders_taken())


def main() -> None:
    try:
        asyncio.run(serve("--demo" in sys.argv[1:]))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

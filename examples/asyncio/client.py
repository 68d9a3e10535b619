"""An asyncio client: awaited calls, a remote attribute, an async stream, 100 tasks on one proxy,
and a SharedProxy called from several threads.

Usage: python client.py URI
"""

from __future__ import annotations

import asyncio
import sys
import time

import pyrite.api as api
from pyrite.api import aio


async def main(uri: str) -> None:
    async with aio.Proxy(uri) as library:
        print("name:", await library.name)  # a remote attribute: await it
        print("one call:", await library.title(7))
        titles = [title async for title in await library.shelf(3)]  # a remote generator
        print("shelf:", ", ".join(titles))

        # many tasks, one proxy: the calls are pipelined on one connection
        started = time.perf_counter()
        books = await asyncio.gather(*(library.title(n) for n in range(100)))
        elapsed = time.perf_counter() - started
        print(f"100 concurrent calls: {len(set(books))} distinct titles, first {books[0]!r}, last {books[-1]!r}")
        print(f"(took {elapsed:.2f} s on one connection)")

        await library.visit()  # oneway: returns once the request is written
        await library.visit()
        await asyncio.sleep(0.05)
        print("visitors:", await library.visitors())

    # the sync counterpart: one SharedProxy that several threads call at once
    with api.SharedProxy(uri) as shared:
        per_thread = await asyncio.gather(
            *(asyncio.to_thread(lambda k=k: [shared.title(k * 10 + i) for i in range(10)]) for k in range(4))
        )
        print("SharedProxy from 4 threads:", sum(len(titles) for titles in per_thread), "calls, one connection")


def run(uri: str) -> None:
    aio.run(main(uri))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python client.py URI")
    run(sys.argv[1])

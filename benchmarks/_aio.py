"""Benchmark workloads for pyrite's asyncio client and SharedProxy, with Pyro5's nearest equivalent.

Kinds (``prepare`` workload names in ``_worker.py``):

``aio-seq``
    pyrite: one ``aio.Proxy``, one task, sequential small calls on one event loop.
    Pyro5 (no asyncio API): its sync Proxy, sequential small calls.
``aio-tasks``
    pyrite: ``TASKS`` tasks calling concurrently through one ``aio.Proxy`` (pipelined on one
    connection).  Pyro5 (a proxy is one caller at a time): ``TASKS`` threads, a proxy each.
``shared8``
    pyrite: 8 threads calling through one ``SharedProxy``.  Pyro5 (no shared proxies):
    8 threads, a proxy each.
``aio-seq-uvloop``, ``aio-tasks-uvloop``
    the same on a uvloop event loop (pyrite); Pyro5 as above.

Each object offers ``check()``, ``warm_up(seconds)``, ``run(start, duration)`` and ``close()`` like
``_worker.Workload``; ``run`` answers the same dict (ops, units, t0, t1, cpu).
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from typing import Any

KINDS = ("aio-seq", "aio-tasks", "shared8", "aio-seq-uvloop", "aio-tasks-uvloop")
TASKS = 100
THREADS = 8
JOIN = 120.0


def make(lib: Any, kind: str, uri: str, serializer: str) -> Any:
    """The workload object for ``kind`` on library ``lib``."""
    if kind not in KINDS:
        raise ValueError(f"unknown workload {kind!r}")
    base = kind.removesuffix("-uvloop")
    uvloop = kind.endswith("-uvloop")
    if lib.name == "pyrite":
        if base == "shared8":
            return SharedThreads(lib, uri, serializer)
        return AsyncCalls(lib, uri, serializer, TASKS if base == "aio-tasks" else 1, uvloop)
    if lib.name == "pyro5":
        return ThreadedCalls(lib, uri, serializer, {"aio-seq": 1, "aio-tasks": TASKS, "shared8": THREADS}[base])
    raise ValueError(f"{kind} has no {lib.name} variant")


def _result(ops: int, t0: float, t1: float, cpu: float) -> dict:
    return {"ops": ops, "units": ops, "t0": t0, "t1": t1, "cpu": cpu}


class AsyncCalls:
    """``tasks`` tasks calling ``ping`` through one pyrite aio.Proxy on this process's event loop."""

    def __init__(self, lib: Any, uri: str, serializer: str, tasks: int, uvloop: bool = False) -> None:
        self.tasks = tasks
        self.loop = lib.aio.new_event_loop(uvloop)
        self.proxy = lib.aio.Proxy(uri)
        self.proxy._pyroSerializer = serializer
        self.loop.run_until_complete(self.proxy._pyroBind())

    def check(self) -> None:
        async def go() -> None:
            answers = await asyncio.gather(*(self.proxy.ping(i) for i in range(self.tasks)))
            assert answers == list(range(self.tasks)), answers[:5]

        self.loop.run_until_complete(go())

    async def _caller(self, deadline: float) -> int:
        ping = self.proxy.ping
        n = 0
        while True:
            await ping(42)
            n += 1
            if time.monotonic() >= deadline:
                return n

    def _timed(self, deadline: float) -> int:
        async def go() -> int:
            counts = await asyncio.gather(*(self._caller(deadline) for _ in range(self.tasks)))
            return sum(counts)

        return self.loop.run_until_complete(go())

    def warm_up(self, seconds: float) -> None:
        self._timed(time.monotonic() + seconds)

    def run(self, start: float, duration: float) -> dict:
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        cpu0 = time.process_time()
        t0 = time.monotonic()
        ops = self._timed(start + duration)
        return _result(ops, t0, time.monotonic(), time.process_time() - cpu0)

    def close(self) -> None:
        self.loop.run_until_complete(self.proxy._pyroRelease())
        self.loop.close()


def _threads(count: int, target: Any) -> list[Any]:
    """Run ``target(i)`` on ``count`` threads; their results (the first failure is raised)."""
    results: list[Any] = [None] * count
    errors: list[str] = []

    def work(i: int) -> None:
        try:
            results[i] = target(i)
        except Exception:
            errors.append(traceback.format_exc(limit=6))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN)
    if errors:
        raise RuntimeError(errors[0])
    return results


def _loop_calls(call: Any, deadline: float) -> int:
    n = 0
    while True:
        call(42)
        n += 1
        if time.monotonic() >= deadline:
            return n


class SharedThreads:
    """8 threads calling ``ping`` through one pyrite SharedProxy."""

    def __init__(self, lib: Any, uri: str, serializer: str) -> None:
        self.proxy = lib.SharedProxy(uri)
        self.proxy._pyroSerializer = serializer
        self.proxy._pyroBind()

    def check(self) -> None:
        answers = _threads(THREADS, lambda i: self.proxy.ping(i))
        assert answers == list(range(THREADS)), answers

    def _timed(self, deadline: float) -> int:
        return sum(_threads(THREADS, lambda i: _loop_calls(self.proxy.ping, deadline)))

    def warm_up(self, seconds: float) -> None:
        self._timed(time.monotonic() + seconds)

    def run(self, start: float, duration: float) -> dict:
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        cpu0 = time.process_time()
        t0 = time.monotonic()
        ops = self._timed(start + duration)
        return _result(ops, t0, time.monotonic(), time.process_time() - cpu0)

    def close(self) -> None:
        self.proxy._pyroRelease()


class ThreadedCalls:
    """``count`` threads of this process, a Pyro5 proxy each, calling ``ping`` (one thread: no threads)."""

    def __init__(self, lib: Any, uri: str, serializer: str, count: int) -> None:
        self.count = count
        self.proxies = []
        for _ in range(count):
            proxy = lib.Proxy(uri)
            proxy._pyroSerializer = serializer
            proxy._pyroBind()
            self.proxies.append(proxy)

    def _each(self, fn: Any) -> list[Any]:
        if self.count == 1:
            return [fn(0)]

        def owned(i: int) -> Any:
            self.proxies[i]._pyroClaimOwnership()  # the proxy belongs to the thread that uses it
            return fn(i)

        return _threads(self.count, owned)

    def check(self) -> None:
        answers = self._each(lambda i: self.proxies[i].ping(i))
        assert answers == list(range(self.count)), answers[:5]

    def _timed(self, deadline: float) -> int:
        return sum(self._each(lambda i: _loop_calls(self.proxies[i].ping, deadline)))

    def warm_up(self, seconds: float) -> None:
        self._timed(time.monotonic() + seconds)

    def run(self, start: float, duration: float) -> dict:
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        cpu0 = time.process_time()
        t0 = time.monotonic()
        ops = self._timed(start + duration)
        return _result(ops, t0, time.monotonic(), time.process_time() - cpu0)

    def close(self) -> None:
        for proxy in self.proxies:
            proxy._pyroClaimOwnership()
            proxy._pyroRelease()

"""Server CPU per call of one workload: a pyrite daemon in this process, the clients in others.

Usage (from the repository root)::

    hatch run python benchmarks/profile_server.py thread serpent ping 3000
    hatch run python benchmarks/profile_server.py multiplex serpent ping 1500 --procs 4 --profile

Arguments: SERVERTYPE (thread, multiplex, asyncio: with ``--coroutines`` the methods are
``async def``), SERIALIZER, WORKLOAD (``ping``, ``oneway``,
``batch100``, ``batch1000``, ``connect``, ``echoN`` for N MB of bytes, hex text for json,
``tasksN`` for N asyncio tasks calling ``ping`` through one shared ``aio.Proxy``)
and the number of units per client.  ``--procs`` client processes with ``--threads``
threads each (a proxy per thread).  The daemon uses the benchmark's settings.  The first
line is this process's CPU time (all threads: the daemon only, the clients run elsewhere)
per unit; ``--profile`` adds a cProfile of every daemon thread, timed with each thread's
own CPU clock (``time.thread_time``), so a syscall's line is its CPU, not its wait.
To measure another tree, put its ``packages/*/src`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import threading
import time

CLIENT = r"""
import os, sys, threading
from pyrite.core.config import config
uri, serializer, workload, count, threads = sys.argv[1:6]
count, threads = int(count), int(threads)
config.SERIALIZER = serializer
config.MAX_MESSAGE_SIZE = 1 << 30
import pyrite.api as api

def work():
    proxy = api.Proxy(uri)
    proxy._pyroBind()
    if workload == "ping":
        for _ in range(count):
            proxy.ping(42)
    elif workload == "oneway":
        for _ in range(count):
            proxy.fire(42)
        proxy.ping(1)  # returns once every oneway call before it was read
    elif workload.startswith("batch"):
        size = int(workload[5:])
        for _ in range(max(1, count // size)):
            batch = api.BatchProxy(proxy)
            for _ in range(size):
                batch.ping(42)
            list(batch())
    elif workload.startswith("echo"):
        size = int(workload[4:]) * 1024 * 1024
        data = os.urandom(size // 2).hex() if serializer == "json" else os.urandom(size)
        for _ in range(count):
            proxy.echo(data)
    elif workload.startswith("tasks"):
        import asyncio
        from pyrite.core import aio

        async def calls(shared):
            for _ in range(count):
                await shared.ping(42)

        async def tasks():
            async with aio.Proxy(uri) as shared:
                shared._pyroSerializer = serializer
                await asyncio.gather(*(calls(shared) for _ in range(int(workload[5:]))))

        asyncio.run(tasks())
    elif workload == "connect":
        for _ in range(count):
            fresh = api.Proxy(uri)
            fresh.ping(42)
            fresh._pyroRelease()
    proxy._pyroRelease()

workers = [threading.Thread(target=work) for _ in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
"""


def process_cpu() -> float:
    """CPU seconds of this process, all threads (Linux /proc)."""
    with open(f"/proc/{os.getpid()}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("servertype", choices=["thread", "multiplex", "asyncio"])
    parser.add_argument("serializer")
    parser.add_argument("workload")
    parser.add_argument("count", type=int)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--coroutines", action="store_true", help="serve async def methods (asyncio)")
    parser.add_argument("--sort", default="tottime")
    args = parser.parse_args()

    from pyrite.core.config import config

    config.SERVERTYPE = args.servertype
    config.MAX_MESSAGE_SIZE = 1 << 30
    config.THREADPOOL_SIZE, config.THREADPOOL_SIZE_MIN, config.POLLTIMEOUT = 80, 4, 2.0
    import pyrite.api as api

    profiles: list[cProfile.Profile] = []
    if args.profile:
        plain_run = threading.Thread.run

        def profiled_run(self: threading.Thread) -> None:
            profile = cProfile.Profile(time.thread_time)
            profiles.append(profile)
            profile.enable()
            try:
                plain_run(self)
            finally:
                profile.disable()

        threading.Thread.run = profiled_run  # type: ignore[method-assign]

    @api.expose
    class Bench:
        def ping(self, value):
            return value

        def echo(self, data):
            return data

        @api.oneway
        def fire(self, value):
            pass

    @api.expose
    class AsyncBench:
        async def ping(self, value):
            return value

        async def echo(self, data):
            return data

        @api.oneway
        async def fire(self, value):
            pass

    daemon = api.Daemon(host="127.0.0.1", port=0)
    uri = daemon.register(AsyncBench() if args.coroutines else Bench(), "bench")
    loop = threading.Thread(target=daemon.requestLoop, name="daemon-loop", daemon=True)
    loop.start()
    cpu0, wall0 = process_cpu(), time.monotonic()
    argv = [sys.executable, "-c", CLIENT, str(uri), args.serializer, args.workload, str(args.count), str(args.threads)]
    clients = [subprocess.Popen(argv) for _ in range(args.procs)]
    for client in clients:
        client.wait(timeout=600)
    wall, cpu = time.monotonic() - wall0, process_cpu() - cpu0
    units = args.count * args.procs * args.threads
    if args.workload.startswith("tasks"):
        units *= int(args.workload[5:])
    if args.workload.startswith("batch"):
        units = max(1, args.count // int(args.workload[5:])) * int(args.workload[5:]) * args.procs * args.threads
    scale, unit = (1e3, "ms") if args.workload.startswith("echo") else (1e6, "µs")
    print(
        f"{args.servertype} {args.serializer} {args.workload} x{args.procs * args.threads}: "
        f"server CPU {cpu / units * scale:.1f} {unit}/call, wall {wall / units * scale:.1f} {unit}/call"
    )
    daemon.shutdown()
    loop.join(5.0)
    if profiles:
        stats: pstats.Stats | None = None
        for profile in profiles:
            try:
                if stats is None:
                    stats = pstats.Stats(profile, stream=io.StringIO())
                else:
                    stats.add(profile)
            except TypeError:  # a thread that never ran Python code has no stats
                continue
        if stats is not None:
            stats.stream = sys.stdout  # type: ignore[attr-defined]
            stats.sort_stats(args.sort).print_stats(30)


if __name__ == "__main__":
    main()

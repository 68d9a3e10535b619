"""Benchmark server process: one daemon of one library, serving the Bench object.

Usage: ``python _server.py LIBRARY SERVERTYPE CONFIG_JSON``

Prints ``URI <uri>`` on stdout once the daemon listens on 127.0.0.1, then
serves until its stdin closes (the parent went away or is done) or until a
hard lifetime cap passes, whichever comes first.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import _libs

MAX_LIFETIME = 900.0  # seconds; a last resort if the parent never closes our stdin
HERE = pathlib.Path(__file__).resolve().parent


@contextlib.contextmanager
def spawned(lib: str, servertype: str, settings: dict[str, Any]) -> Iterator[str]:
    """This server in a process of its own for a ``with`` block: yields its URI, then stops it
    (closes its stdin and waits for it)."""
    server = subprocess.Popen(
        [sys.executable, str(HERE / "_server.py"), lib, servertype, json.dumps(settings)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        yield server.stdout.readline().split()[1]
    finally:
        server.stdin.close()
        server.wait(30)


def make_bench_class(lib):
    """The served class, decorated with the library's own expose/oneway."""

    @lib.expose
    class Bench:
        """Tiny methods: the cost measured is the library's, not the method's."""

        def ping(self, value):
            return value

        def echo(self, data):
            return data

        @lib.oneway
        def fire(self, value):
            pass

    return Bench


def make_async_bench_class(lib):
    """The served class with ``async def`` methods (pyrite's asyncio daemon runs them on its loop)."""

    @lib.expose
    class AsyncBench:
        """The same tiny methods as Bench, as coroutines."""

        async def ping(self, value):
            return value

        async def echo(self, data):
            return data

        @lib.oneway
        async def fire(self, value):
            pass

    return AsyncBench


def serve_asyncio(lib, servertype: str) -> None:
    """pyrite's aio.Daemon on an asyncio loop: "asyncio" serves async methods, "asyncio-threads"
    plain ones (they run on the daemon's worker threads); "asyncio-uvloop" is "asyncio" on
    uvloop's event loop (when uvloop is installed)."""
    import asyncio

    if servertype.endswith("-uvloop"):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    from pyrite.core import aio

    async def run() -> None:
        async with aio.Daemon(host="127.0.0.1", port=0) as daemon:
            cls = make_bench_class(lib) if servertype == "asyncio-threads" else make_async_bench_class(lib)
            uri = daemon.register(cls(), "bench")

            def watch_stdin() -> None:
                sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
                daemon.shutdown()
                threading.Timer(10.0, os._exit, (0,)).start()

            threading.Thread(target=watch_stdin, daemon=True).start()
            print(f"URI {uri}", flush=True)
            await daemon.serve_forever()

    asyncio.run(run())


def main() -> None:
    libname, servertype, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    lib = _libs.load(libname)
    _libs.configure(lib, settings)
    if servertype.startswith("asyncio"):
        killer = threading.Timer(MAX_LIFETIME, os._exit, (3,))
        killer.daemon = True
        killer.start()
        serve_asyncio(lib, servertype)
        os._exit(0)
    lib.config.SERVERTYPE = servertype
    daemon = lib.Daemon(host="127.0.0.1", port=0)
    uri = daemon.register(make_bench_class(lib)(), "bench")

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
        daemon.shutdown()
        # Pyro5's thread server may take POLLTIMEOUT to notice; do not linger past that.
        threading.Timer(10.0, os._exit, (0,)).start()

    threading.Thread(target=watch_stdin, daemon=True).start()
    killer = threading.Timer(MAX_LIFETIME, os._exit, (3,))
    killer.daemon = True
    killer.start()
    print(f"URI {uri}", flush=True)
    daemon.requestLoop()
    daemon.close()
    os._exit(0)


if __name__ == "__main__":
    main()

"""The event loop's own cost per round trip: the floor under any asyncio client.

Usage (from the repository root)::

    hatch run python benchmarks/asyncio_floor.py            # 10,000 round trips per way
    hatch run python benchmarks/asyncio_floor.py -n 20000

A pyrite daemon (thread server, marshal) runs in its own process.  The same prebuilt
request bytes go over one connection several ways, with no serializer, session or
proxy on the client: a blocking socket (``sendall`` + ``recv``); on the default event
loop an ``asyncio.Protocol`` whose ``data_received`` settles one future per call, and an
``asyncio.BufferedProtocol`` that does the same from a buffer of its own (what
pyrite's channel is on asyncio's own loops, ``BufferedChannel``); the two again on
uvloop (when installed).  It prints calls/s and the client's CPU per call for each:
what the event loop costs before pyrite does anything, next to the ``aio-seq`` row
of ``run.py``.  A plain ``Protocol`` on the default loop receives into a new 256 KiB
``bytes`` per read, which glibc maps, shrinks and unmaps each time unless its mmap
threshold was raised earlier in the process: that is the difference between the two,
when there is one.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import _server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10_000, help="round trips per way")
    count = parser.parse_args().n
    with _server.spawned("pyrite", "thread", {"SERIALIZER": "marshal"}) as uri:
        run(uri, count)


def run(uri: str, count: int) -> None:
    from pyrite.core import plugins
    from pyrite.core.config import config
    from pyrite.core.session import CLIENT, Session

    config.SERIALIZER = "marshal"
    import pyrite.api as api

    proxy = api.Proxy(uri)
    proxy._pyroBind()  # connected and handshaken: the requests below continue its sequence numbers
    serializer = plugins.get_serializer("marshal")
    session = Session(CLIENT, seq=proxy._pyroSeq)
    payload = serializer.dumpsCall("bench", "ping", (42,), {})
    requests = [session.invoke(serializer.serializer_id, payload).data for _ in range(5 * count)]
    sock = proxy._pyroConnection.socket
    sock.settimeout(None)

    started, cpu = time.perf_counter(), time.process_time()
    for request in requests[:count]:
        sock.sendall(request)
        sock.recv(65536)  # a small reply arrives whole
    report("blocking socket", count, started, cpu)

    class OneAtATime(asyncio.Protocol):
        waiter: Any = None

        def data_received(self, data: bytes) -> None:
            self.waiter.set_result(data)

    class Buffered(asyncio.BufferedProtocol):
        waiter: Any = None

        def __init__(self) -> None:
            self.buffer = memoryview(bytearray(65536))

        def get_buffer(self, sizehint: int) -> memoryview:
            return self.buffer

        def buffer_updated(self, nbytes: int) -> None:
            self.waiter.set_result(bytes(self.buffer[:nbytes]))

    async def on_loop(batch: list[bytes], protocol_class: Any) -> None:
        loop = asyncio.get_running_loop()
        mine = sock.dup()  # the transport closes its socket; the connection stays open on ``sock``
        mine.setblocking(False)
        transport, protocol = await loop.connect_accepted_socket(protocol_class, mine)
        started, cpu = time.perf_counter(), time.process_time()
        for request in batch:
            protocol.waiter = loop.create_future()
            transport.write(request)
            await protocol.waiter
        report(f"asyncio.{protocol_class.__mro__[1].__name__} on {type(loop).__module__}", count, started, cpu)
        transport.close()

    ways = (OneAtATime, Buffered)
    requests = requests[count:]
    for protocol_class in ways:
        asyncio.run(on_loop(requests[:count], protocol_class))
        requests = requests[count:]
    try:
        import uvloop
    except ImportError:
        print("uvloop: not installed")
    else:
        for protocol_class in ways:
            loop = uvloop.new_event_loop()
            try:
                loop.run_until_complete(on_loop(requests[:count], protocol_class))
            finally:
                loop.close()
            requests = requests[count:]
    proxy._pyroRelease()


def report(way: str, count: int, started: float, cpu: float) -> None:
    wall, used = time.perf_counter() - started, time.process_time() - cpu
    print(f"{way}: {count / wall:,.0f} calls/s, client CPU {used / count * 1e6:.1f} µs/call")


if __name__ == "__main__":
    main()

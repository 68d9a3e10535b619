"""Client-side CPU per call of one benchmark row, optionally with a cProfile of the client thread.

Usage (from the repository root)::

    hatch run python benchmarks/profile_client.py marshal            # CPU per call
    hatch run python benchmarks/profile_client.py echo-marshal --profile
    INPROC=1 hatch run python benchmarks/profile_client.py batch1000  # daemon in this process

The daemon runs in its own process (``_server.py``, thread server, the
benchmark's settings) unless ``INPROC`` is set, so the client thread's CPU
(``time.thread_time``) is the client's alone.  Rows: marshal, msgpack,
serpent, batch, batch1000, connect, echo-marshal, echo1m-marshal.  The
profile's times are wall times: a syscall's line includes the wait for the
peer, so read CPU from the first line and call counts from the profile.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import resource
import threading
import time

import _server

ROWS = ("marshal", "msgpack", "serpent", "batch", "batch1000", "connect", "echo-marshal", "echo1m-marshal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("row", choices=ROWS)
    parser.add_argument("-n", "--units", type=int, default=0, help="calls to time (default: per row)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the timed calls")
    args = parser.parse_args()
    import pyrite.api as api

    row = args.row
    serializer = "serpent" if row in ("serpent", "connect") or row.startswith("batch") else row.partition("-")[2] or row
    serializer = {"marshal": "marshal", "msgpack": "msgpack"}.get(serializer, serializer)
    settings = dict(COMMTIMEOUT=0.0, MAX_MESSAGE_SIZE=1 << 30, COMPRESSION=False, SERIALIZER=serializer)
    for item, value in settings.items():
        setattr(api.config, item, value)
    server = contextlib.ExitStack()  # the daemon's own process, unless INPROC
    if os.environ.get("INPROC"):

        @api.expose
        class Bench:
            def ping(self, value):
                return value

            def echo(self, data):
                return data

        daemon = api.Daemon(host="127.0.0.1", port=0)
        uri = str(daemon.register(Bench(), "bench"))
        threading.Thread(target=daemon.requestLoop, daemon=True).start()
    else:
        uri = server.enter_context(_server.spawned("pyrite", "thread", settings))
    units = args.units or {"connect": 1000, "echo-marshal": 100, "echo1m-marshal": 1000, "batch1000": 100_000}.get(
        row, 50_000 if row == "batch" else 20_000
    )
    proxy = api.Proxy(uri)
    proxy._pyroBind()
    data = os.urandom(10_000_000 if row == "echo-marshal" else 1_000_000)
    size = 1000 if row == "batch1000" else 100

    def step() -> int:
        if row.startswith("batch"):
            batch = api.BatchProxy(proxy)
            for _ in range(size):
                batch.ping(42)
            for _ in batch():
                pass
            return size
        if row == "connect":
            with api.Proxy(uri) as fresh:
                fresh.ping(42)
            return 1
        if row.startswith("echo"):
            proxy.echo(data)
            return 1
        proxy.ping(42)
        return 1

    done = 0
    while done < max(1, units // 20):  # warm up
        done += step()
    profile = cProfile.Profile() if args.profile else None
    usage0 = resource.getrusage(resource.RUSAGE_THREAD)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    if profile:
        profile.enable()
    done = 0
    while done < units:
        done += step()
    if profile:
        profile.disable()
    cpu1, wall1 = time.thread_time(), time.perf_counter()
    usage1 = resource.getrusage(resource.RUSAGE_THREAD)
    user = 1e6 * (usage1.ru_utime - usage0.ru_utime) / done
    system = 1e6 * (usage1.ru_stime - usage0.ru_stime) / done
    print(
        f"{row}: client CPU {1e6 * (cpu1 - cpu0) / done:.1f} µs per unit (user {user:.1f}, system {system:.1f}), "
        f"wall {1e6 * (wall1 - wall0) / done:.1f} µs, {done} units"
    )
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    proxy._pyroRelease()
    server.close()


if __name__ == "__main__":
    main()

"""Server CPU per small call, pyrite's thread engine beside Pyro5's thread server, interleaved.

Usage (from the repository root)::

    hatch run python benchmarks/server_cpu.py                  # marshal, 10,000 calls, 2 pairs
    hatch run python benchmarks/server_cpu.py msgpack 5000 --pairs 3 --profile

Each measurement starts the library's daemon in a child process of its own; one client
process makes COUNT ``ping(42)`` calls; the daemon process prints its CPU time
(``time.process_time()``, all threads) per call.  ``--profile`` adds, per library, the
number of Python-level function calls per request in the daemon's threads (a cProfile
started in every thread with ``threading.setprofile``) and the ten costliest lines.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

SERVER = r"""
import cProfile, io, pstats, subprocess, sys, threading, time
lib, serializer, count, profile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
profiles = []
if profile:
    def start(frame, event, arg):
        sys.setprofile(None)
        p = cProfile.Profile(time.thread_time)
        profiles.append(p)
        p.enable()
    threading.setprofile(start)
if lib == "pyro5":
    import Pyro5.api as api
    from Pyro5 import config
else:
    import pyrite.api as api
    from pyrite.core.config import config
config.SERVERTYPE = "thread"
config.SERIALIZER = serializer

@api.expose
class Bench:
    def ping(self, value):
        return value

daemon = api.Daemon(host="127.0.0.1")
uri = daemon.register(Bench())
threading.Thread(target=daemon.requestLoop, daemon=True).start()
client = (
    "import sys\n"
    "if sys.argv[1] == 'pyro5':\n    import Pyro5.api as api; from Pyro5 import config\n"
    "else:\n    import pyrite.api as api; from pyrite.core.config import config\n"
    "config.SERIALIZER = sys.argv[2]\n"
    "p = api.Proxy(sys.argv[3]); p._pyroBind()\n"
    "for _ in range(int(sys.argv[4])): p.ping(42)\n"
)
cpu = time.process_time()
subprocess.run([sys.executable, "-c", client, lib, serializer, str(uri), str(count)], check=True, timeout=600)
cpu = time.process_time() - cpu
daemon.shutdown()
print(f"{lib:7} {serializer}: server CPU {cpu / count * 1e6:.1f} us/call")
if profile:
    out = io.StringIO()
    stats = None
    for p in profiles:
        p.create_stats()
        if p.stats:
            stats = pstats.Stats(p, stream=out) if stats is None else stats.add(p)
    if stats is not None:
        print(f"        {stats.total_calls / count:.0f} function calls per request")
        stats.sort_stats("tottime").print_stats(10)
        print(out.getvalue())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("serializer", nargs="?", default="marshal")
    parser.add_argument("count", nargs="?", type=int, default=10000)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    for _ in range(args.pairs):
        for lib in ("pyro5", "pyrite"):
            flag = "1" if args.profile else "0"
            command = [sys.executable, "-c", SERVER, lib, args.serializer, str(args.count), flag]
            subprocess.run(command, check=True, timeout=900)


if __name__ == "__main__":
    main()

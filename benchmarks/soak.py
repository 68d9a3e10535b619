"""Fault-injection soak (issue 8): legit calls under hostile load, against one pyrite daemon.

    hatch run python benchmarks/soak.py                     # 60 s, SERVERTYPE thread
    hatch run python benchmarks/soak.py --servertype multiplex --seconds 30

Not part of the test run.  One server process (this file with ``--serve``, a
daemon on 127.0.0.1) is driven for ``--seconds`` by:

* legit clients: threads calling ``echo`` through pyrite proxies, timing each call;
* hostile connections: silent sockets, half-sent headers, garbage, compression
  bombs before the handshake, clients that pipeline large requests and never
  read the replies, raw oneway floods of slow calls;
* client processes killed with SIGKILL in the middle of calls and streams.

Every second the server's RSS, descriptors and threads are sampled from /proc.
At the end it prints calls served, legit errors, latency percentiles, hostile
actions done, the RSS slope (least squares over the samples after a 10 s
warm-up) and fd/thread counts at start, peak and end.  Exit status 1 if the
server died or a legit call failed.  All traffic stays on 127.0.0.1; every
loop is bounded by the run's deadline and every socket has a timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = struct.Struct("!4sHBBHHII16sHH")
JSON_ID = 3
SETTINGS = {
    "PYRITE_HANDSHAKE_TIMEOUT": "2",
    "PYRITE_FRAME_TIMEOUT": "2",
    "PYRITE_SEND_TIMEOUT": "2",
    "PYRITE_MAX_OUTPUT_BUFFER": str(1024 * 1024),
    "PYRITE_MAX_CONNECTIONS": "400",
    "PYRITE_POLLTIMEOUT": "0.5",
    "PYRITE_THREADPOOL_SIZE": "32",
}


# ----- the server process -----------------------------------------------------------------


def serve() -> None:
    """Run the soak daemon until killed (``--serve``)."""
    from pyrite.core.daemon import Daemon
    from pyrite.core.exposure import expose, oneway

    @expose
    class Soak:
        def echo(self, value: Any) -> Any:
            return value

        def big(self, size: int) -> str:
            return "x" * min(int(size), 4 * 1024 * 1024)

        def slow(self, seconds: float) -> float:
            time.sleep(min(float(seconds), 2.0))
            return seconds

        @oneway
        def slow_oneway(self, seconds: float) -> None:
            time.sleep(min(float(seconds), 1.0))

        def gen(self, n: int) -> Any:
            return (i for i in range(int(n)))

    daemon = Daemon(host="127.0.0.1", port=0)
    print(f"URI {daemon.register(Soak(), 'soak')}", flush=True)
    daemon.requestLoop()


# ----- the wire, by hand (hostile actors do not use pyrite's client) -----------------------


def message(msgtype: int, payload: bytes, flags: int = 0, seq: int = 0) -> bytes:
    head = HEADER.pack(b"PYRO", 502, msgtype, JSON_ID, flags, seq, len(payload), 0, bytes(16), 0, 0x4DC5)
    return head + payload


def connect_msg() -> bytes:
    return message(1, json.dumps({"handshake": None, "object": "soak"}).encode())


def invoke_msg(method: str, args: list[Any], flags: int = 0, seq: int = 1) -> bytes:
    body = {"object": "soak", "method": method, "params": args, "kwargs": {}}
    return message(4, json.dumps(body).encode(), flags=flags, seq=seq)


BOMB = zlib.compress(bytes(32 * 1024 * 1024), 9)  # 32 MB of zeros in ~32 KB


class Run:
    """Shared state of one soak run."""

    def __init__(self, address: tuple[str, int], uri: str, deadline: float) -> None:
        self.address = address
        self.uri = uri
        self.deadline = deadline
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.calls = 0
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self.hostile: dict[str, int] = {}

    def running(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def count(self, kind: str) -> None:
        with self.lock:
            self.hostile[kind] = self.hostile.get(kind, 0) + 1


def legit(run: Run) -> None:
    from pyrite.core.client import Proxy

    proxy = None
    while run.running():
        start = time.monotonic()
        try:
            if proxy is None:
                proxy = Proxy(run.uri)
                proxy._pyroTimeout = 10.0
            assert proxy.echo("soak") == "soak"
            with run.lock:
                run.calls += 1
                run.latencies.append(time.monotonic() - start)
        except Exception as exc:
            with run.lock:
                run.errors.append(f"{type(exc).__name__}: {exc}")
            if proxy is not None:
                with contextlib.suppress(Exception):
                    proxy._pyroRelease()
            proxy = None
        time.sleep(0.005)
    if proxy is not None:
        proxy._pyroRelease()


def _sock(run: Run) -> socket.socket:
    return socket.create_connection(run.address, timeout=3.0)


def hostile(run: Run, seed: int) -> None:
    rnd = random.Random(seed)
    actions = [_silent, _half_header, _garbage, _bomb, _not_reading, _oneway_flood]
    while run.running():
        action = rnd.choice(actions)
        try:
            action(run, rnd)
        except OSError:
            pass  # the server closing on us is the expected outcome
        run.count(action.__name__.strip("_"))


def _silent(run: Run, rnd: random.Random) -> None:
    with _sock(run):
        run.stop.wait(rnd.uniform(0.5, 3.0))


def _half_header(run: Run, rnd: random.Random) -> None:
    with _sock(run) as sock:
        sock.sendall(connect_msg()[: rnd.randint(1, 39)])
        run.stop.wait(rnd.uniform(0.5, 3.0))


def _garbage(run: Run, rnd: random.Random) -> None:
    with _sock(run) as sock:
        sock.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 2000))))
        with contextlib.suppress(OSError):
            sock.recv(100)


def _bomb(run: Run, rnd: random.Random) -> None:
    with _sock(run) as sock:
        sock.sendall(message(1, BOMB, flags=2))
        with contextlib.suppress(OSError):
            sock.recv(100)


def _not_reading(run: Run, rnd: random.Random) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(3.0)
    with sock:
        sock.connect(run.address)
        sock.sendall(connect_msg())
        sock.recv(4096)
        sock.sendall(b"".join(invoke_msg("big", [100_000], seq=i) for i in range(1, 60)))
        run.stop.wait(rnd.uniform(1.0, 3.0))


def _oneway_flood(run: Run, rnd: random.Random) -> None:
    with _sock(run) as sock:
        sock.sendall(connect_msg())
        sock.recv(4096)
        sock.settimeout(0.5)
        for seq in range(1, 301):
            if not run.running():
                break
            with contextlib.suppress(socket.timeout):
                sock.sendall(invoke_msg("slow_oneway", [0.01], flags=4, seq=seq))


KILLED_CLIENT = """
import sys
from pyrite.core.client import Proxy
p = Proxy(sys.argv[1]); p._pyroTimeout = 10.0
while True:
    p.echo("x"); p.slow(0.2); it = p.gen(1000); next(it)
"""


def killer(run: Run, seed: int) -> None:
    rnd = random.Random(seed)
    while run.running():
        proc = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, run.uri], stderr=subprocess.DEVNULL)
        run.stop.wait(rnd.uniform(0.5, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(5.0)
        run.count("kill -9 client")


def proc_figures(pid: int) -> tuple[float, int, int]:
    """(RSS MB, open descriptors, threads) of a process, from /proc."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss / 1024.0, len(os.listdir(f"/proc/{pid}/fd")), threads


def slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, value) pairs, per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if not var:
        return 0.0
    return 60.0 * sum((t - mean_t) * (v - mean_v) for t, v in samples) / var


def drive(seconds: float, servertype: str, legit_clients: int, hostile_actors: int, trace: bool = False) -> int:
    env = dict(os.environ, PYRITE_SERVERTYPE=servertype, **SETTINGS)
    server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("URI "):
            print(f"server did not start: {line!r}", file=sys.stderr)
            return 1
        uri = line.split()[1]
        host, _, port = uri.rpartition("@")[2].rpartition(":")
        start = time.monotonic()
        run = Run((host, int(port)), uri, start + seconds)
        first = proc_figures(server.pid)
        threads = [threading.Thread(target=legit, args=(run,), daemon=True) for _ in range(legit_clients)]
        threads += [threading.Thread(target=hostile, args=(run, i), daemon=True) for i in range(hostile_actors)]
        threads.append(threading.Thread(target=killer, args=(run, 99), daemon=True))
        for thread in threads:
            thread.start()
        samples: list[tuple[float, float, int, int]] = []
        while time.monotonic() < run.deadline and server.poll() is None:
            time.sleep(1.0)
            with contextlib.suppress(OSError):
                samples.append((time.monotonic() - start, *proc_figures(server.pid)))
                if trace:
                    t, rss, fds, nthreads = samples[-1]
                    print(f"  t={t:5.1f} s  rss={rss:6.1f} MB  fds={fds}  threads={nthreads}", file=sys.stderr)
        run.stop.set()
        for thread in threads:
            thread.join(15.0)
        time.sleep(3.0)  # let deadlines close what the hostile actors left
        alive = server.poll() is None
        last = proc_figures(server.pid) if alive else (0.0, 0, 0)
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(10.0)
    lat = sorted(run.latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * p))] * 1000 if lat else float("nan")

    warm = [(t, rss) for t, rss, _, _ in samples if t >= 10.0]
    print(f"soak: {seconds:.0f} s, SERVERTYPE {servertype}, {legit_clients} legit clients, {hostile_actors} hostile")
    print(f"server alive at the end: {alive}")
    print(f"legit calls served: {run.calls} ({run.calls / seconds:.0f}/s), errors: {len(run.errors)}")
    for error in run.errors[:5]:
        print(f"  {error}")
    print(f"legit latency ms: p50 {pct(0.5):.1f}, p99 {pct(0.99):.1f}, max {pct(1.0):.1f}")
    print("hostile actions: " + ", ".join(f"{k} {v}" for k, v in sorted(run.hostile.items())))
    print(
        f"RSS MB: start {first[0]:.1f}, peak {max((s[1] for s in samples), default=0):.1f}, end {last[0]:.1f}; "
        f"slope after 10 s: {slope(warm):+.2f} MB/min"
    )
    print(f"fds: start {first[1]}, peak {max((s[2] for s in samples), default=0)}, end {last[1]}")
    print(f"threads: start {first[2]}, peak {max((s[3] for s in samples), default=0)}, end {last[2]}")
    return 0 if alive and not run.errors else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--servertype", default="thread", choices=["thread", "multiplex"])
    parser.add_argument("--legit", type=int, default=4, help="legit client threads")
    parser.add_argument("--hostile", type=int, default=6, help="hostile actor threads")
    parser.add_argument("--trace", action="store_true", help="print each per-second sample to stderr")
    options = parser.parse_args()
    if options.serve:
        serve()
        return 0
    return drive(options.seconds, options.servertype, options.legit, options.hostile, options.trace)


if __name__ == "__main__":
    sys.exit(main())

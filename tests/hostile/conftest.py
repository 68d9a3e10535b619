"""Helpers of the hostile suite: servers in their own processes, raw wire messages, legit clients.

* ``ServerProcess``: ``tests/hostile/_server.py`` as a subprocess with PYRITE_* settings;
  ``rss()``, ``fds()``, ``threads()`` read /proc; ``log()`` is what it logged; ``stop()``.
* ``server`` fixture: a factory ``server(**config)`` that starts one for the current
  SERVERTYPE (the ``servertype`` fixture, parametrized over ``SERVERTYPES``) and stops it.
* ``message()`` / ``read_message()`` / ``connect_request()``: Pyro5 wire messages built
  with ``struct`` here, independent of pyrite's own protocol code.
* ``LegitClient``: a thread calling ``echo`` in a loop through a pyrite Proxy, recording
  latencies and errors; ``p99()``.

Everything is bounded: sockets have timeouts, threads and processes are stopped by their
handles, waits poll with deadlines.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyrite.core.engines import SERVERTYPES as ENGINE_TABLE

# every engine in the table, so the asyncio engine joins the suite when it is added there
SERVERTYPES = sorted(ENGINE_TABLE)
HERE = Path(__file__).resolve().parent
SERVER_SCRIPT = HERE / "_server.py"
CERTS = HERE.parent / "transports" / "certs"
HOST = "127.0.0.1"
START_TIMEOUT = 20.0
IO_TIMEOUT = 5.0
MB = 1024 * 1024

HEADER = struct.Struct("!4sHBBHHII16sHH")
MSG_CONNECT, MSG_CONNECTOK, MSG_CONNECTFAIL, MSG_INVOKE, MSG_RESULT, MSG_PING = 1, 2, 3, 4, 5, 6
FLAGS_EXCEPTION, FLAGS_COMPRESSED, FLAGS_ONEWAY, FLAGS_BATCH = 1, 2, 4, 8
FLAGS_KEEPSERIALIZED = 32
SERPENT, MARSHAL, JSON = 1, 2, 3


# -- processes ----------------------------------------------------------------------------


def proc_status(pid: int, field: str) -> int:
    """A number from /proc/PID/status (VmRSS in kB, Threads)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def needs_proc() -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to measure RSS and descriptors")


class ServerProcess:
    """A hostile-suite daemon in a subprocess (see _server.py); stop it with ``stop()``."""

    def __init__(self, servertype: str, log_path: Path, nofile: int | None = None, **settings: Any) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYRITE_")}
        env["PYRITE_BROADCAST_ADDRS"] = "127.255.255.255"
        env["PYRITE_SERVERTYPE"] = servertype
        env["PYRITE_POLLTIMEOUT"] = "0.2"
        for key, value in settings.items():
            env["PYRITE_" + key] = ",".join(value) if isinstance(value, (list, tuple)) else str(value)
        if nofile:
            env["HOSTILE_NOFILE"] = str(nofile)
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=str(HERE.parent.parent),
        )
        self.uri = self._read_uri()
        host, _, port = self.uri.rpartition("@")[2].rpartition(":")
        self.address = (host, int(port))

    def _read_uri(self) -> str:
        stdout = self.proc.stdout
        assert stdout is not None
        box: list[bytes] = []
        reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        line = box[0].decode() if box else ""
        if not line.startswith("URI "):
            self.stop()
            raise AssertionError(f"server did not start: {line!r}; log: {self.log()[-2000:]}")
        return line.split()[1]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mb(self) -> float:
        return proc_status(self.pid, "VmRSS") / 1024.0

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def threads(self) -> int:
        return proc_status(self.pid, "Threads")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def proxy(self, timeout: float = IO_TIMEOUT, **attrs: Any) -> Any:
        from pyrite.core.client import Proxy

        proxy = Proxy(self.uri)
        proxy._pyroTimeout = timeout
        for key, value in attrs.items():
            setattr(proxy, key, value)
        return proxy

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


@pytest.fixture(params=SERVERTYPES)
def servertype(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(servertype: str, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``server(**settings)``: start a hostile-suite daemon for this SERVERTYPE (stopped after the test)."""
    started: list[ServerProcess] = []

    def start(nofile: int | None = None, **settings: Any) -> ServerProcess:
        proc = ServerProcess(servertype, tmp_path / f"server{len(started)}.log", nofile=nofile, **settings)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# -- the wire, by hand ----------------------------------------------------------------------


def message(
    msgtype: int,
    payload: bytes,
    serializer: int = JSON,
    flags: int = 0,
    seq: int = 0,
    annotations: dict[str, bytes] | None = None,
) -> bytes:
    """One Pyro5 protocol-502 message."""
    ann = b"".join(struct.pack("!4sI", k.encode(), len(v)) + v for k, v in (annotations or {}).items())
    head = HEADER.pack(b"PYRO", 502, msgtype, serializer, flags, seq, len(payload), len(ann), b"\0" * 16, 0, 0x4DC5)
    return head + ann + payload


def connect_request(obj: str = "hostile", handshake: Any = None, serializer: int = JSON, seq: int = 0) -> bytes:
    """A MSG_CONNECT as a pyrite/Pyro5 proxy sends it (JSON payload)."""
    payload = json.dumps({"handshake": handshake, "object": obj}).encode()
    return message(MSG_CONNECT, payload, serializer, seq=seq)


def invoke(method: str, args: list[Any], flags: int = 0, seq: int = 1, obj: str = "hostile") -> bytes:
    """A JSON MSG_INVOKE of ``obj.method(*args)``."""
    payload = json.dumps({"object": obj, "method": method, "params": args, "kwargs": {}}).encode()
    return message(MSG_INVOKE, payload, JSON, flags=flags, seq=seq)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def read_message(sock: socket.socket) -> tuple[int, int, int, bytes]:
    """(type, flags, seq, payload) of the next message on ``sock`` (payload decompressed if flagged)."""
    head = HEADER.unpack(recv_exactly(sock, HEADER.size))
    _, _, msgtype, _, flags, seq, size, ann_size, _, _, _ = head
    body = recv_exactly(sock, size + ann_size)[ann_size:]
    if flags & FLAGS_COMPRESSED:
        body = zlib.decompress(body)
    return msgtype, flags, seq, body


def raw_socket(address: tuple[str, int], timeout: float = IO_TIMEOUT) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout)
    sock.settimeout(timeout)
    return sock


def handshaked_socket(address: tuple[str, int], timeout: float = IO_TIMEOUT) -> socket.socket:
    """A raw socket past a JSON handshake with ``hostile``."""
    sock = raw_socket(address, timeout)
    sock.sendall(connect_request())
    msgtype, _, _, body = read_message(sock)
    assert msgtype == MSG_CONNECTOK, body
    return sock


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True if the peer closes ``sock`` within ``timeout`` seconds (whatever it sent before)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except OSError:
            return True


# -- compression bombs ---------------------------------------------------------------------

_BOMBS: dict[int, bytes] = {}


def bomb(inflated: int) -> bytes:
    """A valid zlib stream of ``inflated`` zero bytes (about 1000:1), made once per size and kept.

    Each megabyte is compressed once after a full flush, so every later one is the same
    bytes: the bomb is built by repetition in milliseconds instead of deflating it all.
    """
    if inflated not in _BOMBS:
        block = bytes(MB)
        packer = zlib.compressobj(9)
        first = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
        again = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
        count = inflated // MB
        checksum = 1
        for _ in range(count):
            checksum = zlib.adler32(block, checksum)
        # then a final empty fixed-Huffman block and the adler32 trailer
        _BOMBS[inflated] = first + again * (count - 1) + b"\x03\x00" + struct.pack(">I", checksum)
    return _BOMBS[inflated]


# -- a legit client ---------------------------------------------------------------------------


class LegitClient:
    """Calls ``hostile.echo`` every ``interval`` seconds on its own thread until ``stop()``."""

    def __init__(self, proc: ServerProcess, interval: float = 0.02, timeout: float = IO_TIMEOUT) -> None:
        self.proc = proc
        self.interval = interval
        self.timeout = timeout
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="legit-client", daemon=True)

    def __enter__(self) -> LegitClient:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _run(self) -> None:
        proxy = None
        try:
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    if proxy is None:
                        proxy = self.proc.proxy(self.timeout)
                    assert proxy.echo("ping") == "ping"
                    self.latencies.append(time.monotonic() - start)
                except Exception as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    if proxy is not None:
                        with contextlib.suppress(Exception):
                            proxy._pyroRelease()
                    proxy = None
                self._stop.wait(self.interval)
        finally:
            if proxy is not None:
                with contextlib.suppress(Exception):
                    proxy._pyroRelease()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5.0)
        assert not self._thread.is_alive(), "legit client did not stop"

    def p99(self) -> float:
        assert self.latencies, f"no call succeeded; errors: {self.errors[:5]}"
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def check(self, p99_bound: float, min_calls: int = 5) -> None:
        """Every call succeeded, enough of them ran, and the 99th percentile is within bound."""
        assert not self.errors, f"legit client failed: {self.errors[:5]}"
        assert len(self.latencies) >= min_calls, f"only {len(self.latencies)} legit calls ran"
        assert self.p99() < p99_bound, f"legit p99 {self.p99():.3f} s >= {p99_bound} s"

"""Issue 8, item 1: compression bombs cost no memory that stays, on the server and on the client.

Server: six bombs (zlib zeros, ~1000:1) — before the handshake, declared large (300 MB
inflated) and declared small (60 MB inflated from under MAX_PREHANDSHAKE_SIZE), and after
it (100 MB inflated in a call) — leave the server's RSS within 100 MB of where it started,
while a legit client is served throughout.  Client: a fake server answers six connects
with 100 MB bombs (in the handshake reply and in a call's result); the client process ends within
100 MB of its start.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time

import pytest
import serpent

from .conftest import (
    FLAGS_COMPRESSED,
    HERE,
    JSON,
    MB,
    MSG_CONNECT,
    MSG_CONNECTOK,
    MSG_INVOKE,
    MSG_RESULT,
    SERPENT,
    LegitClient,
    bomb,
    handshaked_socket,
    message,
    needs_proc,
    raw_socket,
    read_message,
)

BIG = 300 * MB  # declared ~300 KB: what the issue measured
MEDIUM = 100 * MB  # inflated in full by an unguarded peer; cheaper to refuse-check than BIG
SMALL = 60 * MB  # compresses to under 64 KiB


def _answered_or_closed(sock: socket.socket, timeout: float = 10.0) -> None:
    """Wait for the server's reaction to a bomb: a reply, or the connection closed."""
    sock.settimeout(timeout)
    with contextlib.suppress(ConnectionError, OSError):
        read_message(sock)


def test_server_survives_compression_bombs(server):
    needs_proc()
    proc = server()
    with proc.proxy() as proxy:
        for _ in range(20):
            proxy.echo("warm up")
    start = proc.rss_mb()
    with LegitClient(proc, interval=0.05, timeout=10.0) as legit:
        for round_ in range(2):
            with raw_socket(proc.address) as sock:  # before the handshake, large declared size
                sock.sendall(message(MSG_CONNECT, bomb(BIG), JSON, flags=FLAGS_COMPRESSED))
                _answered_or_closed(sock)
            with raw_socket(proc.address) as sock:  # before the handshake, small declared size
                sock.sendall(message(MSG_CONNECT, bomb(SMALL), JSON, flags=FLAGS_COMPRESSED))
                _answered_or_closed(sock)
            with handshaked_socket(proc.address) as sock:  # after the handshake, in a call
                sock.sendall(message(MSG_INVOKE, bomb(MEDIUM), JSON, flags=FLAGS_COMPRESSED, seq=1))
                _answered_or_closed(sock)
        time.sleep(0.5)  # and served after them
    end = proc.rss_mb()
    assert proc.alive()
    legit.check(p99_bound=5.0)  # served throughout; a bomb inflated on the loop thread may stall it briefly
    assert end - start < 100, f"server RSS grew {end - start:.0f} MB over six bombs ({start:.0f} -> {end:.0f} MB)"


def test_a_bomb_is_inflated_off_the_thread_other_clients_wait_on(server):
    """A bomb that inflates for seconds within the limits (about 1 MB of zlib: 500 MB allowed by
    MAX_DECOMPRESSION_RATIO before it is refused) costs its own connection that time, not the
    others': the multiplex and asyncio engines inflate big bodies on a worker."""
    proc = server()
    with LegitClient(proc, interval=0.01, timeout=10.0) as legit:
        time.sleep(0.2)
        for _ in range(2):
            with handshaked_socket(proc.address) as sock:
                started = time.monotonic()
                sock.sendall(message(MSG_INVOKE, bomb(1000 * MB), JSON, flags=FLAGS_COMPRESSED, seq=1))
                _answered_or_closed(sock, timeout=30.0)
                inflating = time.monotonic() - started
        time.sleep(0.2)
    assert proc.alive()
    # measured here: the bomb took its connection about 2.5 s before it was refused; a legit call
    # that waited for it would take as long (that was the multiplex and asyncio engines' p99)
    legit.check(p99_bound=max(1.0, inflating / 2), min_calls=20)


class _BombServer:
    """A fake Pyro server on loopback: connect replies and call results are compression bombs."""

    def __init__(self, serializer_id: int) -> None:
        self.serializer_id = serializer_id
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(10.0)
                with contextlib.suppress(OSError, ConnectionError):
                    self._serve(conn, self.connections)
            self.connections += 1

    def _serve(self, conn: socket.socket, index: int) -> None:
        ser = self.serializer_id
        _, _, seq, _ = read_message(conn)
        if index % 2 == 0:  # the handshake reply is the bomb
            conn.sendall(message(MSG_CONNECTOK, bomb(MEDIUM), ser, flags=FLAGS_COMPRESSED, seq=seq))
            return
        reply = {"handshake": None, "meta": {"methods": ["echo"], "oneway": [], "attrs": []}}
        payload = json.dumps(reply).encode() if ser == JSON else serpent.dumps(reply)
        conn.sendall(message(MSG_CONNECTOK, payload, ser, seq=seq))
        msgtype, _, seq, _ = read_message(conn)
        assert msgtype == MSG_INVOKE
        conn.sendall(message(MSG_RESULT, bomb(MEDIUM), ser, flags=FLAGS_COMPRESSED, seq=seq))
        with contextlib.suppress(OSError):
            conn.recv(1)  # let the client close first

    def close(self) -> None:
        self._stop.set()
        self._thread.join(15.0)
        self.listener.close()


@pytest.mark.parametrize("serializer", ["serpent"])  # the default; json is the same code path after the frame
def test_client_survives_compression_bombs(serializer):
    needs_proc()
    fake = _BombServer(JSON if serializer == "json" else SERPENT)
    try:
        uri = f"PYRO:hostile@127.0.0.1:{fake.port}"
        done = subprocess.run(
            [sys.executable, str(HERE / "_client.py"), uri, "6", serializer],
            capture_output=True,
            text=True,
            timeout=50,
            cwd=str(HERE.parent.parent),
        )
    finally:
        fake.close()
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert "no error" not in figures["errors"], figures
    assert figures["end"] - figures["start"] < 100, f"client RSS grew: {figures}"

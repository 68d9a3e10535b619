"""The raw-socket floor: the benchmark's ping and echo over plain length-prefixed TCP.

No library at all: a frame is a 4-byte big-endian length, then that many bytes.
A ``ping`` frame carries the ``marshal`` bytes of its argument and the server
sends the same bytes back; an ``echo`` frame carries raw bytes, received into
one preallocated buffer and sent back from it.  This is what Python itself can
do on this machine with the same process layout (client processes, one server
process), so every library row can be read against it.

It offers just enough of the Proxy/Daemon surface for ``_server.py`` and
``_worker.py``: ``RawDaemon(host, port)``, ``register``, ``requestLoop``,
``shutdown``, ``close``; ``RawProxy(uri)``, ``ping``, ``echo``, ``_pyroBind``,
``_pyroRelease``.  SERVERTYPE "thread" serves each connection on its own
thread; "multiplex" serves all of them from one selector loop.
"""

from __future__ import annotations

import marshal
import selectors
import socket
import struct
import threading
import types
from typing import Any

_LEN = struct.Struct("!I")
_PING, _ECHO = b"p", b"e"

config = types.SimpleNamespace(SERVERTYPE="thread")
version = "python " + ".".join(map(str, __import__("sys").version_info[:3]))


def _recv_exactly(sock: socket.socket, size: int) -> bytearray:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if not n:
            raise ConnectionError("peer closed the connection")
        got += n
    return buf


def _send_frame(sock: socket.socket, kind: bytes, body: bytes | bytearray | memoryview) -> None:
    head = _LEN.pack(len(body) + 1) + kind
    if len(body) < 65536:
        sock.sendall(head + body)
    else:
        sock.sendall(head)
        sock.sendall(body)


class RawProxy:
    """A client connection for the raw floor (one per proxy, like a library's proxy)."""

    def __init__(self, uri: str) -> None:
        location = str(uri).split("@", 1)[1]
        host, port = location.rsplit(":", 1)
        self._address = (host, int(port))
        self._sock: socket.socket | None = None
        self._pyroSerializer = "raw"

    def _pyroBind(self) -> None:
        if self._sock is None:
            self._sock = socket.create_connection(self._address, timeout=60)

    def _pyroRelease(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _call(self, kind: bytes, body: bytes | bytearray) -> bytearray:
        self._pyroBind()
        sock = self._sock
        assert sock is not None
        _send_frame(sock, kind, body)
        (size,) = _LEN.unpack(_recv_exactly(sock, 4))
        reply = _recv_exactly(sock, size)
        del reply[0]  # the kind byte
        return reply

    def ping(self, value: Any) -> Any:
        return marshal.loads(self._call(_PING, marshal.dumps(value)))

    def echo(self, data: bytes) -> bytearray:
        return self._call(_ECHO, data)


class RawDaemon:
    """The raw floor's server on 127.0.0.1: echoes every frame back to its sender."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._listener = socket.create_server((host, port))
        self._address = self._listener.getsockname()
        self._stop = threading.Event()
        self._multiplex = config.SERVERTYPE == "multiplex"

    def register(self, obj: Any, name: str) -> str:
        return f"RAW:{name}@{self._address[0]}:{self._address[1]}"

    def requestLoop(self) -> None:
        if self._multiplex:
            self._select_loop()
            return
        self._listener.settimeout(0.5)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(None)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        try:
            while True:
                (size,) = _LEN.unpack(_recv_exactly(conn, 4))
                frame = _recv_exactly(conn, size)
                if size < 65536:
                    conn.sendall(_LEN.pack(size) + frame)  # one write: no Nagle / delayed-ACK stall
                else:
                    conn.sendall(_LEN.pack(size))
                    conn.sendall(frame)
        except (ConnectionError, OSError):
            pass
        finally:
            conn.close()

    def _select_loop(self) -> None:
        selector = selectors.DefaultSelector()
        self._listener.setblocking(False)
        selector.register(self._listener, selectors.EVENT_READ, None)
        buffers: dict[socket.socket, bytearray] = {}
        while not self._stop.is_set():
            for key, _ in selector.select(0.5):
                if key.data is None:
                    try:
                        conn, _ = self._listener.accept()
                    except OSError:
                        continue
                    conn.setblocking(False)
                    buffers[conn] = bytearray()
                    selector.register(conn, selectors.EVENT_READ, True)
                    continue
                conn = key.fileobj  # type: ignore[assignment]
                buf = buffers[conn]
                try:
                    data = conn.recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(conn)
                    del buffers[conn]
                    conn.close()
                    continue
                buf += data
                while len(buf) >= 4:
                    (size,) = _LEN.unpack_from(buf)
                    if len(buf) < 4 + size:
                        break
                    reply = bytes(buf[: 4 + size])
                    del buf[: 4 + size]
                    try:
                        sent = conn.send(reply)
                    except BlockingIOError:
                        sent = 0
                    if sent < len(reply):  # rare for these sizes: finish the write blocking
                        conn.setblocking(True)
                        conn.sendall(reply[sent:])
                        conn.setblocking(False)
        selector.close()

    def shutdown(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


def expose(obj: Any) -> Any:
    return obj


oneway = expose

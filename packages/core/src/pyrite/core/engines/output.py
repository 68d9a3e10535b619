"""Non-blocking replies for the multiplex and asyncio engines: a per-connection output buffer with a cap.

``BufferedOutput`` wraps a transport connection.  ``send``/``send_parts``
write what the socket takes right now (the transport's non-blocking
``send_some``) and keep the rest, so a peer that stops reading its replies
never blocks the one thread that serves everybody.  While output waits the
engine watches the connection for writing only: it reads no further
requests from that peer (its own back-pressure).  Queuing more than
``config.MAX_OUTPUT_BUFFER`` bytes behind output already waiting raises
``OutputOverflow``, and the engine closes that connection.  A single reply
(one ``send`` or ``send_parts``) is always taken whole when nothing waits
before it (its size is bounded by MAX_MESSAGE_SIZE already).

The non-blocking write is the transport's ``send_some`` unless the engine
passes its own (``BufferedOutput(raw, sender)``: the asyncio engine has
senders for connections without ``send_some``).

Everything else (``recv_some``, ``fileno``, ``timeout``, ``socket``, ...) is
the wrapped connection's.  A transport connection without ``send_some``
falls back to its blocking ``send`` (bounded by the connection's timeout).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..config import config
from ..errors import ConnectionClosedError

__all__ = ["BufferedOutput", "OutputOverflow", "TLS_CHUNK"]

TLS_CHUNK = 16 * 1024  # one TLS record: a retried non-blocking TLS write must repeat the same length


class OutputOverflow(ConnectionClosedError):
    """More output was queued for a connection than ``config.MAX_OUTPUT_BUFFER`` allows."""


class BufferedOutput:
    """A transport connection whose writes never block (see the module docstring).

    Example (what the multiplex engine does)::

        out = BufferedOutput(conn)
        out.send(reply_bytes)        # writes what fits now, keeps the rest
        while out.queued:
            wait_writable(out.fileno()); out.flush()
    """

    __slots__ = ("raw", "_queue", "queued", "last_progress", "_send_some", "_chunk")

    def __init__(self, raw: Any, sender: Callable[[Any], int] | None = None) -> None:
        self.raw = raw
        self._queue: deque[memoryview] = deque()
        self.queued = 0  # bytes queued, not yet written
        self.last_progress = time.monotonic()
        self._send_some = sender if sender is not None else getattr(raw, "send_some", None)
        self._chunk = TLS_CHUNK if getattr(raw, "is_tls", False) else 0

    # ----- writing

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` behind what waits and write as much as the socket takes now."""
        self.send_parts((data,))

    def send_parts(self, parts: Any) -> None:
        """Queue several buffers in order (no join) and write what the socket takes now.

        Raises ``OutputOverflow`` (queuing nothing) if output already waits and these
        parts would bring it over ``config.MAX_OUTPUT_BUFFER``."""
        if not isinstance(parts, (list, tuple)):
            parts = list(parts)
        if self.queued:
            size = self.queued + sum(len(part) for part in parts)
            if size > int(config.MAX_OUTPUT_BUFFER):
                raise OutputOverflow(
                    f"peer is not reading: {size} bytes of replies would wait "
                    f"(MAX_OUTPUT_BUFFER={config.MAX_OUTPUT_BUFFER})"
                )
        for part in parts:
            self._append(part)
        self.flush()

    def _append(self, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        if not size:
            return
        if isinstance(data, bytearray):
            data = bytes(data)  # the caller may reuse its buffer after we return
        self._queue.append(memoryview(data).cast("B"))
        if not self.queued:
            self.last_progress = time.monotonic()
        self.queued += size

    def flush(self) -> None:
        """Write queued output until the socket would block.  Raises ConnectionClosedError if it broke."""
        queue = self._queue
        send_some = self._send_some
        if send_some is None:
            while queue:
                self.raw.send(queue.popleft())
            self.queued = 0
            return
        progressed = False
        while queue:
            head = queue[0]
            piece = head[: self._chunk] if self._chunk and len(head) > self._chunk else head
            sent = send_some(piece)
            if not sent:
                break
            progressed = True
            self.queued -= sent
            if sent >= len(head):
                queue.popleft()
            else:
                queue[0] = head[sent:]
        if progressed:
            self.last_progress = time.monotonic()

    def discard(self) -> None:
        """Forget queued output (the connection is going)."""
        self._queue.clear()
        self.queued = 0

    # ----- the rest is the wrapped connection's

    def recv_some(self, max_size: int) -> Any:
        """See ``interfaces.Connection.recv_some``."""
        return self.raw.recv_some(max_size)

    def recv(self, size: int) -> Any:
        """See ``interfaces.Connection.recv``."""
        return self.raw.recv(size)

    def pending(self) -> int:
        """The wrapped connection's ``pending()``: buffered *input* a selector cannot see."""
        return int(self.raw.pending())

    def fileno(self) -> int:
        """The wrapped connection's descriptor."""
        return int(self.raw.fileno())

    def close(self) -> None:
        """Drop queued output and close the wrapped connection."""
        self.discard()
        self.raw.close()

    @property
    def timeout(self) -> float | None:
        """The wrapped connection's timeout."""
        value: float | None = self.raw.timeout
        return value

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.raw.timeout = value

    def __getattr__(self, name: str) -> Any:
        # socket, peer_address, local_address, getpeercert, is_tls, ...: the wrapped connection's
        return getattr(self.raw, name)

    def __repr__(self) -> str:
        return f"<BufferedOutput {self.queued} bytes pending on {self.raw!r}>"

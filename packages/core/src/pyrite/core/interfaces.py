"""The seams between pyrite-core and its plugins, as ``typing.Protocol`` classes.

Implement these to add a serializer (entry-point group ``pyrite.serializers``)
or a transport (group ``pyrite.transports``).  Core never touches a raw socket:
the server engines use ``fileno()`` for selectors and the methods below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable


@runtime_checkable
class Serializer(Protocol):
    """Turns call requests and results into bytes and back.  Must be thread safe.

    Example, a call and its result::

        ser = plugins.get_serializer("serpent")
        payload = ser.dumpsCall("objid", "add", (1, 2), {})
        obj, method, vargs, kwargs = ser.loadsCall(payload)
        ser.loads(ser.dumps(3)) == 3
    """

    name: ClassVar[str]
    serializer_id: ClassVar[int]

    def dumpsCall(self, obj: str, method: str, vargs: Any, kwargs: dict[str, Any]) -> bytes:
        """Serialize a call request."""

    def loadsCall(self, data: bytes | memoryview) -> tuple[str, str, tuple[Any, ...], dict[str, Any]]:
        """Deserialize a call request into (object id, method, vargs, kwargs)."""

    def dumps(self, data: Any) -> bytes:
        """Serialize any supported value (results, metadata, exceptions)."""

    def loads(self, data: bytes | memoryview) -> Any:
        """Deserialize what ``dumps`` produced (or a peer's equivalent)."""

    def register_type_replacement(self, object_type: type, replacement_function: Callable[[Any], Any]) -> None:
        """Serialize instances of ``object_type`` as ``replacement_function(obj)`` instead."""


@runtime_checkable
class Connection(Protocol):
    """One open, bidirectional byte stream (client or server side).

    ``recv(n)`` returns exactly ``n`` bytes, buffering nothing in advance of
    their arrival (a large declared size must not reserve memory up front).
    Both ``send`` and ``recv`` raise ``pyrite.core.errors.ConnectionClosedError``
    when the peer is gone and ``pyrite.core.errors.TimeoutError`` when
    ``timeout`` (seconds, None = block) runs out.

    Optional: ``send_parts(parts)`` sends several buffers in order as one stream
    without joining them first; ``protocol.send_message`` uses it for large
    payloads when a connection has it.  Optional too: ``send_some(data) -> int``, a
    non-blocking write returning the bytes taken (0 if it would block); the
    multiplex engine uses it so a peer that does not read never blocks its loop.
    """

    timeout: float | None

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``."""

    def recv(self, size: int) -> bytes | memoryview:
        """Receive exactly ``size`` bytes (any bytes-like object; a large read may be a memoryview)."""

    def recv_some(self, max_size: int) -> bytes | None:
        """Non-blocking read for the multiplex engine: up to ``max_size`` bytes that are
        available now, ``b""`` at end of stream, or ``None`` if nothing is ready."""

    def pending(self) -> int:
        """Bytes already buffered inside the connection (e.g. decrypted TLS data) that
        a selector on ``fileno()`` would not report."""

    def fileno(self) -> int:
        """The OS file descriptor, for selectors."""

    def close(self) -> None:
        """Close; further calls are no-ops."""

    @property
    def local_address(self) -> Any:
        """This end's address (``(host, port)``, or a socket path)."""

    @property
    def peer_address(self) -> Any:
        """The other end's address."""

    def getpeercert(self) -> dict[str, Any] | None:
        """The peer's TLS certificate (as ``ssl.SSLSocket.getpeercert()``), or None."""


@runtime_checkable
class Listener(Protocol):
    """A bound, listening server endpoint."""

    @property
    def location(self) -> str:
        """The URI location clients use: ``host:port``, ``[ipv6]:port`` or ``./u:path``."""

    def accept(self) -> Connection | None:
        """Accept one client.  Returns None if none is waiting (non-blocking listeners)
        or if the handshake of a secured transport failed."""

    def fileno(self) -> int:
        """The OS file descriptor, for selectors."""

    def close(self) -> None:
        """Stop listening and release the address (a Unix socket file is removed)."""


@runtime_checkable
class Transport(Protocol):
    """Makes connections to, and listeners at, URI locations.

    Example::

        transport = plugins.get_transport("localhost:9090")
        listener = transport.listen("localhost:0")
        conn = transport.connect(listener.location, timeout=5.0)
    """

    name: ClassVar[str]
    priority: ClassVar[int]

    @classmethod
    def serves(cls, location: str) -> bool:
        """True if this transport handles the given location string."""

    def connect(self, location: str, timeout: float | None = None) -> Connection:
        """Open a client connection.  TLS and socket options come from ``config``."""

    def listen(self, location: str, *, reuse: bool | None = None) -> Listener:
        """Bind and listen at ``location`` (port 0 picks a free port)."""

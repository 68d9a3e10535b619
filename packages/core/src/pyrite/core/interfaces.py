"""The seams of pyrite-core, as ``typing.Protocol`` classes.

Implement ``Serializer`` or ``Transport`` (with ``Connection``/``Listener``)
to add a serializer (entry-point group ``pyrite.serializers``) or a transport
(group ``pyrite.transports``).  Core never touches a raw socket: the server
engines use ``fileno()`` for selectors and the methods below.

Inside a daemon, ``DaemonHost`` is what a server engine may call (implemented
by ``dispatch.Dispatcher``, reached as ``daemon.host``), ``Engine`` is what
the daemon calls on an engine, and ``DaemonHooks`` are the overridable
methods of ``Daemon`` that the dispatcher calls.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .protocol import ReceivingMessage, SendingMessage
    from .workers import WorkerPool


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

    def adopt(self, sock: socket.socket, *, owned: bool = False) -> Connection:
        """Wrap an already connected socket (``Proxy(uri, connected_socket=...)``,
        ``Daemon(connected_socket=...)``).  With ``owned=False`` the connection's
        ``close()`` leaves the socket open for its owner; ``owned=True`` closes it.

        A transport that adopts sockets lists their families in a class attribute
        ``socket_families`` (e.g. ``(socket.AF_UNIX,)``); ``plugins.adopt_socket``
        picks the transport by it::

            conn = plugins.adopt_socket(one_end_of_a_socketpair)
        """


class DaemonHooks(Protocol):
    """The methods of ``Daemon`` a user overrides, as the dispatcher calls them."""

    def validateHandshake(self, conn: Any, data: Any) -> Any:
        """Check a new client's handshake data; raise to refuse it."""

    def clientDisconnect(self, conn: Any) -> None:
        """A client connection went away."""

    def housekeeping(self) -> None:
        """Periodic clean-up."""

    def annotations(self) -> dict[str, bytes]:
        """Annotations to add to every reply."""

    def protocol_error_seen(self, exc: BaseException) -> None:
        """A client's connection is being closed because it broke the protocol."""

    def methodcall_error_handler(
        self, daemon: Any, client_sock: Any, method: Callable[..., Any], vargs: Any, kwargs: Any, exception: Exception
    ) -> None:
        """Called with every exception raised by served code."""


@runtime_checkable
class DaemonHost(Protocol):
    """What a server engine calls on its daemon (``dispatch.Dispatcher``; ``daemon.host``).

    ``conn`` is the engine's ``ClientConnection`` for a client, ``session`` its
    protocol session (one per connection), ``msg`` a complete received message.
    The engine sends every message these return, in order, on that connection:

    * ``serve_handshake`` for the first message of a connection: MSG_CONNECTOK
      (``session.handshake_done`` is then True) or MSG_CONNECTFAIL (then drop the
      client after sending);
    * ``serve_request`` for every later message: the reply, or None for a oneway
      call.  It never raises for a call's own failure (that is an exception reply);
      it raises ``CommunicationError`` when the connection must go.  Afterwards:
      when ``conn.callback_error`` is set (a ``@callback`` method failed), log it and
      close the connection after the reply, as Pyro5 does; when ``conn.held_oneways``
      is not empty, the worker pool was full: stop reading that connection (only
      that one) and call ``resume(conn)`` now and then until it returns True;
    * ``refuse(conn, session, msg, reason)``: a MSG_CONNECTFAIL the engine chose to
      send (server busy, too many connections); drop the client after it;
    * ``client_disconnected(conn)`` once per client that got past the handshake;
    * ``housekeeping()`` every ``config.POLLTIMEOUT`` seconds or so.

    ``workers`` is the daemon's one worker pool (the thread engine serves
    connections on it; oneway calls run there).  ``shutting_down`` may be read
    at any time.
    """

    @property
    def shutting_down(self) -> bool:
        """True once the daemon is shutting down."""

    @property
    def workers(self) -> WorkerPool:
        """The daemon's worker pool."""

    def serve_handshake(self, conn: Any, session: Any, msg: ReceivingMessage) -> SendingMessage:
        """Answer a connection's MSG_CONNECT."""

    def serve_request(self, conn: Any, session: Any, msg: ReceivingMessage) -> SendingMessage | None:
        """Serve a MSG_INVOKE or MSG_PING."""

    def refuse(self, conn: Any, session: Any, msg: ReceivingMessage, reason: str) -> SendingMessage:
        """A MSG_CONNECTFAIL carrying ``reason``."""

    def resume(self, conn: Any) -> bool:
        """Submit held-back oneway calls of ``conn``; True once none is left."""

    def client_disconnected(self, conn: Any) -> None:
        """A client that got past the handshake is gone."""

    def housekeeping(self) -> None:
        """Periodic clean-up."""

    def protocol_error(self, conn: Any, exc: BaseException) -> None:
        """The engine closes ``conn`` because it sent something that is not the protocol
        (``ProtocolError``, ``MessageTooLargeError``); tells the daemon's hook."""


class StepwiseHost(DaemonHost, Protocol):
    """A ``DaemonHost`` that also serves a request step by step (``dispatch.Dispatcher`` does),
    for an engine that makes the call elsewhere than where it read the request: the asyncio
    engine awaits ``async def`` methods on its loop and runs plain ones on ``workers``.

    ``begin_request`` returns the reply when there is nothing to call (or None),
    else a ``calls.PendingCall``; ``serve_request`` is these steps in one thread::

        call = host.begin_request(conn, session, msg)
        if call.oneway and call.method is not None:
            host.submit_oneway(call)
        else:
            try:
                reply = host.finish_call(call, host.run_call(call))
            except BaseException as exc:
                reply = host.fail_call(call, exc)
    """

    @property
    def custom_handshake(self) -> bool:
        """validateHandshake is user code (it may block): answer handshakes on a worker."""

    def begin_request(self, conn: Any, session: Any, msg: ReceivingMessage) -> Any:
        """A MSG_INVOKE or MSG_PING read up to its call: a ``PendingCall``, a reply, or None."""

    def run_call(self, call: Any) -> Any:
        """Make the call in this thread (an ``async def`` method returns its coroutine)."""

    def call_failed(self, call: Any, exc: BaseException) -> None:
        """Report an exception of the called code raised while its coroutine was awaited."""

    def finish_call(self, call: Any, data: Any) -> SendingMessage | None:
        """The reply carrying the call's result (None for a oneway request)."""

    def fail_call(self, call: Any, exc: BaseException) -> SendingMessage | None:
        """The exception reply (None for a oneway request)."""

    def submit_oneway(self, call: Any) -> None:
        """Hand a oneway method call to the workers (held back on the connection when full)."""


@runtime_checkable
class Engine(Protocol):
    """A server engine, built as ``Engine(host, listener)``; what the daemon calls on it."""

    @property
    def location(self) -> str:
        """Where clients connect (the listener's location)."""

    @property
    def sockets(self) -> list[Any]:
        """What an external event loop should watch; ready ones go to ``events``."""

    @property
    def clients(self) -> list[Any]:
        """The client connections open now."""

    def loop(self, condition: Callable[[], bool]) -> None:
        """Serve until ``condition()`` is false or ``shutdown()`` is called."""

    def events(self, ready: Iterable[Any]) -> None:
        """Serve what is pending on the given ready sockets."""

    def combine_loop(self, other: Any) -> None:
        """Serve another engine (or server with ``sockets``/``events``) in this loop."""

    def wakeup(self) -> None:
        """Make a waiting ``loop`` look at its condition now."""

    def shutdown(self) -> None:
        """Stop ``loop`` (from any thread) and close."""

    def close(self) -> None:
        """Release the listener and every connection; idempotent."""

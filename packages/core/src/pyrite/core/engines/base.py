"""What the server engines share: the frame reader, the per-client record and the selector loop.

An engine owns a transport ``Listener`` and the client connections it
accepts, each wrapped in a ``ClientConnection``.  One thread (the one in
``loop()``, or the caller of ``events()``) watches the listener, the idle
clients and a wakeup socket with a ``selectors`` selector.  Reads there are
non-blocking: a ``FrameReader`` (from ``pyrite.core.session``) per client turns whatever bytes have arrived
into complete messages, so a slow or half-sent message never holds up
anyone.  What happens to a complete message is the engine's business: the
multiplex engine handles it in place, the thread pool engine hands it to a
worker.

Engines talk to the daemon only through ``interfaces.DaemonHost`` (the
``host`` they are built with): ``serve_handshake`` / ``serve_request`` for each
message (the engine sends what they return), ``refuse``, ``resume`` for a
connection whose oneway calls were held back, ``client_disconnected`` and
``housekeeping``.  A connection with held-back oneway calls is "parked": not
read until the worker pool has room again (back-pressure on that connection
only; user code never runs on the loop thread for it).
"""

from __future__ import annotations

import logging
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .. import protocol
from ..config import config
from ..connection import ClientConnection
from ..errors import ConnectionClosedError, MessageTooLargeError, ProtocolError, SecurityError
from ..errors import TimeoutError as PyroTimeoutError
from ..interfaces import DaemonHost
from ..session import BIG_READ_SIZE, READ_SIZE, Frame, FrameReader
from .guard import GuardMixin

__all__ = [
    "BIG_READ_SIZE",
    "READ_SIZE",
    "MAX_READ_PER_TURN",
    "Frame",
    "FrameReader",
    "Client",
    "SelectorEngine",
    "describe_peer",
    "log",
    "wait_readable",
]

log = logging.getLogger("pyrite.core.engines")

MAX_READ_PER_TURN = 4 * 1024 * 1024  # bytes one client may read per turn of the selector loop
SHUTDOWN_WAIT = 2.0  # how long shutdown()/close() wait for a running loop to notice
DEFAULT_POLL = 2.0  # select timeout when config.POLLTIMEOUT is unset
PARKED_POLL = 0.02  # select timeout while a parked client waits for room in the worker pool

_LISTENER = "listener"
_WAKE = "wake"


class Client:
    """An engine's record of one accepted connection.

    ``busy`` is set while the client is out of the selector being served (by
    a worker, or inline by the multiplex loop); ``gone`` once it was dropped.
    For the deadlines (``guard.expired``): ``since`` (accept time),
    ``frame_start`` (first byte of an incomplete message, or None) and
    ``last_active`` (last read), all ``time.monotonic()``; ``refusing`` is the
    reason a client over MAX_CONNECTIONS gets in its CONNECTFAIL; ``out`` the
    multiplex engine's output buffer.
    """

    __slots__ = (
        "conn",
        "raw",
        "reader",
        "session",
        "fd",
        "registered",
        "busy",
        "gone",
        "pending",
        "since",
        "frame_start",
        "last_active",
        "refusing",
        "out",
    )

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.raw = conn.conn
        self.reader = FrameReader()
        self.session: Any = None
        self.fd = self.raw.fileno()
        self.registered = False
        self.busy = False
        self.gone = False
        self.pending: list[Frame] = []  # frames read but not served while the client is parked
        self.since = self.last_active = time.monotonic()
        self.frame_start: float | None = None
        self.refusing: str | None = None
        self.out: Any = None

    def __repr__(self) -> str:
        return f"<Client fd={self.fd} {describe_peer(self.conn)}>"


def describe_peer(conn: Any) -> str:
    """The peer address of a connection as text, or '?' when it is gone."""
    try:
        return str(conn.peer_address)
    except Exception:
        return "?"


if hasattr(select, "poll"):
    _POLL_READ = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP

    def wait_readable(fd: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``fd`` to be readable (or broken)."""
        poller = select.poll()
        poller.register(fd, _POLL_READ)
        return bool(poller.poll(timeout * 1000.0))
else:  # pragma: no cover - Windows

    def wait_readable(fd: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``fd`` to be readable (or broken)."""
        readable, _, broken = select.select([fd], [], [fd], timeout)
        return bool(readable or broken)


class _ForeignServer:
    """Lets a loop dispatch readiness of a combined non-engine server to its ``events()``."""

    __slots__ = ("server",)

    def __init__(self, server: Any) -> None:
        self.server = server

    def _on_ready(self, sock: Any) -> None:
        try:
            self.server.events([sock])
        except Exception:  # its failure must not end the loop serving everyone else
            log.exception("error in combined server %r", self.server)


def _poll_interval() -> float:
    value = config.POLLTIMEOUT
    return max(float(value), 0.01) if value else DEFAULT_POLL


class SelectorEngine(GuardMixin):
    """The common part of the server engines: accept, read, hand over, drop, loop.

    Subclasses implement ``_on_readable(client)`` (what to do when an idle
    client has data), ``_housekeep()``, ``_unpark(client)`` (go on with a parked
    client's pending frames) and may extend ``_after_wake()`` and
    ``_close_workers()``.  Construct as ``Engine(host, listener)``.
    """

    servertype = "?"

    def __init__(self, host: DaemonHost, listener: Any) -> None:
        self.host = host
        self._parked: list[Client] = []
        self._listener = listener
        self._location: str = listener.location
        self._lock = threading.Lock()
        self._clients: set[Client] = set()
        self._closed = False
        self._shutting_down = False
        self._loop_thread: int | None = None
        self._loop_exited = threading.Event()
        self._loop_exited.set()
        self._children: list[SelectorEngine] = []
        self._parent: SelectorEngine | None = None
        self._next_housekeeping = time.monotonic() + _poll_interval()
        self._init_guard()
        # accept() is only called when the selector says a client waits, but that client may be gone
        # by then: a non-blocking listener returns None instead of stalling the loop
        setblocking = getattr(listener, "setblocking", None)
        if setblocking is not None:
            setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector: selectors.BaseSelector = selectors.DefaultSelector()
        try:
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._selector.register(listener, selectors.EVENT_READ, (self, _LISTENER))
            self._selector.register(self._wake_r, selectors.EVENT_READ, (self, _WAKE))
        except BaseException:
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()
            raise

    # ----- what the daemon uses

    @property
    def location(self) -> str:
        """Where clients connect: ``host:port``, ``[ipv6]:port`` or ``./u:path``."""
        return self._location

    @property
    def listener(self) -> Any:
        """The transport listener this engine accepts clients on."""
        return self._listener

    @property
    def selector(self) -> selectors.BaseSelector:
        """The selector the loop waits on (shared with engines combined into this one)."""
        return self._selector

    @property
    def sockets(self) -> list[Any]:
        """What an external event loop should wait on for reading, then pass to ``events()``:
        the listener, the engine's wakeup socket and the idle client connections (also those
        of engines combined into this one)."""
        for _ in range(5):
            try:
                mapping = self._selector.get_map()
                if mapping is None:
                    return []
                return [key.fileobj for key in list(mapping.values())]
            except RuntimeError:  # changed size during iteration: another thread registered; retry
                continue
        return []

    @property
    def clients(self) -> list[ClientConnection]:
        """The connections currently open to this engine."""
        with self._lock:
            return [client.conn for client in self._clients]

    def loop(self, loopCondition: Callable[[], bool] = lambda: True) -> None:
        """Serve until ``loopCondition()`` is false or ``shutdown()`` is called.

        The condition is checked at least every ``config.POLLTIMEOUT`` seconds.
        """
        if self._closed:
            return
        self._loop_thread = threading.get_ident()
        self._loop_exited.clear()
        log.debug("%s entering request loop", self)
        try:
            while not self._shutting_down and loopCondition():
                try:
                    ready = self._selector.select(self._select_timeout())
                except (OSError, ValueError, RuntimeError, KeyError) as exc:
                    if self._shutting_down or self._closed:
                        break
                    log.warning("selector failed: %s", exc)
                    time.sleep(0.01)
                    continue
                for key, _ in ready:
                    if self._shutting_down:
                        break
                    owner, item = key.data
                    owner._on_ready(item)
                self._tick()
        except KeyboardInterrupt:
            log.debug("request loop interrupted (KeyboardInterrupt)")
        finally:
            self._loop_thread = None
            self._loop_exited.set()
            log.debug("%s left request loop", self)

    def events(self, eventsockets: Iterable[Any]) -> None:
        """Handle what an external event loop found readable among ``sockets``."""
        for sock in eventsockets:
            if self._shutting_down:
                return
            try:
                key = self._selector.get_key(sock)
            except (KeyError, ValueError, RuntimeError):
                continue  # not ours (any more)
            owner, item = key.data
            owner._on_ready(item)
        self._tick()

    def combine_loop(self, other: Any) -> None:
        """Serve ``other`` from this engine's loop too: another engine, or any server with
        ``sockets`` (things with ``fileno()``) and ``events(ready)``, such as a name server's
        broadcast responder."""
        if not isinstance(other, SelectorEngine):
            if not (hasattr(other, "sockets") and callable(getattr(other, "events", None))):
                raise TypeError(f"cannot combine with {type(other).__name__}: it has no sockets and events()")
            adapter = _ForeignServer(other)
            for sock in list(other.sockets):
                self._selector.register(sock, selectors.EVENT_READ, (adapter, sock))
            self.wakeup()
            return
        if other is self or other in self._children:
            raise ValueError("engine is already served by this loop")
        if other._closed or self._closed:
            raise ValueError("cannot combine a closed engine")
        old = other._selector
        for key in list(old.get_map().values()):
            old.unregister(key.fileobj)
            self._selector.register(key.fileobj, selectors.EVENT_READ, key.data)
        old.close()
        for engine in (other, *other._children):
            engine._selector = self._selector
            engine._parent = self
            self._children.append(engine)
        other._children = []
        self.wakeup()

    def wakeup(self) -> None:
        """Make a loop waiting in ``select`` look up now."""
        try:
            self._wake_w.send(b"!")
        except OSError:
            pass  # buffer full (a wakeup is pending anyway) or closed

    def shutdown(self) -> None:
        """Stop the loop (waiting a bounded time for it to leave) and close everything.

        Safe from another thread and from inside a call being served.
        """
        self._shutting_down = True
        self.wakeup()
        self._await_loop_exit()
        self.close()

    def close(self) -> None:
        """Release the listener, the wakeup socket, the workers and every idle connection.

        A connection being served right now is closed by its server as soon as the
        current call has replied.  Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._shutting_down = True
        self.wakeup()
        self._await_loop_exit()
        self._unregister_fileobj(self._listener)
        try:
            self._listener.close()
        except Exception as exc:
            log.debug("error closing listener: %s", exc)
        with self._lock:
            idle = [client for client in self._clients if not client.busy]
        for client in idle:
            self._drop(client)
        self._drop_parked()
        self._close_workers()
        self._unregister_fileobj(self._wake_r)
        self._wake_r.close()
        self._wake_w.close()
        if self._parent is None:
            self._selector.close()
        log.debug("%s closed", self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self._location}; {len(self._clients)} connections>"

    # ----- the loop's work

    def _await_loop_exit(self) -> None:
        running = self._loop_thread
        if running is not None and running != threading.get_ident():
            if not self._loop_exited.wait(SHUTDOWN_WAIT):
                log.warning("%s: request loop did not stop within %.1f s", self, SHUTDOWN_WAIT)

    def _select_timeout(self) -> float:
        engines = (self, *self._children)
        due = min(min(engine._next_housekeeping, engine._guard_due()) for engine in engines)
        timeout = min(max(due - time.monotonic(), 0.0), _poll_interval())
        if any(engine._parked for engine in engines):
            timeout = min(timeout, PARKED_POLL)
        return timeout

    def _tick(self) -> None:
        now = time.monotonic()
        for engine in (self, *self._children):
            if engine._parked:
                engine._resume_parked()
            if not engine._shutting_down:
                engine._guard_tick(now)
            if now >= engine._next_housekeeping and not engine._shutting_down:
                engine._next_housekeeping = now + _poll_interval()
                engine._housekeep()

    def _on_ready(self, item: Any) -> None:
        try:
            if item is _LISTENER:
                self._accept()
            elif item is _WAKE:
                self._drain_wake()
                self._after_wake()
            elif not item.gone and item.registered:
                self._on_readable(item)
        except Exception:  # a bug here must not end the loop serving everyone else
            log.exception("%s: unexpected error handling %r", self, item)

    def _accept(self) -> None:
        if self._closed:
            return
        try:
            raw = self._listener.accept()
        except ConnectionClosedError:
            self._unregister_fileobj(self._listener)  # closed under us: stop watching it
            return
        except Exception as exc:
            # e.g. out of file descriptors: the listener stays readable, so stop watching it a while
            self._accept_failed(exc)
            return
        if raw is None:
            return
        self._accept_throttle.succeeded()
        refusing = self._admission(raw)
        if refusing is False:
            return  # over every cap: already answered and closed
        try:
            client = Client(ClientConnection(self._wrap_accepted(raw)))
        except Exception as exc:
            log.warning("%s: cannot set up accepted connection: %s", self, exc)
            raw.close()
            return
        client.refusing = refusing if isinstance(refusing, str) and refusing else None
        self._prepare(client)
        with self._lock:
            if self._closed:
                raw.close()
                return
            self._clients.add(client)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: connected %s", self, describe_peer(raw))
        self._register(client)

    def _prepare(self, client: Client) -> None:
        """Hook: adjust a freshly accepted client."""

    def _wrap_accepted(self, raw: Any) -> Any:
        """Hook: the connection object the daemon will write replies to (default: ``raw`` itself)."""
        return raw

    def _register(self, client: Client) -> None:
        try:
            self._selector.register(client.conn, selectors.EVENT_READ, (self, client))
            client.registered = True
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            if not client.gone:
                log.debug("%s: cannot watch %r: %s", self, client, exc)
            self._drop(client)

    def _watch_listener(self) -> None:
        try:
            self._selector.register(self._listener, selectors.EVENT_READ, (self, _LISTENER))
        except (KeyError, ValueError, OSError, RuntimeError):
            pass  # already watched, or closed meanwhile

    def _unregister(self, client: Client) -> None:
        if client.registered:
            client.registered = False
            self._unregister_fileobj(client.conn)

    def _unregister_fileobj(self, fileobj: Any) -> None:
        try:
            self._selector.unregister(fileobj)
        except (KeyError, ValueError, OSError, RuntimeError, AttributeError):
            pass

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass  # BlockingIOError: drained

    def _after_wake(self) -> None:
        """Hook: the wakeup socket fired (workers may have handed clients back)."""

    def _close_workers(self) -> None:
        """Hook: stop worker threads, dropping the clients they had not started on."""

    def _housekeep(self) -> None:
        raise NotImplementedError

    def _on_readable(self, client: Client) -> None:
        raise NotImplementedError

    def _run_housekeeping(self) -> None:
        try:
            self.host.housekeeping()
        except Exception:
            log.exception("%s: error in daemon housekeeping", self)

    # ----- reading, dispatching, dropping

    def _read_frames(self, client: Client) -> list[Frame]:
        """Read what has arrived on an idle client without blocking; return completed messages.

        Raises ConnectionClosedError at end of stream and ProtocolError for garbage.
        """
        raw = client.raw
        reader = client.reader
        frames: list[Frame] = []
        budget = MAX_READ_PER_TURN
        while True:
            data = raw.recv_some(reader.want())
            if data is None:
                break
            if not data:
                if frames:
                    break  # serve what came before the end; the next read sees the end again
                raise ConnectionClosedError(
                    "client closed the connection" + (" in the middle of a message" if reader.partial else "")
                )
            frames += reader.feed(data)
            budget -= len(data)
            client.last_active = now = time.monotonic()
            if not reader.partial:
                client.frame_start = None
            elif client.frame_start is None:
                client.frame_start = now
            # TLS may hold decrypted bytes the selector can't see: those must be read now.  And while
            # a big message streams in, read on (up to a fair share) rather than select per piece.
            if not raw.pending() and (frames or not reader.partial or budget <= 0):
                break
        return frames

    def _dispatch(self, client: Client, msg: protocol.ReceivingMessage, payload: bytes) -> bool:
        """Give one complete message to the daemon and send its reply.  False if the client
        was dropped (refused, broken, or after a failed ``@callback``)."""
        conn = client.conn
        host = self.host
        try:
            msg.add_payload(payload)
            del payload
            if conn.handshaked:
                reply = host.serve_request(conn, client.session, msg)
            else:
                reply = host.serve_handshake(conn, client.session, msg)
            del msg
            if reply is not None:
                protocol.send_message(conn, reply)
                del reply
            if not conn.handshaked:
                log.debug("%s: handshake refused for %s", self, describe_peer(conn))
            elif conn.callback_error is not None:
                # Pyro5 raises a failed @callback's error in the callback's daemon too: log it, end the link
                exc, conn.callback_error = conn.callback_error, None
                log.warning(
                    "%s: callback method raised %r; closing connection from %s",
                    self,
                    exc,
                    describe_peer(conn),
                    exc_info=(type(exc), exc, exc.__traceback__),
                )
            else:
                return True
        except Exception as exc:
            self._log_failure(client, exc)
        self._drop(client)
        return False

    def _serve_frames(self, client: Client, frames: list[Frame]) -> bool:
        """Dispatch ``frames`` in order.  False if the client was dropped or parked (its
        remaining frames kept in ``client.pending``): the caller must leave it alone then."""
        for index, (msg, payload) in enumerate(frames):
            if client.refusing is not None:
                self._send_refusal(client, msg, client.refusing)  # over MAX_CONNECTIONS
                return False
            if not self._dispatch(client, msg, payload):
                return False
            if client.conn.held_oneways:
                self._park(client, frames[index + 1 :])
                return False
        return True

    # ----- back-pressure: parked clients wait for room in the worker pool

    def _park(self, client: Client, pending: list[Frame]) -> None:
        """Stop reading ``client`` until its held-back oneway calls are submitted."""
        self._unregister(client)
        client.pending = pending
        with self._lock:
            if self._closed:
                closed = True
            else:
                closed = False
                client.busy = True
                self._parked.append(client)
        if closed:
            self._drop(client)
            return
        log.debug("%s: worker pool full, %r parked", self, client)
        if threading.get_ident() != self._loop_thread:
            self.wakeup()

    def _resume_parked(self) -> None:
        """Loop thread: go on with parked clients whose oneway calls found room."""
        with self._lock:
            parked = list(self._parked)
        for client in parked:
            if not client.gone and not self.host.resume(client.conn):
                continue
            with self._lock:
                self._parked.remove(client)
            if client.gone:
                continue
            if self._closed:
                self._drop(client)
                continue
            pending, client.pending = client.pending, []
            self._unpark(client, pending)

    def _unpark(self, client: Client, pending: list[Frame]) -> None:
        """Hook: serve a resumed client's pending frames, then watch it again."""
        raise NotImplementedError

    def _drop_parked(self) -> None:
        with self._lock:
            parked, self._parked = self._parked, []
        for client in parked:
            client.conn.held_oneways.clear()
            self._drop(client)

    def _log_failure(self, client: Client, exc: BaseException) -> None:
        peer = describe_peer(client.conn)
        if isinstance(exc, (ConnectionClosedError, ConnectionError, EOFError)):
            log.debug("%s: client %s disconnected: %s", self, peer, exc)
        elif isinstance(exc, (ProtocolError, MessageTooLargeError)):
            log.warning("%s: closing connection from %s after bad message: %s", self, peer, exc)
        elif isinstance(exc, SecurityError):
            log.warning("%s: closing connection from %s after security error: %s", self, peer, exc)
        elif isinstance(exc, (PyroTimeoutError, socket.timeout)):
            log.warning("%s: closing connection from %s after timeout: %s", self, peer, exc)
        elif isinstance(exc, OSError):
            log.debug("%s: connection from %s failed: %s", self, peer, exc)
        else:
            log.warning(
                "%s: closing connection from %s after error: %s",
                self,
                peer,
                exc,
                exc_info=(type(exc), exc, exc.__traceback__),
            )

    def _drop(self, client: Client) -> None:
        """Forget a client: unwatch, tell the daemon (once, if it got past the handshake), close."""
        with self._lock:
            if client.gone:
                return
            client.gone = True
            self._clients.discard(client)
        self._unregister(client)
        if client.conn.handshaked:
            try:
                self.host.client_disconnected(client.conn)
            except Exception:
                log.exception("%s: error in client disconnect handling", self)
        try:
            client.conn.close()
        except Exception:
            pass
        log.debug("%s: dropped %r", self, client)

    def _send_refusal(self, client: Client, msg: protocol.ReceivingMessage, reason: str) -> None:
        """Answer a new client's first message with MSG_CONNECTFAIL carrying ``reason``, as Pyro5 does."""
        # over MAX_CONNECTIONS this happens per connection of a flood: not worth a warning each
        level = logging.DEBUG if client.refusing is not None else logging.WARNING
        log.log(level, "%s: client connection from %s was denied: %s", self, describe_peer(client.conn), reason)
        try:
            protocol.send_message(client.conn, self.host.refuse(client.conn, client.session, msg, reason))
        except Exception as exc:
            log.debug("%s: could not send refusal: %s", self, exc)
        self._drop(client)

"""What the server engines share: the per-client record, reading, dispatching and the selector loop.

An engine owns a transport ``Listener`` and the client connections it
accepts, each wrapped in a ``ClientConnection`` that carries its protocol
``Session`` (``conn.session``).  One thread (the one in ``loop()``, or the
caller of ``events()``) watches the listener, the idle clients and a wakeup
socket with a ``selectors`` selector.  Reads there are non-blocking: the
bytes go into the client's session, which turns them into complete, parsed
messages (and applies the size limits), so a slow or half-sent message never
holds up anyone.  Engines parse and build no header themselves; they send
the ``SendingMessage`` objects the daemon returns.  What happens to a
complete message is the engine's business: the multiplex engine handles it
in place, the thread pool engine hands it to a worker.

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
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..config import config
from ..connection import ClientConnection
from ..errors import ConnectionClosedError
from ..interfaces import DaemonHost
from ..session import BIG_READ_SIZE, READ_SIZE, Frame, FrameReader
from .common import Client, Incoming, describe_peer, log, take_messages, wait_readable
from .guard import GuardMixin
from .serving import MAX_READ_PER_TURN, ConnectionServing

__all__ = [
    "BIG_READ_SIZE",
    "READ_SIZE",
    "MAX_READ_PER_TURN",
    "Frame",
    "FrameReader",
    "Incoming",
    "Client",
    "SelectorEngine",
    "describe_peer",
    "log",
    "take_messages",
    "wait_readable",
]

SHUTDOWN_WAIT = 2.0  # how long shutdown()/close() wait for a running loop to notice
DEFAULT_POLL = 2.0  # select timeout when config.POLLTIMEOUT is unset
PARKED_POLL = 0.02  # select timeout while a parked client waits for room in the worker pool

_LISTENER = "listener"
_WAKE = "wake"


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


class SelectorEngine(ConnectionServing, GuardMixin):
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
        children = self._children
        due = min(self._next_housekeeping, self._guard_due())
        if children:
            due = min(due, *(min(engine._next_housekeeping, engine._guard_due()) for engine in children))
        timeout = min(max(due - time.monotonic(), 0.0), _poll_interval())
        if self._parked or (children and any(engine._parked for engine in children)):
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
        self._admit(client)

    def _admit(self, client: Client) -> None:
        """Hook: start on a freshly accepted client (default: watch it for its first message)."""
        self._register(client)

    def _prepare(self, client: Client) -> None:
        """Hook: adjust a freshly accepted client."""

    def _wrap_accepted(self, raw: Any) -> Any:
        """Hook: the connection object the daemon will write replies to (default: ``raw`` itself)."""
        return raw

    def _watch_listener(self) -> None:
        try:
            self._selector.register(self._listener, selectors.EVENT_READ, (self, _LISTENER))
        except (KeyError, ValueError, OSError, RuntimeError):
            pass  # already watched, or closed meanwhile

    def _register(self, client: Client) -> None:
        try:
            self._selector.register(client.conn, selectors.EVENT_READ, (self, client))
            client.registered = True
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            if not client.gone:
                log.debug("%s: cannot watch %r: %s", self, client, exc)
            self._drop(client)

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

"""The asyncio engine (``config.SERVERTYPE = "asyncio"``, and what ``aio.Daemon`` runs on).

An asyncio event loop watches the listener and every client connection
(their ``fileno()``; the clients through a selector of the engine's own,
whose descriptor the loop watches, so one loop callback serves every ready
client).  A readable client is read
without blocking (``recv_some``) into its own frame reader, so a half-sent
message, a silent client or a slow trickle costs nothing but its buffer.
Complete messages join the client's queue; the client's requests are served
one after another, in order (replies go back in request order, which is what
a pipelining client relies on), while the loop goes on reading everyone.

Who runs a request:

* user code that may block (plain methods, ``validateHandshake``,
  ``clientDisconnect``, ``housekeeping``) runs on a bounded pool of worker
  threads (``config.THREADPOOL_SIZE``), never on the loop;
* ``async def`` methods run as tasks on the loop, so calls from many
  connections are in flight at once;
* oneway calls are handed to the daemon's workers (``host.workers``, the one
  pool): they never hold up the connection they came on; when the pool is
  full, that connection is not read until there is room again.

Writes never block the loop: a reply goes out with a non-blocking send and
what the socket does not take waits in the client's output buffer
(``output.BufferedOutput``; while it waits, that client is not read:
back-pressure on a client that does not read its replies; others are
unaffected).

A hostile peer costs its own connection only, by the selector engines' rules
(``guard``): a sweep closes connections past HANDSHAKE_TIMEOUT (from the
accept: covers TLS), FRAME_TIMEOUT, IDLE_TIMEOUT or SEND_TIMEOUT; beyond
MAX_CONNECTIONS clients get CONNECTFAIL; a failing ``accept()`` pauses the
listener (growing back-off) and is logged at most once a second, with a count.  A worker thread writes the reply of a
plain call itself when the transport allows a send beside the loop's reads
(plain sockets); TLS and unknown transports write from the loop only.

Two ways to run it:

* ``attach(loop)`` on a running loop (``aio.Daemon`` does this in
  ``__aenter__``), then ``await serve_forever()`` / ``close()``;
* ``loop(condition)`` (``Daemon.requestLoop()`` with SERVERTYPE "asyncio"):
  a new event loop runs in the calling thread until the condition is false
  or ``shutdown()`` is called.

Not supported: ``events()``/``sockets`` for an external select loop (the
event loop owns the descriptors; serve it with ``requestLoop()`` or
``aio.Daemon``).  ``combine_loop(other)`` works the other way round: this
engine's loop also serves another daemon of any engine, or a foreign server
with ``sockets`` and ``events()`` (a broadcast responder).
"""

from __future__ import annotations

import asyncio
import logging
import selectors
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConnectionClosedError, PyroError
from ..interfaces import StepwiseHost
from ._aio_client import AioClient, PoolJobs
from ._aio_combine import SelectorServer
from ._aio_handoff import LoopInbox
from ._aio_io import poll_interval, quiet, try_send
from .common import describe_peer
from .guard import AcceptThrottle, Limits, admit, close_expired, sweep_interval

log = logging.getLogger("pyrite.core.engines.aio")

ACCEPT_BATCH = 64  # clients taken per listener wakeup (a burst of connects needs few loop passes)
SHUTDOWN_WAIT = 2.0  # how long close()/shutdown() from another thread wait for the loop


class AsyncioEngine(PoolJobs):
    """Server engine for SERVERTYPE "asyncio"; see the module docstring.

    Construct as ``AsyncioEngine(host, listener)`` (``host``: an ``interfaces.DaemonHost``),
    then either ``attach(loop)``
    or ``loop(condition)``.
    """

    servertype = "asyncio"

    def __init__(self, host: StepwiseHost, listener: Any) -> None:
        super().__init__(host)
        self._listener = listener
        self._location: str = listener.location
        setblocking = getattr(listener, "setblocking", None)
        if setblocking is not None:
            setblocking(False)  # accept() returns None instead of waiting when the client is gone
        self._clients: set[AioClient] = set()
        self.tasks: set[asyncio.Task[Any]] = set()  # calls being awaited (strong references)
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._loop_ident: int | None = None
        self.inbox: LoopInbox | None = None  # what other threads hand to the loop
        self._closed = False
        self._shutting_down = False
        self._detached = threading.Event()
        self._detach_lock = threading.RLock()  # the loop thread leaving and close() may both detach
        self._detached.set()
        self._wake: asyncio.Event | None = None
        self._closed_future: asyncio.Future[None] | None = None
        self._housekeeping_handle: asyncio.TimerHandle | None = None
        self._housekeeping_running = False
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._accept_throttle = AcceptThrottle(f"{type(self).__name__} on {self._location}")
        self._children: list[AsyncioEngine] = []
        self._selector: selectors.DefaultSelector | None = None
        self._foreign: list[tuple[Any, Any]] = []  # (server, watched fileobj) served by this loop
        self._parent: AsyncioEngine | None = None
        self._spared: asyncio.Task[Any] | None = None  # see spare()

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
    def clients(self) -> list[Any]:
        """The connections currently open to this engine."""
        return [client.conn for client in list(self._clients)]

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop serving this engine, or None while it is not attached."""
        return self._aloop

    @property
    def sockets(self) -> list[Any]:
        """Not available: the event loop owns the descriptors (see the module docstring)."""
        raise PyroError(
            "the asyncio engine has no sockets for an external loop: run requestLoop() or use aio.Daemon "
            "(another loop can be served by this one: combine it into this daemon)"
        )

    @property
    def selector(self) -> Any:
        """Not available: the event loop has its own selector."""
        raise PyroError("the asyncio engine has no selector of its own: its event loop owns the descriptors")

    def events(self, eventsockets: Any) -> None:
        """Not available: the asyncio engine cannot be driven by an external select loop."""
        raise PyroError("the asyncio engine cannot be driven by events(): run requestLoop() or use aio.Daemon")

    def attach(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start serving on ``loop`` (default: the running loop); call it from the loop's thread."""
        if self._closed:
            raise PyroError("the daemon is closed")
        if self._aloop is not None:
            raise PyroError("the asyncio engine is already attached to an event loop")
        loop = loop or asyncio.get_running_loop()
        self._aloop = loop
        self._loop_ident = threading.get_ident()
        self.inbox = LoopInbox(loop)
        self._detached.clear()
        self._closed_future = loop.create_future()
        # the clients are watched by a selector of our own, whose descriptor the loop watches:
        # one loop callback serves every ready client (asyncio's per-descriptor callbacks cost more)
        self._selector = selectors.DefaultSelector()
        loop.add_reader(self._selector.fileno(), self._serve_ready)
        loop.add_reader(self._listener.fileno(), self._accept)
        self._schedule_housekeeping()
        self._schedule_sweep()
        for child in self._children:
            child.attach(loop)
        for server, fileobj in self._foreign:
            loop.add_reader(fileobj, self._foreign_ready, server, fileobj)
        log.debug("%s attached to %r", self, loop)

    async def serve_forever(self) -> None:
        """Serve until ``close()`` (or ``shutdown()``); the engine must be attached."""
        future = self._closed_future
        if future is None:
            raise PyroError("the asyncio engine is not attached to an event loop")
        await asyncio.shield(future)

    def loop(self, loopCondition: Callable[[], bool] = lambda: True) -> None:
        """Run a new event loop in this thread and serve until ``loopCondition()`` is false or
        ``shutdown()`` is called (the condition is checked at least every ``config.POLLTIMEOUT``)."""
        if self._closed:
            return
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._run_until(loopCondition))
        except KeyboardInterrupt:
            log.debug("request loop interrupted (KeyboardInterrupt)")
        finally:
            try:
                self._detach()  # cancels the calls still awaited: let them reply before the loop goes
                loop.run_until_complete(self.calls_ended(SHUTDOWN_WAIT))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def combine_loop(self, other: Any) -> None:
        """Serve ``other`` from this engine's loop too: another asyncio engine, a selector engine
        (through its selector's descriptor) or a server with ``sockets`` and ``events(ready)``."""
        if isinstance(other, AsyncioEngine):
            if other is self or other in self._children or other._parent is not None:
                raise ValueError("engine is already served by this loop")
            if other._closed or self._closed:
                raise ValueError("cannot combine a closed engine")
            if other._aloop is not None:
                raise ValueError("cannot combine an engine that is attached to another loop")
            other._parent = self
            self._children.append(other)
            if self._aloop is not None:
                self._call_on_loop(other.attach, self._aloop)
            return
        selector = getattr(other, "selector", None)
        fileno = getattr(selector, "fileno", None)
        if callable(fileno) and callable(getattr(other, "events", None)):
            # a selector engine: its epoll/kqueue descriptor is readable when any of its sockets is
            self._add_foreign(SelectorServer(other, selector), fileno())
            return
        if not (hasattr(other, "sockets") and callable(getattr(other, "events", None))):
            raise TypeError(f"cannot combine with {type(other).__name__}: it has no sockets and events()")
        for sock in list(other.sockets):
            self._add_foreign(other, sock)

    def wakeup(self) -> None:
        """Make a ``loop()`` waiting for its next condition check look now."""
        loop, wake = self._aloop, self._wake
        if loop is not None and wake is not None:
            self._call_on_loop(wake.set)

    def shutdown(self) -> None:
        """Stop serving and close everything; safe from any thread and from inside a call."""
        self._shutting_down = True
        self.wakeup()
        self.close()

    def close(self) -> None:
        """Release the listener, every idle connection and the workers.  Idempotent.

        A connection with a call in progress is closed by its worker as soon as the call
        has replied.  From another thread this waits (bounded) for the loop to let go.
        """
        if self._closed:
            return
        self._closed = True
        self._shutting_down = True
        loop = self._aloop
        if loop is not None and threading.get_ident() != self._loop_ident and loop.is_running():
            done = threading.Event()

            def close_on_loop() -> None:
                try:
                    self._detach()
                finally:
                    done.set()

            if self._call_on_loop(close_on_loop) and not done.wait(SHUTDOWN_WAIT):
                log.warning("%s: event loop did not let go within %.1f s", self, SHUTDOWN_WAIT)
        else:
            self._detach()
        self._release()

    def spare(self, task: asyncio.Task[Any] | None) -> None:
        """Let ``task`` (the call that closes the daemon) go on when the close cancels the others."""
        self._spared = task

    async def calls_ended(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until the calls this engine awaits have ended (on its loop)."""
        spared = (asyncio.current_task(), self._spared)
        tasks = [task for task in self.tasks if task not in spared]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self._location}; {len(self._clients)} connections>"

    # ----- the loop's work

    async def _run_until(self, condition: Callable[[], bool]) -> None:
        self._wake = asyncio.Event()
        self.attach(asyncio.get_running_loop())
        poll = poll_interval()
        try:
            while not self._shutting_down and condition():
                try:
                    await asyncio.wait_for(self._wake.wait(), poll)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
        finally:
            self._wake = None

    def _call_on_loop(self, func: Callable[..., Any], *args: Any) -> bool:
        """Run ``func`` on the loop (now if we are on it); False if the loop is gone."""
        inbox = self.inbox
        return inbox is not None and inbox.call(func, args)

    def _detach(self) -> None:
        """Stop watching everything (on the loop thread, or with no loop running)."""
        with self._detach_lock:
            self._detach_now()

    def _detach_now(self) -> None:
        loop = self._aloop
        if loop is None:
            return
        for child in self._children:
            child._detach()
        for handle in (self._housekeeping_handle, self._sweep_handle):
            if handle is not None:
                handle.cancel()
        self._housekeeping_handle = self._sweep_handle = None
        for _, fileobj in self._foreign:
            quiet(loop.remove_reader, fileobj)
        quiet(loop.remove_reader, self._listener.fileno())
        selector = self._selector
        spared = (asyncio.current_task(loop) if loop.is_running() else None, self._spared)
        for task in list(self.tasks):
            if task not in spared:  # a call that closes the daemon still replies
                task.cancel()  # its client gets an error reply, then its connection is closed
        for client in list(self._clients):
            client.detach()
            if not client.busy:
                client.drop(at_close=self._closed)
            else:
                client.orphan()  # its worker closes it after the reply
        if selector is not None:
            quiet(loop.remove_reader, selector.fileno())
            selector.close()
            self._selector = None
        future, self._closed_future = self._closed_future, None
        if future is not None and not future.done():
            future.set_result(None)
        self._aloop = self.inbox = None
        self._loop_ident = None
        self._detached.set()
        if self._closed:
            for child in self._children:
                child.close()

    def _release(self) -> None:
        try:
            self._listener.close()
        except Exception as exc:
            log.debug("error closing listener: %s", exc)
        log.debug("%s closed", self)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            if self._closed:
                return
            try:
                raw = self._listener.accept()
            except ConnectionClosedError:
                self._stop_accepting()  # the listener was closed under us
                return
            except Exception as exc:
                if not self._closed:
                    self._pause_accepting(self._accept_throttle.failed(exc))
                return
            if raw is None:
                return
            self._accept_throttle.succeeded()
            refusing = admit(raw, len(self._clients), self._refusing_count, self)
            if refusing is False:
                continue  # over every cap: already answered and closed
            try:
                client = AioClient(self, raw, refusing if isinstance(refusing, str) and refusing else None)
            except Exception as exc:
                log.warning("%s: cannot set up accepted connection: %s", self, exc)
                quiet(raw.close)
                continue
            self._clients.add(client)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s: connected %s", self, describe_peer(raw))
            client.start_reading()

    def _refusing_count(self) -> int:
        return sum(1 for client in self._clients if client.refusing is not None)

    def _stop_accepting(self) -> None:
        loop = self._aloop
        if loop is not None:
            quiet(loop.remove_reader, self._listener.fileno())

    def _pause_accepting(self, pause: float) -> None:
        # e.g. out of file descriptors: the listener stays readable; look again after the back-off
        loop = self._aloop
        if loop is None:
            return
        fd = self._listener.fileno()
        quiet(loop.remove_reader, fd)

        def resume() -> None:
            if self._aloop is loop and not self._closed:
                loop.add_reader(fd, self._accept)

        loop.call_later(pause, resume)

    def _schedule_sweep(self) -> None:
        loop = self._aloop
        if loop is not None and not self._shutting_down:
            self._sweep_handle = loop.call_later(sweep_interval(Limits.current()), self._sweep)

    def _sweep(self) -> None:
        """Loop thread: close the connections past a deadline (see ``guard.expired``); write
        accept failures still uncounted in the log."""
        self._schedule_sweep()
        loop = self._aloop
        if loop is None:
            return
        now = time.monotonic()  # the records' clock (uvloop's loop.time() is another)
        throttle = self._accept_throttle
        if throttle.failures:
            throttle.flush_log(now)
        # a client whose call runs is left alone, unless its replies wait for a peer that does not read
        due = [client for client in self._clients if not client.gone and (not client.busy or client.out.queued)]
        close_expired(self, due, now, Limits.current(), AioClient.drop)

    def watch(self, client: AioClient) -> None:
        """Read ``client`` when it is readable (loop thread)."""
        if self._selector is not None:
            self._selector.register(client.fd, selectors.EVENT_READ, client)

    def unwatch(self, client: AioClient) -> None:
        """Stop reading ``client`` (loop thread)."""
        if self._selector is not None:
            quiet(self._selector.unregister, client.fd)

    def _serve_ready(self) -> None:
        selector = self._selector
        if selector is None:
            return
        for key, _ in selector.select(0):
            try:
                key.data.on_readable()
            except Exception:  # a bug here must not end the loop serving everyone else
                log.exception("%s: unexpected error serving %r", self, key.data)

    def forget(self, client: AioClient) -> None:
        """A client is gone: stop tracking it (called by the client, on the loop thread)."""
        self._clients.discard(client)

    def _schedule_housekeeping(self) -> None:
        loop = self._aloop
        if loop is not None and not self._shutting_down:
            self._housekeeping_handle = loop.call_later(poll_interval(), self._housekeep)

    def _housekeep(self) -> None:
        self._schedule_housekeeping()
        for server, _ in self._foreign:
            if isinstance(server, SelectorServer):
                self._foreign_ready(server, None)  # a combined selector engine's own housekeeping
        if self._housekeeping_running:
            return  # the last round is still running
        self._housekeeping_running = True
        if not self.submit(self._housekeeping_job):
            self._housekeeping_running = False

    def _housekeeping_job(self) -> None:
        try:
            self.host.housekeeping()
        except Exception:
            log.exception("%s: error in daemon housekeeping", self)
        finally:
            self._housekeeping_running = False

    def _add_foreign(self, server: Any, fileobj: Any) -> None:
        self._foreign.append((server, fileobj))
        loop = self._aloop
        if loop is not None:
            self._call_on_loop(loop.add_reader, fileobj, self._foreign_ready, server, fileobj)

    def _foreign_ready(self, server: Any, fileobj: Any) -> None:
        try:
            server.events([fileobj])
        except Exception:  # its failure must not end the loop serving everyone else
            log.exception("error in combined server %r", server)


Engine = AsyncioEngine
__all__ = ["AsyncioEngine", "Engine", "try_send"]

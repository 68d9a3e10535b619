"""The pipelining channel: one connection, many requests in flight, replies matched in order.

``PipelineChannel`` is an ``asyncio.Protocol`` that drives a client ``Session``
(the sans-IO protocol state).  On asyncio's own loops the channel is a
``BufferedChannel``: the transport reads into one buffer that the channels of
a loop share, and a body of 64 KiB and more straight into a buffer of its own;
a plain ``Protocol`` would get a new 256 KiB ``bytes`` per read, which glibc
maps, shrinks and unmaps every time.  uvloop reads into a buffer of its own
and hands a plain protocol ``bytes`` of the right size, which costs it less
than a buffered protocol's calls.  A request is handed to the transport in one
piece the moment it is made (``send``), so requests from many tasks go out back
to back and never interleave.  The Pyro protocol answers requests in the order
they came, so each reply settles the oldest waiting future; the session checks
its sequence number.  A caller that stops waiting (a timeout, a cancelled task)
leaves its future behind: its reply still arrives and is dropped (an item stream
it opened is closed on the daemon), and every other caller still gets its own reply::

    channel = await open_channel("localhost:9999", timeout=5.0)   # aio/connect.py
    reply = await channel.request(channel.session.invoke(ser_id, payload), timeout=5.0)

Where a channel's connection is opened: ``connect.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import logging
import mmap
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from .. import plugins
from ..config import config
from ..constants import DAEMON_NAME
from ..errors import ConnectionClosedError, ProtocolError, PyroError, TimeoutError
from ..framing import READ_SIZE
from ..protocol import FLAGS_ITEMSTREAMRESULT, FLAGS_ONEWAY, ReceivingMessage, SendingMessage
from ..session import CLIENT, Session

__all__ = ["BufferedChannel", "PipelineChannel"]

log = logging.getLogger("pyrite.core.aio")


def _settle(waiter: Any, reply: Any, error: BaseException | None = None) -> None:
    """Give a waiting caller its reply (or ``error``); nothing if it gave up (done or cancelled).
    ``waiter`` is an asyncio future, or a ``concurrent.futures.Future`` whose caller (another
    thread) may cancel it at any moment."""
    if waiter.done():
        return  # its caller gave up: the reply is dropped
    try:
        if error is None:
            waiter.set_result(reply)
        else:
            waiter.set_exception(error)
    except (concurrent.futures.InvalidStateError, asyncio.InvalidStateError):
        pass  # cancelled by its thread just now


def stream_id(reply: ReceivingMessage) -> str:
    """The stream id of a reply that says the call returned an iterator (ProtocolError if it has none)."""
    try:
        stream_id = bytes(reply.annotations.get("STRM", b"")).decode()
    except UnicodeDecodeError:
        raise ProtocolError("invalid stream id in response") from None
    if not stream_id:
        raise ProtocolError("the call returned an iterator, but the server has item streaming switched off")
    return stream_id


def _expire(future: Any, timeout: float) -> None:
    _settle(future, None, TimeoutError(f"no reply within {timeout} s"))


class _Disarm:
    """A done callback that cancels a timeout timer (set on a future the loop settles)."""

    __slots__ = ("timer",)

    def __init__(self, timer: asyncio.TimerHandle) -> None:
        self.timer = timer

    def __call__(self, _: Any) -> None:
        self.timer.cancel()


_local = threading.local()


def _read_buffer() -> memoryview:
    """This thread's read buffer, shared by every BufferedChannel on its loop: a transport reads
    into it and the channel takes the bytes out in the same callback (``get_buffer``, the read,
    ``buffer_updated`` run back to back on the loop thread), so one buffer per loop is enough,
    where one per channel would hold 64 KiB for each of a thousand idle proxies."""
    buffer: memoryview | None = getattr(_local, "read_buffer", None)
    if buffer is None:
        buffer = _local.read_buffer = memoryview(bytearray(READ_SIZE))
    return buffer


def _large_body(size: int) -> memoryview:
    """The buffer a large reply body is read straight into (``Session.allocator``): an anonymous
    memory map, whose pages the kernel gives as bytes arrive (a ``bytearray`` would be zeroed,
    and so held, whole the moment a header declares its size)."""
    return memoryview(mmap.mmap(-1, size))


class PipelineChannel(asyncio.Protocol):
    """One client connection on an event loop, shared by every task that calls through it."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.loop = asyncio.get_running_loop()
        self.session = Session(CLIENT)
        self.transport: asyncio.Transport | None = None
        # one per session.expecting entry: asyncio futures, or concurrent ones (request_threadsafe)
        self.waiters: deque[Any] = deque()
        self.error: PyroError | None = None  # why the channel is closed, once it is
        self.local_address: Any = None
        self._paused = False
        self._drained: list[asyncio.Future[None]] = []
        self._held: list[concurrent.futures.Future[ReceivingMessage | None]] = []  # see _take_inbox
        # Write coalescing: the first request after a reply goes out at once; requests that follow
        # it before the next reply (other tasks, same loop turn) are gathered and written together
        # by one callback, so 100 concurrent calls cost a few sends instead of 100.
        self._corked = False
        self._out: list[Any] = []
        # requests handed in by other threads (request_threadsafe), taken on the loop's next turn
        self._inbox: list[tuple[Any, bool, float | None, concurrent.futures.Future[Any]]] = []
        self._inbox_lock = threading.Lock()
        self._inbox_woken = False
        self._retired = False  # see retire()

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        # uvloop's transports are not asyncio.Transport subclasses, but offer the same methods
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                self.local_address = sock.getsockname()
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        self.session.receive_data(data)
        self._take_replies()

    def _take_replies(self) -> None:
        self._corked = False
        session = self.session
        try:
            while True:
                msg = session.next_event()
                if type(msg) is not ReceivingMessage:
                    break
                session.accept_reply(msg)
                if config.LOGWIRE:
                    log.debug("aio channel %s: reply in seq=%d type=%d", self.location, msg.seq, msg.type)
                waiter = self.waiters.popleft()
                if msg.flags & FLAGS_ITEMSTREAMRESULT and waiter.done():
                    self._close_stream(msg)  # nobody takes this iterator: the daemon may drop it now
                else:
                    _settle(waiter, msg)
        except PyroError as exc:
            # out of step or garbage: nothing after this can be trusted
            self._shut(exc)
            return
        if self._retired and not self.waiters:
            self.close()

    def _close_stream(self, msg: ReceivingMessage) -> None:
        # The reply of a call that timed out or was cancelled opened an item stream on the daemon;
        # the connection stays open, so without this the stream would live as long as it does.
        try:
            self.close_stream(stream_id(msg), plugins.get_serializer_by_id(msg.serializer_id))
        except Exception as exc:  # noqa: BLE001 - best effort: the stream goes when the connection does
            log.debug("aio channel %s: could not close an abandoned item stream: %r", self.location, exc)

    def close_stream(self, stream: str, serializer: Any) -> None:
        """Tell the daemon to discard the item stream ``stream`` (a oneway message; loop thread)."""
        if not self.closed:
            payload = serializer.dumpsCall(DAEMON_NAME, "close_stream", [stream], {})
            self.send(self.session.invoke(serializer.serializer_id, payload, FLAGS_ONEWAY), expect_reply=False)

    def eof_received(self) -> bool:  # noqa: D102
        return False  # the daemon closed: close our side too (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        reason = f": {exc}" if exc else ""
        self._shut(ConnectionClosedError(f"connection to {self.location} closed{reason}"))

    def pause_writing(self) -> None:  # noqa: D102
        self._paused = True

    def resume_writing(self) -> None:  # noqa: D102
        self._paused = False
        self._wake_drained()

    # ------------------------------------------------------------------ use

    @property
    def writing_paused(self) -> bool:
        """True while the transport's write buffer is above its high-water mark (see ``drain``)."""
        return self._paused

    @property
    def closed(self) -> bool:
        """True once the connection is gone (or was never made)."""
        return self.error is not None or self.transport is None

    def send(self, msg: SendingMessage, expect_reply: bool = True, waiter: Any = None) -> Any:
        """Hand one message to the transport whole; the future its reply will settle (None for oneway):
        a new asyncio future, or ``waiter`` when given (a ``concurrent.futures.Future``).

        The message must come from this channel's ``session`` (which recorded it as expected)."""
        if self.error is not None or self.transport is None:
            raise self.failure()
        if expect_reply:
            if waiter is None:
                waiter = self.loop.create_future()
            self.waiters.append(waiter)
        else:
            waiter = None
        parts = msg.parts
        if self._corked or self._out:
            if not self._out:
                self.loop.call_soon(self._flush)
            self._out.extend(parts)
        else:
            self._corked = True
            if len(parts) == 1:
                self.transport.write(parts[0])
            else:
                self.transport.writelines(parts)
        if config.LOGWIRE:
            log.debug("aio channel %s: request out seq=%d type=%d", self.location, msg.seq, msg.type)
        return waiter

    def request_threadsafe(
        self, build: Callable[[Session], SendingMessage], expect_reply: bool, timeout: float | None
    ) -> concurrent.futures.Future[ReceivingMessage | None]:
        """From any thread but the loop's: build a message with ``build(session)`` on the loop, send
        it, and settle the returned future with its reply (None for oneway) or the error.

        ``SharedProxy``'s fast path: no task and no asyncio future per call.  The reply settles the
        returned future right in ``data_received``; requests from many threads that wait for the
        loop are taken in one turn (one wake-up of the loop for all of them).  A caller that gives
        up (cancels the future) leaves the reply to be dropped, as for a timed-out task.  A oneway
        call's future settles when it is handed to the transport, or, while the transport's write
        buffer is over its high-water mark, once that drains (a peer that stops reading stops its
        callers, instead of the buffer growing without bound)."""
        result: concurrent.futures.Future[ReceivingMessage | None] = concurrent.futures.Future()
        with self._inbox_lock:
            self._inbox.append((build, expect_reply, timeout, result))
            wake = not self._inbox_woken
            self._inbox_woken = True
        if wake:
            try:
                self.loop.call_soon_threadsafe(self._take_inbox)
            except RuntimeError:  # the loop is closed: nothing handed in can be sent any more
                with self._inbox_lock:
                    self._inbox_woken = False
                    inbox, self._inbox = self._inbox, []
                for *_, other in inbox:
                    if other is not result and other.set_running_or_notify_cancel():
                        other.set_exception(ConnectionClosedError(f"connection to {self.location}: loop closed"))
                raise
        return result

    def _take_inbox(self) -> None:
        """Loop thread: send every request other threads handed in since the last turn."""
        with self._inbox_lock:
            inbox, self._inbox = self._inbox, []
            self._inbox_woken = False
        for build, expect_reply, timeout, result in inbox:
            if not result.set_running_or_notify_cancel():
                continue  # its caller gave up before it was sent
            try:
                self.send(build(self.session), expect_reply, result)
            except BaseException as exc:  # noqa: BLE001 - the caller gets it
                result.set_exception(exc)
                continue
            if not expect_reply:
                if self._paused:
                    self._held.append(result)  # back-pressure: its caller waits until the buffer drains
                else:
                    result.set_result(None)
            elif timeout:
                # the timer goes with the reply: a pending timer would hold the future, and so
                # the reply it carries, for the whole timeout after the caller took it
                timer = self.loop.call_later(timeout, _expire, result, timeout)
                result.add_done_callback(_Disarm(timer))  # runs on the loop, which settles it

    async def request(self, msg: SendingMessage, timeout: float | None = None) -> ReceivingMessage:
        """Send one request and wait for its reply, ``timeout`` seconds at most (None or 0: no limit)."""
        waiter = self.send(msg)
        assert waiter is not None
        return await self.wait(waiter, timeout)

    async def wait(self, waiter: asyncio.Future[ReceivingMessage], timeout: float | None) -> ReceivingMessage:
        """The reply that settles ``waiter``; errors.TimeoutError after ``timeout`` s (the channel stays usable)."""
        if not timeout:
            return await waiter
        handle = self.loop.call_later(timeout, _expire, waiter, timeout)
        try:
            return await waiter
        finally:
            handle.cancel()

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark again."""
        if self._paused and self.error is None:
            waiter = self.loop.create_future()
            self._drained.append(waiter)
            await waiter
        if self.error is not None:
            raise self.failure()

    async def drain_before(self, waiter: asyncio.Future[ReceivingMessage]) -> None:
        """``drain()`` before waiting for ``waiter``; if the drain fails or is cancelled, ``waiter``
        is given up (or, already failed, its error retrieved: it is the one raised here)."""
        try:
            await self.drain()
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # never "exception not retrieved"
            else:
                waiter.cancel()
            raise

    def abandon(self, waiter: asyncio.Future[ReceivingMessage]) -> None:
        """The caller of ``waiter`` was cancelled.  If its reply had come already (the task was
        cancelled before it could resume) and opened an item stream, close that on the daemon."""
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            reply = waiter.result()
            if reply.flags & FLAGS_ITEMSTREAMRESULT and self.error is None:
                self._close_stream(reply)

    def failure(self) -> PyroError:
        """Why the channel is closed, as a new error for each caller: one instance raised in many
        threads or tasks would carry the tracebacks of all of them (and hold their frames)."""
        return (
            copy.copy(self.error)
            if self.error is not None
            else ConnectionClosedError(f"not connected to {self.location}")
        )

    def retire(self) -> None:
        """Close the connection once the replies already awaited have come (now, if none is).
        Its proxy has let go of it: new calls go over a new connection.  Safe from any thread."""
        if self.loop is not asyncio._get_running_loop():
            with contextlib.suppress(RuntimeError):  # its loop closed: so is the channel
                self.loop.call_soon_threadsafe(self.retire)
            return
        self._retired = True
        if not self.waiters:
            self.close()

    def close(self) -> None:
        """Close the connection (after writing what is still gathered, e.g. a last oneway call);
        every caller still waiting gets ConnectionClosedError."""
        self._flush()
        self._shut(ConnectionClosedError(f"connection to {self.location} was closed by the proxy"))

    # ------------------------------------------------------------------ internals

    def _flush(self) -> None:
        out, self._out = self._out, []
        self._corked = False
        if out and self.error is None and self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(out)

    def _shut(self, error: PyroError) -> None:
        if self.error is None:
            self.error = error
        if self.session.partial:  # the buffer of a half-received reply goes now, not with the channel
            self.session = Session(CLIENT, seq=self.session.seq)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
        waiters, self.waiters = self.waiters, deque()
        for waiter in waiters:
            _settle(waiter, None, self.failure())
        with self._inbox_lock:
            inbox, self._inbox = self._inbox, []
        for *_, result in inbox:
            if result.set_running_or_notify_cancel():
                result.set_exception(self.failure())
        self._wake_drained()

    def _wake_drained(self) -> None:
        drained, self._drained = self._drained, []
        for waiter in drained:
            if not waiter.done():
                waiter.set_result(None)
        held, self._held = self._held, []
        for result in held:  # oneway calls from other threads that waited for the buffer to drain
            if not result.done():
                if self.error is None:
                    result.set_result(None)
                else:  # the connection went before they were written out
                    result.set_exception(self.failure())


class BufferedChannel(PipelineChannel, asyncio.BufferedProtocol):
    """A ``PipelineChannel`` whose transport reads into its loop thread's buffer, and a body
    larger than that buffer straight into the buffer that becomes the body (the one copy of a
    reply between the socket and the serializer is then the serializer's own)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.session.allocator = _large_body
        self.session.large_body = READ_SIZE
        self._scratch = _read_buffer()  # where reads go, unless into a large body
        self._target: memoryview | None = None  # the large body's buffer get_buffer gave out

    def get_buffer(self, sizehint: int) -> memoryview:  # noqa: D102
        target = self._target = self.session.read_target()
        return self._scratch if target is None else target

    def buffer_updated(self, nbytes: int) -> None:  # noqa: D102
        target, self._target = self._target, None
        if target is None:
            self.data_received(bytes(self._scratch[:nbytes]))
            return
        del target
        self.session.received_into(nbytes)
        self._take_replies()

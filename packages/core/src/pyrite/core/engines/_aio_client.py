"""One client connection of the asyncio engine: reading, its request queue, serving, writing.

Threads: the event loop reads (``on_readable``), flushes pending output
(``on_writable``) and is the only one that adds or removes the descriptor's
watchers.  Requests of one client are served in order by whoever holds the
client's *turn* (``busy``): the loop takes it when requests arrive, hands it
to a worker thread for anything that runs blocking user code (a plain method,
the handshake), and a worker hands it back to the loop for an ``async def``
method, which runs as a task; the turn holder goes on with the next queued
request (``advance``).  ``lock`` guards what several threads touch: the
queue, the flags and the output buffer.

What bounds a hostile peer is the selector engines' (``guard``, ``output``):
the record keeps the deadline timestamps (``guard.DeadlineClock``) that the
engine's sweep checks; replies go through an ``output.BufferedOutput``
(``MAX_OUTPUT_BUFFER``: a peer that lets more wait loses its connection); a
client over MAX_CONNECTIONS (``refusing``) gets CONNECTFAIL for its first
message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..calls import PendingCall
from ..connection import ClientConnection
from ..errors import PyroError
from ..interfaces import StepwiseHost
from ..protocol import ReceivingMessage, SendingMessage
from ..workers import WorkerPool
from ._aio_calls import await_from_worker, run_coroutine
from ._aio_handoff import LoopInbox
from ._aio_io import log_failure, loop_running, parse_frames, quiet, send_blocking, sender_for
from .common import INFLATE_ON_LOOP, allocator_for, describe_peer, inflate_elsewhere, read_into
from .guard import DeadlineClock
from .output import BufferedOutput

log = logging.getLogger("pyrite.core.engines.aio")

MAX_READ_PER_TURN = 4 * 1024 * 1024  # bytes one client may read per loop pass (fairness)
MAX_QUEUED = 32  # complete requests a client may have waiting before it is not read any more


class PoolJobs:
    """The engine's side of the daemon's worker pool (user code that may block runs there)."""

    def __init__(self, host: StepwiseHost) -> None:
        self.host = host
        self._pool: WorkerPool = host.workers

    @property
    def pool(self) -> WorkerPool:
        """The daemon's worker pool."""
        return self._pool

    def submit(self, func: Callable[..., Any], *args: Any) -> bool:
        """Run ``func(*args)`` on a worker; False if the pool is closed."""
        return self._pool.submit(func, args)


class AioClient(DeadlineClock):
    """The asyncio engine's record of one accepted connection (see the module docstring)."""

    def __init__(self, engine: Any, raw: Any, refusing: str | None = None) -> None:
        self.engine = engine
        self.raw = raw
        self.conn = ClientConnection(raw)
        self.session = self.conn.session
        self.session.allocator = allocator_for(raw)
        self.host = engine.host
        self.fd = raw.fileno()
        sender, self.direct = sender_for(raw)
        self.lock = threading.Lock()
        self.queue: deque[Any] = deque()
        self.out = BufferedOutput(raw, sender)
        self.since = self.last_active = time.monotonic()
        self.frame_start: float | None = None
        self.refusing = refusing  # over MAX_CONNECTIONS: its first message gets CONNECTFAIL
        self.busy = False  # a worker holds the turn
        self.gone = False
        self.failed = False  # output could not be written: what else comes for it is dropped
        self.eof = False
        self.orphaned = False  # the loop let go while a call ran: the worker closes it
        self.close_after_flush = False
        self.reading = False
        self.writing = False
        self.inflating = False  # the inflater thread parses its messages (common.INFLATE_ON_LOOP)
        self._loop = engine.event_loop
        self._loop_ident = engine._loop_ident
        self._inbox: LoopInbox | None = engine.inbox  # how a worker hands this client's steps to the loop

    def __repr__(self) -> str:
        return f"<AioClient fd={self.fd} {describe_peer(self.conn)}>"

    # ----- loop thread

    def start_reading(self) -> None:
        """Watch the descriptor (or stop watching it) as the client's state says."""
        loop = self._loop
        if loop is None or self.gone:
            return
        want = (
            not self.eof
            and not self.inflating
            and not self.out.queued
            and len(self.queue) < MAX_QUEUED
            and not self.close_after_flush
            and not self.conn.held_oneways
        )
        if want and not self.reading:
            self.engine.watch(self)
            self.reading = True
            if self.raw.pending():
                loop.call_soon(self.on_readable)  # bytes buffered inside the transport (TLS)
        elif not want and self.reading:
            self.engine.unwatch(self)
            self.reading = False

    def on_readable(self) -> None:
        """Read what has arrived, without blocking; queue complete requests."""
        if self.gone or not self.reading:
            return
        raw = self.raw
        session = self.session
        budget = MAX_READ_PER_TURN
        failure: BaseException | None = None
        try:
            while True:
                count = read_into(raw, session)
                if count is None:
                    break
                if not count:
                    self.eof = True
                    break
                self.note_read()
                budget -= count
                if not raw.pending() and (not session.partial or budget <= 0):
                    break
        except Exception as exc:
            failure = exc
        if session.compressed_waiting > INFLATE_ON_LOOP:
            self._inflate_elsewhere(failure)  # a big compressed body: not inflated on the loop thread
            return
        self._take_frames(*parse_frames(session, self.conn, failure))

    def _inflate_elsewhere(self, failure: BaseException | None) -> None:
        """Parse the messages on the inflater thread (the client is not read meanwhile), then go on
        on the loop."""
        self.inflating = True
        self.start_reading()  # stops reading

        def parse() -> None:
            parsed = parse_frames(self.session, self.conn, failure)
            if not self._on_loop(self._inflated, *parsed):
                self._close_orphan()  # the loop is gone

        if not inflate_elsewhere(parse):
            self.drop()

    def _inflated(self, frames: list[ReceivingMessage], failure: BaseException | None) -> None:
        self.inflating = False
        if not self.gone:
            self._take_frames(frames, failure)
            self.start_reading()

    def _take_frames(self, frames: list[ReceivingMessage], failure: BaseException | None) -> None:
        """Loop thread: queue what was read and parsed; serve it (or close after a failure)."""
        if failure is not None:
            log_failure(self, failure)
            failure = None  # its traceback holds this frame: no cycle may keep the session's buffers
            if not frames:
                self.drop()
                return
            self.eof = True  # serve what came before it, then close
        if self.refusing is not None and frames:
            self._refuse(frames[0], self.refusing)
            return
        start = False
        with self.lock:
            if frames:
                self.queue.extend(frames)
                if not self.busy:
                    self.busy = start = True
            idle = not self.busy and not self.queue
        if self.eof and idle:
            self.drop()
            return
        if self.eof or len(self.queue) >= MAX_QUEUED:
            self.start_reading()  # stop reading: nothing more comes, or enough waits
        if start:
            self.advance(True)

    def on_writable(self) -> None:
        """Send what waits in the output buffer."""
        if self.gone:
            return
        try:
            with self.lock:
                self.out.flush()
                done = not self.out.queued
        except Exception as exc:
            log_failure(self, exc)
            self.drop()
            return
        if done:
            self._stop_writing()
            if self.close_after_flush:
                self.drop()
                return
            self.start_reading()

    def write_pending(self) -> None:
        """Start watching for writability while output waits (loop thread)."""
        loop = self._loop
        if loop is None or self.gone:
            return
        if self.out.queued and not self.writing:
            loop.add_writer(self.fd, self.on_writable)
            self.writing = True
            self.start_reading()  # no reading while output waits
        elif not self.out.queued and self.close_after_flush:
            self.drop()

    def _stop_writing(self) -> None:
        if self.writing and self._loop is not None:
            self._loop.remove_writer(self.fd)
        self.writing = False

    def detach(self) -> None:
        """Stop watching the descriptor (the loop lets go)."""
        loop = self._loop
        if loop is not None:
            if self.reading:
                self.engine.unwatch(self)
            if self.writing:
                quiet(loop.remove_writer, self.fd)
        self.reading = self.writing = False
        self._loop = self._inbox = None
        self._loop_ident = None

    def orphan(self) -> None:
        """The loop let go while a worker serves this client: the worker closes it when done."""
        with self.lock:
            self.orphaned = True
            self.out.discard()  # output a client did not take before the close is given up

    def drop(self, at_close: bool = False) -> None:
        """Forget the client: unwatch, tell the daemon (once, if it got past the handshake), close.

        On the loop thread, or anywhere once the loop has let go.  At close the daemon
        is told right here (its workers are about to stop)."""
        with self.lock:
            if self.gone:
                return
            self.gone = True
        self.detach()
        self.engine.forget(self)
        if at_close or not (self.conn.handshaked and self.engine.submit(self._disconnect)):
            self._disconnect()

    def _disconnect(self) -> None:
        if self.conn.handshaked:
            try:
                self.host.client_disconnected(self.conn)
            except Exception:
                log.exception("error in client disconnect handling")
        try:
            self.raw.close()
        except Exception:
            pass
        log.debug("dropped %r", self)

    # ----- serving (whoever holds the turn: the loop or one worker)

    def advance(self, on_loop: bool) -> None:
        """Serve queued requests in order while this thread may; pass the turn on or give it back.

        ``on_loop``: this is the loop's thread (else a worker holding the turn)."""
        conn = self.conn
        while True:
            with self.lock:
                if self.gone or not self.queue or self.orphaned:
                    self.busy = False
                    after = "close" if self.orphaned and not self.gone else "eof" if self.eof else ""
                    break
                msg = self.queue.popleft()
                refill = len(self.queue) == MAX_QUEUED - 1
            if refill:
                self._on_loop(self.start_reading)
            if not conn.handshaked:
                if on_loop and self.host.custom_handshake:  # user code: a worker does it
                    self._to_worker(self._handshake, msg)
                    return
                # the default validateHandshake runs no user code: the loop answers it itself,
                # so a new client gets in while every worker is busy with plain calls
                if not self._handshake(msg, False):
                    return
                continue
            try:
                # here: the call is usually made right away in this thread (a coroutine's first
                # step on the loop, a plain method by the worker holding the turn); whatever goes
                # to another thread captures the request's context first (step.capture())
                step = self.host.begin_request(conn, self.session, msg, here=True)
            except Exception as exc:
                log_failure(self, exc)
                self._fail_connection()
                return
            del msg
            if type(step) is not PendingCall:
                if step is not None:
                    self.write(step.parts)
                continue
            if step.is_coroutine:
                if on_loop:
                    run_coroutine(self, step, not step.oneway)
                else:
                    step.capture()
                    if not self._on_loop(run_coroutine, self, step, not step.oneway) and not step.oneway:
                        self._fail_connection()  # the loop is gone
                        return
                if step.oneway:
                    continue
                return
            if step.oneway and step.method is not None:
                self.host.submit_oneway(step)  # never blocks: a full pool holds it on the connection
                if conn.held_oneways:
                    self._on_loop(self._hold_back)
                    return
                continue
            if on_loop:
                step.capture()
                self._to_worker(self._call, step)
                return
            if not self._call(step, False):
                return
        if after == "close":
            self._close_orphan()
        elif after == "eof":
            self._on_loop(self.drop)

    def finish_call(self, call: PendingCall, reply: SendingMessage | None, go_on: bool) -> None:
        """An awaited call is done: send its reply, then (holding the turn) go on with the queue."""
        if reply is not None:
            self.write(reply.parts)
        if self.conn.callback_error is not None and self._callback_failed():
            return
        if go_on:
            self.advance(True)

    def _callback_failed(self) -> bool:
        """After a failed ``@callback`` method the connection ends, as in Pyro5 (the reply goes first)."""
        exc = self.conn.callback_error
        if exc is None:
            return False
        self.conn.callback_error = None
        log.warning("callback method raised %r; closing connection from %s", exc, describe_peer(self.conn))
        self._fail_connection()
        return True

    def _hold_back(self) -> None:
        """Loop thread: the worker pool is full; read nothing more from this client until its
        held-back oneway calls found room, then go on with its queue."""
        loop = self._loop
        if loop is None or self.gone:
            return
        self.start_reading()  # stops reading: held_oneways is not empty
        if self.host.resume(self.conn):
            self.start_reading()
            self.advance(True)
        else:
            loop.call_later(0.005, self._hold_back)

    def _to_worker(self, func: Callable[..., bool], arg: Any) -> None:
        def job() -> None:
            if func(arg, True):
                self.advance(False)

        if not self.engine.submit(job):
            self._fail_connection()

    def _call(self, call: PendingCall, _go_on: bool) -> bool:
        """Make a plain call in this (worker) thread and send its reply; False if the turn ends here."""
        host = self.host
        call.awaiter = self._await_on_loop
        try:
            data = host.run_call(call)
        except BaseException as exc:  # noqa: BLE001 - even SystemExit in user code gets an error reply
            reply = host.fail_call(call, exc)
        else:
            if hasattr(data, "__await__") or hasattr(data, "__anext__"):
                # a plain method handed back an awaitable or an async iterator: the loop finishes it
                if not self._on_loop(run_coroutine, self, call, True, data):
                    self._fail_connection()
                return False
            reply = host.finish_call(call, data)
        if reply is not None:
            self.write(reply.parts)
        return not self._callback_failed()

    def _await_on_loop(self, awaitable: Any) -> Any:
        """Await on the loop from this worker thread (an ``async def`` method in a batch)."""
        loop = self._loop
        if loop is None:
            raise PyroError("the event loop is gone")
        return await_from_worker(awaitable, loop, self.engine.tasks)

    def _handshake(self, msg: ReceivingMessage, _go_on: bool) -> bool:
        """Answer the connection's first message (worker thread); False if the client must go."""
        try:
            reply = self.host.serve_handshake(self.conn, self.session, msg)
        except Exception as exc:
            log_failure(self, exc)
            self._fail_connection()
            return False
        if self.session.handshake_done:
            self.write(reply.parts)
            return True
        log.debug("handshake refused for %s", describe_peer(self.conn))
        self._fail_connection(list(reply.parts))
        return False

    def _refuse(self, msg: ReceivingMessage, reason: str) -> None:
        """Loop thread: a client admitted over MAX_CONNECTIONS sent its first message; answer
        it with CONNECTFAIL carrying ``reason`` and close (no user code runs for it)."""
        log.debug("client connection from %s was denied: %s", describe_peer(self.conn), reason)
        try:
            reply = self.host.refuse(self.conn, self.session, msg, reason)
        except Exception as exc:
            log.debug("could not build a refusal for %s: %s", describe_peer(self.conn), exc)
            self.drop()
            return
        self._fail_connection(list(reply.parts))

    def _fail_connection(self, out: list[Any] | None = None) -> None:
        """Close the connection once ``out`` (e.g. a refusal) is sent; the turn ends here."""
        self.close_after_flush = True
        sending = bool(out) and not self.failed
        if out and sending:
            self.write(out)  # its write_pending closes the connection once that is out
        with self.lock:
            self.busy = False
            self.queue.clear()
            orphaned = self.orphaned
        if orphaned:
            self._close_orphan()
        elif not sending:
            self._on_loop(self.drop)

    def write(self, parts: Sequence[Any]) -> None:
        """Send a reply (any thread): now if possible, the rest from the loop."""
        on_loop = threading.get_ident() == self._loop_ident
        if not on_loop and not self.direct and not self.orphaned:
            if self._on_loop(self.write, parts):
                return
        with self.lock:
            if self.gone or self.failed:
                return
            if self.orphaned:
                blocking = not loop_running()  # the loop thread never waits for a peer
                if not blocking:
                    quiet(self.out.send_parts, parts)  # the connection closes next: what waits is dropped
                    self.out.discard()
                    return
            else:
                blocking = False
                try:
                    self.out.send_parts(parts)  # what the socket does not take now waits
                except Exception as exc:  # broken, or the peer lets too much wait (OutputOverflow)
                    log_failure(self, exc)
                    self.failed = self.close_after_flush = True
                    self.out.discard()
                    self.queue.clear()  # its other requests are not served: the connection goes
                pending = bool(self.out.queued)
        if blocking:
            send_blocking(self, self.raw, parts)  # only once no loop watches the connection any more
        elif pending or self.close_after_flush:
            self._on_loop(self.write_pending)

    def _on_loop(self, func: Callable[..., Any], *args: Any) -> bool:
        inbox = self._inbox
        return inbox is not None and inbox.call(func, args)

    def _close_orphan(self) -> None:
        with self.lock:
            if self.gone:
                return
            self.gone = True
        self.engine.forget(self)
        self._disconnect()

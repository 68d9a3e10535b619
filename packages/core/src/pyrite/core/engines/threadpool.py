"""The thread pool engine (``config.SERVERTYPE = "thread"``, the default).

One selector thread (the one running ``loop()``) accepts clients and watches
the idle ones.  When an idle client has sent a complete message, the client
goes to a worker of a pool of at most ``config.THREADPOOL_SIZE`` threads
(``THREADPOOL_SIZE_MIN`` kept alive), which handles it and then keeps
serving that client while it stays busy: it waits a short while
(``LINGER`` seconds) for the next request right on the socket, which is as
quick as a thread per connection.  A client that goes quiet, or whose next
message trickles in, is handed back to the selector, so idle and half-sent
connections never tie up a worker; and a lingering worker gives its client
back at once when other work is waiting.

Calls of one client run one after another on one worker at a time, so
session-scoped objects and a ``ClientConnection`` are never used by two
threads at once.  When every worker is busy, work waits in a queue.  A new
client arriving while ``THREADPOOL_SIZE`` new clients already wait is refused
with a message that names THREADPOOL_SIZE;
requests of connected clients are never refused (each client has at most
one request batch queued, so that queue is bounded by the connections
admitted).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..config import config
from ..errors import ConnectionClosedError
from .base import Client, Frame, SelectorEngine, log, wait_readable

LINGER = 0.1  # seconds a worker waits for a client's next request before handing it back
LINGER_SLICE = 0.025  # how often a lingering worker looks whether other work waits
IDLE_WORKER_TIMEOUT = 30.0  # seconds an extra worker (above THREADPOOL_SIZE_MIN) waits for work
REFUSAL = "server busy: no free worker thread for a new client (raise THREADPOOL_SIZE)"


class WorkerPool:
    """Worker threads taking ``(function, args)`` jobs from a queue.

    Grows from ``min_size`` to ``size`` threads as work arrives; threads
    above ``min_size`` leave after ``IDLE_WORKER_TIMEOUT`` idle seconds.

    Example::

        pool = WorkerPool(size=8, min_size=2)
        pool.submit(print, ("hello",))
        pool.close()
    """

    def __init__(self, size: int, min_size: int, queue_limit: int | None = None, name: str = "pyrite-worker") -> None:
        if size < 1 or min_size < 1:
            raise ValueError(f"thread pool sizes must be at least 1 (size={size}, min_size={min_size})")
        if min_size > size:
            raise ValueError(f"thread pool min_size {min_size} exceeds its size {size}")
        self.size = size
        self.min_size = min_size
        self.queue_limit = size if queue_limit is None else queue_limit
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...], bool]] = deque()
        self._refusable_queued = 0  # queued jobs that count against queue_limit
        self._waiting = 0  # workers blocked waiting for work (including ones notified, not yet running)
        self._starting = 0  # workers started that have not looked at the queue yet
        self._workers: set[threading.Thread] = set()
        self._closed = False
        self._counter = 0
        with self._cond:
            for _ in range(min_size):
                self._spawn()

    @property
    def num_workers(self) -> int:
        """How many worker threads exist now."""
        return len(self._workers)

    @property
    def queued(self) -> int:
        """How many jobs wait for a worker."""
        return len(self._queue)

    def backlog(self) -> bool:
        """True if a job waits that no idle worker is about to take (cheap, approximate)."""
        return len(self._queue) > self._waiting + self._starting

    def submit(self, func: Callable[..., Any], args: tuple[Any, ...] = (), refusable: bool = False) -> bool:
        """Queue a job.  Returns False (and queues nothing) if the pool is closed, or if
        ``refusable`` and every worker is busy while ``queue_limit`` refusable jobs already wait."""
        with self._cond:
            if self._closed:
                return False
            unclaimed = len(self._queue) - self._waiting - self._starting  # jobs no worker is about to take
            if unclaimed >= 0:
                if len(self._workers) < self.size:
                    self._spawn()
                elif refusable and min(unclaimed, self._refusable_queued) >= self.queue_limit:
                    return False
            if refusable:
                self._refusable_queued += 1
            self._queue.append((func, args, refusable))
            self._cond.notify()
            return True

    def close(self, timeout: float = 1.0) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
        """Stop the workers (waiting at most ``timeout`` in all for idle ones to leave).

        Returns the jobs that never started.  Workers busy in a job finish it first.
        """
        with self._cond:
            self._closed = True
            leftover = [(func, args) for func, args, _ in self._queue]
            self._queue.clear()
            self._refusable_queued = 0
            workers = list(self._workers)
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        current = threading.current_thread()
        for worker in workers:
            if worker is not current:
                worker.join(max(0.0, deadline - time.monotonic()))
        return leftover

    def _spawn(self) -> None:
        # caller holds the lock
        self._counter += 1
        self._starting += 1
        worker = threading.Thread(target=self._work, name=f"{self._name}-{self._counter}", daemon=True)
        self._workers.add(worker)
        worker.start()

    def _work(self) -> None:
        me = threading.current_thread()
        cond = self._cond
        queue = self._queue
        with cond:
            self._starting -= 1
        while True:
            with cond:
                while not queue:
                    if self._closed:
                        self._workers.discard(me)
                        return
                    self._waiting += 1
                    try:
                        notified = cond.wait(IDLE_WORKER_TIMEOUT)
                    finally:
                        self._waiting -= 1
                    if not notified and not queue and len(self._workers) > self.min_size:
                        self._workers.discard(me)
                        return
                func, args, refusable = queue.popleft()
                if refusable:
                    self._refusable_queued -= 1
            try:
                func(*args)
            except Exception:
                log.exception("unhandled error in worker thread %s", me.name)
            del func, args

    def __repr__(self) -> str:
        return f"<WorkerPool {len(self._workers)} workers, {self._waiting} idle, {len(self._queue)} queued>"


class ThreadPoolEngine(SelectorEngine):
    """Server engine for SERVERTYPE "thread": a selector thread plus a bounded worker pool.

    Construct as ``ThreadPoolEngine(daemon, listener)``; see the module docstring.
    """

    servertype = "thread"

    def __init__(self, daemon: Any, listener: Any) -> None:
        # the pool first: it checks the configured sizes before anything else is set up
        self._pool = WorkerPool(int(config.THREADPOOL_SIZE), int(config.THREADPOOL_SIZE_MIN))
        try:
            super().__init__(daemon, listener)
        except BaseException:
            self._pool.close()
            raise
        self._returned: deque[Client] = deque()
        self._wake_pending = False
        self._housekeeping_queued = False

    @property
    def pool(self) -> WorkerPool:
        """The worker pool."""
        return self._pool

    def __repr__(self) -> str:
        return (
            f"<ThreadPoolEngine on {self.location}; {len(self._clients)} connections, {self._pool.num_workers} workers>"
        )

    # ----- selector thread

    def _prepare(self, client: Client) -> None:
        try:
            if client.raw.timeout is None and config.SEND_TIMEOUT:
                # reads here never block (recv_some), so this bounds the sends of a reply:
                # a peer that does not read costs a worker SEND_TIMEOUT at most
                client.raw.timeout = float(config.SEND_TIMEOUT)
        except Exception:
            pass

    def _resume(self, client: Client, frames: list[Frame]) -> None:
        if not self._pool.submit(self._serve, (client, frames)):
            self._drop(client)

    def _on_readable(self, client: Client) -> None:
        try:
            frames = self._read_frames(client)
        except Exception as exc:
            self._log_failure(client, exc)
            self._drop(client)
            return
        if not frames:
            return  # only part of a message so far: keep watching
        self._unregister(client)
        client.busy = True
        if not self._pool.submit(self._serve, (client, frames), refusable=not client.conn.handshaked):
            if self._closed:
                self._drop(client)
            else:
                self._send_refusal(client, frames[0][0], REFUSAL)

    def _after_wake(self) -> None:
        # clients that workers handed back go back under watch
        with self._lock:
            returned = list(self._returned)
            self._returned.clear()
            self._wake_pending = False
            closed = self._closed
            if not closed:
                for client in returned:
                    client.busy = False
        for client in returned:
            if closed:
                self._drop(client)
            elif client.gone:
                continue
            elif client.held:
                self._park(client)  # its next oneway waits for room in the oneway queue
            else:
                self._register(client)

    def _housekeep(self) -> None:
        if self._housekeeping_queued:
            return  # the last round is still running
        self._housekeeping_queued = True
        if not self._pool.submit(self._housekeeping_job):
            self._housekeeping_queued = False

    def _housekeeping_job(self) -> None:
        try:
            self._run_housekeeping()
        finally:
            self._housekeeping_queued = False

    def _close_workers(self) -> None:
        for func, args in self._pool.close():
            if func == self._serve:
                self._drop(args[0])
        with self._lock:
            returned = list(self._returned)
            self._returned.clear()
        for client in returned:
            self._drop(client)

    # ----- workers

    def _serve(self, client: Client, frames: list[Frame]) -> None:
        """Handle a client's messages, and keep handling it while its requests keep coming."""
        while True:
            if not self._serve_frames(client, frames):
                return
            del frames  # don't keep a big request alive while waiting for the next
            if client.held:
                self._hand_back(client)
                return
            if self._closed:
                self._drop(client)
                return
            try:
                next_frames = self._next_frames(client)
            except Exception as exc:
                self._log_failure(client, exc)
                self._drop(client)
                return
            if next_frames is None:
                self._hand_back(client)
                return
            frames = next_frames

    def _next_frames(self, client: Client) -> list[Frame] | None:
        """Wait (briefly) for the client's next complete request.  None: hand it back."""
        raw = client.raw
        reader = client.reader
        pool = self._pool
        deadline = time.monotonic() + LINGER
        flowing = False  # mid-message and the last read brought data: read again before waiting
        while True:
            if not flowing and not raw.pending():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._shutting_down or pool.backlog():
                    return None
                if not wait_readable(client.fd, remaining if remaining < LINGER_SLICE else LINGER_SLICE):
                    continue
            data = raw.recv_some(reader.want())
            if data is None:
                flowing = False
                continue
            if not data:
                raise ConnectionClosedError(
                    "client closed the connection" + (" in the middle of a message" if reader.partial else "")
                )
            frames = reader.feed(data)
            client.last_active = now = time.monotonic()
            if not reader.partial:
                client.frame_start = None
            elif client.frame_start is None:
                client.frame_start = now
            if frames:
                return frames
            flowing = reader.partial

    def _hand_back(self, client: Client) -> None:
        with self._lock:
            closed = self._closed
            if not closed:
                self._returned.append(client)
                wake = not self._wake_pending
                self._wake_pending = True
        if closed:
            self._drop(client)
        elif wake:
            self.wakeup()


Engine = ThreadPoolEngine

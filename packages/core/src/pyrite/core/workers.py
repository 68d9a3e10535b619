"""``WorkerPool``: the one pool of threads a daemon runs user code on.

The thread pool engine hands it whole client connections to serve; every
engine hands it oneway calls (through the dispatcher).  There is one pool per
daemon, so one thread limit covers both.

Two ways in:

* ``submit(func, args, refusable=False)``: a foreground job (serving a
  connection).  Always queued, unless the pool is closed, or ``refusable`` is
  set and every worker is busy while ``queue_limit`` refusable jobs already
  wait (the thread engine refuses a new client that way).
* ``try_submit(func, args)``: a background job (a oneway call).  At most
  ``background_limit`` of them run at once, so a oneway flood never takes the
  workers that serve connections; foreground jobs go first.  It never blocks
  and never runs the job in the calling thread: it returns False ("full")
  when ``backlog_limit`` background jobs already wait.  The caller then holds
  the job back (and stops reading the connection it came from) until
  ``wait_for_room`` or a later ``try_submit`` succeeds.

A job that raises anything, even ``SystemExit`` or ``KeyboardInterrupt``,
costs the job only: the worker logs it and takes the next one.

Example::

    pool = WorkerPool(size=8, min_size=2, background_limit=2)
    pool.submit(print, ("hello",))
    if not pool.try_submit(print, ("maybe",)):
        ...  # full: apply back-pressure
    pool.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["WorkerPool", "Job"]

log = logging.getLogger("pyrite.core.workers")

IDLE_WORKER_TIMEOUT = 30.0  # seconds an extra worker (above min_size) waits for work before leaving

Job = tuple[Callable[..., Any], tuple[Any, ...]]


class WorkerPool:
    """Worker threads taking ``(function, args)`` jobs from a foreground and a background queue.

    Grows from ``min_size`` to ``size`` threads as work arrives (``prestart``
    False: no thread before the first job); threads above ``min_size`` leave
    after ``IDLE_WORKER_TIMEOUT`` idle seconds.  ``queue_limit`` bounds the
    refusable jobs waiting (default ``size``); ``background_limit`` (default
    ``size``) the background jobs running at once, ``backlog_limit`` (default
    ``queue_limit``) those waiting.
    """

    def __init__(
        self,
        size: int,
        min_size: int,
        queue_limit: int | None = None,
        name: str = "pyrite-worker",
        *,
        backlog_limit: int | None = None,
        background_limit: int | None = None,
        prestart: bool = True,
    ) -> None:
        if size < 1 or min_size < 1:
            raise ValueError(f"thread pool sizes must be at least 1 (size={size}, min_size={min_size})")
        if min_size > size:
            raise ValueError(f"thread pool min_size {min_size} exceeds its size {size}")
        self.size = size
        self.min_size = min_size
        self.queue_limit = size if queue_limit is None else queue_limit
        self.backlog_limit = self.queue_limit if backlog_limit is None else backlog_limit
        self.background_limit = size if background_limit is None else max(1, min(background_limit, size))
        self._name = name
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # workers wait here for jobs
        self._room = threading.Condition(lock)  # wait_for_room waits here for a background job to be taken
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...], bool]] = deque()
        self._background: deque[Job] = deque()
        self._background_running = 0
        self._refusable_queued = 0  # queued jobs that count against queue_limit
        self._waiting = 0  # workers blocked waiting for work (including ones notified, not yet running)
        self._starting = 0  # workers started that have not looked at the queues yet
        self._workers: set[threading.Thread] = set()
        self._closed = False
        self._counter = 0
        if prestart:
            with self._cond:
                for _ in range(min_size):
                    self._spawn()

    @property
    def num_workers(self) -> int:
        """How many worker threads exist now."""
        return len(self._workers)

    @property
    def queued(self) -> int:
        """How many jobs (foreground and background) wait for a worker."""
        return len(self._queue) + len(self._background)

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def _runnable(self) -> int:
        # caller holds the lock (or accepts an approximation): jobs a worker could start now
        free = self.background_limit - self._background_running
        return len(self._queue) + (min(len(self._background), free) if free > 0 else 0)

    def backlog(self) -> bool:
        """True if a job waits that no idle worker is about to take (cheap, approximate)."""
        return self._runnable() > self._waiting + self._starting

    def full(self) -> bool:
        """True if ``try_submit`` would refuse a job now."""
        return len(self._background) >= self.backlog_limit

    def _grow(self) -> None:
        # caller holds the lock: one more worker if a runnable job has nobody to take it
        if self._runnable() > self._waiting + self._starting and len(self._workers) < self.size:
            self._spawn()

    def submit(self, func: Callable[..., Any], args: tuple[Any, ...] = (), refusable: bool = False) -> bool:
        """Queue a foreground job.  Returns False (and queues nothing) if the pool is closed, or
        if ``refusable`` and every worker is busy while ``queue_limit`` refusable jobs already wait."""
        with self._cond:
            if self._closed:
                return False
            unclaimed = self._runnable() - self._waiting - self._starting  # jobs no worker is about to take
            if (
                refusable
                and unclaimed >= 0
                and len(self._workers) >= self.size
                and min(unclaimed, self._refusable_queued) >= self.queue_limit
            ):
                return False
            if refusable:
                self._refusable_queued += 1
            self._queue.append((func, args, refusable))
            self._grow()
            self._cond.notify()
            return True

    def try_submit(self, func: Callable[..., Any], args: tuple[Any, ...] = ()) -> bool:
        """Queue a background job unless the pool is closed or full; never blocks, never runs
        ``func`` in the calling thread."""
        with self._cond:
            if self._closed or len(self._background) >= self.backlog_limit:
                return False
            self._background.append((func, args))
            self._grow()
            self._cond.notify()
            return True

    def wait_for_room(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until ``try_submit`` would accept a job; False if still
        full (or closed) by then."""
        deadline = time.monotonic() + timeout
        with self._room:
            while not self._closed and len(self._background) >= self.backlog_limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._room.wait(remaining)
            return not self._closed

    def close(self, timeout: float = 1.0) -> list[Job]:
        """Stop the workers (waiting at most ``timeout`` in all for idle ones to leave).

        Returns the jobs that never started, foreground first.  Workers busy in a
        job finish it first.  Idempotent (a second call returns ``[]``).
        """
        with self._cond:
            self._closed = True
            leftover = [(func, args) for func, args, _ in self._queue] + list(self._background)
            self._queue.clear()
            self._background.clear()
            self._refusable_queued = 0
            workers = list(self._workers)
            self._cond.notify_all()
            self._room.notify_all()
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

    def _take(self) -> tuple[Callable[..., Any], tuple[Any, ...], bool] | None:
        # caller holds the lock: the next job (foreground first), its "background" flag; None: none now
        if self._queue:
            func, args, refusable = self._queue.popleft()
            if refusable:
                self._refusable_queued -= 1
            return func, args, False
        if self._background and self._background_running < self.background_limit:
            func, args = self._background.popleft()
            self._background_running += 1
            self._room.notify_all()
            return func, args, True
        return None

    def _work(self) -> None:
        me = threading.current_thread()
        cond = self._cond
        with cond:
            self._starting -= 1
        while True:
            with cond:
                while True:
                    job = self._take()
                    if job is not None:
                        break
                    if self._closed:
                        self._workers.discard(me)
                        return
                    self._waiting += 1
                    try:
                        notified = cond.wait(IDLE_WORKER_TIMEOUT)
                    finally:
                        self._waiting -= 1
                    if not notified and not self.queued and len(self._workers) > self.min_size:
                        self._workers.discard(me)
                        return
            func, args, background = job
            try:
                func(*args)
            except BaseException:  # noqa: BLE001 - even SystemExit from a job must not end a worker
                log.exception("unhandled error in worker thread %s", me.name)
            del func, args, job
            if background:
                with cond:
                    self._background_running -= 1
                    if self._background:
                        cond.notify()  # a held-back background job may start now

    def __repr__(self) -> str:
        return (
            f"<WorkerPool {len(self._workers)} workers, {self._waiting} idle, {len(self._queue)} queued, "
            f"{self._background_running} background running, {len(self._background)} background queued>"
        )

"""workers.py: the one worker pool of a daemon (thread engine connections and oneway calls)."""

from __future__ import annotations

import threading
import time

import pytest
from pyrite.core.workers import WorkerPool

from tests.support import wait_for


def test_worker_pool_sizes_are_checked():
    with pytest.raises(ValueError):
        WorkerPool(0, 1)
    with pytest.raises(ValueError):
        WorkerPool(2, 0)
    with pytest.raises(ValueError):
        WorkerPool(2, 3)


def test_worker_pool_grows_to_its_size_queues_then_refuses():
    pool = WorkerPool(size=3, min_size=1, queue_limit=2, name="pyrite-worker-test")
    gate = threading.Event()
    done, started = [], []
    try:
        assert pool.num_workers == 1
        for i in range(3):
            assert pool.submit(lambda i=i: (started.append(i), gate.wait(5), done.append(i)), refusable=True)
        assert pool.num_workers == 3
        assert wait_for(lambda: len(started) == 3)
        assert pool.submit(lambda: done.append("q1"), refusable=True)
        assert pool.submit(lambda: done.append("q2"), refusable=True)
        assert not pool.submit(lambda: done.append("refused"), refusable=True)
        assert pool.submit(lambda: done.append("always"))  # not refusable: queued anyway
        assert pool.num_workers == 3 and pool.queued == 3 and pool.backlog()
        gate.set()
        assert wait_for(lambda: len(done) == 6)
        assert "refused" not in done
    finally:
        gate.set()
        leftover = pool.close()
    assert leftover == []
    assert not pool.submit(lambda: None)
    assert wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("pyrite-worker-test")])


def test_worker_pool_close_returns_jobs_that_never_ran():
    pool = WorkerPool(size=1, min_size=1, name="pyrite-worker-test")
    gate = threading.Event()
    try:
        pool.submit(gate.wait, (5,))
        job = (print, ("never",))
        pool.submit(*job)
        assert wait_for(lambda: pool.queued == 1)
        assert pool.close(timeout=0.1) == [job]
    finally:
        gate.set()


def test_try_submit_reports_full_and_never_runs_the_job_in_the_caller():
    pool = WorkerPool(size=2, min_size=1, backlog_limit=3, name="pyrite-worker-test")
    gate = threading.Event()
    started, ran = [], []
    main = threading.current_thread()

    def job():
        started.append(1)
        gate.wait(5)
        ran.append(threading.current_thread() is main)

    try:
        assert pool.try_submit(job) and pool.try_submit(job)
        assert wait_for(lambda: len(started) == 2)  # both workers busy
        for _ in range(3):
            assert pool.try_submit(job)  # three may wait
        assert pool.full() and not pool.try_submit(job)
        assert pool.num_workers == 2 and pool.queued == 3
        assert not pool.wait_for_room(0.05)  # still full: bounded wait
        gate.set()
        assert pool.wait_for_room(5)
        assert wait_for(lambda: len(ran) == 5)
        assert ran == [False] * 5  # on the workers, never in the submitting thread
        assert not pool.full() and pool.try_submit(lambda: None)
    finally:
        gate.set()
        pool.close()
    assert not pool.try_submit(lambda: None)  # closed
    assert not pool.wait_for_room(0.01)


@pytest.mark.parametrize("error", [SystemExit, KeyboardInterrupt, GeneratorExit, ValueError])
def test_a_job_raising_anything_costs_only_the_job(error):
    pool = WorkerPool(size=1, min_size=1, name="pyrite-worker-test")
    done = threading.Event()
    try:
        for _ in range(5):
            assert pool.submit(lambda: (_ for _ in ()).throw(error("from a job")))
        pool.submit(done.set)
        assert done.wait(5)  # the one worker survived all five
        assert pool.num_workers == 1
    finally:
        pool.close()


def test_lazy_pool_starts_threads_on_first_job_only():
    pool = WorkerPool(size=3, min_size=1, name="pyrite-worker-test", prestart=False)
    try:
        assert pool.num_workers == 0
        done = threading.Event()
        assert pool.try_submit(done.set)
        assert done.wait(5)
        assert pool.num_workers == 1
    finally:
        pool.close()


def test_close_is_bounded_and_idempotent():
    pool = WorkerPool(size=1, min_size=1, name="pyrite-worker-test")
    gate = threading.Event()
    pool.submit(gate.wait, (10,))
    started = time.monotonic()
    pool.close(timeout=0.2)
    assert time.monotonic() - started < 2
    assert pool.close() == []
    gate.set()

"""SharedProxy when its daemon dies: a real daemon process killed with SIGKILL while 8 threads wait.
Every thread gets ConnectionClosedError at once (its own, not one shared by all), and the proxy
connects again when the daemon is back."""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Iterator

import pytest
from pyrite.api import SharedProxy
from pyrite.core import errors

from tests.api.processes import Process, free_port

from .conftest import TIMEOUT

pytestmark = pytest.mark.usefixtures("shared_loop")

THREADS = 8
SERVE = """
import sys, time
from pyrite.api import Daemon, expose

@expose
class Sleeper:
    def pause(self, seconds):
        time.sleep(seconds)
        return seconds

    def echo(self, value):
        return value

with Daemon(host="127.0.0.1", port=int(sys.argv[1])) as daemon:
    print("serving", daemon.register(Sleeper(), "sleeper"), flush=True)
    daemon.requestLoop()
"""


class DaemonProcess:
    """A pyrite daemon in a process of its own on a fixed loopback port; ``kill()`` is SIGKILL."""

    def __init__(self, port: int) -> None:
        self.process = Process([sys.executable, "-c", SERVE, str(port)])
        self.uri = self.process.wait_for(r"serving (\S+)").group(1)

    def kill(self) -> None:
        self.process.proc.kill()
        self.process.proc.wait(TIMEOUT)

    def stop(self) -> None:
        self.process.stop()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def daemons(port: int) -> Iterator[list[DaemonProcess]]:
    """Started daemon processes (the test appends them); each is stopped at teardown."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.stop()


def test_threads_waiting_on_a_killed_daemon_each_get_their_own_error_and_the_proxy_reconnects(
    port: int, daemons: list[DaemonProcess]
) -> None:
    daemons.append(DaemonProcess(port))
    proxy = SharedProxy(daemons[0].uri)
    proxy._pyroTimeout = TIMEOUT
    assert proxy.echo(1) == 1
    caught: dict[int, BaseException] = {}
    ended: dict[int, float] = {}

    def waiter(k: int) -> None:
        try:
            proxy.pause(TIMEOUT / 2)
        except errors.PyroError as exc:
            caught[k] = exc
        ended[k] = time.monotonic()

    threads = [threading.Thread(target=waiter, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # every call is on the wire, the first one in the daemon's sleep
    killed = time.monotonic()
    daemons[0].kill()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    assert sorted(caught) == list(range(THREADS))
    assert all(isinstance(exc, errors.ConnectionClosedError) for exc in caught.values())
    assert max(ended.values()) - killed < TIMEOUT / 4  # at once, not when a timeout runs out
    # each thread's error is its own: its traceback is that thread's call, not every thread's
    assert len({id(exc) for exc in caught.values()}) == THREADS
    for exc in caught.values():
        frames = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
        assert frames.count("waiter") == 1, frames

    daemons.append(DaemonProcess(port))  # back, on the same address
    assert proxy.echo(2) == 2  # a call on a proxy whose connection died connects again
    results: list[int] = []
    threads = [threading.Thread(target=lambda k=k: results.append(proxy.echo(k))) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert sorted(results) == list(range(THREADS))

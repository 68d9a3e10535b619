"""engines.guard and engines.output on their own: the connection cap's default, the
accept-failure throttle, the deadline rules, and the multiplex output buffer over a real
loopback connection."""

from __future__ import annotations

import logging
import resource
import time

import pytest
from pyrite.core.config import config
from pyrite.core.engines import guard
from pyrite.core.engines.output import BufferedOutput, OutputOverflow
from pyrite.transports.tcp import TcpTransport


def test_max_connections_default_leaves_headroom_below_the_fd_limit():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    derived = guard.max_connections()
    if soft != resource.RLIM_INFINITY:
        assert derived <= soft - 32
        assert derived >= soft - max(32, soft // 8)
    config.MAX_CONNECTIONS = 7
    assert guard.max_connections() == 7


def test_accept_throttle_logs_once_a_second_with_a_count(caplog):
    throttle = guard.AcceptThrottle("test engine")
    with caplog.at_level(logging.WARNING, logger="pyrite.core.engines"):
        pauses = [throttle.failed(OSError(24, "Too many open files")) for _ in range(200)]
        assert len(caplog.records) == 1  # the first failure is logged at once, the rest are counted
        assert pauses[0] == guard.ACCEPT_BACKOFF_MIN
        assert max(pauses) == guard.ACCEPT_BACKOFF_MAX  # doubles up to the cap
        time.sleep(guard.ACCEPT_LOG_INTERVAL + 0.05)
        throttle.flush_log(time.monotonic())
        assert len(caplog.records) == 2
        assert "199 time(s)" in caplog.records[1].getMessage()
        throttle.succeeded()
        assert throttle.backoff == 0.0
        assert throttle.failed(OSError(24, "again")) == guard.ACCEPT_BACKOFF_MIN


class _Conn:
    handshaked = False


class _Client:
    def __init__(self, since: float) -> None:
        self.since = self.last_active = since
        self.frame_start: float | None = None
        self.refusing: str | None = None
        self.out = None
        self.conn = _Conn()


def test_deadline_rules():
    limits = guard.Limits(handshake=1.0, frame=2.0, idle=None, send=3.0)
    now = 100.0
    fresh = _Client(now - 0.5)
    assert guard.expired(fresh, now, limits) is None
    late = _Client(now - 1.5)
    assert "HANDSHAKE_TIMEOUT" in guard.expired(late, now, limits)
    late.conn.handshaked = True
    assert guard.expired(late, now, limits) is None  # no idle timeout configured
    late.frame_start = now - 2.5
    assert "FRAME_TIMEOUT" in guard.expired(late, now, limits)
    idle = _Client(now - 10)
    idle.conn.handshaked = True
    assert "IDLE_TIMEOUT" in guard.expired(idle, now, limits._replace(idle=5.0))
    refused = _Client(now - guard.REFUSE_WAIT - 0.1)
    refused.refusing = "full"
    assert guard.expired(refused, now, limits) is not None
    assert guard.sweep_interval(limits) == 0.25
    assert guard.sweep_interval(guard.Limits(None, None, None, None)) == 1.0


@pytest.fixture
def connected():
    transport = TcpTransport()
    listener = transport.listen("127.0.0.1:0")
    listener.timeout = 5.0
    client = transport.connect(listener.location, timeout=5.0)
    server = listener.accept()
    yield client, server
    client.close()
    server.close()
    listener.close()


def test_output_buffer_never_blocks_and_caps_what_waits(connected):
    client, server = connected
    config.MAX_OUTPUT_BUFFER = 4 * 1024 * 1024
    out = BufferedOutput(server)
    reply = b"r" * (1024 * 1024)
    start = time.monotonic()
    with pytest.raises(OutputOverflow):
        for _ in range(64):
            out.send_parts([b"head", reply])  # the peer reads nothing
    assert time.monotonic() - start < 1.0
    assert 0 < out.queued <= config.MAX_OUTPUT_BUFFER
    # once the peer reads, flush() drains what waits, in order
    sent_before = out.queued
    received = 0
    deadline = time.monotonic() + 10.0
    while out.queued and time.monotonic() < deadline:
        received += len(client.recv_some(1024 * 1024) or b"")
        out.flush()
    assert out.queued == 0
    assert sent_before > 0 and received > 0


def test_output_buffer_takes_one_large_reply_whole(connected):
    _, server = connected
    config.MAX_OUTPUT_BUFFER = 1024
    out = BufferedOutput(server)
    out.send(b"x" * (8 * 1024 * 1024))  # more than the cap, but nothing waited before it
    assert out.queued > 0
    with pytest.raises(OutputOverflow):
        out.send(b"more")


def test_output_buffer_takes_one_large_reply_in_parts_whole(connected):
    """A reply written as header + payload (what the engines send) counts as one reply: the cap
    applies to output waiting before it, not between its own parts."""
    _, server = connected
    config.MAX_OUTPUT_BUFFER = 1024
    out = BufferedOutput(server)
    out.send_parts([b"h" * 40, b"x" * (8 * 1024 * 1024)])
    assert out.queued > 0
    waiting = out.queued
    with pytest.raises(OutputOverflow):
        out.send_parts([b"h" * 40, b"more"])
    assert out.queued == waiting  # a refused reply queues none of its parts


def test_output_buffer_with_a_sender_of_its_own(connected):
    _, server = connected
    written: list[bytes] = []

    def sender(data):
        written.append(bytes(data[:3]))  # takes three bytes at a time
        return len(written[-1])

    out = BufferedOutput(server, sender)
    out.send_parts([b"abcdefg", b"hi"])
    assert out.queued == 0 and b"".join(written) == b"abcdefghi"


def test_multiplex_large_reply_under_an_external_event_loop():
    """An external loop waits for reading only: a reply larger than the socket buffer must
    still go out (written while waiting for room, bounded by SEND_TIMEOUT)."""
    import select
    import threading

    from pyrite.core.client import Proxy
    from pyrite.core.daemon import Daemon
    from pyrite.core.exposure import expose

    @expose
    class Big:
        def big(self, size):
            return "x" * size

    config.SERVERTYPE = "multiplex"
    config.COMMTIMEOUT = 5.0
    daemon = Daemon(host="127.0.0.1", port=0)
    uri = daemon.register(Big(), "big")
    stop = threading.Event()

    def external_loop():
        while not stop.is_set():
            ready, _, _ = select.select(daemon.sockets, [], [], 0.1)
            if ready:
                daemon.events(ready)

    thread = threading.Thread(target=external_loop, daemon=True)
    thread.start()
    try:
        with Proxy(uri) as proxy:
            proxy._pyroTimeout = 10.0
            assert len(proxy.big(8 * 1024 * 1024)) == 8 * 1024 * 1024
            assert proxy.big(3) == "xxx"
    finally:
        stop.set()
        thread.join(10.0)
        daemon.close()
    assert not thread.is_alive()

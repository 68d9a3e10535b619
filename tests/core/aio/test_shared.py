"""SharedProxy: one proxy, many threads, one pipelined connection; against pyrite and Pyro5 daemons.
The sync Proxy keeps Pyro5's ownership rule."""

from __future__ import annotations

import copy
import pickle
import threading
import time
import uuid
from typing import Any

import pytest
from pyrite.api import Proxy, SharedProxy
from pyrite.core import errors
from pyrite.core.callcontext import current_context

from tests.interop import services

from .conftest import TIMEOUT, Server, set_serializer

JOIN = 30.0
pytestmark = pytest.mark.usefixtures("shared_loop")


def shared(uri: str) -> SharedProxy:
    p = SharedProxy(uri)
    p._pyroTimeout = TIMEOUT
    return p


def run_threads(target: Any, count: int) -> None:
    threads = [threading.Thread(target=target, args=(k,), name=f"caller-{k}") for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN)
    assert not any(t.is_alive() for t in threads), "a caller thread did not finish"


@pytest.mark.parametrize("serializer", ["serpent", "msgpack"])
def test_8_threads_x_1000_calls(server: Server, serializer: str) -> None:
    set_serializer(serializer)
    p = shared(server.probe_uri)
    wrong: list[Any] = []
    ports: set[int] = set()

    def work(k: int) -> None:
        for i in range(1000):
            value = [k, i]
            result = p.echo(value)
            if list(result) != value:
                wrong.append((value, result))
        ports.add(p.peer_port())

    with p:
        run_threads(work, 8)
        assert not wrong
        assert ports == {p._pyroLocalSocket[1]}  # every thread used the one connection


def test_same_methods_as_proxy(server: Server) -> None:
    with shared(server.svc_uri) as p:
        assert p._pyroBind() is True
        assert p._pyroBind() is False
        assert p.add(1, 2) == 3
        assert p.greet("x", punctuation="?") == "hello x?"
        assert p.value == 1
        p.value = 7
        assert p.value == 7
        p.value = 1
        with pytest.raises(AttributeError):
            p.nothing  # noqa: B018
        with pytest.raises(ValueError, match="shared boom"):
            p.fail("shared boom")
        assert list(p.generate(3)) == [0, 10, 20]
        it = p.endless()
        assert next(it) == 0
        it.close()
        assert p.hold() is None  # oneway: returns while the daemon holds it
        server.service.release.set()
        assert server.service.oneway_done.wait(TIMEOUT)
        child = p.make_child("c")
        with child:
            assert child.whoami() == "child c"
        p._pyroClaimOwnership()  # accepted, means nothing
        p._pyroRelease()
        assert p._pyroConnection is None
        assert p.add(2, 2) == 4
        p._pyroReconnect()
        assert p.add(3, 3) == 6


def test_pickle_and_copy(server: Server) -> None:
    p = shared(server.svc_uri)
    p._pyroBind()
    q = pickle.loads(pickle.dumps(p))
    r = copy.copy(p)
    with p, q, r:
        assert isinstance(q, SharedProxy) and isinstance(r, SharedProxy)
        assert q == p and r == p and hash(q) == hash(p)
        assert q.add(1, 1) == 2 and r.add(2, 2) == 4


def test_context_travels_per_thread(server: Server) -> None:
    p = shared(server.probe_uri)
    failures: list[str] = []

    def work(k: int) -> None:
        cid = uuid.uuid4()
        current_context.correlation_id = cid
        current_context.annotations = {"XTRA": f"t{k}".encode()}
        for _ in range(50):
            if p.corr() != str(cid):
                failures.append(f"corr {k}")
            if p.annotation() != f"t{k}":
                failures.append(f"annotation {k}")
            if current_context.response_annotations.get("ECHO") != f"t{k}!".encode():
                failures.append(f"response {k}")

    with p:
        run_threads(work, 4)
    assert not failures


def test_handshake_validation_and_timeout(server: Server) -> None:
    seen: list[Any] = []

    class Checking(SharedProxy):
        def _pyroValidateHandshake(self, response: Any) -> None:
            seen.append(response)

    p = Checking(server.svc_uri)
    p._pyroTimeout = 0.3
    p._pyroHandshake = {"user": "bob", "password": "secret"}
    with p:
        with pytest.raises(errors.TimeoutError):
            p.slow()
        server.service.release.set()
        p._pyroTimeout = TIMEOUT
        assert [p.add(i, 0) for i in range(5)] == list(range(5))
    assert seen == [{"welcome": "bob"}]


def test_sync_proxy_keeps_its_owner_rule(server: Server) -> None:
    p = Proxy(server.svc_uri)
    p._pyroTimeout = TIMEOUT
    p._pyroBind()
    caught: list[BaseException] = []

    def other(_: int) -> None:
        try:
            p.add(1, 1)
        except errors.PyroError as exc:
            caught.append(exc)

    run_threads(other, 1)
    p._pyroRelease()
    assert len(caught) == 1 and "thread" in str(caught[0])


def test_loop_shutdown_fails_a_waiting_call_and_a_new_loop_takes_over(server: Server) -> None:
    from pyrite.core.shared import shutdown_loop

    p = shared(server.svc_uri)
    p._pyroBind()
    caught: list[BaseException] = []

    def waiting(_: int) -> None:
        try:
            p.slow()  # held in the daemon until released
        except errors.PyroError as exc:
            caught.append(exc)

    t = threading.Thread(target=waiting, args=(0,))
    t.start()
    time.sleep(0.2)
    shutdown_loop()
    t.join(JOIN)
    assert not t.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], errors.ConnectionClosedError)
    server.service.release.set()
    assert p.add(1, 2) == 3  # the next call starts a new loop thread and connects again
    p._pyroRelease()


def test_a_timed_out_call_leaves_the_other_threads_replies_aligned(server: Server) -> None:
    """A thread gives up on a call (timeout); its late reply is dropped, and the calls other
    threads made behind it on the same connection each get their own result."""
    p = shared(server.svc_uri)
    p._pyroBind()
    p._pyroTimeout = 0.3
    with pytest.raises(errors.TimeoutError):
        p.slow()  # held in the daemon: the requests after it wait behind it
    p._pyroTimeout = TIMEOUT
    results: dict[int, list[int]] = {}

    def work(k: int) -> None:
        results[k] = [p.add(k, i) for i in range(50)]

    releaser = threading.Timer(0.3, server.service.release.set)
    releaser.start()
    try:
        run_threads(work, 8)
    finally:
        releaser.cancel()
    assert results == {k: [k + i for i in range(50)] for k in range(8)}
    p._pyroRelease()


def test_an_answered_call_leaves_no_timer_holding_its_reply(server: Server) -> None:
    """With ``_pyroTimeout`` set, each call's timer goes when its reply comes: a timer left
    pending would hold the future, and the reply in it, for the whole timeout."""
    from pyrite.core import sharedloop

    p = shared(server.probe_uri)
    p._pyroTimeout = 60.0
    with p:
        for i in range(50):
            assert p.echo(i) == i
        runner = sharedloop.running()
        assert runner is not None
        waiting = [h for h in list(runner.loop._scheduled) if not h.cancelled()]  # type: ignore[attr-defined]
        assert len(waiting) < 5, f"{len(waiting)} timers still pending after the replies came"


def test_threads_sharing_one_remote_iterator_each_end_with_stop_iteration(server: Server) -> None:
    """Several threads draining one streamed result get every item once between them and all
    stop cleanly (no request for an item may reach the daemon after its stream ended)."""
    p = shared(server.svc_uri)
    with p:
        for _ in range(3):
            it = p.generate(300)
            got: list[int] = []
            failed: list[BaseException] = []

            def drain(_: int) -> None:
                try:
                    got.extend(it)
                except Exception as exc:  # noqa: BLE001 - the test reports it
                    failed.append(exc)

            run_threads(drain, 4)
            assert not failed
            assert sorted(got) == [i * 10 for i in range(300)]


def test_a_stream_of_a_released_proxy_says_so(server: Server) -> None:
    """As with Proxy: after the connection is released, the next item is a ConnectionClosedError
    (the stream lived on that connection), not a call on a new connection."""
    p = shared(server.svc_uri)
    with p:
        it = p.generate(5)
        assert next(it) == 0
        p._pyroRelease()
        with pytest.raises(errors.ConnectionClosedError):
            next(it)


def test_a_stream_collected_on_the_loop_thread_is_closed_without_stopping_the_loop(server: Server) -> None:
    """The garbage collector may drop a stream iterator (in a reference cycle) on the loop
    thread; its close is a oneway call that must go out from there without waiting on the loop
    it runs on (which would stop every SharedProxy of the process)."""
    import gc

    from pyrite.core import sharedloop

    p = shared(server.svc_uri)
    with p:

        class Holder:
            pass

        holder = Holder()
        holder.me = holder  # type: ignore[attr-defined]
        holder.it = p.endless()  # type: ignore[attr-defined]
        assert next(holder.it) == 0  # type: ignore[attr-defined]
        streams = server.daemon.streaming_responses
        stream = holder.it.streamId  # type: ignore[attr-defined]
        assert stream in streams
        del holder
        runner = sharedloop.running()
        assert runner is not None
        collected = threading.Event()

        def collect() -> None:
            gc.collect()
            collected.set()

        runner.loop.call_soon_threadsafe(collect)
        assert collected.wait(TIMEOUT), "the loop thread hung closing the stream"
        assert p.add(1, 2) == 3
        deadline = time.monotonic() + TIMEOUT
        while stream in streams and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream not in streams  # the close reached the daemon


def test_a_oneway_or_failed_call_leaves_no_response_annotations_behind(server: Server) -> None:
    """As with Proxy: ``current_context.response_annotations`` are those of the thread's last
    call, so a oneway call (no reply) or a call that got no reply clears them."""
    p = shared(server.probe_uri)
    with p:
        assert p.annotation() == ""
        assert current_context.response_annotations == {"ECHO": b"!"}
        p._pyroOneway.add("echo")  # no reply comes for it now
        try:
            assert p.echo(1) is None
        finally:
            p._pyroOneway.discard("echo")
        assert current_context.response_annotations == {}
        p.annotation()
        p._pyroTimeout = 0.2
        with pytest.raises(errors.TimeoutError):
            p.pause(1.0)
        assert current_context.response_annotations == {}


@pytest.mark.parametrize("lib", ["pyrite", "Pyro5"])
def test_the_handshake_response_annotations_reach_the_hook_and_the_thread(lib: str) -> None:
    """As with Proxy: the annotations of the daemon's MSG_CONNECTOK go to
    ``_pyroResponseAnnotations`` and into the connecting thread's context."""
    api = services.pyrite().api if lib == "pyrite" else services.pyro5().api

    class Annotating(api.Daemon):  # type: ignore[misc, name-defined]
        def validateHandshake(self, conn: Any, data: Any) -> Any:
            api.current_context.response_annotations = {"HSHK": b"welcome"}
            return "hello"

    @api.expose
    class Thing:
        def add(self, a: int, b: int) -> int:
            return a + b

    daemon = Annotating(host="127.0.0.1", port=0)
    uri = str(daemon.register(Thing(), "thing"))
    served = services.serve(daemon, f"{lib} annotating daemon")
    seen: list[tuple[int, dict[str, bytes]]] = []

    class Hooked(SharedProxy):
        def _pyroResponseAnnotations(self, annotations: dict[str, bytes], msgtype: int) -> None:
            seen.append((msgtype, dict(annotations)))

    try:
        p = Hooked(uri)
        p._pyroTimeout = TIMEOUT
        with p:
            p._pyroBind()
            assert (2, {"HSHK": b"welcome"}) in seen  # MSG_CONNECTOK
            assert current_context.response_annotations == {"HSHK": b"welcome"}
            assert p.add(1, 2) == 3
    finally:
        served.stop()


def test_a_call_the_loop_takes_as_it_stops_fails_instead_of_hanging(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connect handed to the loop thread just as that loop stops (a shutdown racing the call)
    ends with ConnectionClosedError, never a wait for ever; so does one handed to a loop that
    has closed meanwhile (not a RuntimeError)."""
    from pyrite.core import sharedloop

    for _ in range(5):
        p = shared(server.svc_uri)
        runner = sharedloop.loop_thread()
        outcome: list[Any] = []

        def bind(_: int) -> None:
            runner.loop.call_soon_threadsafe(runner.loop.stop)
            try:
                outcome.append(p._pyroBind())
            except errors.ConnectionClosedError as exc:
                outcome.append(exc)

        run_threads(bind, 1)
        assert outcome and (outcome[0] is True or isinstance(outcome[0], errors.ConnectionClosedError))
        runner.thread.join(JOIN)
        p._pyroRelease()
    assert runner.loop.is_closed()
    monkeypatch.setattr(sharedloop, "loop_thread", lambda: runner)  # as if taken just before it closed
    with pytest.raises(errors.ConnectionClosedError):
        shared(server.svc_uri)._pyroBind()


def test_shutdown_loop_closes_a_connection_only_bound(server: Server) -> None:
    """shutdown_loop closes every SharedProxy connection, also one that was only bound (made on
    the loop by _pyroBind, no call through it yet); it used to stay open, its socket leaked."""
    from pyrite.core.shared import shutdown_loop

    p = shared(server.svc_uri)
    p._pyroBind()
    channel = p._pyroConnection
    assert channel is not None
    shutdown_loop()
    assert channel.closed
    assert p.add(1, 2) == 3  # a new loop, a new connection
    p._pyroRelease()


def test_a_oneway_flood_into_a_daemon_that_stops_reading_holds_the_caller(start_daemon: Any) -> None:
    """Oneway calls into a peer that reads nothing more wait for the write buffer to drain, as the
    sync Proxy's blocking send does; they used to return at once and pile up in the buffer without
    bound (here: 100 MB).  Once the daemon reads again, every call goes out, none is lost."""
    from pyrite.api import Daemon, expose, oneway
    from pyrite.core.config import config

    config.SERVERTYPE = "multiplex"
    config.ONEWAY_THREADS = 1  # one oneway runs, 64 wait: then the daemon reads this connection no more
    gate = threading.Event()
    received: list[int] = []

    @expose
    class Sink:
        @oneway
        def put(self, data: bytes) -> None:
            gate.wait(JOIN)
            received.append(len(data))

    daemon = Daemon(host="127.0.0.1")
    uri = daemon.register(Sink())
    start_daemon(daemon)
    size, count = 256 * 1024, 400
    payload = b"x" * size
    p = shared(str(uri))
    p._pyroSerializer = "marshal"  # bytes arrive as bytes
    sent = [0]

    def flood() -> None:
        for _ in range(count):
            p.put(payload)
            sent[0] += 1

    flooder = threading.Thread(target=flood, name="flooder", daemon=True)
    flooder.start()
    try:
        last, deadline = -1, time.monotonic() + 15.0
        while time.monotonic() < deadline and flooder.is_alive() and sent[0] != last:
            last = sent[0]
            time.sleep(1.0)  # until the count stops moving: the caller is held
        assert flooder.is_alive(), f"all {count} oneway calls ({count * size >> 20} MB) returned unread"
        assert sent[0] * size < 60 * 1024 * 1024  # the daemon's backlog, kernel socket buffers, high water
    finally:
        gate.set()
    flooder.join(JOIN)
    assert not flooder.is_alive() and sent[0] == count
    deadline = time.monotonic() + JOIN
    while len(received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert received == [size] * count
    p._pyroRelease()


def test_pyro_seq_counts_the_connections_requests(server: Server) -> None:
    """``_pyroSeq``, as on Proxy: 0 before a connection, then the last request's sequence number."""
    p = shared(server.svc_uri)
    assert p._pyroSeq == 0
    p._pyroBind()
    before = p._pyroSeq
    run_threads(lambda k: [p.add(k, 1) for _ in range(5)], 4)
    assert p._pyroSeq == (before + 20) & 0xFFFF
    p._pyroRelease()
    assert p._pyroSeq == 0

"""``aio.Daemon`` on real sockets: the sync daemon's registration API, async methods as tasks,
plain methods on worker threads, async generators, oneway calls, hooks, shutdown.

The clients here are sync proxies (pyrite's and Pyro5 5.17's) run on threads of a
bounded executor, so the loop under test serves them while the test awaits.
Every wait is bounded (``asyncio.wait_for``, proxy timeouts).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import Pyro5.client
import Pyro5.errors
import pytest
from pyrite.core import aio
from pyrite.core.callcontext import current_context
from pyrite.core.config import config
from pyrite.core.daemon import Daemon as SyncDaemon
from pyrite.core.engines.aio import AsyncioEngine
from pyrite.core.errors import CommunicationError, DaemonError, PyroError
from pyrite.core.exposure import behavior, expose, oneway
from Pyro5 import config as pyro5_config

from tests.support import pyrite_proxy, pyro5_proxy, wait_for

HOST = "127.0.0.1"
WAIT = 10.0  # the bound of every await in this module


@pytest.fixture(autouse=True)
def _settings() -> Iterator[None]:
    config.POLLTIMEOUT = 0.1
    config.COMMTIMEOUT = 5.0
    # Not serpent: it parses with ast, and CPython 3.11.7's ast is not safe with many threads
    # parsing at once ("AST constructor recursion depth mismatch"), which these tests do.
    # Every serializer is run against the asyncio daemon in tests/interop/test_aio_server.py.
    config.SERIALIZER = "marshal"
    saved = (pyro5_config.COMMTIMEOUT, pyro5_config.SERIALIZER)
    pyro5_config.COMMTIMEOUT = 5.0
    pyro5_config.SERIALIZER = "marshal"
    yield
    pyro5_config.COMMTIMEOUT, pyro5_config.SERIALIZER = saved


@pytest.fixture
def threads() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    """Client threads (sync proxies); every thread is joined at the end."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=24, thread_name_prefix="test-client") as pool:
        yield pool


def run(coro: Awaitable[Any]) -> Any:
    """Run a test's coroutine on a fresh loop, bounded."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 45)

    return asyncio.run(bounded())


async def in_thread(pool: concurrent.futures.Executor, func: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(pool, func, *args), WAIT)


def call(uri: Any, method: str, *args: Any, lib: str = "pyrite") -> Any:
    """One call on a fresh proxy (pyrite's or Pyro5's), released afterwards."""
    with (pyrite_proxy if lib == "pyrite" else pyro5_proxy)(uri) as proxy:
        return getattr(proxy, method)(*args)


@expose
class Service:
    """Async and plain methods; counts how many async calls are in flight at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_in_flight = 0
        self.fired: list[Any] = []
        self.gate = threading.Event()
        self.closed_generators = 0
        self.daemon: Any = None

    async def sleepy(self, delay: float, tag: Any) -> Any:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
        return tag

    async def add(self, a: Any, b: Any) -> Any:
        return a + b

    async def fails(self) -> None:
        await asyncio.sleep(0)
        raise ValueError("async failure")

    async def numbers(self, count: int) -> Any:
        try:
            for i in range(count):
                await asyncio.sleep(0)
                yield i
        finally:
            self.closed_generators += 1

    @oneway
    async def fire(self, value: Any) -> None:
        await asyncio.sleep(0.5)
        self.fired.append(value)

    def fired_so_far(self) -> list[Any]:
        return list(self.fired)

    def plain_add(self, a: Any, b: Any) -> Any:
        return a + b

    def block_until_gate(self, timeout: float) -> bool:
        return self.gate.wait(timeout)

    def plain_thread(self) -> str:
        return threading.current_thread().name

    async def loop_thread(self) -> str:
        return threading.current_thread().name

    async def client_address(self) -> Any:
        return current_context.client_sock_addr is not None

    async def context_seen(self) -> Any:
        await asyncio.sleep(0)
        current_context.response_annotations["RESP"] = b"back"
        ctx = current_context
        return [str(ctx.client_sock_addr), ctx.annotations.get("XTRA"), str(ctx.correlation_id)]

    async def stop(self) -> str:
        self.daemon.shutdown()
        return "stopping"


# -- the sync daemon's API, on the asyncio engine -------------------------------------------------


def test_aio_daemon_is_a_daemon_with_the_asyncio_engine() -> None:
    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            assert isinstance(daemon, SyncDaemon)
            assert type(daemon.transportServer) is AsyncioEngine
            assert daemon.transportServer.event_loop is asyncio.get_running_loop()
            assert daemon.locationStr.startswith(HOST + ":")
            uri = daemon.register(Service(), "service")
            assert uri == daemon.uriFor("service")
            assert str(uri) == f"PYRO:service@{daemon.locationStr}"
            assert "service" in daemon.objectsById
            daemon.unregister("service")
            assert "service" not in daemon.objectsById
            with pytest.raises(DaemonError):
                daemon.uriFor(Service())

    run(main())


def test_config_servertype_does_not_change_the_aio_daemon() -> None:
    config.SERVERTYPE = "multiplex"

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            assert type(daemon.transportServer) is AsyncioEngine

    run(main())


def test_calls_from_pyrite_and_pyro5_proxies(threads: Any) -> None:
    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            uri = daemon.register(Service(), "service")
            for lib in ("pyrite", "pyro5"):
                assert await in_thread(threads, lambda: call(uri, "add", 2, 3, lib=lib)) == 5
                assert await in_thread(threads, lambda: call(uri, "plain_add", "a", "b", lib=lib)) == "ab"
                with pytest.raises(ValueError, match="async failure"):
                    await in_thread(threads, lambda: call(uri, "fails", lib=lib))
                assert await in_thread(threads, lambda: call(uri, "client_address", lib=lib)) is True

    run(main())


def test_proxy_for_and_metadata(threads: Any) -> None:
    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            service = Service()
            daemon.register(service, "service")
            proxy = daemon.proxyFor(service)
            assert "sleepy" in proxy._pyroMethods and "fire" in proxy._pyroOneway

            def pyro5_metadata() -> tuple[set[str], set[str]]:
                with pyro5_proxy(daemon.uriFor("service")) as p5:
                    p5._pyroBind()
                    return p5._pyroMethods, p5._pyroOneway

            methods, oneways = await in_thread(threads, pyro5_metadata)
            assert {"add", "numbers", "plain_add"} <= methods
            assert "fire" in oneways
            proxy._pyroRelease()

    run(main())


def test_nat_address_in_uris() -> None:
    async def main() -> None:
        async with aio.Daemon(host=HOST, nathost="nat.example", natport=4444) as daemon:
            uri = daemon.register(Service(), "service")
            assert str(uri) == "PYRO:service@nat.example:4444"
            assert daemon.uriFor("service", nat=False).location == daemon.locationStr
            assert daemon.natLocationStr == "nat.example:4444"

    run(main())


_INSTANCES = itertools.count()  # an identity per instance made: id() may repeat once one is freed


@expose
@behavior(instance_mode="session")
class PerSession:
    def __init__(self) -> None:
        self.count = 0
        self.number = next(_INSTANCES)

    async def bump(self) -> tuple[int, int]:
        self.count += 1
        return self.number, self.count


@expose
@behavior(instance_mode="single")
class Single:
    def __init__(self) -> None:
        self.number = next(_INSTANCES)

    def ident(self) -> int:
        return self.number


@expose
@behavior(instance_mode="percall")
class PerCall:
    def __init__(self) -> None:
        self.number = next(_INSTANCES)

    async def ident(self) -> int:
        return self.number


def test_instance_modes(threads: Any) -> None:
    def two_bumps(uri: Any) -> list[Any]:
        with pyrite_proxy(uri) as proxy:
            return [proxy.bump(), proxy.bump()]

    def two_idents(uri: Any) -> list[Any]:
        with pyrite_proxy(uri) as proxy:
            return [proxy.ident(), proxy.ident()]

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            session_uri = daemon.register(PerSession, "session")
            first = await in_thread(threads, two_bumps, session_uri)
            second = await in_thread(threads, two_bumps, session_uri)
            assert [count for _, count in first] == [1, 2] == [count for _, count in second]
            assert first[0][0] == first[1][0] != second[0][0]
            single = await in_thread(threads, two_idents, daemon.register(Single, "single"))
            assert single[0] == single[1]
            assert single[0] == (await in_thread(threads, two_idents, daemon.uriFor("single")))[0]
            percall = await in_thread(threads, two_idents, daemon.register(PerCall, "percall"))
            assert percall[0] != percall[1]

    run(main())


class Hooks(aio.Daemon):
    """validateHandshake refuses one word; clientDisconnect and housekeeping are counted."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.disconnected: list[Any] = []
        self.housekeeps = 0

    def validateHandshake(self, conn: Any, data: Any) -> Any:
        if data == "let me out":
            raise ValueError("no entry")
        conn.seen = data
        return "welcome"

    def clientDisconnect(self, conn: Any) -> None:
        self.disconnected.append(conn)

    def housekeeping(self) -> None:
        self.housekeeps += 1


def test_handshake_disconnect_and_housekeeping_hooks(threads: Any) -> None:
    def refused(uri: Any) -> None:
        proxy = pyrite_proxy(uri)
        proxy._pyroHandshake = "let me out"
        try:
            proxy._pyroBind()
        finally:
            proxy._pyroRelease()

    def handshake(uri: Any) -> Any:
        with pyrite_proxy(uri) as proxy:
            proxy._pyroHandshake = "hi"
            proxy._pyroBind()
            return proxy._pyroHandshake

    async def main() -> None:
        async with Hooks(host=HOST) as daemon:
            uri = daemon.register(Service(), "service")
            with pytest.raises(CommunicationError, match="no entry"):
                await in_thread(threads, refused, uri)
            assert await in_thread(threads, handshake, uri) == "hi"
            assert await in_thread(threads, call, uri, "add", 1, 1) == 2
            assert await asyncio.wait_for(_until(lambda: len(daemon.disconnected) == 2), WAIT)
            assert daemon.disconnected[0].seen == "hi"
            assert await asyncio.wait_for(_until(lambda: daemon.housekeeps >= 3), WAIT)

    run(main())


async def _until(predicate: Callable[[], bool]) -> bool:
    while not predicate():
        await asyncio.sleep(0.01)
    return True


# -- how calls run -----------------------------------------------------------------------------


def test_async_methods_of_different_connections_run_at_once(threads: Any) -> None:
    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            service = Service()
            uri = daemon.register(service, "service")
            started = time.monotonic()
            results = await asyncio.gather(*(in_thread(threads, call, uri, "sleepy", 1.0, i) for i in range(12)))
            elapsed = time.monotonic() - started
            assert results == list(range(12))
            assert service.most_in_flight >= 6  # in flight together, not one after another
            assert elapsed < 6.0  # twelve 1 s calls one after another would take 12 s

    run(main())


def test_async_methods_in_a_batch_see_their_request_context(threads: Any) -> None:
    """A batch runs on a worker, which awaits its ``async def`` calls on the loop: those see the
    batch request's client, annotations and correlation id, and the response annotations they
    set reach the client (they saw the loop's empty context before)."""
    import uuid

    from pyrite.core.batch import BatchProxy
    from pyrite.core.client import Proxy

    class Annotating(Proxy):
        def _pyroAnnotations(self) -> dict[str, bytes]:
            return {"XTRA": b"extra"}

    def client(uri: Any) -> Any:
        corr = uuid.uuid4()
        current_context.correlation_id = corr
        try:
            with Annotating(uri) as proxy:
                proxy._pyroBind()
                local = proxy._pyroLocalSocket
                batch = BatchProxy(proxy)
                batch.context_seen()
                batch.context_seen()
                results = list(batch())
                return results, str(tuple(local)), str(corr), dict(current_context.response_annotations)
        finally:
            current_context.correlation_id = None

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            uri = daemon.register(Service(), "service")
            results, local, corr, response = await in_thread(threads, client, uri)
            assert results == [[local, b"extra", corr]] * 2
            assert response.get("RESP") == b"back"

    run(main())


def test_plain_methods_run_on_workers_and_never_block_the_loop(threads: Any) -> None:
    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            service = Service()
            uri = daemon.register(service, "service")
            blocked = [asyncio.ensure_future(in_thread(threads, call, uri, "block_until_gate", 5.0)) for _ in range(3)]
            ticks = 0
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:  # the loop stays free while three calls block
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks > 10
            assert await in_thread(threads, call, uri, "add", 1, 2) == 3
            assert await in_thread(threads, call, uri, "plain_add", 1, 2) == 3
            service.gate.set()
            assert await asyncio.gather(*blocked) == [True, True, True]
            worker = await in_thread(threads, call, uri, "plain_thread")
            assert worker.startswith("pyrite-worker")
            assert await in_thread(threads, call, uri, "loop_thread") == threading.current_thread().name

    run(main())


def test_oneway_async_calls_do_not_block_the_connection(threads: Any) -> None:
    def fire_then_call(uri: Any) -> tuple[float, list[Any]]:
        with pyrite_proxy(uri) as proxy:
            started = time.monotonic()
            proxy.fire(1)
            proxy.fire(2)
            result = proxy.add(1, 1)
            took = time.monotonic() - started
            assert result == 2
            return took, proxy.fired_so_far()

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            service = Service()
            uri = daemon.register(service, "service")
            took, fired = await in_thread(threads, fire_then_call, uri)
            assert took < 0.4 and fired == []  # each oneway call sleeps 0.5 s: they did not hold the reply up
            assert await asyncio.wait_for(_until(lambda: sorted(service.fired) == [1, 2]), WAIT)

    run(main())


def test_async_generators_stream_and_close_on_break(threads: Any) -> None:
    def take(uri: Any, lib: str) -> tuple[list[int], list[int]]:
        with (pyrite_proxy if lib == "pyrite" else pyro5_proxy)(uri) as proxy:
            whole = list(proxy.numbers(5))
            part = []
            for item in proxy.numbers(1000):
                part.append(item)
                if item == 2:
                    break
            return whole, part

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            service = Service()
            uri = daemon.register(service, "service")
            for lib in ("pyrite", "pyro5"):
                service.closed_generators = 0
                whole, part = await in_thread(threads, take, uri, lib)
                assert whole == [0, 1, 2, 3, 4]
                assert part == [0, 1, 2]
                # the exhausted one finished; the abandoned one is closed once its stream is
                assert await asyncio.wait_for(_until(lambda: service.closed_generators == 2), WAIT)

    run(main())


# -- running and stopping ------------------------------------------------------------------------


def test_serve_forever_until_close(threads: Any) -> None:
    async def main() -> None:
        daemon = aio.Daemon(host=HOST)
        uri = daemon.register(Service(), "service")
        server = asyncio.ensure_future(daemon.serve_forever())
        assert await in_thread(threads, call, uri, "add", 1, 2) == 3
        assert not server.done()
        await daemon.close()
        await asyncio.wait_for(server, WAIT)
        with pytest.raises(CommunicationError):
            await in_thread(threads, call, uri, "add", 1, 2)
        with pytest.raises(PyroError, match="closed"):
            async with daemon:
                pass

    run(main())


@pytest.mark.parametrize("lib", ["pyrite", "pyro5"])
def test_shutdown_from_inside_a_call(threads: Any, lib: str) -> None:
    async def main() -> None:
        daemon = aio.Daemon(host=HOST)
        service = Service()
        service.daemon = daemon
        uri = daemon.register(service, "service")
        async with daemon:
            server = asyncio.ensure_future(daemon.serve_forever())
            assert (
                await in_thread(threads, functools.partial(call, uri, "stop", lib=lib)) == "stopping"
            )  # the reply still comes
            await asyncio.wait_for(server, WAIT)
        assert daemon.transportServer is None

    run(main())


def test_close_from_another_thread_and_unix_socket(threads: Any, tmp_path: Any) -> None:
    path = str(tmp_path / "aio.sock")

    async def main() -> None:
        daemon = aio.Daemon(unixsocket=path)
        uri = daemon.register(Service(), "service")
        async with daemon:
            assert daemon.locationStr == "./u:" + path
            server = asyncio.ensure_future(daemon.serve_forever())
            assert await in_thread(threads, call, uri, "add", 2, 2) == 4
            assert await in_thread(threads, functools.partial(call, uri, "add", 3, 3, lib="pyro5")) == 6
            await in_thread(threads, daemon.shutdown)  # sync, from another thread
            await asyncio.wait_for(server, WAIT)
        assert not (tmp_path / "aio.sock").exists()

    run(main())
    assert wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("pyrite-worker-aio")])


def test_two_aio_daemons_on_one_loop(threads: Any) -> None:
    async def main() -> None:
        async with aio.Daemon(host=HOST) as one, aio.Daemon(host=HOST) as two:
            uri1 = one.register(Service(), "service")
            uri2 = two.register(Service(), "service")
            results = await asyncio.gather(
                in_thread(threads, call, uri1, "sleepy", 0.3, "one"),
                in_thread(threads, call, uri2, "sleepy", 0.3, "two"),
            )
            assert results == ["one", "two"]

    run(main())


def test_a_call_of_a_pyro5_client_that_goes_away_mid_call(threads: Any) -> None:
    """A client that hangs up while its async call runs costs nothing but that call."""

    def hang_up(uri: Any) -> None:
        proxy = Pyro5.client.Proxy(str(uri))
        proxy._pyroTimeout = 0.2
        with pytest.raises(Pyro5.errors.TimeoutError):
            proxy.sleepy(1.0, "late")
        proxy._pyroRelease()

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            service = Service()
            uri = daemon.register(service, "service")
            await in_thread(threads, hang_up, uri)
            assert await in_thread(threads, call, uri, "add", 5, 5) == 10
            assert await asyncio.wait_for(_until(lambda: service.in_flight == 0), WAIT)
            assert await in_thread(threads, call, uri, "add", 6, 6) == 12

    run(main())


def test_a_client_that_never_reads_its_replies_delays_nobody(threads: Any) -> None:
    """Big replies pile up for a client that does not read: only that connection waits (it is not
    read while its output waits); other clients are served meanwhile."""
    import socket

    import Pyro5.protocol
    import Pyro5.serializers

    marshal = Pyro5.serializers.serializers["marshal"]

    def flood(port: int, stop: threading.Event) -> int:
        sock = socket.create_connection((HOST, port), timeout=5)
        try:
            sock.sendall(
                Pyro5.protocol.SendingMessage(
                    Pyro5.protocol.MSG_CONNECT, 0, 0, 2, marshal.dumps({"handshake": "hi", "object": "service"})
                ).data
            )
            big = "x" * 1_000_000
            sent = 0
            sock.settimeout(0.2)
            for seq in range(1, 200):  # stops once the server does not read us any more
                if stop.is_set():
                    break
                request = Pyro5.protocol.SendingMessage(
                    Pyro5.protocol.MSG_INVOKE, 0, seq, 2, marshal.dumpsCall("service", "plain_add", (big, ""), {})
                ).data
                try:
                    sock.sendall(request)
                except (TimeoutError, OSError):
                    break
                sent += 1
            stop.wait(WAIT)  # hold the connection, never reading a reply
            return sent
        finally:
            sock.close()

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            uri = daemon.register(Service(), "service")
            stop = threading.Event()
            flooding = asyncio.ensure_future(in_thread(threads, flood, uri.port, stop))
            try:
                await asyncio.sleep(1.0)  # the flood fills the socket buffers both ways
                for i in range(5):
                    started = time.monotonic()
                    assert await in_thread(threads, call, uri, "add", i, 1) == i + 1
                    assert await in_thread(threads, call, uri, "plain_add", i, 1) == i + 1
                    assert time.monotonic() - started < 2.0
            finally:
                stop.set()
            assert await flooding < 199  # the server stopped reading the flooding client

    run(main())


# -- current_context in the methods the asyncio engine calls -----------------------------------


@expose
class ContextReporter:
    """Each method answers what current_context holds while it runs, and sends an annotation back."""

    @staticmethod
    def _report(where: str) -> dict[str, Any]:
        current_context.response_annotations = {"BACK": where.encode()}
        return {
            "corr": str(current_context.correlation_id),
            "anno": current_context.annotations.get("MINE", b"").decode(),
            "seq": current_context.seq,
            "client": current_context.client is not None,
        }

    async def at_once(self) -> dict[str, Any]:
        return self._report("at_once")

    async def after_a_wait(self, pause: float) -> dict[str, Any]:
        await asyncio.sleep(pause)  # suspended: the rest runs in the task, from where it stopped
        return self._report("after_a_wait")

    def on_a_worker(self) -> dict[str, Any]:
        return self._report("on_a_worker")


def test_methods_see_their_own_request_context(threads: Any) -> None:
    """An async method that finishes at once, one that waits first, and a plain method on a
    worker thread each see their own request's correlation id, annotations and sequence number,
    with several clients calling at once, and each one's response annotations reach its caller."""
    import uuid

    def client(uri: Any, method: str, args: tuple[Any, ...], rounds: int) -> list[tuple[Any, ...]]:
        seen = []
        with pyrite_proxy(uri) as proxy:
            for _ in range(rounds):
                corr = uuid.uuid4()
                mark = uuid.uuid4().hex[:8]
                current_context.correlation_id = corr
                proxy._pyroAnnotations = lambda mark=mark: {"MINE": mark.encode()}
                answer = getattr(proxy, method)(*args)
                back = current_context.response_annotations.get("BACK", b"").decode()
                seen.append((answer, str(corr), mark, back, method))
        current_context.correlation_id = None
        return seen

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            uri = daemon.register(ContextReporter(), "reporter")
            serving = asyncio.ensure_future(daemon.serve_forever())
            try:
                jobs = [
                    in_thread(threads, client, uri, method, args, 15)
                    for method, args in (("at_once", ()), ("after_a_wait", (0.01,)), ("on_a_worker", ()))
                    for _ in range(3)
                ]
                results = await asyncio.gather(*jobs)
            finally:
                await daemon.close()
                await asyncio.wait_for(serving, WAIT)
        assert len(results) == 9
        for seen in results:
            seqs = []
            for answer, corr, mark, back, method in seen:
                assert answer["corr"] == corr, method
                assert answer["anno"] == mark, method
                assert answer["client"], method
                assert back == method
                seqs.append(answer["seq"])
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # each call's own request

    run(main())


def test_new_clients_connect_while_every_worker_is_busy(threads: Any) -> None:
    """Plain calls taking every worker (THREADPOOL_SIZE) do not keep new clients out: with the
    default validateHandshake (no user code) the loop answers the handshake, so a new client's
    async calls are served meanwhile; the next plain call waits for a worker and then runs."""
    config.THREADPOOL_SIZE = 2
    config.THREADPOOL_SIZE_MIN = 1

    async def main() -> None:
        async with aio.Daemon(host=HOST) as daemon:
            service = Service()
            uri = daemon.register(service, "service")
            blocked = [asyncio.ensure_future(in_thread(threads, call, uri, "block_until_gate", 8.0)) for _ in range(2)]
            try:
                assert await asyncio.wait_for(
                    _until(lambda: daemon.workers.queued == 0 and len(daemon.transportServer.clients) == 2), WAIT
                )
                await asyncio.sleep(0.2)  # both plain calls hold their worker now
                started = time.monotonic()
                assert await in_thread(threads, call, uri, "add", 1, 2) == 3  # a new connection
                assert time.monotonic() - started < 2.0
                waiting = asyncio.ensure_future(in_thread(threads, call, uri, "plain_add", 2, 2))
                await asyncio.sleep(0.2)
                assert not waiting.done()  # queued for a worker
            finally:
                service.gate.set()
            assert await asyncio.gather(*blocked) == [True, True]
            assert await waiting == 4

    run(main())

"""Daemon and DaemonObject: the API (registry, URIs, NAT, instance modes, hooks)
and real daemons on loopback called by Pyro5 5.17's Proxy and by pyrite's Proxy,
for SERVERTYPE "thread" and "multiplex"."""

from __future__ import annotations

import contextlib
import gc
import importlib
import socket
import threading
import time
import uuid
import warnings

import Pyro5.api
import Pyro5.client
import Pyro5.errors
import pytest
from pyrite.core import plugins
from pyrite.core.callcontext import current_context
from pyrite.core.config import config
from pyrite.core.connection import ClientConnection
from pyrite.core.daemon import Daemon, DaemonObject, serve
from pyrite.core.engines.single import SingleConnectionEngine
from pyrite.core.errors import DaemonError, PyroError
from pyrite.core.exposure import behavior, expose, oneway
from pyrite.core.uri import DAEMON_NAME, URI
from Pyro5 import config as pyro5_config

from tests.support import JOIN, LoopThread, pyrite_proxy, pyro5_proxy, running, wait_for

HOST = "127.0.0.1"


# -- running daemons ---------------------------------------------------------------------


@pytest.fixture(params=["thread", "multiplex"])
def servertype(request):
    config.SERVERTYPE = request.param
    return request.param


@pytest.fixture(autouse=True)
def _short_timeouts():
    config.POLLTIMEOUT = 0.1
    config.COMMTIMEOUT = 5.0
    saved = (pyro5_config.COMMTIMEOUT, pyro5_config.SERIALIZER)
    pyro5_config.COMMTIMEOUT = 5.0
    pyro5_config.SERIALIZER = "serpent"
    yield
    pyro5_config.COMMTIMEOUT, pyro5_config.SERIALIZER = saved


PROXIES = {"pyro5": pyro5_proxy, "pyrite": pyrite_proxy}


@pytest.fixture(params=["pyro5", "pyrite"])
def make_proxy(request):
    return PROXIES[request.param]


# -- served classes ---------------------------------------------------------------------------


@expose
class Service:
    def __init__(self):
        self.value = 1
        self.oneway_calls = []
        self.oneway_done = threading.Event()
        self.release = threading.Event()

    def add(self, a, b):
        return a + b

    def echo(self, x):
        return x

    def fail(self):
        raise ValueError("service failure")

    def generator(self, n=3):
        for i in range(n):
            yield f"item{i}"

    def correlation(self):
        return str(current_context.correlation_id)

    def annotate(self):
        current_context.response_annotations["XSVC"] = b"from service"
        return True

    @oneway
    def fire(self, x):
        self.release.wait(JOIN)
        self.oneway_calls.append(x)
        self.oneway_done.set()

    @property
    def attr(self):
        return self.value

    @attr.setter
    def attr(self, value):
        self.value = value

    def blob(self, blob):
        return {"info": blob.info, "data": blob.deserialized()}

    def hidden_internal(self):
        return "hidden"

    def shutdown_daemon(self):
        self._pyroDaemon.shutdown()
        return "shutting down"


@expose
class Counter:
    """Session instance: one per client connection."""

    instances = 0

    def __init__(self):
        Counter.instances += 1
        self.count = 0

    def increment(self):
        self.count += 1
        return self.count


# -- the API without a running loop ------------------------------------------------------------


def test_location_and_repr(servertype):
    with Daemon(host=HOST, port=0) as d:
        host, port = d.locationStr.split(":")
        assert host == HOST and int(port) > 0
        assert d.natLocationStr is None
        assert str(d.uriFor(DAEMON_NAME)) == f"PYRO:{DAEMON_NAME}@{d.locationStr}"
        assert repr(d) == f"<pyrite.core.daemon.Daemon at 0x{id(d):x}; {d.locationStr} - IPv4; 1 objects>"
        assert d.sock is not None and d.sockets
        assert d.transportServer is not None


def test_unix_socket_location(servertype, tmp_path):
    path = str(tmp_path / "daemon.sock")
    with Daemon(unixsocket=path) as d:
        assert d.locationStr == "./u:" + path
        assert str(d.uriFor("x")) == f"PYRO:x@./u:{path}"
        assert "Unix" in repr(d)
        uri = d.register(Service(), "svc")
        with running(d), pyro5_proxy(uri) as p:
            assert p.add(1, 2) == 3


def test_ipv6_location_is_bracketed(servertype):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    with Daemon(host="::1") as d:
        assert d.locationStr.startswith("[::1]:")
        uri = d.register(Service(), "svc")
        assert uri.host == "::1"
        with running(d), pyro5_proxy(uri) as p:
            assert p.add(2, 2) == 4


def test_invalid_servertype():
    config.SERVERTYPE = "foobar"
    with pytest.raises(PyroError, match="invalid server type"):
        Daemon(host=HOST)


def test_register_unregister(servertype):
    with Daemon(host=HOST) as d:
        o1, o2 = Service(), Service()
        uri1 = d.register(o1)
        assert isinstance(uri1, URI) and uri1.object.startswith("obj_")
        with pytest.raises(DaemonError, match="is already registered as"):
            d.register(o1)
        with pytest.raises(DaemonError):
            d.register(o2, DAEMON_NAME)
        with pytest.raises(DaemonError, match="is already taken in this daemon"):
            d.register(o2, uri1.object)
        assert d.register(o2, "two").object == "two"
        assert o2._pyroId == "two" and o2._pyroDaemon == d
        assert set(d.objectsById) == {DAEMON_NAME, uri1.object, "two"}
        d.unregister("unknown")  # quietly nothing
        with pytest.raises(ValueError):
            d.unregister(None)
        with pytest.raises(DaemonError):
            d.unregister([1, 2])
        d.unregister("two")
        d.unregister(o1)
        assert set(d.objectsById) == {DAEMON_NAME}
        assert not [a for a in vars(o1) if a.startswith("_pyro")]
        d.unregister(DAEMON_NAME)
        assert DAEMON_NAME in d.objectsById
        with pytest.raises(AttributeError):
            d.register(None)
        with pytest.raises(AttributeError):
            d.register(4444)
        with pytest.raises(TypeError):
            d.register(o1, 666)
        # force replaces
        d.register(o1, "same")
        d.register(o2, "same", force=True)
        assert d.objectsById["same"] is o2
        with pytest.raises(DaemonError):
            d.register(o1, DAEMON_NAME, force=True)


def test_register_class_sets_session_default(servertype):
    class Plain:
        pass

    with Daemon(host=HOST) as d:
        d.register(Plain)
        assert Plain._pyroInstancing == ("session", None)
        with pytest.raises(DaemonError):
            d.register(Plain)
        with pytest.raises(TypeError):
            d.register(Counter, weak=True)
        d.unregister(Plain)
        assert len(d.objectsById) == 1


def test_weak_registration_goes_with_the_object(servertype):
    with Daemon(host=HOST) as d:
        obj = Service()
        uri = d.register(obj, weak=True)
        assert uri.object in d.objectsById
        del obj
        gc.collect()
        assert uri.object not in d.objectsById
        # a new object under the same id is not removed by the old one's end
        first = Service()
        d.register(first, "reused", weak=True)
        d.unregister("reused")
        second = Service()
        d.register(second, "reused")
        del first
        gc.collect()
        assert d.objectsById["reused"] is second


def test_weakly_registered_object_is_served(servertype):
    with Daemon(host=HOST) as d:
        obj = Service()
        uri = d.register(obj, weak=True)
        with running(d), pyro5_proxy(uri) as p:
            assert p.add(1, 1) == 2


def test_uri_for_and_nat(servertype):
    with Daemon(host=HOST) as d:
        o = Service()
        with pytest.raises(DaemonError):
            d.uriFor(o)
        d.register(o, "svc")
        assert d.uriFor(o) == d.uriFor("svc") == URI(f"PYRO:svc@{d.locationStr}")
        assert d.uriFor("not-registered").object == "not-registered"
    with Daemon(host=HOST, nathost="nat.example", natport=12345) as d:
        assert d.natLocationStr == "nat.example:12345"
        assert d.register(Service()).location == "nat.example:12345"
        assert d.uriFor("x", nat=False).location == d.locationStr
    with Daemon(host=HOST, nathost="nat.example", natport=0) as d:
        assert d.natLocationStr == "nat.example:" + d.locationStr.rsplit(":", 1)[1]
    with pytest.raises(ValueError):
        Daemon(host=HOST, natport=5555)
    with pytest.raises(ValueError):
        Daemon(nathost="bla", natport=5555, unixsocket="x.sock")
    config.NATHOST = "cfg.example"
    config.NATPORT = 4321
    with Daemon(host=HOST) as d:
        assert d.natLocationStr == "cfg.example:4321"


def test_instance_modes_directly(servertype):
    def creator(cls):
        return cls("made")

    @behavior(instance_mode="single", instance_creator=creator)
    class Single:
        def __init__(self, name):
            self.name = name

    @behavior(instance_mode="percall")
    class PerCall:
        pass

    class Session:
        pass

    c1, c2 = ClientConnection(object()), ClientConnection(object())
    with Daemon(host=HOST) as d:
        d.register(Session)
        s = d._getInstance(Single, c1)
        assert s is d._getInstance(Single, c2) and s.name == "made" and Single in d._pyroInstances
        assert d._getInstance(PerCall, c1) is not d._getInstance(PerCall, c1)
        a = d._getInstance(Session, c1)
        assert a is d._getInstance(Session, c1) and a is not d._getInstance(Session, c2)
        assert c1.pyroInstances[Session] is a

        @behavior(instance_creator=lambda cls: "wrong")
        class Wrong:
            pass

        with pytest.raises(TypeError):
            d._getInstance(Wrong, c1)


def test_daemon_object(servertype):
    with Daemon(host=HOST) as d:
        dobj = d.objectsById[DAEMON_NAME]
        assert isinstance(dobj, DaemonObject) and dobj._pyroId == DAEMON_NAME
        d.register(Service(), "svc")
        assert dobj.ping() is None
        assert sorted(dobj.registered()) == sorted([DAEMON_NAME, "svc"])
        assert d.locationStr in dobj.info() and "2 objects" in dobj.info()
        meta = dobj.get_metadata(DAEMON_NAME)
        assert meta["methods"] == {"get_metadata", "get_next_stream_item", "close_stream", "info", "ping", "registered"}
        assert dobj.get_metadata("svc")["attrs"] == {"attr"}
        with pytest.raises(DaemonError):
            dobj.get_metadata("nope")

        class Nothing:
            pass

        d.register(Nothing(), "nothing")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dobj.get_metadata("nothing")
        assert any("has no exposed methods" in str(w.message) for w in caught)


def test_custom_interface(servertype):
    class Custom(DaemonObject):
        @expose
        def custom(self):
            return 42

    with Daemon(host=HOST, interface=Custom) as d:
        assert d.objectsById[DAEMON_NAME].custom() == 42
        with running(d), pyro5_proxy(d.uriFor(DAEMON_NAME)) as p:
            assert p.custom() == 42


def test_reset_metadata_cache(servertype):
    class Dummy:
        @expose
        def method(self):
            pass

    with Daemon(host=HOST) as d:
        dummy = Dummy()
        uri = d.register(dummy)
        dobj = d.objectsById[DAEMON_NAME]
        assert "added" not in dobj.get_metadata(uri.object)["methods"]
        Dummy.added = expose(lambda self: "new")
        assert "added" not in dobj.get_metadata(uri.object)["methods"]
        d.resetMetadataCache(uri.object)
        assert "added" in dobj.get_metadata(uri.object)["methods"]
        Dummy.added2 = expose(lambda self: "new2")
        d.resetMetadataCache(dummy)
        assert "added2" in dobj.get_metadata(uri.object)["methods"]


def test_context_manager_and_close(servertype):
    d = Daemon(host=HOST)
    with d:
        assert d.transportServer is not None
    assert d.transportServer is None
    with pytest.raises(PyroError):
        with d:
            pass
    d.close()  # idempotent
    d.shutdown()  # and so is shutdown after close
    with pytest.raises(ZeroDivisionError):
        with Daemon(host=HOST) as d2:
            1 // 0
    assert d2.transportServer is None


def test_request_loop_condition(servertype):
    with Daemon(host=HOST) as d:
        start = time.monotonic()
        d.requestLoop(loopCondition=lambda: False)
        assert time.monotonic() - start < JOIN


def test_autoproxy_type_replacement_for_every_serializer(servertype):
    with Daemon(host=HOST) as d:
        obj = Service()
        uri = d.register(obj, "svc")
        serializers = plugins.all_serializers()
        assert serializers
        for name, ser in serializers.items():
            if name == "marshal":
                continue  # marshal cannot carry a proxy (as in Pyro5)
            data = ser.loads(ser.dumps(obj))
            assert type(data).__name__ == "Proxy", name
            assert data._pyroUri == uri
            assert "add" in data._pyroMethods


# -- real clients --------------------------------------------------------------------------------


def test_calls_attributes_and_errors(servertype, make_proxy):
    with Daemon(host=HOST) as d:
        svc = Service()
        uri = d.register(svc, "svc")
        with running(d), make_proxy(uri) as p:
            assert p.add(3, 4) == 7
            assert p.echo({"a": [1, 2.5, "x"]}) == {"a": [1, 2.5, "x"]}
            assert p.attr == 1
            p.attr = 99
            assert p.attr == 99 and svc.value == 99
            with pytest.raises(ValueError, match="service failure") as info:
                p.fail()
            assert "service failure" in "".join(info.value._pyroTraceback)
            assert p.add(1, 1) == 2  # still fine after an error
            with pytest.raises(Exception):
                p._pyroInvoke("_private_thing", (), {})
            with pytest.raises(Exception):
                p._pyroInvoke("__init__", (), {})
            assert p.add(2, 2) == 4


def test_oneway_does_not_block(servertype, make_proxy):
    with Daemon(host=HOST) as d:
        svc = Service()
        uri = d.register(svc, "svc")
        with running(d), make_proxy(uri) as p:
            assert p.fire("x") is None
            assert p.add(1, 2) == 3  # answered while the oneway call still waits
            assert not svc.oneway_done.is_set()
            svc.release.set()
            assert svc.oneway_done.wait(5) and svc.oneway_calls == ["x"]


def test_batch(servertype, make_proxy):
    batch_class = (
        Pyro5.api.BatchProxy if make_proxy is pyro5_proxy else importlib.import_module("pyrite.core.client").BatchProxy
    )
    with Daemon(host=HOST) as d:
        uri = d.register(Service(), "svc")
        with running(d), make_proxy(uri) as p:
            batch = batch_class(p)
            batch.add(1, 2)
            batch.echo("x")
            batch.fail()
            batch.add(5, 5)
            results = batch()
            assert next(results) == 3
            assert next(results) == "x"
            with pytest.raises(ValueError):
                next(results)


def test_streaming(servertype, make_proxy):
    with Daemon(host=HOST) as d:
        uri = d.register(Service(), "svc")
        with running(d), make_proxy(uri) as p:
            assert list(p.generator(4)) == ["item0", "item1", "item2", "item3"]
            assert not d.streaming_responses
            it = p.generator(10)
            assert next(it) == "item0"
            assert len(d.streaming_responses) == 1
            it.close()
            assert wait_for(lambda: not d.streaming_responses)


def test_streams_linger_after_disconnect_and_expire(servertype):
    config.ITER_STREAM_LINGER = 0.3
    with Daemon(host=HOST) as d:
        uri = d.register(Service(), "svc")
        with running(d):
            p = pyro5_proxy(uri)
            it = p.generator(5)
            assert next(it) == "item0"
            p._pyroRelease()
            assert wait_for(lambda: all(e[0] is None for e in d.streaming_responses.values()))
            p._pyroReconnect()
            assert next(it) == "item1"  # resumed after reconnecting
            p._pyroRelease()
            assert wait_for(lambda: not d.streaming_responses, timeout=5)  # housekeeping expired it
            p._pyroReconnect()
            with pytest.raises(Pyro5.errors.PyroError):
                next(it)
            p._pyroRelease()


def test_streams_without_linger_end_with_connection(servertype):
    config.ITER_STREAM_LINGER = 0
    with Daemon(host=HOST) as d:
        uri = d.register(Service(), "svc")
        with running(d):
            p = pyro5_proxy(uri)
            it = p.generator(5)
            next(it)
            p._pyroRelease()
            assert wait_for(lambda: not d.streaming_responses)


def test_stream_lifetime(servertype):
    config.ITER_STREAM_LIFETIME = 0.2
    with Daemon(host=HOST) as d:
        uri = d.register(Service(), "svc")
        with running(d), pyro5_proxy(uri) as p:
            it = p.generator(5)
            next(it)
            assert wait_for(lambda: not d.streaming_responses)


def test_session_instances_and_client_disconnect(servertype, make_proxy):
    gone = []

    class Tracking(Daemon):
        def clientDisconnect(self, conn):
            gone.append(conn)

    with Tracking(host=HOST) as d:
        uri = d.register(Counter, "counter")
        before = Counter.instances
        with running(d):
            with make_proxy(uri) as p1, make_proxy(uri) as p2:
                assert p1.increment() == 1 and p1.increment() == 2
                assert p2.increment() == 1
            assert Counter.instances == before + 2
            assert wait_for(lambda: len(gone) == 2)
            assert all(isinstance(c, ClientConnection) and not c.pyroInstances for c in gone)


def test_tracked_resources_closed_on_disconnect(servertype):
    closed = threading.Event()

    class Resource:
        def close(self):
            closed.set()

    keep = []

    @expose
    class Tracker:
        def open(self):
            res = Resource()
            keep.append(res)
            current_context.track_resource(res)
            return True

    with Daemon(host=HOST) as d:
        uri = d.register(Tracker, "tracker")
        with running(d):
            with pyro5_proxy(uri) as p:
                assert p.open()
            assert closed.wait(5)


def test_validate_handshake_and_annotations(servertype, make_proxy):
    class Guarded(Daemon):
        def validateHandshake(self, conn, data):
            if data != "let me in":
                raise ValueError("bad password")
            return {"welcome": True}

        def annotations(self):
            return {"XDMN": b"daemon says hi"}

    if make_proxy is pyro5_proxy:
        base, client_context = Pyro5.client.Proxy, Pyro5.api.current_context
    else:
        base, client_context = importlib.import_module("pyrite.core.client").Proxy, current_context
    seen = []

    class Checking(base):
        def _pyroValidateHandshake(self, response):
            seen.append(response)

    with Guarded(host=HOST) as d:
        uri = d.register(Service(), "svc")
        with running(d):
            bad = make_proxy(uri)
            with pytest.raises(Exception, match="bad password"):
                bad._pyroBind()
            bad._pyroRelease()
            good = Checking(str(uri))
            good._pyroTimeout = 5.0
            good._pyroHandshake = "let me in"
            with good:
                assert good.annotate() is True
                assert client_context.response_annotations.get("XSVC") == b"from service"
                assert client_context.response_annotations.get("XDMN") == b"daemon says hi"
                assert good.add(1, 1) == 2
                assert "XSVC" not in client_context.response_annotations
            assert seen == [{"welcome": True}]


def test_correlation_id_travels(servertype):
    with Daemon(host=HOST) as d:
        uri = d.register(Service(), "svc")
        with running(d), pyro5_proxy(uri) as p:
            corr = uuid.uuid4()
            Pyro5.api.current_context.correlation_id = corr
            try:
                assert p.correlation() == str(corr)
            finally:
                Pyro5.api.current_context.correlation_id = None


def test_serialized_blob_with_pyro5_client(servertype):
    with Daemon(host=HOST) as d:
        uri = d.register(Service(), "svc")
        with running(d), pyro5_proxy(uri) as p:
            blob = Pyro5.api.SerializedBlob("some info", {"deep": [1, 2, 3]})
            assert p.blob(blob) == {"info": "some info", "data": {"deep": [1, 2, 3]}}


def test_autoproxy_over_the_wire(servertype):
    @expose
    class Factory:
        def make(self):
            child = Service()
            self._pyroDaemon.register(child)
            return child

    with Daemon(host=HOST) as d:
        uri = d.register(Factory(), "factory")
        with running(d), pyro5_proxy(uri) as p:
            child = p.make()
            assert isinstance(child, Pyro5.client.Proxy)
            with child:
                assert child.add(20, 22) == 42


def test_shutdown_from_inside_a_remote_call(servertype, start_daemon):
    d = Daemon(host=HOST)
    uri = d.register(Service(), "svc")
    loop = start_daemon(d)
    with pyro5_proxy(uri) as p:
        try:
            p.shutdown_daemon()
        except Pyro5.errors.CommunicationError:
            pass  # the daemon may close the connection before the reply gets out
    assert loop.join()
    assert d.transportServer is None
    d.shutdown()  # idempotent


def test_shutdown_from_other_thread_is_bounded(servertype, start_daemon):
    d = Daemon(host=HOST)
    uri = d.register(Service(), "svc")
    loop = start_daemon(d)
    with pyro5_proxy(uri) as p:
        assert p.add(1, 1) == 2
        start = time.monotonic()
        d.shutdown()
        d.shutdown()
        assert time.monotonic() - start < JOIN
    assert loop.join()


def test_housekeeping_hook_runs(servertype):
    ran = threading.Event()

    class Housekeeper(Daemon):
        def housekeeping(self):
            ran.set()

    with Housekeeper(host=HOST) as d, running(d):
        assert ran.wait(5)


def test_hostile_bytes_cost_only_their_connection(servertype):
    with Daemon(host=HOST) as d:
        uri = d.register(Service(), "svc")
        host, port = d.locationStr.split(":")
        with running(d):
            good = pyro5_proxy(uri)
            assert good.add(1, 1) == 2
            payloads = [
                b"GET / HTTP/1.0\r\n\r\n",
                b"PYRO" + b"\xff" * 36,
                b"\x00" * 100,
                b"PYRO\x01\xf6\x04\x01\x00\x00\x00\x01\x7f\xff\xff\xff\x00\x00\x00\x00" + b"\x00" * 20,
            ]
            for junk in payloads:
                with socket.create_connection((host, int(port)), timeout=5) as s:
                    s.sendall(junk)
                    s.settimeout(5)
                    with contextlib.suppress(OSError):
                        s.recv(100)
            assert good.add(2, 2) == 4
            with pyro5_proxy(uri) as fresh:
                assert fresh.add(3, 3) == 6
            good._pyroRelease()


def test_sockets_and_events_in_an_external_loop(servertype):
    import selectors

    with Daemon(host=HOST) as d:
        assert d.sock in d.sockets
        uri = d.register(Service(), "svc")
        stop = threading.Event()

        def external_loop():
            with selectors.DefaultSelector() as sel:
                while not stop.is_set():
                    socks = d.sockets
                    for s in socks:
                        with contextlib.suppress(Exception):
                            sel.register(s, selectors.EVENT_READ)
                    ready = [key.fileobj for key, _ in sel.select(0.05)]
                    for s in socks:
                        with contextlib.suppress(Exception):
                            sel.unregister(s)
                    if ready:
                        d.events(ready)

        thread = threading.Thread(target=external_loop, daemon=True)
        thread.start()
        try:
            with pyro5_proxy(uri) as p:
                assert p.add(4, 5) == 9
                assert p.echo("external") == "external"
        finally:
            stop.set()
            thread.join(JOIN)
        assert not thread.is_alive()


def test_combine_multiplex():
    config.SERVERTYPE = "multiplex"
    with Daemon(host=HOST) as d1, Daemon(host=HOST) as d2:
        uri1 = d1.register(Service(), "one")
        uri2 = d2.register(Counter, "two")
        d1.combine(d2)
        assert d2.sock in d1.sockets and d1.sock in d1.sockets
        with running(d1):
            with pyro5_proxy(uri1) as p1, pyro5_proxy(uri2) as p2:
                assert p1.add(1, 2) == 3
                assert p2.increment() == 1


def test_combine_takes_anything_with_a_transport_server():
    # Pyro5 code sometimes hands combine() an object that only carries a transportServer
    config.SERVERTYPE = "multiplex"
    with Daemon(host=HOST) as d1, Daemon(host=HOST) as d2:
        uri2 = d2.register(Counter, "two")

        class Holder:
            transportServer = d2._engine()

        d1.combine(Holder())
        with running(d1), pyro5_proxy(uri2) as p2:
            assert p2.increment() == 1


# -- connected socket -----------------------------------------------------------------------------


def test_connected_socket_with_pyro5_proxy():
    s1, s2 = socket.socketpair()
    d = Daemon(connected_socket=s1)
    try:
        assert d.locationStr.startswith("./u:")
        assert isinstance(d.transportServer, SingleConnectionEngine)
        with pytest.raises(PyroError):
            d.combine(d)
        d.register(Service(), "echo")
        loop = LoopThread(d)
        with Pyro5.client.Proxy("echo", connected_socket=s2) as p:
            p._pyroTimeout = 5
            assert p.add(1, 2) == 3
            assert list(p.generator(2)) == ["item0", "item1"]
        loop.stop()
    finally:
        d.close()
        s1.close()
        s2.close()


def test_connected_transport_connection():
    from pyrite.transports.sockets import SocketConnection

    s1, s2 = socket.socketpair()
    gone = threading.Event()

    class Tracking(Daemon):
        def clientDisconnect(self, conn):
            gone.set()

    d = Tracking(connected_socket=SocketConnection(s1, 5.0))
    try:
        d.register(Service(), "echo")
        loop = LoopThread(d)
        p = Pyro5.client.Proxy("echo", connected_socket=s2)
        p._pyroTimeout = 5
        assert p.echo("hi") == "hi"
        s2.close()  # the client goes: the loop ends by itself
        assert loop.join()
        assert gone.is_set()
    finally:
        d.close()
        s1.close()


# -- serve ---------------------------------------------------------------------------------------


def test_serve_without_name_server(servertype, capsys):
    d = Daemon(host=HOST)
    svc = Service()
    loop = LoopThread(
        d, target=serve, objects={svc: "the.service", Counter: None}, daemon=d, use_ns=False, verbose=True
    )
    try:
        assert wait_for(lambda: "the.service" in d.objectsById and len(d.objectsById) == 3)
        with pyro5_proxy(d.uriFor("the.service")) as p:
            assert p.add(5, 6) == 11
    finally:
        loop.stop()
    out = capsys.readouterr().out
    assert "the.service" in out and "Serving requests now" in out


def test_serve_with_name_server(servertype):
    ns_uri, ns_daemon, _ = Pyro5.api.start_ns(host=HOST, port=0, enableBroadcast=False)
    ns_loop = LoopThread(ns_daemon)
    config.NS_HOST = HOST
    config.NS_PORT = ns_uri.port
    d = Daemon(host=HOST)
    loop = LoopThread(d, target=serve, objects={Service(): "example.service"}, daemon=d, use_ns=True, verbose=False)
    try:
        with Pyro5.client.Proxy(ns_uri) as ns:
            assert wait_for(lambda: "example.service" in ns.list())
            uri = ns.lookup("example.service")
        assert uri.object != "example.service"  # the daemon made the id; the name lives in the name server
        with pyro5_proxy(uri) as p:
            assert p.add(1, 2) == 3
    finally:
        loop.stop()
        ns_loop.stop()


# -- proxyFor: a ready proxy (metadata filled in, no connection yet) for a registered object,
# following NAT like uriFor, working against the running daemon


@expose
class Tally:
    def __init__(self) -> None:
        self._total = 0

    def add(self, n: int) -> int:
        self._total += n
        return self._total

    @oneway
    def reset(self) -> None:
        self._total = 0

    @property
    def total(self) -> int:
        return self._total


def test_proxy_for_has_metadata_before_connecting_and_calls_work(servertype):
    config.POLLTIMEOUT = 0.1
    config.COMMTIMEOUT = 5.0
    with Daemon(host=HOST) as d:
        obj = Tally()
        uri = d.register(obj, "counter")
        proxy = d.proxyFor(obj)
        assert proxy._pyroUri == uri == d.uriFor(obj)
        # metadata came from the registered object itself, not from a remote call
        assert proxy._pyroConnection is None
        assert {"add", "reset"} <= set(proxy._pyroMethods)
        assert "total" in set(proxy._pyroAttrs)
        assert "reset" in set(proxy._pyroOneway)
        same = d.proxyFor("counter")
        assert same._pyroUri == uri
        with running(d):
            proxy._pyroTimeout = 5.0
            with proxy:
                assert proxy.add(2) == 2
                assert proxy.add(3) == 5
                assert proxy.total == 5


def test_proxy_for_follows_nat_and_refuses_unknown_objects():
    with Daemon(host=HOST, nathost="nat.example", natport=4242) as d:
        obj = Tally()
        d.register(obj, "counter")
        assert d.proxyFor(obj)._pyroUri.location == "nat.example:4242"
        assert d.proxyFor(obj, nat=False)._pyroUri.location == d.locationStr
        with pytest.raises(DaemonError):
            d.proxyFor(Tally())  # never registered
        with pytest.raises(DaemonError):
            d.proxyFor("no.such.object")  # id string not in this daemon
        d.unregister(obj)
        with pytest.raises(DaemonError):
            d.proxyFor("counter")

"""objects.py and streams.py: the daemon's object registry and item-stream registry, on their own."""

from __future__ import annotations

import gc
import threading

import pytest
from pyrite.core.config import config
from pyrite.core.connection import ClientConnection
from pyrite.core.errors import DaemonError, PyroError
from pyrite.core.exposure import behavior, expose
from pyrite.core.objects import ObjectRegistry, unpack, unpack_quiet
from pyrite.core.streams import StreamRegistry
from pyrite.core.uri import DAEMON_NAME


class Owner:
    """Stands in for the Daemon: what registered objects see as ``_pyroDaemon``."""

    def proxyFor(self, obj):
        return ("proxy", obj._pyroId)


@expose
class Thing:
    def hello(self):
        return "hi"


class Conn:
    """A client connection as far as the registries care: per-connection instances."""

    def __init__(self):
        self.pyroInstances = {}


@pytest.fixture
def owner():
    return Owner()


@pytest.fixture
def registry(owner):
    return ObjectRegistry(owner, daemon_object=Thing())


# -- ObjectRegistry ----------------------------------------------------------------------------


def test_the_daemon_object_is_there_and_cannot_be_replaced(registry):
    assert registry.objects_by_id[DAEMON_NAME] is registry.daemon_object
    assert registry.daemon_object._pyroId == DAEMON_NAME
    with pytest.raises(DaemonError):
        registry.register(Thing(), DAEMON_NAME, force=True)
    registry.unregister(DAEMON_NAME)  # ignored
    assert DAEMON_NAME in registry.objects_by_id


def test_register_lookup_unregister(registry, owner):
    obj = Thing()
    assert registry.register(obj, "thing") == "thing"
    assert obj._pyroId == "thing" and obj._pyroDaemon.proxyFor(obj) == ("proxy", "thing")
    assert registry.lookup("thing") is obj and registry.target("thing", Conn()) is obj
    with pytest.raises(DaemonError, match="already registered"):
        registry.register(obj, "again")
    with pytest.raises(DaemonError, match="already taken"):
        registry.register(Thing(), "thing")
    generated = registry.register(Thing())
    assert generated.startswith("obj_") and len(registry) == 3
    assert str(registry.uri_for(obj, "127.0.0.1:9")) == "PYRO:thing@127.0.0.1:9"
    registry.unregister(obj)
    assert not hasattr(obj, "_pyroId") and registry.get("thing") is None
    with pytest.raises(DaemonError):
        registry.lookup("thing")
    with pytest.raises(DaemonError):
        registry.uri_for(obj, "127.0.0.1:9")
    assert registry.get(["unhashable"]) is None
    with pytest.raises(TypeError):
        registry.register(Thing(), 42)
    with pytest.raises(ValueError):
        registry.unregister(None)


def test_weak_registration_ends_with_the_object(registry):
    obj = Thing()
    registry.register(obj, "weak", weak=True)
    ref = registry.get("weak")
    assert unpack(ref) is obj and unpack_quiet(ref) is obj
    del obj
    gc.collect()
    assert registry.get("weak") is None
    assert unpack_quiet(ref) is None
    with pytest.raises(DaemonError, match="deleted"):
        unpack(ref)
    with pytest.raises(TypeError):
        registry.register(Thing, "weak-class", weak=True)


def test_instance_modes(registry):
    made = []

    @behavior(instance_mode="single", instance_creator=lambda cls: made.append(cls) or cls())
    @expose
    class Single:
        pass

    @behavior(instance_mode="percall")
    @expose
    class PerCall:
        pass

    @expose
    class Session:  # no @behavior: one instance per connection
        pass

    for cls in (Single, PerCall, Session):
        registry.register(cls)
    c1, c2 = Conn(), Conn()
    barrier = threading.Barrier(8)
    singles = []

    def race():
        barrier.wait(5)
        singles.append(registry.instance_for(Single, c1))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(set(map(id, singles))) == 1 and made == [Single]  # one instance, even under a race
    assert registry.single_instances[Single] is singles[0]
    assert registry.instance_for(PerCall, c1) is not registry.instance_for(PerCall, c1)
    s1 = registry.target(Session._pyroId, c1)
    assert s1 is registry.target(Session._pyroId, c1) and s1 is not registry.target(Session._pyroId, c2)
    with pytest.raises(DaemonError):
        registry.instance_for(Session, object())  # no per-connection instances there


def test_instance_creator_must_make_an_instance(registry):
    @behavior(instance_mode="percall", instance_creator=lambda cls: "not an instance")
    @expose
    class Wrong:
        pass

    registry.register(Wrong, "wrong")
    with pytest.raises(TypeError):
        registry.target("wrong", Conn())


# -- StreamRegistry ----------------------------------------------------------------------------


def test_stream_lifecycle():
    streams = StreamRegistry()
    conn = ClientConnection(object.__new__(type("Raw", (), {})))
    sid = streams.open(iter("ab"), conn)
    assert streams.entries[sid][0] is conn and streams.count_for(conn) == 1
    assert streams.next(sid, conn) == "a"
    assert streams.next(sid, conn) == "b"
    with pytest.raises(StopIteration):
        streams.next(sid, conn)
    assert sid not in streams.entries and streams.count_for(conn) == 0
    with pytest.raises(PyroError, match="no open item stream"):
        streams.next(sid, conn)
    with pytest.raises(PyroError):
        streams.next(["unhashable"], conn)
    streams.close("never-there")
    streams.close(["unhashable"])


def test_an_error_in_the_iterator_ends_the_stream():
    def broken():
        yield 1
        raise ValueError("broke")

    streams = StreamRegistry()
    sid = streams.open(broken(), "c")
    assert streams.next(sid, "c") == 1
    with pytest.raises(ValueError):
        streams.next(sid, "c")
    assert not streams.entries


def test_per_connection_and_daemon_wide_caps():
    config.ITER_STREAM_MAX_PER_CONNECTION = 3
    config.ITER_STREAM_MAX = 5
    streams = StreamRegistry()
    ids = [streams.open(iter(()), "c1") for _ in range(3)]
    with pytest.raises(PyroError, match="ITER_STREAM_MAX_PER_CONNECTION=3"):
        streams.open(iter(()), "c1")
    streams.open(iter(()), "c2")
    streams.open(iter(()), "c2")
    with pytest.raises(PyroError, match="ITER_STREAM_MAX=5"):
        streams.open(iter(()), "c3")
    streams.close(ids[0])
    streams.open(iter(()), "c1")  # room again, on that connection
    config.ITER_STREAM_MAX_PER_CONNECTION = 0
    config.ITER_STREAM_MAX = 0
    for _ in range(50):
        streams.open(iter(()), "c1")  # 0: no limit
    assert len(streams) == 3 + 2 - 1 + 1 + 50


def test_streams_of_a_closed_connection_linger_then_expire():
    config.ITER_STREAM_LINGER = 30.0
    streams = StreamRegistry()
    sid = streams.open(iter("xyz"), "old")
    streams.client_disconnected("old")
    entry = streams.entries[sid]
    assert entry[0] is None and entry[2] > 0 and streams.count_for("old") == 0
    assert streams.expire(now=entry[2] + 10) == 0
    # a reconnected client picks it up
    assert streams.next(sid, "new") == "x"
    assert streams.entries[sid][0] == "new" and streams.entries[sid][2] == 0 and streams.count_for("new") == 1
    streams.client_disconnected("new")
    assert streams.expire(now=streams.entries[sid][2] + 31) == 1
    assert not streams.entries


def test_without_linger_the_streams_go_with_their_connection():
    config.ITER_STREAM_LINGER = 0
    streams = StreamRegistry()
    mine = [streams.open(iter(()), "mine") for _ in range(3)]
    theirs = streams.open(iter(()), "theirs")
    streams.client_disconnected("mine")
    assert set(streams.entries) == {theirs} and all(sid not in streams.entries for sid in mine)


def test_lifetime_expiry_and_clear():
    config.ITER_STREAM_LIFETIME = 5.0
    streams = StreamRegistry()
    sid = streams.open(iter(()), "c")
    created = streams.entries[sid][1]
    assert streams.expire(now=created + 1) == 0
    assert streams.expire(now=created + 6) == 1 and streams.count_for("c") == 0
    streams.open(iter(()), "c")
    streams.clear()
    assert not streams.entries and streams.count_for("c") == 0

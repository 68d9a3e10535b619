"""The plugin registries (pyrite.core.plugins): lookup, hints, conflicts, broken plugins.

Fake distributions are built with real ``importlib.metadata.EntryPoint`` objects
whose ``dist`` is a small stand-in, and injected by replacing
``plugins.entry_points``; ``plugins.reset()`` runs around every test.
"""

from __future__ import annotations

import sys
import threading
import types
from importlib.metadata import EntryPoint
from importlib.metadata import entry_points as real_entry_points

import pytest
from pyrite.core import plugins
from pyrite.core.client import Proxy
from pyrite.core.config import config
from pyrite.core.daemon import Daemon
from pyrite.core.exposure import expose
from pyrite.core.plugins import PluginConflictError, PluginError, UnknownPluginError
from pyrite.transports.tcp import TcpTransport

from tests.daemons import running


class FakeDist:
    def __init__(self, name):
        self.name = name


def fake_ep(name, value, group, dist):
    ep = EntryPoint(name=name, value=value, group=group)
    return ep._for(FakeDist(dist)) if hasattr(ep, "_for") else ep


@pytest.fixture(autouse=True)
def fresh_registry():
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def fake_module(monkeypatch):
    """A throwaway module ``fake_pyrite_plugins`` that tests put serializer classes in."""
    module = types.ModuleType("fake_pyrite_plugins")
    monkeypatch.setitem(sys.modules, "fake_pyrite_plugins", module)
    return module


def install(monkeypatch, extra):
    """Make entry_points() return the real entry points plus ``extra`` (a list of EntryPoint)."""

    def fake_entry_points(**params):
        group = params.get("group")
        found = list(real_entry_points(**params))
        return found + [ep for ep in extra if ep.group == group]

    monkeypatch.setattr(plugins, "entry_points", fake_entry_points)


def make_serializer(name, sid):
    from pyrite.serializers import SerializerBase

    class Fake(SerializerBase):
        serializer_id = sid

        def dumps(self, data):
            return repr(data).encode()

    Fake.name = name
    return Fake


def test_builtins_by_name_and_id():
    for sid, name in plugins.BUILTIN_SERIALIZER_IDS.items():
        ser = plugins.get_serializer(name)
        assert ser.name == name and ser.serializer_id == sid
        assert plugins.get_serializer_by_id(sid) is ser
        assert plugins.get_serializer(name) is ser  # one shared instance
    assert set(plugins.all_serializers()) >= set(plugins.SERIALIZER_HINTS)


def test_unknown_name_and_id():
    with pytest.raises(UnknownPluginError, match="misspelled or not installed"):
        plugins.get_serializer("nope")
    with pytest.raises(UnknownPluginError, match="no serializer with id 200"):
        plugins.get_serializer_by_id(200)


def test_missing_builtin_names_the_pip_command(monkeypatch):
    # pretend pyrite-serializers[msgpack] is not installed: no entry point for msgpack at all
    def without_msgpack(**params):
        return [ep for ep in real_entry_points(**params) if ep.name != "msgpack"]

    monkeypatch.setattr(plugins, "entry_points", without_msgpack)
    with pytest.raises(UnknownPluginError, match=r"pip install pyrite-serializers\[msgpack\]"):
        plugins.get_serializer("msgpack")
    with pytest.raises(UnknownPluginError, match=r"pip install pyrite-serializers\[msgpack\]"):
        plugins.get_serializer_by_id(4)
    assert plugins.get_serializer("serpent").serializer_id == 1


def test_library_missing_gives_the_pip_command(monkeypatch):
    # the entry point exists but its module cannot import its library (cbor2 not installed)
    monkeypatch.setitem(sys.modules, "cbor2", None)
    monkeypatch.delitem(sys.modules, "pyrite.serializers.cbor_serializer", raising=False)
    with pytest.raises(UnknownPluginError, match=r"installed but unusable.*pip install pyrite-serializers\[cbor\]"):
        plugins.get_serializer("cbor2")
    with pytest.raises(UnknownPluginError, match=r"pip install pyrite-serializers\[cbor\]"):
        plugins.get_serializer_by_id(5)
    assert plugins.get_serializer("json").serializer_id == 3


def test_two_distributions_claiming_one_name(monkeypatch, fake_module):
    fake_module.Other = make_serializer("json", 77)
    install(monkeypatch, [fake_ep("json", "fake_pyrite_plugins:Other", plugins.SERIALIZER_GROUP, "evil-json")])
    with pytest.raises(PluginConflictError) as info:
        plugins.get_serializer("serpent")
    message = str(info.value)
    assert "'json'" in message and "pyrite-serializers" in message and "evil-json" in message


def test_two_distributions_claiming_one_id(monkeypatch, fake_module):
    fake_module.Clash = make_serializer("clash", 1)
    install(monkeypatch, [fake_ep("clash", "fake_pyrite_plugins:Clash", plugins.SERIALIZER_GROUP, "clash-dist")])
    with pytest.raises(PluginConflictError) as info:
        plugins.get_serializer("json")
    message = str(info.value)
    assert "id 1" in message and "pyrite-serializers" in message and "clash-dist" in message
    assert "'serpent'" in message and "'clash'" in message


def test_a_third_party_serializer_is_found(monkeypatch, fake_module):
    fake_module.Mine = make_serializer("mine", 99)
    install(monkeypatch, [fake_ep("mine", "fake_pyrite_plugins:Mine", plugins.SERIALIZER_GROUP, "my-dist")])
    ser = plugins.get_serializer("mine")
    assert ser.serializer_id == 99 and plugins.get_serializer_by_id(99) is ser
    assert "mine" in plugins.all_serializers()


def test_entry_point_name_wins_over_class_name(monkeypatch, fake_module):
    fake_module.Named = make_serializer("something-else", 98)
    install(monkeypatch, [fake_ep("named", "fake_pyrite_plugins:Named", plugins.SERIALIZER_GROUP, "d")])
    assert plugins.get_serializer("named").name == "named"


def test_invalid_id_is_a_plugin_error(monkeypatch, fake_module):
    fake_module.Bad = make_serializer("bad", 300)
    install(monkeypatch, [fake_ep("bad", "fake_pyrite_plugins:Bad", plugins.SERIALIZER_GROUP, "bad-dist")])
    with pytest.raises(PluginError, match="'bad' from 'bad-dist' has no valid one-byte serializer_id"):
        plugins.get_serializer("json")


def test_a_broken_plugin_does_not_break_the_others(monkeypatch, fake_module):
    # the entry point names an attribute that does not exist, and another one whose class fails to instantiate
    class Exploding:
        serializer_id = 97

        def __init__(self):
            raise RuntimeError("kaboom")

    fake_module.Exploding = Exploding
    install(
        monkeypatch,
        [
            fake_ep("ghost", "fake_pyrite_plugins:Missing", plugins.SERIALIZER_GROUP, "ghost-dist"),
            fake_ep("exploding", "fake_pyrite_plugins:Exploding", plugins.SERIALIZER_GROUP, "boom-dist"),
        ],
    )
    assert plugins.get_serializer("serpent").serializer_id == 1
    with pytest.raises(UnknownPluginError, match="ghost-dist"):
        plugins.get_serializer("ghost")
    with pytest.raises(UnknownPluginError, match="kaboom.*boom-dist"):
        plugins.get_serializer("exploding")


def test_reset_rereads_entry_points(monkeypatch, fake_module):
    assert "late" not in plugins.all_serializers()
    fake_module.Late = make_serializer("late", 96)
    install(monkeypatch, [fake_ep("late", "fake_pyrite_plugins:Late", plugins.SERIALIZER_GROUP, "late-dist")])
    assert "late" not in plugins.all_serializers()  # cached until reset
    plugins.reset()
    assert plugins.get_serializer("late").serializer_id == 96


# -- transports: the pyrite.transports group, chosen by URI location -----------------------------
# A third-party transport with a higher priority is used by a real daemon and proxy; two
# distributions serving one location at the same priority, or claiming one entry-point name,
# give a PluginConflictError naming both; a broken transport plugin does not break the
# others; with no transport installed the error names the pip command.

HOST = "127.0.0.1"


def transport_ep(name: str, value: str, dist: str) -> EntryPoint:
    return fake_ep(name, value, plugins.TRANSPORT_GROUP, dist)


def install_transports(monkeypatch, extra, keep_real=True):
    """Make entry_points() return the real entry points (unless not ``keep_real``) plus ``extra``."""

    def fake_entry_points(**params):
        group = params.get("group")
        found = list(real_entry_points(**params)) if keep_real else []
        return found + [ep for ep in extra if ep.group == group]

    monkeypatch.setattr(plugins, "entry_points", fake_entry_points)
    plugins.reset()


class CountingTcp(TcpTransport):
    """A third-party TCP transport that outranks the built-in one and counts its use."""

    priority = 5
    connects = 0
    listens = 0
    lock = threading.Lock()

    def connect(self, location, timeout=None):
        with CountingTcp.lock:
            CountingTcp.connects += 1
        return super().connect(location, timeout)

    def listen(self, location, *args, **kwargs):
        with CountingTcp.lock:
            CountingTcp.listens += 1
        return super().listen(location, *args, **kwargs)


class SameRankTcp(TcpTransport):
    """Serves what TcpTransport serves, at the same priority."""

    priority = TcpTransport.priority


@pytest.fixture
def transport_module(monkeypatch):
    """A throwaway module ``audit_fake_transports`` holding the transport classes above."""
    module = types.ModuleType("audit_fake_transports")
    module.CountingTcp = CountingTcp
    module.SameRankTcp = SameRankTcp
    monkeypatch.setitem(sys.modules, "audit_fake_transports", module)
    return module


@expose
class Echo:
    def echo(self, value):
        return value


def test_higher_priority_third_party_transport_carries_real_calls(monkeypatch, transport_module):
    install_transports(
        monkeypatch, [transport_ep("countingtcp", "audit_fake_transports:CountingTcp", "audit-transport-dist")]
    )
    assert type(plugins.get_transport(f"{HOST}:1")) is CountingTcp
    assert type(plugins.get_transport("./u:/tmp/x.sock")).__name__ == "UnixTransport"  # others untouched
    CountingTcp.connects = CountingTcp.listens = 0
    config.POLLTIMEOUT = 0.1
    with Daemon(host=HOST) as d:
        uri = d.register(Echo(), "echo")
        with running(d):
            with Proxy(uri) as p:
                p._pyroTimeout = 5.0
                assert p.echo("via plugin") == "via plugin"
    assert CountingTcp.listens >= 1 and CountingTcp.connects >= 1


def test_same_location_same_priority_names_both_distributions(monkeypatch, transport_module):
    install_transports(monkeypatch, [transport_ep("samerank", "audit_fake_transports:SameRankTcp", "audit-rival-dist")])
    with pytest.raises(PluginConflictError) as exc:
        plugins.get_transport(f"{HOST}:9999")
    text = str(exc.value)
    assert "pyrite-transports" in text and "audit-rival-dist" in text
    # a location only one of them serves is still fine
    assert type(plugins.get_transport("./u:/tmp/x.sock")).__name__ == "UnixTransport"


def test_same_entry_point_name_from_two_distributions(monkeypatch, transport_module):
    install_transports(monkeypatch, [transport_ep("tcp", "audit_fake_transports:SameRankTcp", "audit-rival-dist")])
    with pytest.raises(PluginConflictError) as exc:
        plugins.get_transport(f"{HOST}:9999")
    text = str(exc.value)
    assert "pyrite-transports" in text and "audit-rival-dist" in text


def test_broken_transport_plugin_does_not_break_the_others(monkeypatch):
    install_transports(monkeypatch, [transport_ep("broken", "audit_no_such_module_xyz:Nope", "audit-broken-dist")])
    assert type(plugins.get_transport(f"{HOST}:1")) is TcpTransport


def test_no_transport_installed_names_the_pip_command(monkeypatch):
    install_transports(monkeypatch, [], keep_real=False)
    with pytest.raises(UnknownPluginError, match="pip install pyrite-transports"):
        plugins.get_transport(f"{HOST}:1")

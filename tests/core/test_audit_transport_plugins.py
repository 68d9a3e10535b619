"""Audit: the transport registry (``pyrite.transports`` entry points, chosen by URI location).

Fake distributions are real ``importlib.metadata.EntryPoint`` objects bound to a stand-in
distribution and added to the installed ones by replacing ``plugins.entry_points``.  Covers:
a third-party transport with a higher priority is used by a real daemon and proxy; two
distributions serving one location at the same priority, or claiming one entry-point name,
give a ``PluginConflictError`` naming both; a broken transport plugin does not break the
others; with no transport installed the error names the pip command.
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
from pyrite.core.plugins import PluginConflictError, UnknownPluginError
from pyrite.transports.tcp import TcpTransport

from tests.support import running

HOST = "127.0.0.1"
GROUP = plugins.TRANSPORT_GROUP


class FakeDist:
    def __init__(self, name: str) -> None:
        self.name = name


def fake_ep(name: str, value: str, dist: str) -> EntryPoint:
    ep = EntryPoint(name=name, value=value, group=GROUP)
    return ep._for(FakeDist(dist)) if hasattr(ep, "_for") else ep


def install(monkeypatch, extra, keep_real=True):
    def fake_entry_points(**params):
        group = params.get("group")
        found = list(real_entry_points(**params)) if keep_real else []
        return found + [ep for ep in extra if ep.group == group]

    monkeypatch.setattr(plugins, "entry_points", fake_entry_points)
    plugins.reset()


@pytest.fixture(autouse=True)
def fresh_registry():
    plugins.reset()
    yield
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
def fake_module(monkeypatch):
    module = types.ModuleType("audit_fake_transports")
    module.CountingTcp = CountingTcp
    module.SameRankTcp = SameRankTcp
    monkeypatch.setitem(sys.modules, "audit_fake_transports", module)
    return module


@expose
class Echo:
    def echo(self, value):
        return value


def test_higher_priority_third_party_transport_carries_real_calls(monkeypatch, fake_module):
    install(monkeypatch, [fake_ep("countingtcp", "audit_fake_transports:CountingTcp", "audit-transport-dist")])
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


def test_same_location_same_priority_names_both_distributions(monkeypatch, fake_module):
    install(monkeypatch, [fake_ep("samerank", "audit_fake_transports:SameRankTcp", "audit-rival-dist")])
    with pytest.raises(PluginConflictError) as exc:
        plugins.get_transport(f"{HOST}:9999")
    text = str(exc.value)
    assert "pyrite-transports" in text and "audit-rival-dist" in text
    # a location only one of them serves is still fine
    assert type(plugins.get_transport("./u:/tmp/x.sock")).__name__ == "UnixTransport"


def test_same_entry_point_name_from_two_distributions(monkeypatch, fake_module):
    install(monkeypatch, [fake_ep("tcp", "audit_fake_transports:SameRankTcp", "audit-rival-dist")])
    with pytest.raises(PluginConflictError) as exc:
        plugins.get_transport(f"{HOST}:9999")
    text = str(exc.value)
    assert "pyrite-transports" in text and "audit-rival-dist" in text


def test_broken_transport_plugin_does_not_break_the_others(monkeypatch):
    install(monkeypatch, [fake_ep("broken", "audit_no_such_module_xyz:Nope", "audit-broken-dist")])
    assert type(plugins.get_transport(f"{HOST}:1")) is TcpTransport


def test_no_transport_installed_names_the_pip_command(monkeypatch):
    install(monkeypatch, [], keep_real=False)
    with pytest.raises(UnknownPluginError, match="pip install pyrite-transports"):
        plugins.get_transport(f"{HOST}:1")

"""The autocleaner: registrations whose server is gone disappear, live ones stay."""

from __future__ import annotations

import socket
import time

import pytest
from pyrite.core.config import config
from pyrite.core.uri import NAMESERVER_NAME
from pyrite.nameserver.autoclean import AutoCleaner
from pyrite.nameserver.registry import NameServer


@pytest.fixture
def fast_cleaner(monkeypatch):
    monkeypatch.setattr(AutoCleaner, "override_autoclean_min", True)
    monkeypatch.setattr(AutoCleaner, "max_unreachable_time", 0.5)
    monkeypatch.setattr(AutoCleaner, "loop_delay", 0.1)
    config.NS_AUTOCLEAN = 0.2
    config.COMMTIMEOUT = 1.0


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_refuses_bad_settings():
    ns = NameServer()
    config.NS_AUTOCLEAN = 0.0
    with pytest.raises(ValueError):
        AutoCleaner(ns)
    config.NS_AUTOCLEAN = 1.0  # below the minimum of 3 s
    with pytest.raises(ValueError, match="cannot be smaller"):
        AutoCleaner(ns)


def test_removes_dead_keeps_live(fast_cleaner):
    ns = NameServer()
    with socket.socket() as live:
        live.bind(("127.0.0.1", 0))
        live.listen(50)
        live_uri = f"PYRO:alive@127.0.0.1:{live.getsockname()[1]}"
        ns.register(NAMESERVER_NAME, f"PYRO:{NAMESERVER_NAME}@127.0.0.1:{dead_port()}")
        ns.register("alive", live_uri)
        ns.register("dead", f"PYRO:dead@127.0.0.1:{dead_port()}")
        ns.register("alias", "PYRONAME:somewhere.else")  # not checkable: stays
        cleaner = AutoCleaner(ns)
        cleaner.start()
        try:
            deadline = time.monotonic() + 15
            while "dead" in ns.list() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            cleaner.stop = True
            cleaner.join(timeout=5)
        assert not cleaner.is_alive()
        assert sorted(ns.list()) == sorted([NAMESERVER_NAME, "alive", "alias"])


def test_a_reregistered_name_is_not_removed(fast_cleaner, monkeypatch):
    monkeypatch.setattr(AutoCleaner, "max_unreachable_time", 0.0)
    ns = NameServer()
    ns.register("svc", f"PYRO:svc@127.0.0.1:{dead_port()}")
    cleaner = AutoCleaner(ns)
    original = cleaner._remove_if_unchanged

    def moved_meanwhile(name, uri):
        ns.register(name, "PYRO:svc@127.0.0.1:1")  # the server came back elsewhere
        return original(name, uri)

    cleaner._remove_if_unchanged = moved_meanwhile
    assert cleaner.clean() == []
    assert str(ns.lookup("svc")) == "PYRO:svc@127.0.0.1:1"


def test_one_round_directly(fast_cleaner, monkeypatch):
    monkeypatch.setattr(AutoCleaner, "max_unreachable_time", 0.0)
    ns = NameServer()
    for i in range(12):
        ns.register(f"dead.{i}", f"PYRO:d@127.0.0.1:{dead_port()}")
    cleaner = AutoCleaner(ns)
    assert sorted(cleaner.clean()) == sorted(f"dead.{i}" for i in range(12))
    assert ns.count() == 0


def test_a_dead_replica_goes_alone(fast_cleaner):
    ns = NameServer()
    with socket.socket() as live:
        live.bind(("127.0.0.1", 0))
        live.listen(50)
        live_uri = f"PYRO:alive@127.0.0.1:{live.getsockname()[1]}"
        dead_uri = f"PYRO:dead@127.0.0.1:{dead_port()}"
        ns.register("svc", dead_uri, replica=True)  # the one list() shows, and so the one checked
        ns.register("svc", live_uri, replica=True)
        ns.register(NAMESERVER_NAME + ".127.0.0.1:1", f"PYRO:{NAMESERVER_NAME}@127.0.0.1:{dead_port()}")
        assert ns.list()["svc"] == dead_uri
        cleaner = AutoCleaner(ns)
        cleaner.start()
        try:
            deadline = time.monotonic() + 15
            while len(ns.replicas("svc")) == 2 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            cleaner.stop = True
            cleaner.join(timeout=5)
        assert [str(u) for u in ns.replicas("svc")] == [live_uri]  # the set lives on with its live one
        assert NAMESERVER_NAME + ".127.0.0.1:1" in ns.list()  # a name server's own entry is left to its lease

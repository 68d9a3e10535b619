"""Audit: ``Daemon.proxyFor`` gives a ready proxy (metadata filled in, no connection yet) for a
registered object, follows NAT like ``uriFor``, and the proxy works against the running daemon
(SERVERTYPE "thread" and "multiplex")."""

from __future__ import annotations

import pytest
from pyrite.core.config import config
from pyrite.core.daemon import Daemon
from pyrite.core.errors import DaemonError
from pyrite.core.exposure import expose, oneway

from tests.support import running

HOST = "127.0.0.1"


@expose
class Counter:
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


@pytest.fixture(params=["thread", "multiplex"])
def servertype(request):
    config.SERVERTYPE = request.param
    config.POLLTIMEOUT = 0.1
    config.COMMTIMEOUT = 5.0
    return request.param


def test_proxy_for_has_metadata_before_connecting_and_calls_work(servertype):
    with Daemon(host=HOST) as d:
        obj = Counter()
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
        obj = Counter()
        d.register(obj, "counter")
        assert d.proxyFor(obj)._pyroUri.location == "nat.example:4242"
        assert d.proxyFor(obj, nat=False)._pyroUri.location == d.locationStr
        with pytest.raises(DaemonError):
            d.proxyFor(Counter())  # never registered
        with pytest.raises(DaemonError):
            d.proxyFor("no.such.object")  # id string not in this daemon
        d.unregister(obj)
        with pytest.raises(DaemonError):
            d.proxyFor("counter")

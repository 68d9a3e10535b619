"""Client failover over replica sets: ``Proxy("PYRONAME:...")`` / PYROMETA and ``resolve()``
skip a replica whose server is gone and use a live one (real daemons, a real name server)."""

from __future__ import annotations

import socket
import threading

import Pyro5.api
import Pyro5.nameserver
import pytest
from pyrite.core.client import Proxy
from pyrite.core.daemon import Daemon
from pyrite.core.errors import CommunicationError
from pyrite.core.exposure import expose
from pyrite.core.naming import resolve
from pyrite.nameserver import start_ns

from tests.support import JOIN, pyrite_proxy, running


@expose
class Labelled:
    def __init__(self, label: str) -> None:
        self.label = label

    def where(self) -> str:
        return self.label


def dead_uri(name: str = "obj") -> str:
    """A PYRO uri on a port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"PYRO:{name}@127.0.0.1:{port}"


@pytest.fixture
def ns_uri():
    uri, daemon, _ = start_ns(host="127.0.0.1", port=0, enableBroadcast=False)
    with running(daemon):
        yield uri


@pytest.fixture
def live(ns_uri):
    daemon = Daemon(host="127.0.0.1", port=0)
    with running(daemon):
        uri = daemon.register(Labelled("live"))
        yield uri


def at(ns_uri, kind: str, what: str) -> str:
    return f"{kind}:{what}@{ns_uri.host}:{ns_uri.port}"


def test_proxy_fails_over_to_a_live_replica(ns_uri, live):
    dead = dead_uri()
    with pyrite_proxy(ns_uri) as ns:
        ns.register("svc", dead, replica=True, metadata={"kind:labelled"})
        ns.register("svc", live, replica=True)
        picks = {str(ns.lookup("svc")) for _ in range(2)}
        assert picks == {dead, str(live)}  # the name server hands out the dead one too
    for _ in range(4):  # whichever it picks, the proxy ends up on the live one
        with Proxy(at(ns_uri, "PYRONAME", "svc")) as svc:
            svc._pyroTimeout = 5
            assert svc.where() == "live"
    for _ in range(4):
        with Proxy(at(ns_uri, "PYROMETA", "kind:labelled")) as svc:
            svc._pyroTimeout = 5
            assert svc.where() == "live"
    for _ in range(4):
        assert resolve(at(ns_uri, "PYRONAME", "svc")) == live


def test_bind_replaces_the_uri_with_the_replica_used(ns_uri, live):
    with pyrite_proxy(ns_uri) as ns:
        ns.register("svc", dead_uri(), replica=True)
        ns.register("svc", live, replica=True)
    for _ in range(2):
        proxy = Proxy(at(ns_uri, "PYRONAME", "svc"))
        proxy._pyroTimeout = 5
        with proxy:
            proxy._pyroBind()
            assert proxy._pyroUri == live


def test_all_replicas_dead_raises_the_first_error(ns_uri):
    with pyrite_proxy(ns_uri) as ns:
        dead = [dead_uri("a"), dead_uri("b")]
        for uri in dead:
            ns.register("svc", uri, replica=True)
    with pytest.raises(CommunicationError), Proxy(at(ns_uri, "PYRONAME", "svc")) as svc:
        svc._pyroTimeout = 5
        svc._pyroBind()
    assert str(resolve(at(ns_uri, "PYRONAME", "svc"))) in dead  # resolve() still answers, as Pyro5's does


def test_a_plain_name_resolves_as_before(ns_uri, live):
    dead = dead_uri()
    with pyrite_proxy(ns_uri) as ns:
        ns.register("plain.live", live)
        ns.register("plain.dead", dead)
    assert resolve(at(ns_uri, "PYRONAME", "plain.live")) == live
    assert str(resolve(at(ns_uri, "PYRONAME", "plain.dead"))) == dead
    with pytest.raises(CommunicationError), Proxy(at(ns_uri, "PYRONAME", "plain.dead")) as svc:
        svc._pyroTimeout = 5
        svc._pyroBind()


def test_against_a_pyro5_name_server_there_is_no_failover(live):
    ns_uri, ns_daemon, _ = Pyro5.nameserver.start_ns(host="127.0.0.1", port=0, enableBroadcast=False)
    thread = threading.Thread(target=ns_daemon.requestLoop, daemon=True)
    thread.start()
    try:
        with Pyro5.api.Proxy(ns_uri) as ns:
            ns.register("svc.dead", dead_uri())
            ns.register("svc.live", str(live))
        with Proxy(f"PYRONAME:svc.live@127.0.0.1:{ns_uri.port}") as svc:
            assert svc.where() == "live"
        with pytest.raises(CommunicationError), Proxy(f"PYRONAME:svc.dead@127.0.0.1:{ns_uri.port}") as svc:
            svc._pyroTimeout = 5
            svc._pyroBind()
    finally:
        ns_daemon.shutdown()
        thread.join(JOIN)
        ns_daemon.close()

"""``Daemon.publish`` / ``unpublish``: leases renewed by the daemon, removed on a clean stop,
gone after a kill -9; against a pyrite name server and against Pyro5's (no leases there)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import Pyro5.api
import Pyro5.nameserver
import pytest
from pyrite.core.config import config
from pyrite.core.daemon import Daemon
from pyrite.core.errors import NamingError, PyroError
from pyrite.core.exposure import expose
from pyrite.nameserver import start_ns

from tests.support import JOIN, pyrite_proxy, running, wait_for


@expose
class Service:
    def hello(self) -> str:
        return "hello"


@pytest.fixture
def ns_uri():
    uri, daemon, _ = start_ns(host="127.0.0.1", port=0, enableBroadcast=False)
    with running(daemon):
        yield uri


@pytest.fixture
def daemon():
    d = Daemon(host="127.0.0.1", port=0)
    with running(d):
        yield d


def test_publish_renews_and_unpublish_removes(ns_uri, daemon):
    config.POLLTIMEOUT = 5.0  # renewal keeps its own time, whatever the engine's poll interval
    uri = daemon.publish(Service(), "svc.one", ttl=1.2, metadata={"kind:svc"}, ns=ns_uri)
    with pyrite_proxy(ns_uri) as ns:
        assert ns.lookup("svc.one", return_metadata=True) == (uri, {"kind:svc"})
        time.sleep(3.0)  # well past the first lease
        assert ns.lookup("svc.one") == uri
        daemon.unpublish("svc.one")
        assert "svc.one" not in ns.list()
        with pytest.raises(NamingError, match="not published"):
            daemon.unpublish("svc.one")
    with pyrite_proxy(uri) as svc:
        assert svc.hello() == "hello"  # unpublishing leaves the object registered


def test_publish_takes_a_registered_id_and_a_proxy(ns_uri, daemon):
    uri = daemon.register(Service(), "fixed.id")
    with pyrite_proxy(ns_uri) as ns:
        assert daemon.publish("fixed.id", "by.id", ns=ns) == uri
        assert ns.lookup("by.id") == uri
    with pytest.raises(PyroError):
        daemon.publish("no.such.id", "x", ns=ns_uri)
    with pytest.raises(ValueError):
        daemon.publish(Service(), "x", ttl=0, ns=ns_uri)


def test_clean_shutdown_removes_what_was_published(ns_uri):
    d = Daemon(host="127.0.0.1", port=0)
    thread = threading.Thread(target=d.requestLoop, daemon=True)
    thread.start()
    d.publish(Service(), "svc.a", ttl=30, ns=ns_uri)
    d.publish(Service(), "svc.b", ttl=None, ns=ns_uri)  # no lease, still removed at the end
    with pyrite_proxy(ns_uri) as ns:
        assert {"svc.a", "svc.b"} <= set(ns.list())
        d.shutdown()
        thread.join(JOIN)
        assert not {"svc.a", "svc.b"} & set(ns.list())
    with pytest.raises(PyroError):
        d.publish(Service(), "late", ns=ns_uri)


def test_replicas_from_two_daemons(ns_uri):
    daemons = [Daemon(host="127.0.0.1", port=0) for _ in range(2)]
    with running(daemons[0]), running(daemons[1]):
        uris = [d.publish(Service(), "svc.rep", ttl=30, replica=True, ns=ns_uri) for d in daemons]
        with pyrite_proxy(ns_uri) as ns:
            assert sorted(map(str, ns.replicas("svc.rep"))) == sorted(map(str, uris))
            daemons[0].unpublish("svc.rep")  # takes only its own URI away
            assert ns.replicas("svc.rep") == [uris[1]]
    with pyrite_proxy(ns_uri) as ns:
        assert "svc.rep" not in ns.list()


PUBLISHER = textwrap.dedent(
    """
    import sys
    from pyrite.core.daemon import Daemon
    from pyrite.core.exposure import expose

    @expose
    class Service:
        pass

    daemon = Daemon(host="127.0.0.1", port=0)
    print("PUBLISHED", daemon.publish(Service(), "doomed", ttl=float(sys.argv[2]), ns=sys.argv[1]), flush=True)
    daemon.requestLoop()
    """
)


def test_kill_9_is_gone_within_ttl_plus_one_second(ns_uri):
    ttl = 1.5
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(ns_uri), str(ttl)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("PUBLISHED PYRO:")
        with pyrite_proxy(ns_uri) as ns:
            time.sleep(ttl * 1.5)
            assert "doomed" in ns.list()  # renewed
            proc.kill()
            proc.wait(timeout=10)
            killed = time.monotonic()
            assert wait_for(lambda: "doomed" not in ns.list(), timeout=ttl + 2)
            assert time.monotonic() - killed < ttl + 1.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_publish_to_a_pyro5_name_server_registers_without_a_lease(daemon):
    ns_uri, ns_daemon, _ = Pyro5.nameserver.start_ns(host="127.0.0.1", port=0, enableBroadcast=False)
    thread = threading.Thread(target=ns_daemon.requestLoop, daemon=True)
    thread.start()
    try:
        uri = daemon.publish(Service(), "on.pyro5", ttl=1.0, ns=str(ns_uri))
        with Pyro5.api.Proxy(ns_uri) as ns:
            assert str(ns.lookup("on.pyro5")) == str(uri)
            with pytest.raises(NamingError, match="replica"):
                daemon.publish(Service(), "rep", replica=True, ns=str(ns_uri))
            daemon.unpublish("on.pyro5")
            assert "on.pyro5" not in ns.list()
    finally:
        ns_daemon.shutdown()
        thread.join(JOIN)
        ns_daemon.close()

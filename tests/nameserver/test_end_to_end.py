"""The name server over the wire: pyrite and Pyro5 5.17 clients, PYRONAME/PYROMETA,
broadcast discovery, the daemon's life cycle, autoclean and the bounded regex."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from pyrite.core.client import Proxy
from pyrite.core.config import config
from pyrite.core.daemon import Daemon
from pyrite.core.errors import NamingError, PyroError
from pyrite.core.exposure import expose
from pyrite.core.naming import locate_ns, resolve
from pyrite.core.uri import NAMESERVER_NAME, URI
from pyrite.nameserver import regexmatch
from pyrite.nameserver.autoclean import AutoCleaner
from pyrite.nameserver.broadcast import BroadcastServer
from pyrite.nameserver.server import NameServerDaemon, start_ns

Pyro5_api = pytest.importorskip("Pyro5.api")
import Pyro5.errors  # noqa: E402

BCHOST = "127.255.255.255"


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """A name server daemon (and broadcast responder) served by background threads."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", 0)
        self.uri, self.daemon, self.bc = start_ns(**kwargs)
        self.thread = threading.Thread(target=self.daemon.requestLoop, daemon=True)
        self.thread.start()
        self.bcthread = self.bc.runInThread() if self.bc else None

    def stop(self) -> None:
        self.daemon.shutdown()
        self.thread.join(timeout=10)
        if self.bc:
            self.bc.close()
            self.bcthread.join(timeout=5)
        assert not self.thread.is_alive()


@pytest.fixture
def running():
    ns = Running(bchost=BCHOST, bcport=0)
    yield ns
    ns.stop()


@pytest.fixture
def pyro5_config():
    """Pyro5's own config, restored afterwards (conftest only resets pyrite's)."""
    saved = {item: getattr(Pyro5_api.config, item) for item in ("NS_HOST", "NS_PORT", "NS_BCPORT", "SERIALIZER")}
    yield Pyro5_api.config
    for item, value in saved.items():
        setattr(Pyro5_api.config, item, value)


@expose
class Service:
    def whoami(self) -> str:
        return "service"


@pytest.fixture
def service():
    daemon = Daemon(host="127.0.0.1", port=0)
    uri = daemon.register(Service, "svc.object")
    thread = threading.Thread(target=daemon.requestLoop, daemon=True)
    thread.start()
    yield uri
    daemon.shutdown()
    thread.join(timeout=10)


def test_pyrite_client(running):
    with Proxy(running.uri) as ns:
        ns.ping()
        assert ns.count() == 1
        assert ns.lookup(NAMESERVER_NAME) == running.uri
        uri, meta = ns.lookup(NAMESERVER_NAME, return_metadata=True)
        assert meta == {"class:Pyro5.nameserver.NameServer"}
        ns.register("e2e.one", "PYRO:one@127.0.0.1:1111", metadata={"a", "b"})
        ns.register("e2e.two", URI("PYRO:two@127.0.0.1:2222"))
        with pytest.raises(NamingError, match=r"name is taken: e2e\.one"):
            ns.register("e2e.one", "PYRO:x@127.0.0.1:1", safe=True)
        with pytest.raises(TypeError):
            ns.register("e2e.bad", 12345)
        assert ns.lookup("e2e.one") == URI("PYRO:one@127.0.0.1:1111")
        assert ns.list(prefix="e2e.") == {"e2e.one": "PYRO:one@127.0.0.1:1111", "e2e.two": "PYRO:two@127.0.0.1:2222"}
        listing = ns.list(regex=r"e2e\.t.*", return_metadata=True)
        # serpent has no empty-set literal: an empty set arrives as () (with Pyro5 too)
        assert {name: (uri, set(meta)) for name, (uri, meta) in listing.items()} == {
            "e2e.two": ("PYRO:two@127.0.0.1:2222", set())
        }
        assert ns.yplookup(meta_all=["a", "b"]) == {"e2e.one": ("PYRO:one@127.0.0.1:1111", {"a", "b"})}
        ns.set_metadata("e2e.two", ["b"])
        assert set(ns.yplookup(meta_any={"b"}, return_metadata=False)) == {"e2e.one", "e2e.two"}
        with pytest.raises(NamingError, match=r"name not registered: e2e\.none"):
            ns.lookup("e2e.none")
        with pytest.raises(NamingError, match="everything=True"):
            ns.remove(regex=".*")
        assert ns.count() == 3
        assert ns.remove("e2e.one") == 1
        assert ns.remove(regex=".*", everything=True) == 1
        assert list(ns.list()) == [NAMESERVER_NAME]


@pytest.mark.parametrize("serializer", ["serpent", "json", "marshal", "msgpack"])
def test_pyro5_client(running, serializer):
    with Pyro5_api.Proxy(str(running.uri)) as ns:
        ns._pyroSerializer = serializer
        ns.ping()
        ns.register("p5.one", "PYRO:one@127.0.0.1:1111", metadata={"x", "y"})
        ns.register("p5.two", Pyro5_api.URI("PYRO:two@127.0.0.1:2222"))
        found = ns.lookup("p5.one")
        assert isinstance(found, Pyro5_api.URI) and str(found) == "PYRO:one@127.0.0.1:1111"
        uri, meta = ns.lookup("p5.one", return_metadata=True)
        assert set(meta) == {"x", "y"}
        listing = ns.list(prefix="p5.", return_metadata=True)
        assert {name: (entry[0], set(entry[1])) for name, entry in listing.items()} == {
            "p5.one": ("PYRO:one@127.0.0.1:1111", {"x", "y"}),
            "p5.two": ("PYRO:two@127.0.0.1:2222", set()),
        }
        assert set(ns.list(regex="p5.*")) == {"p5.one", "p5.two"}
        assert set(ns.yplookup(meta_all=["x"], return_metadata=False)) == {"p5.one"}
        assert set(ns.yplookup(meta_any=["y", "nope"])) == {"p5.one"}
        ns.set_metadata("p5.two", ["z"])
        assert set(ns.lookup("p5.two", return_metadata=True)[1]) == {"z"}
        with pytest.raises(Pyro5.errors.NamingError):
            ns.lookup("p5.none")
        with pytest.raises(Pyro5.errors.NamingError):
            ns.remove(regex=".*")  # the guard reaches Pyro5 clients as a NamingError
        assert ns.remove(prefix="p5.t") == 1
        assert ns.remove(regex="p5.*", everything=True) == 1
        assert ns.count() == 1


def test_pyroname_and_pyrometa(running, service, pyro5_config):
    location = f"127.0.0.1:{running.uri.port}"
    with Proxy(running.uri) as ns:
        ns.register("svc.name", service, metadata={"role:service", "tier:1"})
    assert resolve(f"PYRONAME:svc.name@{location}") == service
    with Proxy(f"PYRONAME:svc.name@{location}") as p:
        assert p.whoami() == "service"
    with Proxy(f"PYROMETA:role:service,tier:1@{location}") as p:
        assert p.whoami() == "service"
    with pytest.raises(NamingError):
        resolve(f"PYROMETA:role:nothing@{location}")
    with pytest.raises(NamingError):
        resolve(f"PYRONAME:svc.unknown@{location}")
    # Pyro5 resolves through the pyrite name server and calls the pyrite daemon
    with Pyro5_api.Proxy(f"PYRONAME:svc.name@{location}") as p:
        assert p.whoami() == "service"
    with Pyro5_api.Proxy(f"PYROMETA:tier:1@{location}") as p:
        assert p.whoami() == "service"


def test_broadcast_discovery(running, pyro5_config):
    assert running.bc is not None and running.bc.locationStr.startswith(BCHOST + ":")
    # no name server at NS_HOST:NS_PORT, so the locators must fall back to the broadcast
    config.NS_PORT = pyro5_config.NS_PORT = dead_port()
    config.NS_BCPORT = pyro5_config.NS_BCPORT = running.bc.getPort()
    with locate_ns() as ns:
        assert ns._pyroUri == running.uri
        ns.ping()
    with Pyro5_api.locate_ns() as ns:
        assert str(ns._pyroUri) == str(running.uri)
        ns.ping()
    assert resolve(f"PYRONAME:{NAMESERVER_NAME}") == running.uri


def test_garbage_does_not_hurt_the_name_server(running):
    for junk in (b"\x00" * 100, b"PYRO" + b"\xff" * 40, b"GET / HTTP/1.0\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", running.uri.port), timeout=5) as sock:
            sock.sendall(junk)
            sock.settimeout(2)
            try:
                sock.recv(100)
            except (socket.timeout, OSError):
                pass
    with Proxy(running.uri) as ns:
        ns.ping()


def test_slow_regex_over_the_wire_does_not_block_others(running, monkeypatch):
    monkeypatch.setattr(regexmatch, "TIMEOUT", 2.0)
    with Proxy(running.uri) as ns:
        ns.register("a" * 40 + "!", "PYRO:x@127.0.0.1:1")
    outcome = []

    def hostile():
        with Proxy(running.uri) as p:
            p._pyroTimeout = 30
            try:
                p.list(regex="(a+)+$")
            except NamingError as exc:
                outcome.append(str(exc))

    t = threading.Thread(target=hostile)
    t.start()
    time.sleep(0.3)
    served_meanwhile = 0
    with Proxy(running.uri) as ns:
        for i in range(20):
            ns.register(f"busy.{i}", "PYRO:y@127.0.0.1:1")
            assert ns.lookup(f"busy.{i}").object == "y"
            if t.is_alive():
                served_meanwhile += 1
    t.join(timeout=30)
    assert outcome and "took longer" in outcome[0]
    assert served_meanwhile == 20


def test_daemon_life_cycle():
    daemon = NameServerDaemon(host="127.0.0.1", port=0)
    assert daemon.nameserver is not None
    daemon.close()
    assert daemon.nameserver is None
    with NameServerDaemon(host="127.0.0.1", port=0) as daemon:
        assert daemon.nameserver.count() == 1
    assert daemon.nameserver is None
    with pytest.raises(ZeroDivisionError):
        with NameServerDaemon(host="127.0.0.1", port=0) as daemon:
            1 // 0
    assert daemon.nameserver is None
    daemon = NameServerDaemon(host="127.0.0.1", port=0)
    with daemon:
        pass
    with pytest.raises(PyroError):
        with daemon:
            pass
    daemon.close()


def test_storage_option_and_bad_storage(tmp_path):
    with pytest.raises(ValueError):
        NameServerDaemon(host="127.0.0.1", port=0, storage="dbm:nope")
    path = tmp_path / "d.sqlite"
    with NameServerDaemon(host="127.0.0.1", port=0, storage=f"sql:{path}") as daemon:
        daemon.nameserver.register("kept", "PYRO:k@127.0.0.1:1")
    with NameServerDaemon(host="127.0.0.1", port=0, storage=f"sql:{path}") as daemon:
        assert daemon.nameserver.count() == 2 and str(daemon.nameserver.lookup("kept")) == "PYRO:k@127.0.0.1:1"
        # the name server's own entry points at the new port
        assert daemon.nameserver.lookup(NAMESERVER_NAME) == daemon.uriFor(daemon.nameserver)


def test_when_a_broadcast_responder_starts(tmp_path):
    uri, daemon, bc = start_ns(host="127.0.0.1", port=0)
    assert bc is None  # loopback and no explicit bchost, as Pyro5
    daemon.close()
    uri, daemon, bc = start_ns(host="127.0.0.1", port=0, bchost=BCHOST, bcport=0, enableBroadcast=False)
    assert bc is None
    daemon.close()
    uri, daemon, bc = start_ns(unixsocket=str(tmp_path / "ns.sock"), bchost=BCHOST, bcport=0)
    assert bc is None and uri.sockname == str(tmp_path / "ns.sock")
    daemon.close()
    uri, daemon, bc = start_ns(host="127.0.0.1", port=0, bchost=BCHOST, bcport=0)
    try:
        assert isinstance(bc, BroadcastServer) and bc.nsUri == uri
    finally:
        daemon.close()
        bc.close()


def test_nat(tmp_path):
    uri, daemon, bc = start_ns(host="127.0.0.1", port=0, bchost=BCHOST, bcport=0, nathost="nathosttest", natport=12345)
    try:
        assert uri.location == "nathosttest:12345"
        assert daemon.uriFor("thing").location == "nathosttest:12345"
        assert bc.nsUri.location != "nathosttest:12345"  # the broadcast answers with the internal address
        assert bc.nsUri.host == "127.0.0.1"
    finally:
        daemon.close()
        bc.close()


def test_unix_socket_name_server(tmp_path):
    path = str(tmp_path / "ns.sock")
    ns = Running(host=None, port=None, unixsocket=path)
    try:
        with locate_ns("./u:" + path) as proxy:
            proxy.register("u.thing", "PYRO:t@./u:/tmp/other")
            assert str(proxy.lookup("u.thing")) == "PYRO:t@./u:/tmp/other"
        with Pyro5_api.Proxy(f"PYRO:{NAMESERVER_NAME}@./u:{path}") as p5:
            assert set(p5.list()) == {NAMESERVER_NAME, "u.thing"}
    finally:
        ns.stop()


def test_autoclean_in_the_daemon(monkeypatch):
    monkeypatch.setattr(AutoCleaner, "override_autoclean_min", True)
    monkeypatch.setattr(AutoCleaner, "max_unreachable_time", 0.5)
    monkeypatch.setattr(AutoCleaner, "loop_delay", 0.1)
    config.COMMTIMEOUT = 1.0
    with NameServerDaemon(host="127.0.0.1", port=0) as daemon:
        assert daemon.cleaner_thread is None
    config.NS_AUTOCLEAN = 0.2
    with NameServerDaemon(host="127.0.0.1", port=0) as daemon:
        cleaner = daemon.cleaner_thread
        assert cleaner is not None and cleaner.is_alive()
        daemon.nameserver.register("test", f"PYRO:test@127.0.0.1:{dead_port()}")
        assert daemon.nameserver.count() == 2
        deadline = time.monotonic() + 15
        while daemon.nameserver.count() > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(daemon.nameserver.list()) == [NAMESERVER_NAME]  # itself is never checked or removed
    assert daemon.cleaner_thread is None
    assert not cleaner.is_alive()


def test_multiplexed_with_the_broadcast_server_combined():
    config.SERVERTYPE = "multiplex"
    uri, daemon, bc = start_ns(host="127.0.0.1", port=0, bchost=BCHOST, bcport=0)
    try:
        daemon.combine(bc)
        thread = threading.Thread(target=daemon.requestLoop, daemon=True)
        thread.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            client.settimeout(3)
            client.sendto(b"GET_NSURI", (BCHOST, bc.getPort()))
            assert client.recvfrom(200)[0] == str(uri).encode()
        with Proxy(uri) as ns:
            ns.ping()
    finally:
        daemon.shutdown()
        bc.close()

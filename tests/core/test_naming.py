"""pyrite.core.naming: locate_ns, resolve, type_meta; PYRONAME/PYROMETA proxies.

Name servers (Pyro5's and pyrite's) run in background threads on 127.0.0.1 or
a Unix socket.  Broadcast discovery goes to 127.255.255.255 only (pinned in
tests/conftest.py), answered by a responder bound to that address.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

import Pyro5.api
import Pyro5.nameserver
import pytest
from pyrite.core import naming
from pyrite.core.client import Proxy
from pyrite.core.config import config
from pyrite.core.errors import NamingError
from pyrite.core.naming import locate_ns, resolve, type_meta
from pyrite.core.uri import URI

from tests.daemons import LoopThread

WAIT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@Pyro5.api.expose
class Echo:
    def echo(self, value: Any) -> Any:
        return value


class Running:
    """A daemon (name server or plain) serving from a background thread."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.loop = LoopThread(daemon)

    def stop(self) -> None:
        self.loop.stop()


def ns_daemon(kind: str, **kwargs: Any) -> Any:
    if kind == "pyro5":
        return Pyro5.nameserver.NameServerDaemon(**kwargs)
    from pyrite.nameserver import NameServerDaemon

    return NameServerDaemon(**kwargs)


def plain_daemon(kind: str) -> Any:
    if kind == "pyro5":
        return Pyro5.api.Daemon(host="127.0.0.1")
    from pyrite.core.daemon import Daemon

    return Daemon(host="127.0.0.1")


@pytest.fixture(params=["pyro5", "pyrite"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def ns(kind: str):
    """A name server on 127.0.0.1 (random port) plus a daemon serving two Echo objects registered in it."""
    running_ns = Running(ns_daemon(kind, host="127.0.0.1", port=0))
    objects = Running(plain_daemon(kind))
    uri_a = str(objects.daemon.register(Echo(), "echo.a"))
    uri_b = str(objects.daemon.register(Echo(), "echo.b"))
    ns_uri = URI(str(running_ns.daemon.uriFor(running_ns.daemon.nameserver)))
    with Proxy(ns_uri) as proxy:
        proxy.register("echo.a", uri_a, metadata=["tag.a", "tag.common"])
        proxy.register("echo.b", uri_b, metadata=["tag.b", "tag.common"])
    yield ns_uri, {"echo.a": uri_a, "echo.b": uri_b}
    objects.stop()
    running_ns.stop()


class Responder:
    """Answers GET_NSURI broadcasts on 127.255.255.255 with ``answers`` (one datagram each)."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.255.255.255", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                data, addr = self.sock.recvfrom(100)
            except OSError:
                continue
            self.requests.append(data)
            if data == b"GET_NSURI":
                for answer in self.answers:
                    self.sock.sendto(answer, addr)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(WAIT)
        self.sock.close()


# ---------------------------------------------------------------------------------------- locate_ns


def test_locate_ns_direct(ns):
    ns_uri, _ = ns
    with locate_ns("127.0.0.1", ns_uri.port) as proxy:
        assert proxy._pyroConnection is not None  # bound, metadata known
        assert "lookup" in proxy._pyroMethods
        assert proxy._pyroUri == ns_uri
        proxy.ping()
    with locate_ns(ipaddress.IPv4Address("127.0.0.1"), ns_uri.port) as proxy:
        proxy.ping()


def test_locate_ns_from_config(ns):
    ns_uri, _ = ns
    config.NS_HOST = "127.0.0.1"
    config.NS_PORT = ns_uri.port
    config.NS_BCPORT = free_port()  # nothing answers broadcasts: the direct try must find it first
    with locate_ns() as proxy:
        assert proxy._pyroUri == ns_uri
        assert proxy.lookup("echo.a")


def test_locate_ns_not_there():
    port = free_port()
    with pytest.raises(NamingError, match="no name server reachable at PYRO:Pyro.NameServer@"):
        locate_ns("127.0.0.1", port)
    config.NS_HOST = "127.0.0.1"
    config.NS_PORT = port
    with pytest.raises(NamingError):
        locate_ns(broadcast=False)


def test_locate_ns_by_broadcast(ns):
    ns_uri, _ = ns
    responder = Responder([b"this is not a uri", str(ns_uri).encode("iso-8859-1")])
    try:
        config.NS_HOST = "localhost"
        config.NS_PORT = free_port()  # the direct try on localhost finds nothing
        config.NS_BCPORT = responder.port
        proxy = locate_ns()
        assert proxy._pyroUri == ns_uri
        assert proxy.lookup("echo.b")
        proxy._pyroRelease()
        assert responder.requests[0] == b"GET_NSURI"
    finally:
        responder.stop()


def test_locate_ns_broadcast_port_argument(ns):
    ns_uri, _ = ns
    responder = Responder([str(ns_uri).encode()])
    try:
        config.NS_HOST = "127.0.0.1"
        # as Pyro5: without a host, the port given is tried directly and then used for the broadcast
        proxy = locate_ns(port=responder.port)
        assert proxy._pyroUri == ns_uri
        proxy._pyroRelease()
    finally:
        responder.stop()


def test_locate_ns_broadcast_gives_up_in_bounded_time():
    responder = Responder([b"garbage only"])
    try:
        config.NS_HOST = "127.0.0.1"
        config.NS_PORT = free_port()
        config.NS_BCPORT = responder.port
        start = time.monotonic()
        with pytest.raises(NamingError):
            locate_ns()
        assert time.monotonic() - start < WAIT
        assert responder.requests.count(b"GET_NSURI") == naming.BROADCAST_ROUNDS
    finally:
        responder.stop()


def test_locate_ns_on_unix_socket(kind: str, tmp_path):
    path = str(tmp_path / "ns.sock")
    running = Running(ns_daemon(kind, unixsocket=path))
    try:
        with locate_ns("./u:" + path) as proxy:
            assert proxy._pyroUri.sockname == path
            proxy.ping()
    finally:
        running.stop()


# ---------------------------------------------------------------------------------------- resolve


def test_resolve_pyro_uri_is_returned_as_is():
    uri = URI("PYRO:x@127.0.0.1:1")
    assert resolve(uri) is uri
    assert resolve("PYRO:x@127.0.0.1:1") == uri
    with pytest.raises(TypeError):
        resolve(42)  # type: ignore[arg-type]


def test_resolve_pyroname(ns):
    ns_uri, uris = ns
    resolved = resolve(f"PYRONAME:echo.a@127.0.0.1:{ns_uri.port}")
    assert isinstance(resolved, URI)
    assert str(resolved) == uris["echo.a"]
    with pytest.raises(NamingError, match=r"no\.such\.name"):
        resolve(f"PYRONAME:no.such.name@127.0.0.1:{ns_uri.port}")


def test_resolve_pyroname_through_located_ns(ns):
    ns_uri, uris = ns
    config.NS_HOST = "127.0.0.1"
    config.NS_PORT = ns_uri.port
    assert str(resolve("PYRONAME:echo.b")) == uris["echo.b"]


def test_resolve_pyrometa(ns):
    ns_uri, uris = ns
    assert str(resolve(f"PYROMETA:tag.a@127.0.0.1:{ns_uri.port}")) == uris["echo.a"]
    assert str(resolve(f"PYROMETA:tag.b,tag.common@127.0.0.1:{ns_uri.port}")) == uris["echo.b"]
    picked = {str(resolve(f"PYROMETA:tag.common@127.0.0.1:{ns_uri.port}")) for _ in range(30)}
    assert picked <= set(uris.values()) and picked  # a random pick among both
    with pytest.raises(NamingError, match="no registrations"):
        resolve(f"PYROMETA:tag.a,tag.b@127.0.0.1:{ns_uri.port}")


def test_resolve_waits_for_late_registration(ns):
    ns_uri, uris = ns

    def register_later() -> None:
        time.sleep(0.5)
        with Proxy(ns_uri) as proxy:
            proxy.register("echo.late", uris["echo.a"])

    worker = threading.Thread(target=register_later)
    worker.start()
    try:
        assert str(resolve(f"PYRONAME:echo.late@127.0.0.1:{ns_uri.port}", delay_time=3.0)) == uris["echo.a"]
    finally:
        worker.join(WAIT)


def test_resolve_delay_from_config(ns):
    ns_uri, uris = ns
    config.NS_LOOKUP_DELAY = 0.5
    start = time.monotonic()
    with pytest.raises(NamingError):
        resolve(f"PYRONAME:never.there@127.0.0.1:{ns_uri.port}")
    assert time.monotonic() - start >= 0.5  # it kept trying for the configured time


def test_pyroname_and_pyrometa_proxies(ns):
    ns_uri, uris = ns
    with Proxy(f"PYRONAME:echo.a@127.0.0.1:{ns_uri.port}") as p:
        assert p.echo("hi") == "hi"
        assert p._pyroUri.protocol == "PYRONAME"  # a lazy connect keeps the name
        p._pyroRelease()
        p._pyroBind()
        assert str(p._pyroUri) == uris["echo.a"]  # binding pins the resolved uri
    with Proxy(f"PYROMETA:tag.b@127.0.0.1:{ns_uri.port}") as p:
        assert p.echo(5) == 5


def test_pyroname_proxy_for_unknown_name(ns):
    ns_uri, _ = ns
    with pytest.raises(NamingError):
        Proxy(f"PYRONAME:nope@127.0.0.1:{ns_uri.port}").echo(1)


# ---------------------------------------------------------------------------------------- type_meta


class Base:
    pass


class Derived(Base, dict):
    pass


def test_type_meta():
    expected = {f"class:{__name__}.Derived", f"class:{__name__}.Base"}
    assert type_meta(Derived) == expected
    assert type_meta(Derived()) == expected
    assert type_meta(Derived, prefix="x:") == {f"x:{__name__}.Derived", f"x:{__name__}.Base"}
    assert type_meta(Derived(), prefix="x:") == {f"x:{__name__}.Derived", f"x:{__name__}.Base"}
    assert type_meta(42) == set()  # builtins are left out
    assert type_meta(Derived) == Pyro5.api.type_meta(Derived)

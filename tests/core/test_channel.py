"""The client split: Channel and resolver on real daemons, partial data on a close,
unknown serializers as KeyError, proxy ownership (threads, and the gevent decision)."""

from __future__ import annotations

import ast
import logging
import pathlib
import socket
import sys
import threading
import types
from typing import Any

import pytest
from pyrite.core import ownership, plugins, protocol, resolver
from pyrite.core.channel import Channel, decode_result, handshake_response
from pyrite.core.client import Proxy
from pyrite.core.config import config
from pyrite.core.daemon import Daemon
from pyrite.core.errors import CommunicationError, ConnectionClosedError, NamingError, PyroError
from pyrite.core.exposure import expose
from pyrite.core.uri import URI

from tests.core.test_client_wire import Peer, make_proxy, scripted  # noqa: F401  (scripted is a fixture)
from tests.support import running

WAIT = 10.0
CORE = pathlib.Path(__file__).parents[2] / "packages" / "core" / "src" / "pyrite" / "core"


@expose
class Adder:
    def add(self, a: int, b: int) -> int:
        return a + b

    def fail(self) -> None:
        raise ValueError("no good")


@pytest.fixture(params=["thread", "multiplex"])
def daemon(request: pytest.FixtureRequest, tmp_path: pathlib.Path):
    config.SERVERTYPE = request.param
    d = Daemon(host="127.0.0.1")
    uri = d.register(Adder(), "adder")
    with running(d):
        yield d, uri
    d.close()


def handshake(channel: Channel, object_id: str = "adder") -> Any:
    ser = plugins.get_serializer("serpent")
    reply = channel.handshake(ser.serializer_id, ser.dumps({"handshake": "hello", "object": object_id}))
    return reply, ser


def test_channel_handshake_and_calls_on_a_real_daemon(daemon):
    _, uri = daemon
    channel = Channel.open(uri.location, WAIT)
    try:
        reply, ser = handshake(channel)
        assert reply.type == protocol.MSG_CONNECTOK and channel.session.handshake_done
        response = handshake_response(reply, uri.location)
        assert "add" in response["meta"]["methods"]
        result = channel.call(ser.serializer_id, ser.dumpsCall("adder", "add", (2, 3), {}))
        assert decode_result(ser, result) == 5
        with pytest.raises(ValueError, match="no good"):
            decode_result(ser, channel.call(ser.serializer_id, ser.dumpsCall("adder", "fail", (), {})))
        assert channel.session.expecting == ()
    finally:
        channel.close()


def test_channel_pipelines_requests_on_a_real_daemon(daemon):
    _, uri = daemon
    channel = Channel.open(uri.location, WAIT, seq=0xFFFE)
    try:
        _, ser = handshake(channel)
        sent = [channel.session.invoke(ser.serializer_id, ser.dumpsCall("adder", "add", (i, i), {})) for i in range(4)]
        for msg in sent:
            channel.send(msg)
        assert channel.session.expecting == (0xFFFF, 0, 1, 2)  # the 16-bit wrap
        results = [decode_result(ser, channel.receive()) for _ in sent]
        assert results == [0, 2, 4, 6]
        assert channel.session.expecting == ()
    finally:
        channel.close()


def test_channel_refused_handshake(daemon):
    _, uri = daemon
    channel, reply = Channel.connect(
        uri.location, WAIT, 1, plugins.get_serializer("serpent").dumps({"handshake": "x", "object": "nobody"})
    )
    try:
        assert reply.type == protocol.MSG_CONNECTFAIL and not channel.session.handshake_done
        with pytest.raises(CommunicationError, match="rejected"):
            handshake_response(reply, uri.location)
    finally:
        channel.close()


def test_channel_connect_failure_is_a_communication_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CommunicationError):
        Channel.connect(f"127.0.0.1:{port}", 2.0, 1, b"x")


def test_logwire_logs_both_directions(daemon, caplog):
    _, uri = daemon
    config.LOGWIRE = True
    caplog.set_level(logging.DEBUG, logger="pyrite.core.client")
    with Proxy(uri) as p:
        p._pyroTimeout = WAIT
        assert p.add(1, 1) == 2
    texts = [r.getMessage() for r in caplog.records if r.name == "pyrite.core.client"]
    for what in ("connect request out", "connect reply in", "request out", "reply in"):
        assert any(f"proxy: {what}:" in t for t in texts), what


def test_proxy_over_a_unix_socket(tmp_path):
    path = str(tmp_path / "adder.sock")
    d = Daemon(unixsocket=path)
    uri = d.register(Adder(), "adder")
    with running(d):
        with Proxy(uri) as p:
            p._pyroTimeout = WAIT
            assert p.add(2, 2) == 4
    d.close()


# ---------------------------------------------------------------------------------------- partial data


@pytest.mark.parametrize("cut", [3, 20, 45, 70])
def test_connection_closed_error_carries_what_arrived(scripted, cut):  # noqa: F811
    sent: dict[str, bytes] = {}

    def script(peer: Peer, index: int) -> None:
        peer.handshake()
        request, _ = peer.call()
        reply = protocol.SendingMessage(
            protocol.MSG_RESULT, 0, request.seq, request.serializer_id, peer.ser.dumps("x" * 100), compress=False
        ).data
        sent["reply"] = reply[:cut]
        peer.send_raw(reply[:cut])  # then hang up in the middle of the message

    p = make_proxy(scripted(script))
    with pytest.raises(ConnectionClosedError) as info:
        p.add(1, 2)
    assert info.value.partialData == sent["reply"]
    assert p._pyroConnection is None


# ---------------------------------------------------------------------------------------- serializers


def test_unknown_proxy_serializer_is_a_key_error_with_a_clear_message(daemon):
    _, uri = daemon
    p = Proxy(uri)
    p._pyroSerializer = "no-such-thing"
    with pytest.raises(KeyError) as info:
        p._pyroBind()
    assert isinstance(info.value, plugins.UnknownPluginError) and isinstance(info.value, PyroError)
    assert str(info.value).startswith("no serializer 'no-such-thing'")  # not KeyError's quoted repr
    p._pyroSerializer = None
    with p:
        assert p.add(3, 4) == 7
        p._pyroSerializer = "still-not-there"  # checked again on use
        with pytest.raises(KeyError):
            p.add(1, 1)
    with pytest.raises(KeyError):
        plugins.get_serializer_by_id(250)


# ---------------------------------------------------------------------------------------- ownership


def test_owner_ident_decision():
    def getcurrent() -> object:
        return "greenlet"

    assert ownership.owner_ident_function(False, getcurrent) is threading.get_ident
    assert ownership.owner_ident_function(True, None) is threading.get_ident
    assert ownership.owner_ident_function(True, getcurrent) is getcurrent


def test_refresh_without_gevent_uses_threads():
    assert "gevent.monkey" not in sys.modules  # gevent is not a dependency
    ownership.refresh()
    assert ownership.get_ident is threading.get_ident


def test_refresh_follows_gevents_threading_patch(monkeypatch):
    # stand-ins for what gevent leaves in sys.modules once it patched threading
    current = object()
    monkey = types.ModuleType("gevent.monkey")
    monkey.is_module_patched = lambda name: name == "threading"  # type: ignore[attr-defined]
    greenlet = types.ModuleType("greenlet")
    greenlet.getcurrent = lambda: current  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gevent.monkey", monkey)
    monkeypatch.setitem(sys.modules, "greenlet", greenlet)
    try:
        p = Proxy("PYRO:x@127.0.0.1:1")
        assert ownership.get_ident() is current
        assert p._Proxy__pyroOwnerThread is current
        monkey.is_module_patched = lambda name: False  # type: ignore[attr-defined]
        p._pyroClaimOwnership()
        assert ownership.get_ident is threading.get_ident
        assert p._Proxy__pyroOwnerThread == threading.get_ident()
    finally:
        monkeypatch.undo()
        ownership.refresh()
    assert ownership.get_ident is threading.get_ident


def test_proxy_refuses_other_threads_until_claimed(daemon):
    _, uri = daemon
    p = Proxy(uri)
    p._pyroTimeout = WAIT
    errors: list[BaseException] = []

    def other() -> None:
        try:
            p.add(1, 1)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(WAIT)
    assert errors and isinstance(errors[0], PyroError) and "belongs to thread" in str(errors[0])
    results: list[int] = []

    def claimed() -> None:
        p._pyroClaimOwnership()
        results.append(p.add(2, 2))
        p._pyroRelease()

    thread = threading.Thread(target=claimed)
    thread.start()
    thread.join(WAIT)
    assert results == [4]


# ---------------------------------------------------------------------------------------- resolver


@pytest.fixture
def name_server():
    from pyrite.nameserver import NameServerDaemon

    ns_daemon = NameServerDaemon(host="127.0.0.1", port=0)
    objects = Daemon(host="127.0.0.1")
    adder_uri = objects.register(Adder(), "adder")
    with running(ns_daemon), running(objects):
        ns_uri = URI(str(ns_daemon.uriFor(ns_daemon.nameserver)))
        with Proxy(ns_uri) as ns:
            ns.register("example.adder", adder_uri, metadata=["kind.adder"])
        yield ns_uri, adder_uri
    objects.close()
    ns_daemon.close()


def test_resolver_works_on_a_bare_channel(name_server):
    ns_uri, adder_uri = name_server
    found = resolver.locate(ns_uri.host, ns_uri.port)
    assert found.uri == ns_uri and found.channel is not None and found.reply is not None
    with resolver.NameServerChannel(found.uri, found.channel) as ns:
        assert URI(str(ns.call("lookup", "example.adder"))) == adder_uri
        with pytest.raises(NamingError):
            ns.call("lookup", "no.such.name")
        assert ns.call("ping") is None  # the channel survives a remote error
    at = f"{ns_uri.host}:{ns_uri.port}"
    assert resolver.resolve(f"PYRONAME:example.adder@{at}") == adder_uri
    assert resolver.resolve(f"PYROMETA:kind.adder@{at}") == adder_uri
    with Proxy(f"PYRONAME:example.adder@{at}") as p:
        p._pyroTimeout = WAIT
        assert p.add(5, 5) == 10


def test_locate_ns_keeps_the_connection_it_found(name_server):
    from pyrite.core.naming import locate_ns

    ns_uri, _ = name_server
    with locate_ns(ns_uri.host, ns_uri.port) as ns:
        assert ns._pyroConnection is not None and "lookup" in ns._pyroMethods
        assert ns.lookup("example.adder") is not None


def _imports(module: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = node.module or ""
            names |= {base} if base else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


def test_client_side_modules_import_no_naming_and_no_transports():
    for name in ("client", "channel", "resolver", "batch", "remote", "ownership", "session", "protocol"):
        imported = _imports(CORE / f"{name}.py")
        assert "naming" not in imported, name
        assert not any(i.startswith("pyrite.transports") for i in imported), name
    assert "callcontext" not in _imports(CORE / "protocol.py")
    assert "client" not in _imports(CORE / "batch.py")
    for path in CORE.rglob("*.py"):  # function-local imports included
        assert not any(i.startswith("pyrite.transports") for i in _imports(path)), path

"""Calls between pyrite and Pyro5 5.17, both ways, with every serializer both speak.

Each test runs for each *side* (which library is the client, which the
daemon) and each serializer (serpent, json, marshal, msgpack).  The daemons
run in threads of this process.  Set INTEROP_BASELINE=1 to add a Pyro5-to-Pyro5
side: it shows that what these tests expect is Pyro5's own behaviour.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyrite.core.config import config as pyrite_config

from . import services
from .services import Served, serve

TIMEOUT = 10.0  # every proxy gets this, so no call in these tests can hang

SIDES = [
    "pyrite-client/Pyro5-server",
    "Pyro5-client/pyrite-server",
    "Pyro5-client/pyrite-multiplex",
    "Pyro5-client/pyrite-asyncio",
]
if os.environ.get("INTEROP_BASELINE"):
    SIDES.append("Pyro5-client/Pyro5-server")


@dataclass
class Side:
    """One pairing: the client library, the server library, and a running handshake daemon."""

    label: str
    client: services.Lib
    server: services.Lib
    client_classes: Any
    server_classes: Any
    served: Served

    @property
    def daemon(self) -> Any:
        return self.served.daemon

    def proxy(self, uri: Any, *, proxy_class: Any = None) -> Any:
        """A client-library proxy for uri (given as a string, as a user would copy it)."""
        p = (proxy_class or self.client.api.Proxy)(str(uri))
        p._pyroTimeout = TIMEOUT
        return p

    def wait(self, condition: Any, what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.01)


def _libs(label: str) -> tuple[services.Lib, services.Lib]:
    client, server = label.split("/")
    as_lib = {"pyrite": services.pyrite, "Pyro5": services.pyro5}
    return as_lib[client.split("-")[0]](), as_lib[server.split("-")[0]]()


def make_daemon(lib: services.Lib, classes: Any, **kwargs: Any) -> Any:
    if "unixsocket" not in kwargs:
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", 0)
    return classes.HandshakeDaemon(**kwargs)


# What Pyro5 5.17 itself cannot do (seen between two Pyro5s, with INTEROP_BASELINE=1).
# These are strict xfails: if a Pyro5 release fixes one, the test says so.
PYRO5_CLIENT_LIMITS = {
    # the marshal serializer's dumpsCall does kwargs.items(), but attribute access and
    # batches send kwargs=None: AttributeError inside the Pyro5 client, before anything is sent
    ("marshal", "attributes"),
    ("marshal", "batch"),
    # marshal applies no type replacement to call arguments, so no autoproxy for a callback object
    ("marshal", "callbacks"),
}
PYRO5_SERVER_LIMITS = {
    # marshal applies no type replacement to results either: no autoproxy
    ("marshal", "autoproxy"),
    # marshal converts only the top level of a result: a batch result list holding an
    # exception wrapper is "unmarshallable"
    ("marshal", "batch-error"),
    # SerializedBlob.deserialized() unpacks the call payload with loads() instead of loadsCall():
    # a json call payload is a dict, so it unpacks its keys
    ("json", "blob"),
}


def pyro5_limit(request: pytest.FixtureRequest, side: Side, serializer: str, feature: str) -> None:
    """Mark the test as an expected failure when Pyro5's own side cannot do this."""
    reasons = []
    if side.client.name == "Pyro5" and (serializer, feature) in PYRO5_CLIENT_LIMITS:
        reasons.append(f"Pyro5 client with {serializer} cannot do {feature}")
    if side.server.name == "Pyro5" and (serializer, feature) in PYRO5_SERVER_LIMITS:
        reasons.append(f"Pyro5 server with {serializer} cannot do {feature}")
    if reasons:
        request.node.add_marker(pytest.mark.xfail(reason="; ".join(reasons), strict=True))


@pytest.fixture(scope="module", params=SIDES)
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    client, server = _libs(request.param)
    client_classes, server_classes = services.build(client), services.build(server)
    saved = pyrite_config.SERVERTYPE
    if request.param.endswith(("multiplex", "asyncio")):
        pyrite_config.SERVERTYPE = request.param.rsplit("-", 1)[1]
    try:
        daemon = make_daemon(server, server_classes)
    finally:
        pyrite_config.SERVERTYPE = saved
    served = serve(daemon, f"{request.param} daemon")
    yield Side(request.param, client, server, client_classes, server_classes, served)
    served.stop()


@pytest.fixture
def service(side: Side) -> Iterator[tuple[Any, Any]]:
    """A fresh Service object in the side's daemon, and its URI."""
    obj = side.server_classes.Service()
    uri = side.daemon.register(obj)
    yield obj, uri
    obj.release.set()  # frees any call still waiting inside it
    side.daemon.unregister(obj)


@pytest.fixture
def proxy(side: Side, service: tuple[Any, Any], serializer: str) -> Iterator[Any]:
    p = side.proxy(service[1])
    yield p
    p._pyroRelease()


@pytest.fixture
def client_daemon(side: Side) -> Iterator[Any]:
    """A daemon of the *client* library, for objects the server calls back."""
    served = serve(side.client.api.Daemon(host="127.0.0.1", port=0), "client-side daemon")
    yield served.daemon
    served.stop()


# --- calls and values ---------------------------------------------------------------------

VALUES = [
    0,
    42,
    -7,
    2**40,
    3.25,
    "text",
    "ünïcødé ✓",
    True,
    False,
    None,
    [1, 2, "three"],
    {"a": 1, "b": [1, 2], "c": {"nested": None}},
    [],
    {},
]


def test_call_with_values(proxy: Any) -> None:
    for value in VALUES:
        assert proxy.echo(value) == value
    assert proxy.add(2, 3) == 5
    assert proxy.add("py", "rite") == "pyrite"
    assert proxy.add([1], [2]) == [1, 2]


def test_keyword_arguments(proxy: Any) -> None:
    assert proxy.greet("bob") == "hello bob!"
    assert proxy.greet("bob", punctuation="?") == "hello bob?"
    assert proxy.greet(name="eve", punctuation=".") == "hello eve."


def test_tuples_and_sets(proxy: Any, serializer: str) -> None:
    result = proxy.echo((1, 2, 3))
    # json and msgpack have no tuple: they come back as lists, just as between two Pyro5s
    assert result == ((1, 2, 3) if serializer in ("serpent", "marshal") else [1, 2, 3])
    assert sorted(proxy.echo({3, 1, 2})) == [1, 2, 3]


@pytest.mark.parametrize("serializer", ["marshal", "msgpack"], indirect=True)
def test_bytes(proxy: Any) -> None:
    data = bytes(range(256))
    assert proxy.echo(data) == data


def test_large_value(proxy: Any) -> None:
    big = "x" * 3_000_000
    assert proxy.echo(big) == big
    items = list(range(100_000))
    assert proxy.echo(items) == items


def test_metadata(proxy: Any) -> None:
    proxy._pyroBind()
    assert {"echo", "add", "greet", "fail", "hold", "generate", "make_child", "blob", "slow"} <= proxy._pyroMethods
    assert proxy._pyroOneway == {"hold", "bump"}
    assert proxy._pyroAttrs == {"value", "readonly"}


def test_unknown_method_is_refused(proxy: Any) -> None:
    with pytest.raises(AttributeError):
        proxy.no_such_method()


# --- attributes ---------------------------------------------------------------------------


def test_attributes_get_and_set(
    side: Side, proxy: Any, service: tuple[Any, Any], request: pytest.FixtureRequest, serializer: str
) -> None:
    pyro5_limit(request, side, serializer, "attributes")
    obj, _ = service
    assert proxy.value == 1
    proxy.value = 42
    assert obj.value == 42
    assert proxy.value == 42
    assert proxy.readonly == "read only"


def test_read_only_attribute_cannot_be_set(
    side: Side, proxy: Any, request: pytest.FixtureRequest, serializer: str
) -> None:
    pyro5_limit(request, side, serializer, "attributes")
    with pytest.raises(AttributeError):
        proxy.readonly = "changed"
    assert proxy.readonly == "read only"


# --- oneway -------------------------------------------------------------------------------


def test_oneway_does_not_wait(side: Side, proxy: Any, service: tuple[Any, Any]) -> None:
    obj, _ = service
    # hold() blocks in the server until released: a call that waited would never return here
    assert proxy.hold() is None
    assert not obj.oneway_done.is_set()
    obj.release.set()
    assert obj.oneway_done.wait(TIMEOUT)


def test_oneway_calls_all_arrive(side: Side, proxy: Any, service: tuple[Any, Any]) -> None:
    obj, _ = service
    for _ in range(20):
        proxy.bump(2)
    side.wait(lambda: obj.counter == 40, "20 oneway calls")
    assert proxy.count() == 40


# --- batch --------------------------------------------------------------------------------


def test_batch(side: Side, proxy: Any, request: pytest.FixtureRequest, serializer: str) -> None:
    pyro5_limit(request, side, serializer, "batch")
    batch = side.client.api.BatchProxy(proxy)
    batch.add(1, 2)
    batch.greet("batch", punctuation="?")
    batch.echo([1, {"x": None}])
    assert list(batch()) == [3, "hello batch?", [1, {"x": None}]]


def test_batch_stops_at_the_first_error(
    side: Side, proxy: Any, service: tuple[Any, Any], request: pytest.FixtureRequest, serializer: str
) -> None:
    pyro5_limit(request, side, serializer, "batch")
    pyro5_limit(request, side, serializer, "batch-error")
    batch = side.client.api.BatchProxy(proxy)
    batch.add(1, 2)
    batch.fail("broken in a batch")
    batch.bump(100)  # never runs: the server stops the batch at the error
    results = batch()
    assert next(results) == 3
    with pytest.raises(ValueError, match="broken in a batch") as info:
        next(results)
    assert "fail" in "".join(info.value._pyroTraceback)
    assert list(results) == []
    assert proxy.count() == 0


def test_oneway_batch(
    side: Side, proxy: Any, service: tuple[Any, Any], request: pytest.FixtureRequest, serializer: str
) -> None:
    pyro5_limit(request, side, serializer, "batch")
    obj, _ = service
    batch = side.client.api.BatchProxy(proxy)
    for n in range(1, 6):
        batch.bump(n)
    assert batch(oneway=True) is None
    side.wait(lambda: obj.counter == 15, "the oneway batch")


# --- exceptions ---------------------------------------------------------------------------


def test_exception_with_remote_traceback(side: Side, proxy: Any) -> None:
    with pytest.raises(ValueError, match="^it broke$") as info:
        proxy.fail("it broke")
    remote = info.value._pyroTraceback
    assert isinstance(remote, list) and all(isinstance(line, str) for line in remote)
    text = "".join(remote)
    assert "in fail" in text and "ValueError: it broke" in text
    # the client library's formatter shows the remote part too
    formatted = "".join(side.client.errors.get_pyro_traceback(type(info.value), info.value, info.value.__traceback__))
    assert "ValueError: it broke" in formatted and "in fail" in formatted


def test_builtin_exception_types_survive(proxy: Any) -> None:
    with pytest.raises(KeyError) as info:
        proxy.fail_key()
    assert info.value.args == ("missing",)
    with pytest.raises(TypeError):
        proxy.add(1, "x")


def test_library_errors_map_to_the_client_library(side: Side, proxy: Any) -> None:
    with pytest.raises(side.client.errors.NamingError, match="no such name here") as info:
        proxy.fail_naming()
    assert type(info.value) is side.client.errors.NamingError
    assert "fail_naming" in "".join(info.value._pyroTraceback)


def test_connection_survives_exceptions(proxy: Any) -> None:
    for _ in range(3):
        with pytest.raises(ValueError):
            proxy.fail("again")
    assert proxy.add(1, 1) == 2


# --- streaming ----------------------------------------------------------------------------


def test_remote_generator(proxy: Any) -> None:
    assert list(proxy.generate(5)) == [0, 10, 20, 30, 40]
    assert list(proxy.generate(0)) == []
    assert list(proxy.iterator(["a", "b"])) == ["a", "b"]


def test_remote_generator_closed_early(proxy: Any) -> None:
    stream = proxy.endless()
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    stream.close()
    # the proxy is still usable, and a new stream starts over
    assert proxy.add(1, 2) == 3
    again = proxy.endless()
    assert next(again) == 0
    again.close()


def test_two_streams_interleaved(proxy: Any) -> None:
    first, second = proxy.generate(3), proxy.generate(3)
    assert [next(first), next(second), next(first), next(second)] == [0, 0, 10, 10]
    assert list(first) == [20] and list(second) == [20]


# --- autoproxy, proxies and URIs as values ------------------------------------------------


def test_autoproxy(side: Side, proxy: Any, request: pytest.FixtureRequest, serializer: str) -> None:
    pyro5_limit(request, side, serializer, "autoproxy")
    child = proxy.make_child("junior")
    assert isinstance(child, side.client.api.Proxy)
    with child:
        child._pyroTimeout = TIMEOUT
        assert child.whoami() == "child junior"
        assert child._pyroUri.host == "127.0.0.1"


def test_proxy_and_uri_travel_as_values(side: Side, proxy: Any, service: tuple[Any, Any]) -> None:
    uri = side.client.api.URI(str(service[1]))
    back = proxy.echo(uri)
    assert isinstance(back, side.client.api.URI) and back == uri
    other = side.proxy(service[1])
    returned = proxy.echo(other)
    assert isinstance(returned, side.client.api.Proxy)
    assert returned._pyroUri == uri
    with returned:
        returned._pyroTimeout = TIMEOUT
        assert returned.add(20, 22) == 42
    other._pyroRelease()


# --- SerializedBlob -----------------------------------------------------------------------


def test_serialized_blob(side: Side, proxy: Any, request: pytest.FixtureRequest, serializer: str) -> None:
    pyro5_limit(request, side, serializer, "blob")
    # the data travels as the call's positional arguments (Pyro5's layout), so it is a sequence
    data = ["text", 42, {"numbers": [1, 2, 3]}]
    blob = side.client.api.SerializedBlob("some info", data)
    assert proxy.blob(blob) == ["SerializedBlob", "some info", data]


# --- call context: correlation id ---------------------------------------------------------


def test_correlation_id_arrives(side: Side, proxy: Any) -> None:
    context = side.client.api.current_context
    cid = uuid.uuid4()
    context.correlation_id = cid
    try:
        assert proxy.correlation() == str(cid)
        other = uuid.uuid4()
        context.correlation_id = other
        assert proxy.correlation() == str(other)
    finally:
        context.correlation_id = None


# --- handshake ----------------------------------------------------------------------------


def _recording_proxy_class(side: Side, received: list[Any]) -> type:
    class RecordingProxy(side.client.api.Proxy):  # type: ignore[name-defined,misc]
        def _pyroValidateHandshake(self, response: Any) -> None:
            received.append(response)

    return RecordingProxy


def test_custom_handshake_accepted(side: Side, service: tuple[Any, Any], serializer: str) -> None:
    received: list[Any] = []
    p = side.proxy(service[1], proxy_class=_recording_proxy_class(side, received))
    p._pyroHandshake = {"user": "alice", "password": "secret"}
    with p:
        assert p.add(1, 1) == 2
    assert received == [{"welcome": "alice"}]
    assert side.daemon.handshakes[-1] == {"user": "alice", "password": "secret"}


def test_default_handshake(side: Side, service: tuple[Any, Any], serializer: str) -> None:
    received: list[Any] = []
    with side.proxy(service[1], proxy_class=_recording_proxy_class(side, received)) as p:
        p._pyroBind()
    assert received == ["hello"]
    assert side.daemon.handshakes[-1] == "hello"


def test_handshake_refused(side: Side, service: tuple[Any, Any], serializer: str) -> None:
    p = side.proxy(service[1])
    p._pyroHandshake = {"user": "mallory", "password": "guess"}
    with pytest.raises(side.client.errors.CommunicationError, match="wrong password"):
        p.add(1, 1)
    p._pyroRelease()
    # the daemon is fine, and so is the next client
    with side.proxy(service[1]) as ok:
        assert ok.add(1, 1) == 2


# --- timeouts -----------------------------------------------------------------------------


def test_call_timeout(side: Side, proxy: Any, service: tuple[Any, Any]) -> None:
    obj, _ = service
    proxy._pyroTimeout = 0.3
    with pytest.raises(side.client.errors.TimeoutError):
        proxy.slow()
    obj.release.set()
    # a proxy that timed out reconnects on its next call
    proxy._pyroTimeout = TIMEOUT
    assert proxy.add(2, 2) == 4


# --- callbacks ----------------------------------------------------------------------------


def test_callbacks_into_the_client(
    side: Side, proxy: Any, client_daemon: Any, request: pytest.FixtureRequest, serializer: str
) -> None:
    pyro5_limit(request, side, serializer, "callbacks")
    listener = side.client_classes.Listener()
    client_daemon.register(listener)
    assert proxy.call_back(listener, 3) == ["got 0", "got 1", "got 2"]
    assert listener.seen == [0, 1, 2]
    assert proxy.call_back_failing(listener) == "caught ZeroDivisionError"


# --- unix sockets -------------------------------------------------------------------------


def test_unix_socket(side: Side, serializer: str, tmp_path: Path) -> None:
    path = tmp_path / "interop.sock"
    daemon = make_daemon(side.server, side.server_classes, unixsocket=str(path))
    served = serve(daemon, "unix daemon")
    try:
        uri = daemon.register(side.server_classes.Service(), "unix.service")
        assert str(uri) == f"PYRO:unix.service@./u:{path}"
        with side.proxy(uri) as p:
            assert p.add(40, 2) == 42
            assert list(p.generate(3)) == [0, 10, 20]
            with pytest.raises(ValueError):
                p.fail("over unix")
    finally:
        served.stop()


# --- the daemon object --------------------------------------------------------------------


def test_daemon_object(side: Side, service: tuple[Any, Any], serializer: str) -> None:
    obj, uri = service
    with side.proxy(f"PYRO:Pyro.Daemon@{side.daemon.locationStr}") as d:
        assert d.ping() is None
        registered = d.registered()
        assert uri.object in registered and "Pyro.Daemon" in registered
        meta = d.get_metadata(uri.object)
        assert set(meta["oneway"]) == {"hold", "bump"}
        assert set(meta["attrs"]) == {"value", "readonly"}
        assert "echo" in set(meta["methods"])
        assert isinstance(d.info(), str)

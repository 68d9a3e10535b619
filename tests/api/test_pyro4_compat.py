"""pyrite.compatibility.Pyro4: Pyro5's Pyro4 layer, name for name, on real loopback sockets."""

from __future__ import annotations

import socket
import sys
import threading

import Pyro5.compatibility.Pyro4 as pyro5_layer  # imported first: ours must win sys.modules["Pyro4"]
import pytest
from pyrite.compatibility import Pyro4
from pyrite.core import errors
from pyrite.core.config import config
from pyrite.nameserver import start_ns

WAIT = 10.0


@Pyro4.expose
class Thing:
    def hello(self, name):
        return f"hello, {name}"

    def fail(self):
        raise KeyError("no such key here")

    @Pyro4.oneway
    def fire(self):
        pass


@pytest.fixture(scope="module")
def served():
    ns_uri, ns_daemon, _ = start_ns("127.0.0.1", port=0, enableBroadcast=False)
    daemon = Pyro4.Daemon(host="127.0.0.1")
    uri = daemon.register(Thing, "thing")
    ns_daemon.nameserver.register("compat.thing", uri)
    threads = [threading.Thread(target=d.requestLoop, daemon=True) for d in (daemon, ns_daemon)]
    for t in threads:
        t.start()
    try:
        yield uri, ns_uri
    finally:
        for d in (daemon, ns_daemon):
            d.shutdown()
        for t in threads:
            t.join(WAIT)
        for d in (daemon, ns_daemon):
            d.close()
        assert not any(t.is_alive() for t in threads)


def _public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_every_name_of_pyro5s_layer():
    assert _public(pyro5_layer) - {"api", "ipaddress", "sys", "socketutil_pyro5", "serializers", "Configuration"} <= (
        _public(Pyro4)
    )
    assert set(pyro5_layer.__all__) == set(Pyro4.__all__)
    for name in ("util", "socketutil", "constants"):
        assert _public(getattr(pyro5_layer, name)) <= _public(getattr(Pyro4, name)), name
    assert Pyro4.constants.PROTOCOL_VERSION == pyro5_layer.constants.PROTOCOL_VERSION
    assert Pyro4.constants.DAEMON_NAME == pyro5_layer.constants.DAEMON_NAME
    assert Pyro4.constants.NAMESERVER_NAME == pyro5_layer.constants.NAMESERVER_NAME


def test_import_pyro4_gives_the_layer():
    import Pyro4 as imported  # noqa: I001  (resolved through sys.modules)
    from Pyro4 import Proxy  # type: ignore[import-not-found]

    assert imported is Pyro4 and Proxy is Pyro4.Proxy
    assert sys.modules["Pyro4.errors"] is errors
    assert sys.modules["Pyro4.util"] is Pyro4.util and sys.modules["Pyro4.socketutil"] is Pyro4.socketutil


def test_calls_through_pyro4_names(served):
    uri, ns_uri = served
    assert issubclass(Pyro4.URI, type(uri)) and str(Pyro4.URI(str(uri))) == str(uri)
    with Pyro4.Proxy(uri) as proxy:
        proxy._pyroTimeout = WAIT
        assert proxy.hello("Pyro4") == "hello, Pyro4"
        assert proxy.fire() is None
        with pytest.raises(KeyError) as info:
            proxy.fail()
        lines = Pyro4.util.getPyroTraceback(type(info.value), info.value, info.value.__traceback__)
        assert any("Remote traceback" in line for line in lines) and any("no such key" in line for line in lines)
        assert Pyro4.util.formatTraceback(type(info.value), info.value, info.value.__traceback__)
        with Pyro4.batch(proxy) as b:
            b.hello("one")
            b.hello("two")
            assert list(b()) == ["hello, one", "hello, two"]
        with pytest.raises(NotImplementedError, match="asynchronous"):
            Pyro4.batch(proxy)(asynchronous=True)
    ns = Pyro4.locateNS(ns_uri.host, ns_uri.port)
    with ns:
        assert ns.lookup("compat.thing") == uri
    resolved_uri = Pyro4.resolve(f"PYRONAME:compat.thing@127.0.0.1:{ns_uri.port}")
    assert str(resolved_uri) == str(uri)
    with Pyro4.Proxy(f"PYRONAME:compat.thing@127.0.0.1:{ns_uri.port}") as by_name:
        by_name._pyroTimeout = WAIT
        assert by_name.hello("name") == "hello, name"


def test_removed_pyro4_features_say_so():
    proxy = Pyro4.Proxy("PYRO:x@127.0.0.1:1")
    with pytest.raises(NotImplementedError, match="asynchronous"):
        proxy._pyroAsync()
    with pytest.raises(NotImplementedError, match="HMAC"):
        proxy._pyroHmacKey  # noqa: B018
    with pytest.raises(NotImplementedError, match="HMAC"):
        proxy._pyroHmacKey = b"secret"
    proxy._pyroTimeout = 1.5  # other proxy settings still work
    assert proxy._pyroTimeout == 1.5
    with pytest.raises(NotImplementedError):
        Pyro4.asyncproxy(proxy)
    with pytest.raises(NotImplementedError, match="concurrent.futures"):
        Pyro4.Future(lambda: 1)
    with pytest.raises(NotImplementedError, match="HMAC"):
        Pyro4.locateNS(hmac_key=b"k")
    with pytest.raises(NotImplementedError, match="HMAC"):
        Pyro4.resolve("PYRONAME:x", hmac_key=b"k")
    for module in (Pyro4.core, Pyro4.naming, Pyro4.message):
        with pytest.raises(NotImplementedError, match="Pyro4.Proxy"):
            module.Proxy  # noqa: B018


def test_config_is_pyrites_config_with_asdict():
    Pyro4.config.COMMTIMEOUT = 4.5
    assert config.COMMTIMEOUT == 4.5 and Pyro4.config.COMMTIMEOUT == 4.5
    assert Pyro4.config.asDict() == config.as_dict()
    assert "SERIALIZER" in dir(Pyro4.config)
    with pytest.raises(AttributeError):
        Pyro4.config.NO_SUCH_ITEM = 1


def test_socketutil_camel_case_names():
    su = Pyro4.socketutil
    assert su.getIpVersion("127.0.0.1") == 4 and su.getIpVersion("::1") == 6
    assert su.getIpAddress("127.0.0.1") == "127.0.0.1"
    assert su.getIpAddress("localhost", ipVersion=4) == "127.0.0.1"
    assert su.getInterfaceAddress("127.0.0.1") == "127.0.0.1"
    listener = su.createSocket(bind=("127.0.0.1", 0), timeout=WAIT)
    with listener:
        client = su.createSocket(connect=listener.getsockname(), timeout=WAIT)
        with client:
            conn, _ = listener.accept()
            with conn:
                su.sendData(client, b"pyro4")
                assert su.receiveData(conn, 5) == b"pyro4"
    with su.createBroadcastSocket(bind=("127.0.0.1", 0), timeout=WAIT) as bc:
        assert bc.type == socket.SOCK_DGRAM


def test_stand_in_modules_survive_introspection():
    # tools that walk sys.modules (hypothesis, debuggers) look for __file__ and friends
    import types

    for name in ("Pyro4.core", "Pyro4.naming", "Pyro4.message", "Pyro4.util", "Pyro4.socketutil", "Pyro4.constants"):
        module = sys.modules[name]
        assert isinstance(module, types.ModuleType) and module.__name__ == name
        assert getattr(module, "__file__", None) is None

"""pyrite.core.uri.URI: parsing, printing, equality, state; compared with Pyro5's URI."""

from __future__ import annotations

import copy
import pickle

import Pyro5.core
import Pyro5.errors
import pytest
from pyrite.core.config import config
from pyrite.core.errors import PyroError
from pyrite.core.uri import DAEMON_NAME, NAMESERVER_NAME, URI

SAME_AS_PYRO5 = [
    "PYRO:obj@localhost:9999",
    "pyro:obj@localhost:9999",
    "PyRo:some.object.id@host.example.com:1",
    "PYRO:obj@127.0.0.1:0",
    "PYRO:obj@[::1]:4444",
    "PYRO:obj@[fe80::1%2]:4444",
    "PYRO:obj@./u:/tmp/pyrite.sock",
    "PYRO:obj@./u:sockname",
    "PYRONAME:some.name",
    "pyroname:some.name@nshost",
    "PYRONAME:some.name@nshost:7777",
    "PYRONAME:some.name@[::1]:7777",
    "PYRONAME:some.name@./u:/tmp/ns.sock",
    "PYRO:obj@host:65535",
]


@pytest.mark.parametrize("text", SAME_AS_PYRO5)
def test_state_and_str_match_pyro5(text):
    ours, theirs = URI(text), Pyro5.core.URI(text)
    assert ours.__getstate__() == theirs.__getstate__()
    assert str(ours) == str(theirs)
    assert ours.location == theirs.location


def test_pyrometa_matches_pyro5():
    ours, theirs = URI("PYROMETA:b.tag,a.tag@nshost"), Pyro5.core.URI("PYROMETA:b.tag,a.tag@nshost")
    assert ours.object == theirs.object == {"a.tag", "b.tag"}
    assert ours.__getstate__() == theirs.__getstate__()
    assert str(ours) == "PYROMETA:a.tag,b.tag@nshost:9090"  # sorted: the same set prints the same
    assert ours.port == config.NS_PORT


def test_parts():
    uri = URI("pyro:thing@example.com:1234")
    assert (uri.protocol, uri.object, uri.host, uri.port, uri.sockname) == ("PYRO", "thing", "example.com", 1234, None)
    assert uri.location == "example.com:1234"
    uri = URI("PYRO:thing@[2001:db8::7]:5")
    assert (uri.host, uri.port, uri.location) == ("2001:db8::7", 5, "[2001:db8::7]:5")
    uri = URI("PYRO:thing@./u:/run/x.sock")
    assert (uri.sockname, uri.host, uri.port, uri.location) == ("/run/x.sock", None, None, "./u:/run/x.sock")
    uri = URI("PYRONAME:thing")
    assert (uri.host, uri.port, uri.location) == (None, None, None)
    assert str(uri) == "PYRONAME:thing"


def test_default_nameserver_port_follows_config():
    config.NS_PORT = 12345
    assert URI("PYRONAME:x@nshost").port == 12345
    assert URI("PYROMETA:x@nshost").port == 12345


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "obj@host:1",
        "PYRO:",
        "PYRO:obj",
        "PYRO:obj@",
        "FOO:obj@host:1",
        "PYROX:obj@host:1",
        "PYRO:obj@host:port",
        "PYRO:obj@host:-1",
        "PYRO:obj@host:65536",
        "PYRO:obj@host:99999999",
        "PYRO:obj@[[::1]]:1",
        "PYRO:obj@[not-ipv6]:1",
        "PYRO:obj@./u:",
        "PYRO:obj@./u:a:b",
        "PYRO:o b@host:1",
        "PYROMETA:a, b",
        "PYRO:obj@[fe80::1%eth0]:1",
    ],
)
def test_invalid_uris(bad):
    with pytest.raises(PyroError):
        URI(bad)


@pytest.mark.parametrize("bad", [None, 42, b"PYRO:obj@host:1", ["PYRO:obj@host:1"]])
def test_wrong_type(bad):
    with pytest.raises(TypeError):
        URI(bad)


def test_copy_constructor_equality_and_hash():
    a = URI("PYRO:obj@host:1")
    b = URI(a)
    assert a == b and not a != b and hash(a) == hash(b) and a is not b
    assert a != URI("PYRO:obj@host:2")
    assert a != "PYRO:obj@host:1"
    assert URI("pyro:obj@host:1") == URI("PYRO:obj@host:1")
    meta1, meta2 = URI("PYROMETA:a,b"), URI("PYROMETA:b,a")
    assert meta1 == meta2 and hash(meta1) == hash(meta2)
    assert len({a, b, meta1, meta2}) == 2


def test_state_roundtrip_copy_and_pickle():
    uri = URI("PYRO:obj@[::1]:99")
    state = uri.__getstate__()
    assert state == ("PYRO", "obj", None, "::1", 99)
    other = URI.__new__(URI)
    other.__setstate__(state)
    assert other == uri
    assert copy.copy(uri) == uri and copy.deepcopy(uri) == uri
    assert pickle.loads(pickle.dumps(uri)) == uri


def test_repr_and_unix_location_check():
    uri = URI("PYRO:obj@host:1")
    assert "PYRO:obj@host:1" in repr(uri)
    assert URI.isUnixsockLocation("./u:/tmp/x")
    assert not URI.isUnixsockLocation("host:1")


def test_well_known_names():
    assert DAEMON_NAME == Pyro5.core.DAEMON_NAME == "Pyro.Daemon"
    assert NAMESERVER_NAME == Pyro5.core.NAMESERVER_NAME == "Pyro.NameServer"


@pytest.mark.parametrize("text", ["PYRO:x@hostname", "PYRO:x@hostname:", "PYRO:x@[::1]", "PYRO:x@127.0.0.1"])
def test_pyro_uri_without_port_is_refused_like_pyro5(text):
    with pytest.raises(Pyro5.errors.PyroError):
        Pyro5.core.URI(text)
    with pytest.raises(PyroError, match="port"):
        URI(text)

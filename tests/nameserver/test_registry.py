"""The NameServer object, called directly, on both storages."""

from __future__ import annotations

import threading
import time

import pytest
from pyrite.core.errors import NamingError, PyroError
from pyrite.core.uri import NAMESERVER_NAME, URI
from pyrite.nameserver import regexmatch
from pyrite.nameserver.registry import NameServer
from pyrite.nameserver.storage import MemoryStorage, SqlStorage


@pytest.fixture(params=["memory", "sql"])
def ns(request, tmp_path):
    store = MemoryStorage() if request.param == "memory" else SqlStorage(str(tmp_path / "ns.sqlite"))
    yield NameServer(store)
    store.close()


def test_register_and_lookup(ns):
    ns.ping()
    ns.register("test.object1", "PYRO:000000@host.com:4444")
    ns.register("test.object2", URI("PYRO:222222@host.com:4444"))
    assert ns.lookup("test.object1") == URI("PYRO:000000@host.com:4444")
    assert isinstance(ns.lookup("test.object2"), URI)
    ns.register("test.object1", "PYRO:111111@host.com:4444")  # overwriting is the default
    assert str(ns.lookup("test.object1")) == "PYRO:111111@host.com:4444"
    with pytest.raises(NamingError, match=r"name is taken: test\.object1"):
        ns.register("test.object1", "PYRO:X@Y:5555", safe=True)
    assert str(ns.lookup("test.object1")) == "PYRO:111111@host.com:4444"
    with pytest.raises(NamingError, match="name not registered: nope"):
        ns.lookup("nope")
    assert ns.count() == 2
    # PYRONAME uris may be registered too (an alias), as in Pyro5
    ns.register("alias", "PYRONAME:test.object1")
    assert ns.lookup("alias").protocol == "PYRONAME"


@pytest.mark.parametrize(
    "name, uri, error",
    [
        (None, None, TypeError),
        (4444, 4444, TypeError),
        ("test.wrongtype", 4444, TypeError),
        (4444, "PYRO:X@Y:5555", TypeError),
        (["list"], "PYRO:X@Y:5555", TypeError),
        ("test.nonuri", "THISVALUEISNOTANURI", PyroError),
    ],
)
def test_register_refuses_bad_input(ns, name, uri, error):
    with pytest.raises(error):
        ns.register(name, uri)
    assert ns.count() == 0


@pytest.mark.parametrize("metadata", [12345, "string", b"bytes", [1, 2], [["unhashable"]], {"ok", 5}])
def test_register_refuses_bad_metadata(ns, metadata):
    with pytest.raises(TypeError):
        ns.register("meta1", "PYRO:meta1@localhost:1111", metadata=metadata)
    assert ns.count() == 0


def test_lookup_refuses_non_str(ns):
    with pytest.raises(TypeError):
        ns.lookup(5)
    with pytest.raises(TypeError):
        ns.lookup(["x"])


def test_metadata(ns):
    ns.register("meta1", "PYRO:meta1@localhost:1111", metadata={"a", "b", "c"})
    ns.register("meta2", "PYRO:meta2@localhost:2222", metadata=("x", "y", "z"))
    ns.register("meta3", "PYRO:meta3@localhost:3333", metadata=["p", "q", "r", "r", "q"])
    ns.register("plain", "PYRO:plain@localhost:4444")
    uri, meta = ns.lookup("meta3", return_metadata=True)
    assert uri.object == "meta3" and meta == {"p", "q", "r"} and isinstance(meta, set)
    assert ns.lookup("plain", return_metadata=True)[1] == set()
    assert ns.list() == {
        "meta1": "PYRO:meta1@localhost:1111",
        "meta2": "PYRO:meta2@localhost:2222",
        "meta3": "PYRO:meta3@localhost:3333",
        "plain": "PYRO:plain@localhost:4444",
    }
    full = ns.list(return_metadata=True)
    assert full["meta1"] == ("PYRO:meta1@localhost:1111", {"a", "b", "c"})
    assert full["plain"] == ("PYRO:plain@localhost:4444", set())
    assert all(type(meta) is set for _, meta in full.values())

    assert ns.yplookup(meta_all={"a", "c"}, return_metadata=False) == {"meta1": "PYRO:meta1@localhost:1111"}
    assert ns.yplookup(meta_all={"a", "c"}) == {"meta1": ("PYRO:meta1@localhost:1111", {"a", "b", "c"})}
    assert ns.yplookup(meta_all={"a", "wrong"}) == {}
    assert ns.yplookup(meta_all={"a", "c", "x"}) == {}
    assert ns.yplookup(meta_any={"1", "2", "3"}) == {}
    assert set(ns.yplookup(meta_any=["1", "a", "z"])) == {"meta1", "meta2"}
    assert ns.yplookup() == {}

    with pytest.raises(NamingError):
        ns.set_metadata("notexistingname", set())
    ns.set_metadata("meta1", ["one", "two", "two"])
    assert ns.lookup("meta1", return_metadata=True)[1] == {"one", "two"}
    ns.set_metadata("meta1", None)
    assert ns.lookup("meta1", return_metadata=True)[1] == set()
    assert str(ns.lookup("meta1")) == "PYRO:meta1@localhost:1111"  # the uri is untouched
    with pytest.raises(TypeError):
        ns.set_metadata("meta2", "string")
    assert ns.list(prefix="meta", return_metadata=True)["meta2"][1] == {"x", "y", "z"}
    assert ns.list(regex="meta2.*", return_metadata=True) == {"meta2": ("PYRO:meta2@localhost:2222", {"x", "y", "z"})}


@pytest.mark.parametrize(
    "kwargs", [{"meta_all": 12345}, {"meta_all": "string"}, {"meta_any": 12345}, {"meta_any": "string"}]
)
def test_yplookup_refuses_bad_types(ns, kwargs):
    with pytest.raises(TypeError):
        ns.yplookup(**kwargs)


def test_one_filter_at_a_time(ns):
    with pytest.raises(ValueError):
        ns.list(prefix="a", regex="a")
    with pytest.raises(ValueError):
        ns.yplookup(meta_any={"a"}, meta_all={"a"})


def test_list_filters(ns):
    for name in (
        "test.objects.1",
        "test.objects.2",
        "test.objects.3",
        "test.other.a",
        "test.other.b",
        "test.other.c",
        "entirely.else",
    ):
        ns.register(name, "PYRONAME:" + name)
    assert len(ns.list()) == 7
    assert ns.list(prefix="nothing") == {}
    assert len(ns.list(prefix="test.")) == 6
    objects = ns.list(regex=r".+other..")
    assert set(objects) == {"test.other.a", "test.other.b", "test.other.c"}
    assert objects["test.other.a"] == "PYRONAME:test.other.a"
    assert ns.list(regex=r"\d\d\d\d\d\d\d\d\d\d") == {}
    assert set(ns.list(regex="test.o(bjects|ther).[13a]")) == {"test.objects.1", "test.objects.3", "test.other.a"}
    with pytest.raises(NamingError, match="invalid regex"):
        ns.list(regex="((((((broken")
    with pytest.raises(TypeError):
        ns.list(prefix=5)


def test_remove(ns):
    ns.register(NAMESERVER_NAME, "PYRO:nameserver@host:555")
    ns.register("keep.me", "PYRO:keep@host:555")  # so no step below removes every name (issue 8)
    for i in range(20):
        ns.register(f"test.{i}", "PYRO:obj@host:555")
    assert len(ns.list()) == 22
    assert ns.remove() == 0
    assert ns.remove("wrong") == 0
    assert ns.remove(prefix="wrong") == 0
    assert ns.remove(regex="wrong.*") == 0
    assert ns.remove("test.0") == 1
    assert ns.remove("test.0") == 0
    assert ns.remove(prefix="test.1") == 11  # 1 and 10-19
    assert ns.remove(regex=r"test\..") == 8  # 2-9
    assert sorted(ns.list()) == [NAMESERVER_NAME, "keep.me"]


def test_remove_never_removes_the_name_server(ns):
    ns.register(NAMESERVER_NAME, "PYRO:nameserver@host:555")
    ns.register("other", "PYRO:x@host:555")
    assert ns.remove(NAMESERVER_NAME) == 0
    assert ns.remove(prefix="Pyro") == 0
    assert ns.remove(regex="Pyro.*") == 0
    assert ns.remove(NAMESERVER_NAME, everything=True) == 0
    assert ns.remove(everything=True) == 1
    assert list(ns.list()) == [NAMESERVER_NAME]


@pytest.mark.parametrize("pattern", [".*", "", "(x)?", "a*", "(?s).*", "(|a)", ".*?"])
def test_remove_all_needs_everything_flag(ns, pattern):
    for i in range(5):
        ns.register(f"svc.{i}", "PYRO:obj@host:555")
    if pattern == "":
        assert ns.remove(regex=pattern) == 0  # an empty filter is no filter (Pyro5)
    else:
        with pytest.raises(NamingError, match="everything=True"):
            ns.remove(regex=pattern)
    assert ns.count() == 5
    assert ns.remove(prefix="") == 0  # likewise an empty prefix removes nothing
    assert ns.count() == 5
    assert ns.remove(regex=pattern, everything=True) == 5
    assert ns.count() == 0


def test_remove_everything_alone(ns):
    for i in range(3):
        ns.register(f"svc.{i}", "PYRO:obj@host:555")
    assert ns.remove(everything=True) == 3
    assert ns.count() == 0


def test_remove_while_another_thread_deletes(ns):
    ns.register("testkey", "PYRO:obj@host:555")
    outcome = []
    ns.lock.acquire()
    t = threading.Thread(target=lambda: outcome.append(ns.remove("testkey")))
    t.start()
    time.sleep(0.1)
    del ns.storage["testkey"]  # vanishes while the remover waits for the lock
    ns.lock.release()
    t.join(timeout=10)
    assert outcome == [0]


def test_unicode_names(ns):
    uri = URI("PYRO:unicode\u20ac@host:5555")
    ns.register("unicodename\u20ac", uri)
    assert ns.lookup("unicodename\u20ac") == uri
    assert ns.list(regex="unicode.*\u20ac") == {"unicodename\u20ac": str(uri)}


def test_slow_regex_does_not_block_lookups(ns, monkeypatch):
    monkeypatch.setattr(regexmatch, "TIMEOUT", 3.0)
    ns.register("victim", "PYRO:x@h:1")
    ns.register("a" * 40 + "!", "PYRO:y@h:1")
    failure = []

    def hostile():
        try:
            ns.list(regex="(a+)+$")
        except NamingError as exc:
            failure.append(exc)

    t = threading.Thread(target=hostile)
    t.start()
    time.sleep(0.3)  # let it get going
    done_while_busy = 0
    for i in range(50):
        assert str(ns.lookup("victim")) == "PYRO:x@h:1"
        ns.register(f"meanwhile.{i}", "PYRO:z@h:1")
        if t.is_alive():
            done_while_busy += 1
    t.join(timeout=20)
    assert not t.is_alive()
    assert failure and "took longer" in str(failure[0])
    # every call above finished while the hostile regex was still being matched
    assert done_while_busy == 50


def test_regex_refusals(ns, monkeypatch):
    ns.register("x", "PYRO:x@h:1")
    with pytest.raises(NamingError, match="longer than"):
        ns.list(regex="a" * (regexmatch.MAX_PATTERN_LENGTH + 1))
    with pytest.raises(NamingError, match="invalid regex"):
        ns.remove(regex="(unclosed")
    with pytest.raises(TypeError):
        ns.list(regex=5)
    assert ns.count() == 1


LONE = "bad\ud800name"  # a JSON or serpent peer can send this; no storage can encode it


@pytest.mark.parametrize(
    "call",
    [
        lambda ns: ns.register(LONE, "PYRO:X@Y:5555"),
        lambda ns: ns.register("ok", "PYRO:X\ud800@Y:5555"),
        lambda ns: ns.register("ok", "PYRO:X@Y:5555", metadata={LONE}),
        lambda ns: ns.lookup(LONE),
        lambda ns: ns.remove(LONE),
        lambda ns: ns.remove(prefix=LONE),
        lambda ns: ns.list(prefix=LONE),
        lambda ns: ns.set_metadata(LONE, {"a"}),
        lambda ns: ns.yplookup(meta_all={LONE}),
        lambda ns: ns.yplookup(meta_any={LONE}),
    ],
)
def test_lone_surrogates_are_a_naming_error_on_every_storage(ns, call):
    ns.register("keep", "PYRO:keep@host:1", metadata={"a"})
    with pytest.raises(NamingError, match="lone surrogate"):
        call(ns)
    assert ns.list() == {"keep": "PYRO:keep@host:1"}
    assert ns.lookup("keep", return_metadata=True)[1] == {"a"}

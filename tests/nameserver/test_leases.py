"""Leases (ttl) and replica sets on every storage: memory, sqlite, and Redis (a real valkey-server)."""

from __future__ import annotations

import time

import pytest
from pyrite.core.errors import NamingError
from pyrite.core.uri import URI
from pyrite.nameserver.registry import NameServer
from pyrite.nameserver.storages import open_storage

TTL = 0.8  # long enough that a busy machine still renews in time


@pytest.fixture(params=["memory", "sql", "redis"])
def ns(request, tmp_path):
    if request.param == "memory":
        spec = "memory"
    elif request.param == "sql":
        spec = f"sql:{tmp_path / 'ns.sqlite'}"
    else:
        spec = request.getfixturevalue("redis_url")
    store = open_storage(spec)
    yield NameServer(store)
    store.close()


def gone(ns, name, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name not in ns.list():
            return True
        time.sleep(0.02)
    return False


def test_a_lease_expires_unless_renewed(ns):
    ns.register("leased", "PYRO:a@h:1", ttl=TTL)
    ns.register("forever", "PYRO:b@h:1")
    assert str(ns.lookup("leased")) == "PYRO:a@h:1"
    for _ in range(4):  # renewing in time keeps it
        time.sleep(TTL / 2)
        ns.register("leased", "PYRO:a@h:1", ttl=TTL)
    assert "leased" in ns.list()
    started = time.monotonic()
    assert gone(ns, "leased")
    assert time.monotonic() - started < TTL + 1.0
    with pytest.raises(NamingError, match="not registered"):
        ns.lookup("leased")
    assert ns.list() == {"forever": "PYRO:b@h:1"}
    assert ns.count() == 1
    assert ns.yplookup(meta_any=["x"]) == {}


def test_expired_names_leave_the_metadata_index(ns):
    ns.register("tagged", "PYRO:a@h:1", metadata={"printer"}, ttl=TTL)
    assert list(ns.yplookup(meta_all=["printer"])) == ["tagged"]
    assert gone(ns, "tagged")
    assert ns.yplookup(meta_all=["printer"]) == {}
    assert ns.yplookup(meta_any=["printer"]) == {}
    ns.register("tagged", "PYRO:b@h:1")  # the name comes back without the old tags
    assert ns.yplookup(meta_any=["printer"]) == {}
    assert ns.lookup("tagged", return_metadata=True) == (URI("PYRO:b@h:1"), set())


def test_a_plain_registration_replaces_a_lease(ns):
    ns.register("x", "PYRO:a@h:1", ttl=TTL)
    ns.register("x", "PYRO:b@h:1")
    time.sleep(TTL + 0.2)
    assert str(ns.lookup("x")) == "PYRO:b@h:1"


def test_safe_refuses_a_live_lease_but_not_an_expired_one(ns):
    ns.register("x", "PYRO:a@h:1", ttl=TTL)
    with pytest.raises(NamingError, match="taken"):
        ns.register("x", "PYRO:b@h:1", safe=True)
    assert gone(ns, "x")
    ns.register("x", "PYRO:b@h:1", safe=True)
    assert str(ns.lookup("x")) == "PYRO:b@h:1"


def test_replica_set_rotates_and_lists(ns):
    uris = [f"PYRO:r{i}@h:{i + 1}" for i in range(3)]
    for uri in uris:
        ns.register("svc", uri, replica=True, metadata={"kind:svc"})
    assert sorted(str(u) for u in ns.replicas("svc")) == sorted(uris)
    seen = [str(ns.lookup("svc")) for _ in range(6)]
    assert sorted(set(seen)) == sorted(uris)  # every replica is handed out
    assert seen[:3] != [seen[0]] * 3  # in turn, not always the first
    assert ns.list()["svc"] in uris  # one URI per name, as Pyro5's list() shows it
    assert ns.replica_sets() == {"svc": ns.replica_sets()["svc"]}
    assert sorted(ns.replica_sets()["svc"]) == sorted(uris)
    assert ns.replica_sets(prefix="nope") == {}
    found = {ns.yplookup(meta_all=["kind:svc"], return_metadata=False)["svc"] for _ in range(6)}
    assert found == set(uris)  # yellow pages hand out the replicas too
    uri, meta = ns.lookup("svc", return_metadata=True)
    assert str(uri) in uris and meta == {"kind:svc"}


def test_replicas_expire_one_by_one(ns):
    ns.register("svc", "PYRO:stay@h:1", replica=True, ttl=30)
    ns.register("svc", "PYRO:go@h:2", replica=True, ttl=TTL)
    assert len(ns.replicas("svc")) == 2
    deadline = time.monotonic() + 3
    while len(ns.replicas("svc")) == 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [str(u) for u in ns.replicas("svc")] == ["PYRO:stay@h:1"]
    assert {str(ns.lookup("svc")) for _ in range(4)} == {"PYRO:stay@h:1"}
    assert ns.list() == {"svc": "PYRO:stay@h:1"}


def test_replica_join_keeps_tags_and_renews(ns):
    ns.register("svc", "PYRO:a@h:1", replica=True, metadata={"t1"}, ttl=TTL)
    ns.register("svc", "PYRO:b@h:2", replica=True)  # metadata None keeps the set's tags
    assert ns.lookup("svc", return_metadata=True)[1] == {"t1"}
    for _ in range(3):
        time.sleep(TTL / 2)
        ns.register("svc", "PYRO:a@h:1", replica=True, ttl=TTL)
    assert len(ns.replicas("svc")) == 2
    ns.set_metadata("svc", {"t2"})
    assert ns.lookup("svc", return_metadata=True)[1] == {"t2"}
    assert len(ns.replicas("svc")) == 2
    assert list(ns.yplookup(meta_all=["t2"])) == ["svc"]
    assert ns.yplookup(meta_all=["t1"]) == {}


def test_remove_one_replica_then_the_name(ns):
    ns.register("svc", "PYRO:a@h:1", replica=True)
    ns.register("svc", "PYRO:b@h:2", replica=True)
    assert ns.remove("svc", uri="PYRO:nope@h:3") == 0
    assert ns.remove("svc", uri=URI("PYRO:a@h:1")) == 1
    assert [str(u) for u in ns.replicas("svc")] == ["PYRO:b@h:2"]
    assert ns.remove("svc", uri="PYRO:b@h:2") == 1
    assert "svc" not in ns.list()
    ns.register("plain", "PYRO:p@h:1")
    assert ns.remove("plain", uri="PYRO:other@h:1") == 0  # only if it is still that URI
    assert ns.remove("plain", uri="PYRO:p@h:1") == 1


def test_safe_and_replica(ns):
    ns.register("plain", "PYRO:p@h:1")
    with pytest.raises(NamingError, match="taken"):
        ns.register("plain", "PYRO:q@h:1", safe=True, replica=True)
    ns.register("svc", "PYRO:a@h:1", replica=True, safe=True)
    ns.register("svc", "PYRO:b@h:1", replica=True, safe=True)  # joining a set is not taking a name
    assert len(ns.replicas("svc")) == 2
    with pytest.raises(NamingError, match="taken"):
        ns.register("svc", "PYRO:c@h:1", safe=True)  # a plain registration over a set is
    ns.register("svc", "PYRO:c@h:1")  # without safe it replaces the set
    assert [str(u) for u in ns.replicas("svc")] == ["PYRO:c@h:1"]
    assert ns.replica_sets() == {}


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), 10**9])
def test_bad_ttl_is_refused(ns, bad):
    with pytest.raises(ValueError):
        ns.register("x", "PYRO:a@h:1", ttl=bad)
    assert "x" not in ns.list()


@pytest.mark.parametrize("bad", ["10", True, [1]])
def test_ttl_of_the_wrong_type(ns, bad):
    with pytest.raises(TypeError):
        ns.register("x", "PYRO:a@h:1", ttl=bad)


def test_unknown_name_in_replicas(ns):
    with pytest.raises(NamingError, match="not registered"):
        ns.replicas("nope")

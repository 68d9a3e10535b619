"""The Redis storage against a real valkey-server: plugins, several name servers on one
registry, key prefixes, atomic safe registration, an unreachable Redis and its recovery."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pyrite.core.errors import NamingError
from pyrite.core.uri import NAMESERVER_NAME, URI
from pyrite.nameserver.redis_storage import RedisStorage
from pyrite.nameserver.registry import NameServer
from pyrite.nameserver.server import NameServerDaemon
from pyrite.nameserver.storage import MemoryStorage, SqlStorage
from pyrite.nameserver.storages import STORAGE_GROUP, open_storage, storage_names

from tests.nameserver.redisserver import RedisServer
from tests.support import pyrite_proxy, running, wait_for


def test_storages_are_entry_points(tmp_path, redis_url):
    names = {ep.name for ep in entry_points(group=STORAGE_GROUP)}
    assert {"memory", "sql", "redis", "rediss", "unix"} <= names
    assert set(storage_names()) == names
    assert isinstance(open_storage(None), MemoryStorage)
    assert isinstance(open_storage("memory"), MemoryStorage)
    sql = open_storage(f"sql:{tmp_path / 'x.sqlite'}")
    assert isinstance(sql, SqlStorage)
    sql.close()
    store = open_storage(redis_url)
    assert isinstance(store, RedisStorage) and store.shared
    assert store.prefix.startswith("t") and store.prefix.endswith(":")
    store.close()
    for bad in ("dbm:file", "nonsense", "sql:", "memory:x"):
        with pytest.raises(ValueError):
            open_storage(bad)


def test_missing_extra_names_the_pip_command():
    # a real interpreter in which redis-py cannot be imported (as without the extra)
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from pyrite.nameserver.storages import open_storage\n"
        "try:\n    open_storage('redis://127.0.0.1:6379/0')\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.startswith("NamingError")
    assert "pip install pyrite-nameserver[redis]" in out


def test_unreachable_at_start_is_a_clear_error():
    started = time.monotonic()
    with pytest.raises(NamingError, match="unreachable"):
        open_storage("redis://127.0.0.1:1/0")
    assert time.monotonic() - started < 3.0
    with pytest.raises(ValueError, match="invalid redis storage url"):
        open_storage("redis://127.0.0.1:notaport/0")


def test_unix_socket_url(tmp_path_factory):
    sockdir = Path(tempfile.mkdtemp(prefix="pyr", dir="/tmp"))  # short: socket paths have a length limit
    server = RedisServer(tmp_path_factory.mktemp("redis"), unixsocket=str(sockdir / "r.sock")).start()
    try:
        store = open_storage(f"unix://{sockdir / 'r.sock'}?db=0&prefix=u:")
        ns = NameServer(store)
        ns.register("over.unix", "PYRO:x@h:1", metadata={"m"})
        assert ns.lookup("over.unix", return_metadata=True) == (URI("PYRO:x@h:1"), {"m"})
        assert store.prefix == "u:"
        store.close()
    finally:
        server.stop()
        (sockdir / "r.sock").unlink(missing_ok=True)
        sockdir.rmdir()


def test_password_is_not_in_messages():
    with pytest.raises(NamingError) as info:
        open_storage("redis://user:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_key_layout_and_prefixes_keep_registries_apart(shared_redis):
    one = RedisStorage(shared_redis.url + "?prefix=layout.a:")
    two = RedisStorage(shared_redis.url, prefix="layout.b:")
    try:
        NameServer(one).register("svc", "PYRO:a@h:1", metadata={"tag"}, ttl=60)
        NameServer(two).register("svc", "PYRO:b@h:1")
        assert str(NameServer(one).lookup("svc")) == "PYRO:a@h:1"
        assert str(NameServer(two).lookup("svc")) == "PYRO:b@h:1"
        keys = set(one._client.keys("layout.a:*"))
        assert keys == {"layout.a:names", "layout.a:e:svc", "layout.a:u:svc", "layout.a:t:tag"}
        assert one._client.hget("layout.a:e:svc", "meta") == '["tag"]'
        expiry = one._client.zscore("layout.a:u:svc", "PYRO:a@h:1")
        seconds, micros = one._client.time()
        server_ms = seconds * 1000 + micros // 1000
        assert 50_000 < expiry - server_ms <= 60_000  # the lease is in Redis server time
    finally:
        one.clear()
        two.clear()
        assert one._client.keys("layout.*") == []
        one.close()
        two.close()


def test_racing_safe_registrations_exactly_one_wins(redis_url):
    stores = [open_storage(redis_url) for _ in range(6)]
    try:
        for round_ in range(10):
            name = f"race.{round_}"
            winners: list[int] = []
            losers: list[int] = []
            gate = threading.Barrier(len(stores))

            def contend(i: int) -> None:
                gate.wait(5)
                try:
                    NameServer(stores[i]).register(name, f"PYRO:o{i}@h:1", safe=True)
                    winners.append(i)
                except NamingError:
                    losers.append(i)

            threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(stores))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            assert len(winners) == 1 and len(losers) == len(stores) - 1
            assert str(NameServer(stores[0]).lookup(name)) == f"PYRO:o{winners[0]}@h:1"
    finally:
        for store in stores:
            store.close()


def _ns_daemon(url: str) -> NameServerDaemon:
    return NameServerDaemon(host="127.0.0.1", port=0, storage=url)


def test_several_name_servers_share_one_registry(redis_url):
    daemons = [_ns_daemon(redis_url) for _ in range(3)]
    uris = [str(d.uriFor(d.nameserver)) for d in daemons]
    with running(daemons[0]), running(daemons[1]), running(daemons[2]):
        proxies = [pyrite_proxy(uri) for uri in uris]
        try:
            # each registered itself without overwriting the others
            assert sorted(str(u) for u in proxies[0].replicas(NAMESERVER_NAME)) == sorted(uris)
            own = proxies[1].list(prefix=NAMESERVER_NAME + ".")
            assert sorted(own.values()) == sorted(uris)
            assert {str(proxies[2].lookup(NAMESERVER_NAME)) for _ in range(6)} == set(uris)
            # what one registers, all see at once
            proxies[0].register("shared.svc", "PYRO:s@h:1", metadata={"kind:svc"})
            proxies[1].set_metadata("shared.svc", {"kind:other"})
            for proxy in proxies:
                assert proxy.lookup("shared.svc", return_metadata=True) == (URI("PYRO:s@h:1"), {"kind:other"})
                assert list(proxy.yplookup(meta_all=["kind:other"])) == ["shared.svc"]
            assert proxies[2].remove("shared.svc") == 1
            assert all("shared.svc" not in proxy.list() for proxy in proxies)
            # removing "everything" leaves the name servers' own entries
            proxies[0].register("x", "PYRO:x@h:1")
            assert proxies[0].remove(everything=True) == 1
            assert proxies[0].remove(prefix="Pyro") == 0
            assert len(proxies[0].replicas(NAMESERVER_NAME)) == 3
        finally:
            for proxy in proxies:
                proxy._pyroRelease()
    # a clean shutdown took each one's entries off at once
    store = open_storage(redis_url)
    try:
        assert NameServer(store).list() == {}
    finally:
        store.close()


def test_redis_down_is_a_fast_clear_error_and_the_name_server_recovers(redis_server):
    daemon = _ns_daemon(redis_server.url)
    uri = daemon.uriFor(daemon.nameserver)
    with running(daemon):
        with pyrite_proxy(uri) as ns:
            ns.register("kept", "PYRO:k@h:1")
            redis_server.stop()
            started = time.monotonic()
            with pytest.raises(NamingError, match="unreachable"):
                ns.lookup("kept")
            assert time.monotonic() - started < 3.0
            with pytest.raises(NamingError, match="unreachable"):
                ns.register("new", "PYRO:n@h:1")
            ns.ping()  # the name server itself is still up
            redis_server.start()  # same port, same data directory, AOF replayed
            assert str(ns.lookup("kept")) == "PYRO:k@h:1"
            ns.register("new", "PYRO:n@h:1")
            # its own lease came back by itself
            assert wait_for(lambda: len(ns.replicas(NAMESERVER_NAME)) == 1, timeout=10)


def test_start_ns_takes_a_redis_spec(redis_url):
    from pyrite.nameserver import start_ns

    uri, daemon, bcserver = start_ns(host="127.0.0.1", port=0, enableBroadcast=False, storage=redis_url)
    assert bcserver is None
    with running(daemon), pyrite_proxy(uri) as ns:
        assert isinstance(daemon.nameserver.storage, RedisStorage)
        assert [str(u) for u in ns.replicas(NAMESERVER_NAME)] == [str(uri)]
        assert ns.list(prefix=NAMESERVER_NAME + ".") == {f"{NAMESERVER_NAME}.{daemon.locationStr}": str(uri)}

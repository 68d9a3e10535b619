"""What the HTTP gateway tests run against: a pyrite name server and daemon with test objects,
pyrite's gateway in a thread, Pyro5 5.17's gateway as a subprocess; all on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pyrite.core.daemon import Daemon
from pyrite.core.exposure import expose, oneway
from pyrite.nameserver import start_ns
from pyrite.utils import httpgateway

from tests.api.processes import Process, free_port

WAIT = 10.0
KEY = "s3cret"
CALL_TIMEOUT = 2.0


@expose
class Service:
    """The object the gateways expose as ``http.service`` (and, unexposed, as ``private.service``)."""

    def __init__(self) -> None:
        self.fired: list[Any] = []

    def echo(self, message: Any) -> Any:
        return message

    def add(self, a: Any, b: Any) -> int:
        return int(a) + int(b)

    def error(self) -> None:
        raise ValueError("this went wrong on purpose")

    def slow(self, seconds: Any) -> str:
        time.sleep(float(seconds))
        return "done"

    @oneway
    def fire(self, value: Any) -> None:
        self.fired.append(value)

    @property
    def answer(self) -> int:
        return 42

    def _secret(self) -> str:
        return "never"


@dataclass
class Backend:
    ns_port: int
    service: Service


@dataclass
class Gateway:
    port: int
    app: Any = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def call(self, path: str, method: str = "GET", **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        headers = {"X-Pyro-Gateway-Key": KEY, **kwargs.pop("headers", {})}
        return self.request(method, path, headers=headers, **kwargs)


def _serve(daemon: Any) -> threading.Thread:
    thread = threading.Thread(target=daemon.requestLoop, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    ns_uri, ns_daemon, bc = start_ns("127.0.0.1", port=0, enableBroadcast=False)
    assert bc is None
    service = Service()
    daemon = Daemon(host="127.0.0.1")
    uri = daemon.register(service, "svc")
    private_uri = daemon.register(Service(), "private")
    threads = [_serve(ns_daemon), _serve(daemon)]
    ns_daemon.nameserver.register("http.service", uri)
    ns_daemon.nameserver.register("http.other", uri)
    ns_daemon.nameserver.register("private.service", private_uri)
    try:
        yield Backend(ns_uri.port, service)
    finally:
        for d in (daemon, ns_daemon):
            d.shutdown()
        for t in threads:
            t.join(WAIT)
        for d in (daemon, ns_daemon):
            d.close()
        assert not any(t.is_alive() for t in threads)


def make_app(ns_port: int, **settings: Any) -> httpgateway.GatewayApp:
    app = httpgateway.GatewayApp()
    app.ns_host, app.ns_port = "127.0.0.1", ns_port
    app.gateway_key = KEY
    app.cors = "*"
    app.comm_timeout = CALL_TIMEOUT
    for name, value in settings.items():
        setattr(app, name, value)
    return app


@pytest.fixture(scope="module")
def pyrite_gateway(backend: Backend) -> Iterator[Gateway]:
    app = make_app(backend.ns_port)
    server = httpgateway.make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield Gateway(server.server_address[1], app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)
        assert not thread.is_alive()


@pytest.fixture(scope="module")
def pyro5_gateway(backend: Backend) -> Iterator[Gateway]:
    port = free_port()
    env = {"PYRO_NS_HOST": "127.0.0.1", "PYRO_NS_PORT": str(backend.ns_port)}
    command = [sys.executable, "-m", "Pyro5.utils.httpgateway", "-H", "127.0.0.1", "-p", str(port)]
    proc = Process([*command, "-g", KEY, "-t", str(CALL_TIMEOUT)], env=env)
    try:
        proc.wait_for(r"http://127\.0\.0\.1:\d+/pyro/")
        yield Gateway(port)
    finally:
        proc.stop()


def body_json(body: bytes) -> Any:
    return json.loads(body.decode("utf-8"))

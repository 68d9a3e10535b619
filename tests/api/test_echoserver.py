"""pyrite.utils.echoserver and ``pyrite-echoserver``: Pyro5's options and echo methods, called by
pyrite and by a real Pyro5 5.17 client, in process and as a subprocess."""

from __future__ import annotations

import math
import threading

import Pyro5.client
import Pyro5.errors
import Pyro5.utils.echoserver
import pytest
from pyrite.core.client import Proxy
from pyrite.core.config import config
from pyrite.core.naming import locate_ns
from pyrite.utils import echoserver

from tests.api.processes import Process, free_port, script

WAIT = 10.0


@pytest.fixture
def served():
    """The echo server of ``main(..., returnWithoutLooping=True)`` served in a thread until shutdown()."""
    daemon, echo, uri = echoserver.main(["-H", "127.0.0.1", "-q"], returnWithoutLooping=True)
    config.POLLTIMEOUT = 0.2  # so the loop notices shutdown() quickly
    thread = threading.Thread(target=daemon.requestLoop, kwargs={"loopCondition": lambda: not echo._must_shutdown})
    thread.start()
    try:
        yield daemon, echo, uri
    finally:
        echo._must_shutdown = True
        daemon.shutdown()
        thread.join(WAIT)
        daemon.close()
        assert not thread.is_alive()


def _proxy(uri):
    proxy = Proxy(uri)
    proxy._pyroTimeout = WAIT
    return proxy


def _pyro5_proxy(uri):
    proxy = Pyro5.client.Proxy(str(uri))
    proxy._pyroTimeout = WAIT
    return proxy


def test_main_returns_daemon_object_and_uri(served):
    daemon, echo, uri = served
    assert isinstance(echo, echoserver.EchoServer)
    assert uri.object == "test.echoserver" == echoserver.OBJECT_NAME
    assert uri.host == "127.0.0.1" and uri.port > 0
    assert config.SERVERTYPE == "multiplex"  # as Pyro5's echo server


@pytest.mark.parametrize("make_proxy", [_proxy, _pyro5_proxy], ids=["pyrite", "Pyro5"])
def test_echo_methods(served, make_proxy):
    _, echo, uri = served
    with make_proxy(uri) as proxy:
        for value in ("hello", 42, 1.5, [1, "two"], {"k": [1, 2]}, None, "snowman \u2603"):
            assert proxy.echo(value) == value
        with pytest.raises(ValueError, match="on purpose"):
            proxy.error()
        with pytest.raises(ValueError, match="the message of the error"):
            proxy.error_with_text()
        assert list(proxy.generator()) == ["one", "two", "three"]
        assert math.isnan(proxy.nan())
        assert proxy.inf() == float("inf")
        assert proxy.oneway_echo("x") is None  # oneway: nothing comes back
        assert proxy.verbose is False
        proxy.verbose = True
        assert echo.verbose is True and proxy.verbose is True
        proxy.verbose = False
        with pytest.raises(AttributeError):
            proxy._private()
        proxy.shutdown()
    assert echo._must_shutdown


def test_same_remote_surface_as_pyro5_echoserver(served):
    _, _, uri = served
    pyro5_daemon, _, pyro5_uri = Pyro5.utils.echoserver.main(["-H", "127.0.0.1", "-q"], returnWithoutLooping=True)
    thread = threading.Thread(target=pyro5_daemon.requestLoop)
    thread.start()
    try:
        with _pyro5_proxy(uri) as ours, _pyro5_proxy(pyro5_uri) as theirs:
            ours._pyroBind()
            theirs._pyroBind()
            assert ours._pyroMethods == theirs._pyroMethods
            assert ours._pyroAttrs == theirs._pyroAttrs
            assert ours._pyroOneway == theirs._pyroOneway
    finally:
        pyro5_daemon.shutdown()
        thread.join(WAIT)
        pyro5_daemon.close()
    assert not thread.is_alive()


def test_console_script_with_a_pyro5_client():
    port = free_port()
    proc = Process([script("pyrite-echoserver"), "-H", "127.0.0.1", "-p", str(port)])
    try:
        uri = proc.wait_for(r"echo uri: (\S+)").group(1)
        assert uri == f"PYRO:test.echoserver@127.0.0.1:{port}"
        with _pyro5_proxy(uri) as echo:
            assert echo.echo({"from": "Pyro5"}) == {"from": "Pyro5"}
            with pytest.raises(ValueError):
                echo.error()
            assert list(echo.generator()) == ["one", "two", "three"]
            echo.oneway_echo("fire and forget")
            echo.shutdown()
        assert proc.wait_exit(WAIT * 2) == 0
        assert any("echo server running" in line for line in proc.seen)
    finally:
        proc.stop()


def test_console_script_unix_socket_verbose(tmp_path):
    path = tmp_path / "echo.sock"
    proc = Process([script("pyrite-echoserver"), "-u", str(path), "-v"])
    try:
        uri = proc.wait_for(r"echo uri: (\S+)").group(1)
        assert uri == f"PYRO:test.echoserver@./u:{path}"
        proc.wait_for("no name server used")
        with _pyro5_proxy(uri) as echo:
            assert echo.echo("over unix") == "over unix"
            proc.wait_for(r"echo: 'over unix'")  # -v prints each call
            echo.shutdown()
        assert proc.wait_exit(WAIT * 2) == 0
    finally:
        proc.stop()


def test_console_script_quiet_prints_nothing():
    proc = Process([script("pyrite-echoserver"), "-H", "127.0.0.1", "-q", "-p", str(free_port())])
    try:
        with pytest.raises(AssertionError):
            proc.wait_for(".", timeout=2.0)
        assert proc.proc.poll() is None  # running, just silent
    finally:
        proc.stop()


def test_console_script_starts_its_own_name_server():
    ns_port, bc_port = free_port(), free_port(kind=2)  # 2: SOCK_DGRAM
    env = {"PYRITE_NS_PORT": str(ns_port), "PYRITE_NS_BCPORT": str(bc_port)}
    proc = Process([script("pyrite-echoserver"), "-H", "127.0.0.1", "-N", "-v"], env=env)
    try:
        uri = proc.wait_for(r"echo uri: (\S+)").group(1)
        proc.wait_for("registered with the name server at")
        with locate_ns("127.0.0.1", ns_port) as ns:
            ns._pyroTimeout = WAIT
            assert str(ns.lookup("test.echoserver")) == uri
        # Pyro5 resolves it through the name server too
        with _pyro5_proxy(f"PYRONAME:test.echoserver@127.0.0.1:{ns_port}") as echo:
            assert echo.echo("via the name server") == "via the name server"
            echo.shutdown()
        assert proc.wait_exit(WAIT * 2) == 0
    finally:
        proc.stop()


def test_console_script_registers_with_a_running_name_server():
    config.NS_PORT = free_port()
    config.NS_BCPORT = free_port(kind=2)
    ns = echoserver.start_nameserver("127.0.0.1")
    try:
        env = {"PYRITE_NS_HOST": "127.0.0.1", "PYRITE_NS_PORT": str(config.NS_PORT)}
        proc = Process([script("pyrite-echoserver"), "-H", "127.0.0.1", "-n"], env=env)
        try:
            uri = proc.wait_for(r"echo uri: (\S+)").group(1)
            with locate_ns("127.0.0.1", config.NS_PORT) as nsproxy:
                nsproxy._pyroTimeout = WAIT
                assert str(nsproxy.lookup("test.echoserver")) == uri
            with _proxy(uri) as echo:
                echo.shutdown()
            assert proc.wait_exit(WAIT * 2) == 0
        finally:
            proc.stop()
    finally:
        ns.stop()
    assert not ns.is_alive()


def test_options_match_pyro5(monkeypatch):
    """Every option of Pyro5's echo server, with the same short and long spellings."""
    import argparse

    captured: dict = {}

    def capture(self, args=None, namespace=None):
        # look at Pyro5's parser instead of running its server
        captured.update({a.dest: a.option_strings for a in self._actions})
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        Pyro5.utils.echoserver.main([])
    monkeypatch.undo()
    ours = {a.dest: a.option_strings for a in echoserver._parser()._actions}
    assert ours == captured


def test_runs_as_python_module():
    import sys

    proc = Process([sys.executable, "-m", "pyrite.utils.echoserver", "-H", "127.0.0.1"])
    try:
        uri = proc.wait_for(r"echo uri: (\S+)").group(1)
        with _pyro5_proxy(uri) as echo:
            assert echo.echo("module") == "module"
            echo.shutdown()
        assert proc.wait_exit(WAIT * 2) == 0
    finally:
        proc.stop()

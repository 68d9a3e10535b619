"""Issue 8 item 7 (name-server abuse) and issue 9 (protocol-error warning), on real sockets:
the remove-all guard, the opt-in write-token policy for pyrite and Pyro5 clients, the nsc
replica commands, and the warning a protocol error raises."""

from __future__ import annotations

import socket
import warnings

import Pyro5.errors
import pytest
from pyrite.core.config import config
from pyrite.core.errors import NamingError
from pyrite.core.uri import NAMESERVER_NAME
from pyrite.nameserver import cli, nsc
from pyrite.nameserver.registry import NameServer
from pyrite.nameserver.server import NameServerDaemon

from tests.support import pyrite_proxy, pyro5_proxy, running, wait_for

TOKEN = "s3cret-token"


@pytest.fixture
def guarded():
    daemon = NameServerDaemon(host="127.0.0.1", port=0, write_token=TOKEN)
    with running(daemon):
        yield daemon.uriFor(daemon.nameserver)


@pytest.mark.parametrize("pattern", [".+", ".*", "s", "svc", r"svc\.\d"])
def test_a_regex_that_takes_every_name_is_refused(pattern):
    ns = NameServer()
    for i in range(3):
        ns.register(f"svc.{i}", "PYRO:x@h:1")
    with pytest.raises(NamingError, match="everything=True"):
        ns.remove(regex=pattern)
    assert ns.count() == 3
    assert ns.remove(regex=pattern, everything=True) == 3


def test_a_prefix_that_takes_every_name_is_refused():
    ns = NameServer()
    ns.register(NAMESERVER_NAME, "PYRO:ns@h:1")  # the name server's own entry does not count
    for i in range(3):
        ns.register(f"svc.{i}", "PYRO:x@h:1")
    with pytest.raises(NamingError, match="everything=True"):
        ns.remove(prefix="svc")
    ns.register("other", "PYRO:o@h:1")
    assert ns.remove(prefix="svc") == 3  # no longer every name
    assert ns.remove(prefix="oth", everything=True) == 1
    assert ns.remove(prefix="nothing-left") == 0
    assert list(ns.list()) == [NAMESERVER_NAME]


def test_reads_are_open_writes_need_the_token(guarded):
    with pyrite_proxy(guarded) as anonymous:
        assert NAMESERVER_NAME in anonymous.list()
        anonymous.ping()
        for call in (
            lambda: anonymous.register("x", "PYRO:x@h:1"),
            lambda: anonymous.set_metadata(NAMESERVER_NAME, {"t"}),
            lambda: anonymous.remove("x"),
            lambda: anonymous.remove(prefix="x"),
            lambda: anonymous.remove(everything=True),
        ):
            with pytest.raises(NamingError, match="write token"):
                call()
    for handshake in (TOKEN, {"write_token": TOKEN}):
        with pyrite_proxy(guarded) as writer:
            writer._pyroHandshake = handshake
            writer.register("x", "PYRO:x@h:1", ttl=30)
            writer.set_metadata("x", {"t"})
            assert writer.lookup("x", return_metadata=True)[1] == {"t"}
            assert writer.remove("x") == 1
    with pyrite_proxy(guarded) as wrong:
        wrong._pyroHandshake = "not-the-token"
        with pytest.raises(NamingError, match="write token"):
            wrong.register("x", "PYRO:x@h:1")


def test_pyro5_clients_with_and_without_the_token(guarded):
    with pyro5_proxy(guarded) as anonymous:
        assert NAMESERVER_NAME in anonymous.list()
        with pytest.raises(Pyro5.errors.NamingError, match="write token"):
            anonymous.register("p5", "PYRO:x@h:1")
    with pyro5_proxy(guarded) as writer:
        writer._pyroHandshake = TOKEN
        writer.register("p5", "PYRO:x@h:1")
        assert str(writer.lookup("p5")) == "PYRO:x@h:1"


def test_without_a_policy_pyro5_clients_write():
    daemon = NameServerDaemon(host="127.0.0.1", port=0)
    with running(daemon), pyro5_proxy(daemon.uriFor(daemon.nameserver)) as ns:
        ns.register("p5", "PYRO:x@h:1", True, {"m"})
        assert ns.lookup("p5", True)[1] == {"m"}
        assert ns.remove("p5") == 1


def test_write_token_from_config_and_command_line(monkeypatch):
    config.NS_WRITE_TOKEN = TOKEN
    daemon = NameServerDaemon(host="127.0.0.1", port=0)
    try:
        assert daemon.nameserver is not None and daemon.nameserver.write_token == TOKEN
    finally:
        daemon.close()
    assert cli.make_parser().parse_args(["--write-token", "abc"]).write_token == "abc"
    assert cli.make_parser().parse_args([]).write_token is None


def test_nsc_sends_the_token(guarded, capsys):
    where = ["-n", guarded.host, "-p", str(guarded.port)]
    assert nsc.main([*where, "register", "viansc", "PYRO:x@h:1"]) == 1
    assert "write token" in capsys.readouterr().out
    assert nsc.main([*where, "--write-token", TOKEN, "register", "viansc", "PYRO:x@h:1"]) == 0
    assert nsc.main([*where, "--write-token", TOKEN, "addreplica", "rep", "PYRO:a@h:1", "30"]) == 0
    assert nsc.main([*where, "--write-token", TOKEN, "addreplica", "rep", "PYRO:b@h:2"]) == 0
    capsys.readouterr()
    assert nsc.main([*where, "replicas", "rep"]) == 0
    assert capsys.readouterr().out == "rep: 2 replicas\n    PYRO:a@h:1\n    PYRO:b@h:2\n"
    assert nsc.main([*where, "list", "rep"]) == 0
    assert "    replicas: PYRO:a@h:1, PYRO:b@h:2\n" in capsys.readouterr().out
    assert nsc.main([*where, "--write-token", TOKEN, "removereplica", "rep", "PYRO:a@h:1"]) == 0
    assert capsys.readouterr().out == "Removed the replica PYRO:a@h:1 of rep\n"
    assert nsc.main([*where, "replicas", "rep"]) == 0
    assert capsys.readouterr().out == "rep: 1 replica\n    PYRO:b@h:2\n"


def test_nsc_removematching_asks_again_when_the_server_says_every_name(capsys, monkeypatch):
    ns = NameServer()
    for i in range(3):
        ns.register(f"svc.{i}", "PYRO:x@h:1")
    questions = []
    monkeypatch.setattr("builtins.input", lambda prompt: questions.append(prompt) or "y")
    nsc.handle_command(ns, "removematching", ["svc"])
    assert "matches EVERY name" in questions[-1] and len(questions) == 2
    assert capsys.readouterr().out == "3 items removed.\n"


def test_protocol_error_warns(guarded):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with socket.create_connection((guarded.host, guarded.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"x" * 40)
            sock.settimeout(5)
            try:
                while sock.recv(1024):
                    pass
            except OSError:
                pass
        assert wait_for(lambda: any("protocol error" in str(w.message) for w in caught), timeout=5)
    with pyrite_proxy(guarded) as ns:
        ns.ping()  # and it keeps serving

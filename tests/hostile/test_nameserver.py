"""Issue 8, item 7: name-server abuse.  A remove that would delete every name needs
``everything=True``; ``pyrite-ns --write-token`` makes register/remove/set_metadata need the
token in the handshake data, while reads stay open; Pyro5 clients keep working against a
name server without a policy.  Both SERVERTYPEs, the name server in its own process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import Pyro5.client
import pytest
from pyrite.core.client import Proxy
from pyrite.core.errors import PyroError

from .conftest import START_TIMEOUT

BIN = Path(sys.executable).parent


@pytest.fixture
def nameserver(servertype: str, tmp_path: Path) -> Iterator[callable]:
    started: list[subprocess.Popen] = []

    def start(*extra: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYRITE_")}
        env.update(PYRITE_SERVERTYPE=servertype, PYRITE_BROADCAST_ADDRS="127.255.255.255")
        command = [str(BIN / "pyrite-ns"), "-n", "127.0.0.1", "-p", "0", "-x", *extra]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        started.append(proc)
        seen: list[str] = []
        found: list[str] = []

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                seen.append(line)
                match = re.search(r"(PYRO:Pyro\.NameServer@\S+)", line)
                if match:
                    found.append(match.group(1))
                    return

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        assert found, f"name server did not start: {''.join(seen)}"
        return found[0]

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
        if proc.stdout is not None:
            proc.stdout.close()


def _ns(uri: str, handshake=None) -> Proxy:
    proxy = Proxy(uri)
    proxy._pyroTimeout = 5.0
    if handshake is not None:
        proxy._pyroHandshake = handshake
    return proxy


def test_remove_everything_must_be_asked_for(nameserver):
    uri = nameserver()
    with _ns(uri) as ns:
        for name in ("a.one", "a.two", "b.three"):
            ns.register(name, "PYRO:x@127.0.0.1:1")
        for pattern in (".+", ".*", "(?s).*", "a.*|b.*"):
            with pytest.raises(PyroError):
                ns.remove(regex=pattern)
            assert {"a.one", "a.two", "b.three"} <= set(ns.list())
        assert ns.remove(regex="a\\..*") == 2
        assert ns.remove(regex=".+", everything=True) == 1
        assert set(ns.list()) == {"Pyro.NameServer"}


def test_write_token_guards_changes_not_reads(nameserver):
    uri = nameserver("--write-token", "s3cret")
    with _ns(uri, {"write_token": "s3cret"}) as writer:
        writer.register("svc", "PYRO:svc@127.0.0.1:1")
    with _ns(uri) as anyone:
        assert str(anyone.lookup("svc")) == "PYRO:svc@127.0.0.1:1"
        assert "svc" in anyone.list()
        for change in (
            lambda: anyone.register("svc", "PYRO:evil@127.0.0.1:1"),
            lambda: anyone.register("other", "PYRO:evil@127.0.0.1:1"),
            lambda: anyone.remove("svc"),
            lambda: anyone.set_metadata("svc", {"x"}),
        ):
            with pytest.raises(PyroError):
                change()
        assert str(anyone.lookup("svc")) == "PYRO:svc@127.0.0.1:1"
    with _ns(uri, {"write_token": "wrong"}) as guesser, pytest.raises(PyroError):
        guesser.register("svc", "PYRO:evil@127.0.0.1:1")


def test_pyro5_client_against_server_without_policy(nameserver):
    uri = nameserver()
    with Pyro5.client.Proxy(uri) as ns:
        ns._pyroTimeout = 5.0
        ns.register("from.pyro5", "PYRO:p5@127.0.0.1:1")
        assert str(ns.lookup("from.pyro5")) == "PYRO:p5@127.0.0.1:1"
        assert ns.remove("from.pyro5") == 1

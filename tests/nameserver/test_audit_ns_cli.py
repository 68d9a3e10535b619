"""Audit: pyrite-ns / ``python -m pyrite.nameserver`` options that the parser tests only parse:
-b/-c and --bchost/--bcport start a broadcast responder where asked, and --nathost/--natport
give the external URI, all in a real name server process."""

from __future__ import annotations

import socket
import sys

from pyrite.core.client import Proxy
from pyrite.core.uri import NAMESERVER_NAME, URI

from tests.nameserver.test_processes import NameServerProcess, script

BCHOST = "127.255.255.255"


def ask_broadcast(port: int, timeout: float = 5.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.settimeout(timeout)
        sock.sendto(b"GET_NSURI", (BCHOST, port))
        return sock.recvfrom(200)[0]


def run(command: list[str]) -> NameServerProcess:
    return NameServerProcess(command)


def test_pyrite_ns_short_broadcast_options_and_nat():
    proc = run(
        script("pyrite-ns")
        + ["-n", "127.0.0.1", "-p", "0", "-b", BCHOST, "-c", "0", "--nathost", "nat.example", "--natport", "4242"]
    )
    try:
        bc_port = int(proc.wait_for(r"^Broadcast server running on .*:(\d+)$").group(1))
        internal = URI(proc.wait_for(r"^internal URI = (\S+)$").group(1))
        external = URI(proc.wait_for(r"^external URI = (\S+)$").group(1))
        assert str(external) == f"PYRO:{NAMESERVER_NAME}@nat.example:4242"
        assert internal.host == "127.0.0.1" and internal.object == NAMESERVER_NAME
        # the broadcast responder (on the -b/-c address) answers with the internal URI, as Pyro5 does
        assert ask_broadcast(bc_port) == str(internal).encode()
        with Proxy(internal) as ns:
            ns._pyroTimeout = 5.0
            ns.ping()
            assert ns.lookup(NAMESERVER_NAME) == external  # its own entry is the NAT address
    finally:
        proc.stop()


def test_module_entry_with_long_broadcast_options():
    proc = run(
        [sys.executable, "-m", "pyrite.nameserver", "-n", "127.0.0.1", "-p", "0", "--bchost", BCHOST, "--bcport", "0"]
    )
    try:
        bc_port = int(proc.wait_for(r"^Broadcast server running on .*:(\d+)$").group(1))
        uri = proc.uri()
        assert ask_broadcast(bc_port) == str(uri).encode()
    finally:
        proc.stop()


def test_nobc_starts_no_broadcast_responder():
    proc = run(script("pyrite-ns") + ["-n", "127.0.0.1", "-p", "0", "-b", BCHOST, "-c", "0", "-x"])
    try:
        proc.uri()
        assert not any("Broadcast server running" in line for line in proc.seen)
    finally:
        proc.stop()

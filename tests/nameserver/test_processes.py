"""The command-line tools as real processes: ``python -m pyrite.nameserver`` / ``pyrite-ns``
(persistence across kill -9, clean shutdown) and ``pyrite-nsc`` (commands, exit codes)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pyrite.core.client import Proxy
from pyrite.core.uri import NAMESERVER_NAME, URI

BIN = Path(sys.executable).parent
BCHOST = "127.255.255.255"


def script(name: str) -> list[str]:
    path = BIN / name
    assert path.exists(), f"console script {name} is not installed next to {sys.executable}"
    return [str(path)]


class NameServerProcess:
    """A name server subprocess; ``lines`` collects what it prints."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                match = re.search(pattern, line)
                if match:
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s; got {self.seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"process ended before printing {pattern!r}; got {self.seen}")
            self.seen.append(line)

    def uri(self) -> URI:
        return URI(self.wait_for(r"^URI = (\S+)$").group(1))

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def processes():
    started: list[NameServerProcess] = []

    def start(command: list[str]) -> NameServerProcess:
        started.append(NameServerProcess(command))
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


def test_sqlite_registrations_survive_kill_9(processes, tmp_path):
    storage = f"sql:{tmp_path / 'ns.sqlite'}"
    command = [sys.executable, "-m", "pyrite.nameserver", "-n", "127.0.0.1", "-p", "0", "-x", "-s", storage]
    first = processes(command)
    uri = first.uri()
    with Proxy(uri) as ns:
        for i in range(25):
            ns.register(f"durable.{i}", f"PYRO:obj{i}@127.0.0.1:{1000 + i}", metadata={f"tag{i % 3}"})
        ns.remove("durable.0")
        ns.set_metadata("durable.1", {"changed"})
    first.kill9()  # every call above was acknowledged before this
    assert first.proc.returncode == -signal.SIGKILL

    second = processes(command)
    new_uri = second.uri()
    second.wait_for(r"Persistent store contains 25 existing registrations")
    with Proxy(new_uri) as ns:
        assert ns.count() == 25
        assert "durable.0" not in ns.list()
        assert str(ns.lookup("durable.24")) == "PYRO:obj24@127.0.0.1:1024"
        assert set(ns.lookup("durable.1", return_metadata=True)[1]) == {"changed"}
        assert set(ns.yplookup(meta_all=["tag2"], return_metadata=False)) == {
            f"durable.{i}" for i in (2, 5, 8, 11, 14, 17, 20, 23)
        }
        assert ns.lookup(NAMESERVER_NAME) == new_uri  # its own entry follows the new port


def test_pyrite_ns_runs_and_stops_on_sigterm(processes, tmp_path):
    sock = tmp_path / "ns.sock"
    ns_proc = processes(script("pyrite-ns") + ["-u", str(sock)])
    uri = ns_proc.uri()
    assert uri.sockname == str(sock)
    ns_proc.wait_for(r"^NS running on \./u:.* \(Unix domain socket\)$")
    with Proxy(uri) as ns:
        ns.ping()
    ns_proc.proc.send_signal(signal.SIGTERM)
    assert ns_proc.proc.wait(timeout=15) == 0
    ns_proc.wait_for(r"^Name server stopped\.$")


def test_pyrite_ns_reports_a_busy_port(processes):
    first = processes(script("pyrite-ns") + ["-n", "127.0.0.1", "-p", "0", "-x"])
    port = first.uri().port
    result = subprocess.run(
        script("pyrite-ns") + ["-n", "127.0.0.1", "-p", str(port), "-x"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")


def nsc(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(script("pyrite-nsc") + list(args), input=stdin, capture_output=True, text=True, timeout=60)


def test_pyrite_nsc(processes):
    ns_proc = processes(script("pyrite-ns") + ["-n", "127.0.0.1", "-p", "0", "-x"])
    port = str(ns_proc.uri().port)
    where = ["-n", "127.0.0.1", "-p", port]

    assert nsc(*where, "ping").stdout == "Name server answered the ping.\n"
    result = nsc(*where, "register", "cli.one", "PYRO:one@127.0.0.1:1111")
    assert (result.returncode, result.stdout) == (0, "Registered cli.one\n")
    result = nsc(*where, "register", "cli.one", "PYRO:other@127.0.0.1:1")
    assert result.returncode == 1 and "Error: NamingError - name is taken: cli.one" in result.stdout
    nsc(*where, "register", "cli.two", "PYRO:two@127.0.0.1:2222")
    assert nsc(*where, "setmeta", "cli.one", "red", "blue").stdout == "Metadata of cli.one set\n"
    assert nsc(*where, "lookup", "cli.one").stdout == "PYRO:one@127.0.0.1:1111\nmetadata: {'blue', 'red'}\n"
    result = nsc(*where, "lookup", "cli.none")
    assert result.returncode == 1 and result.stdout == "Error: NamingError - name not registered: cli.none\n"
    listing = nsc(*where, "list", "cli.").stdout
    assert listing == (
        "--------START LIST - prefix 'cli.'\n"
        "cli.one --> PYRO:one@127.0.0.1:1111\n"
        "    metadata: {'blue', 'red'}\n"
        "cli.two --> PYRO:two@127.0.0.1:2222\n"
        "--------END LIST - prefix 'cli.'\n"
    )
    assert "cli.two" in nsc(*where, "listmatching", r"cli\.t.*").stdout
    assert "cli.one" in nsc(*where, "yplookup_all", "red", "blue").stdout
    assert "cli.one" not in nsc(*where, "yplookup_all", "red", "green").stdout
    assert "cli.one" in nsc(*where, "yplookup_any", "green", "red").stdout
    result = nsc(*where, "lookup")
    assert result.returncode == 2 and "requires one argument" in result.stderr
    # removematching asks; no answer means no
    assert nsc(*where, "removematching", "cli.*", stdin="").stdout.endswith("No registrations removed.\n")
    result = nsc(*where, "removematching", ".*", stdin="y\n")
    assert "matches EVERY name" in result.stdout and result.stdout.endswith("2 items removed.\n")
    assert nsc(*where, "remove", "cli.one").stdout == "No registrations removed.\n"
    full = nsc(*where, "list").stdout
    assert full.count("-->") == 1 and NAMESERVER_NAME in full


def test_pyrite_nsc_finds_the_name_server_by_broadcast(processes):
    ns_proc = processes(script("pyrite-ns") + ["-n", "127.0.0.1", "-p", "0", "--bchost", BCHOST, "--bcport", "0"])
    bcport = ns_proc.wait_for(rf"^Broadcast server running on {re.escape(BCHOST)}:(\d+)$").group(1)
    uri = ns_proc.uri()
    result = nsc("-v", "-p", bcport, "ping")  # no host: -p is the broadcast port
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Using the name server at {uri}" in result.stdout and "Name server answered the ping." in result.stdout


def test_pyrite_nsc_without_a_name_server():
    result = nsc("-n", "127.0.0.1", "-p", "1", "ping")
    assert result.returncode == 1
    assert result.stdout.startswith("Error: NamingError")

"""`hatch run demo` (examples/demo.py) finishes by itself, says what it did, and leaves nothing running."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent.parent / "examples" / "demo.py"


def run_demo(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(DEMO), *args], capture_output=True, text=True, timeout=45)
    assert proc.returncode == 0, f"demo exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def assert_demo_output(out: str) -> int:
    """Checks each step of the demo's report; returns the name server port it used."""
    ns = re.search(r"name server: PYRO:Pyro\.NameServer@127\.0\.0\.1:(\d+)", out)
    assert ns, out
    for pattern in (
        r"\[1/5\] starting a name server on 127\.0\.0\.1:.*\(broadcast off\)",
        r"object: PYRO:demo\.greeter@127\.0\.0\.1:\d+",
        r"the name server now lists: Pyro\.NameServer, example\.demo\.greeter",
        r"\[4/5\] client: calling PYRONAME:example\.demo\.greeter",
        r"greet\('Alice'\) -> 'Hello Alice, greeting #1 from process \d+'",
        r"greet\('Bob'\) -> 'Hello Bob, greeting #2 from process \d+'",
        r"PYRONAME:example\.demo\.greeter resolves to PYRO:demo\.greeter@127\.0\.0\.1:\d+",
        r"remote property 'served' = 2",
        r"server daemon: stopped",
        r"name server: stopped",
        r"Demo finished in [\d.]+ s\.",
    ):
        assert re.search(pattern, out), f"{pattern!r} not in:\n{out}"
    return int(ns.group(1))


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_demo_runs_and_stops() -> None:
    out = run_demo()
    port = assert_demo_output(out)
    # the name server is gone once the demo has exited
    assert not port_in_use(port)


def test_demo_falls_back_to_a_free_port_when_9090_is_taken() -> None:
    blocker = socket.socket()
    try:
        try:
            blocker.bind(("127.0.0.1", 9090))
        except OSError:
            pass  # someone else holds 9090 already: the demo must cope just the same
        else:
            blocker.listen(1)
        out = run_demo()
        assert assert_demo_output(out) != 9090
    finally:
        blocker.close()


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_demo_with_another_serializer(serializer: str) -> None:
    assert_demo_output(run_demo("--serializer", serializer, "--port", "0"))

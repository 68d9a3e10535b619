"""SharedProxy in a process forked from one that used it: the child's calls go over a connection of
its own (the parent's connection and loop thread stay the parent's), and the parent carries on."""

from __future__ import annotations

import json
import os
import select
import signal
import threading
import time
from typing import Any

import pytest
from pyrite.api import SharedProxy

from .conftest import TIMEOUT, Server

pytestmark = [
    pytest.mark.usefixtures("shared_loop"),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]

CHILD_LIMIT = 20.0  # seconds the forked child may take


def _in_child(proxy: SharedProxy, out: int) -> None:
    """The child's side: a call from this thread, then from 4 threads at once; the results go to ``out``."""
    report: dict[str, Any] = {}
    try:
        report["port"] = proxy.peer_port()
        results: list[Any] = []

        def call(k: int) -> None:
            results.append(proxy.echo(k))

        threads = [threading.Thread(target=call, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        report["threads"] = sorted(results)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        report["error"] = f"{type(exc).__name__}: {exc}"
    os.write(out, json.dumps(report).encode())


def _child_report(pid: int, read_end: int) -> dict[str, Any]:
    """What the child wrote, waiting CHILD_LIMIT s at most; the child is reaped (killed if it hangs)."""
    deadline = time.monotonic() + CHILD_LIMIT
    data = b""
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 0.1)
            if ready:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                data += chunk
    finally:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.05)
    assert data, "the forked child reported nothing (it hung or died)"
    report: dict[str, Any] = json.loads(data)
    return report


def test_a_shared_proxy_used_before_a_fork_works_in_the_child(server: Server) -> None:
    proxy = SharedProxy(server.probe_uri)
    proxy._pyroTimeout = TIMEOUT
    parent_port = proxy.peer_port()  # connected, and the loop thread runs
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            _in_child(proxy, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        report = _child_report(pid, read_end)
    finally:
        os.close(read_end)
    assert "error" not in report, report["error"]
    assert report["threads"] == [0, 1, 2, 3]
    assert report["port"] != parent_port  # the child's own connection, not the parent's socket
    assert proxy.peer_port() == parent_port  # the parent's connection is untouched
    assert proxy.echo("after") == "after"

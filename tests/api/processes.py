"""A console-script subprocess for tests: output collected by a thread, bounded waits, clean stop."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def script(name: str) -> str:
    """The path of an installed console script of this environment."""
    path = BIN / name
    assert path.exists(), f"console script {name} is not installed next to {sys.executable}"
    return str(path)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nobody used a moment ago."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """``Process([exe, args...], env_extra)``: starts it; ``wait_for(regex)``; ``stop()`` (bounded)."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=full_env
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first output line matching ``pattern``; AssertionError after ``timeout`` s or at exit."""
        deadline = time.monotonic() + timeout
        for line in self.seen:
            match = re.search(pattern, line)
            if match:
                return match
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s; got {self.seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"process ended (rc {self.proc.poll()}) before {pattern!r}; got {self.seen}")
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to end by itself; its return code."""
        rc = self.proc.wait(timeout)
        self._pump_thread.join(timeout)
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return rc

    def stop(self) -> None:
        """Terminate (then kill) the process if it still runs; always reaps it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._pump_thread.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

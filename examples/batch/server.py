"""A small calculator with a memory, to be called in batches."""

from __future__ import annotations

import sys
import threading

import pyrite.api as api

OBJECT_ID = "example.batch"


@api.expose
@api.behavior(instance_mode="single")
class Calculator:
    """Arithmetic plus a running total shared by every client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0

    def multiply(self, a: float, b: float) -> float:
        return a * b

    def divide(self, a: float, b: float) -> float:
        return a / b

    def add_to_total(self, value: int) -> int:
        with self._lock:
            self._total += value
            return self._total

    def total(self) -> int:
        return self._total


def make_daemon(host: str = "127.0.0.1", port: int = 0) -> tuple[api.Daemon, api.URI]:
    daemon = api.Daemon(host=host, port=port)
    return daemon, daemon.register(Calculator, OBJECT_ID)


def main() -> None:
    daemon, uri = make_daemon(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print("Ready. Object uri =", uri, flush=True)
    with daemon:
        daemon.requestLoop()


if __name__ == "__main__":
    main()

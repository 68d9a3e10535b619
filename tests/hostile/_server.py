"""A daemon for the hostile suite, run as its own process (so its RSS, fds and threads are its own).

    python tests/hostile/_server.py

Config comes from PYRITE_* variables (SERVERTYPE and the rest); HOSTILE_NOFILE
lowers the descriptor limit first.  Prints ``URI <uri>`` when it serves, logs
to stderr, serves until killed.  The object ``hostile`` offers what the tests
need: echo, slow calls, oneway counters, big results, generators, methods that
raise SystemExit/KeyboardInterrupt/GeneratorExit, and a look at ``sys.modules``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

if os.environ.get("HOSTILE_NOFILE"):
    import resource

    _limit = int(os.environ["HOSTILE_NOFILE"])
    resource.setrlimit(resource.RLIMIT_NOFILE, (_limit, _limit))

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")

from pyrite.core.daemon import Daemon  # noqa: E402
from pyrite.core.exposure import expose, oneway  # noqa: E402

_EXITS: dict[str, type[BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
}


@expose
class Hostile:
    """What the hostile tests call on the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def echo(self, value: Any) -> Any:
        return value

    def slow(self, seconds: float) -> float:
        time.sleep(min(float(seconds), 5.0))
        return seconds

    @oneway
    def slow_oneway(self, seconds: float, padding: str = "") -> None:
        time.sleep(min(float(seconds), 5.0))
        with self._lock:
            self._count += 1

    @oneway
    def count_oneway(self) -> None:
        with self._lock:
            self._count += 1

    def count(self) -> int:
        with self._lock:
            return self._count

    def big(self, size: int) -> str:
        return "x" * min(int(size), 64 * 1024 * 1024)

    def gen(self, n: int) -> Any:
        return (i for i in range(int(n)))

    def raise_exit(self, kind: str) -> None:
        raise _EXITS[kind]("raised by a user method")

    @oneway
    def oneway_exit(self, kind: str) -> None:
        raise _EXITS[kind]("raised by a oneway user method")

    def has_module(self, name: str) -> bool:
        return name in sys.modules

    def blob_info_type(self, blob: Any) -> str:
        return type(blob.info).__name__

    def pid(self) -> int:
        return os.getpid()


def main() -> None:
    unixsocket = os.environ.get("HOSTILE_UNIXSOCKET") or None
    daemon = Daemon(host="127.0.0.1", port=0, unixsocket=unixsocket)
    uri = daemon.register(Hostile(), "hostile")
    print(f"URI {uri}", flush=True)
    daemon.requestLoop()


if __name__ == "__main__":
    main()

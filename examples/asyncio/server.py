"""A plain (sync) daemon with a slow-ish lookup service, for the asyncio client to call."""

from __future__ import annotations

import sys
import time

import pyrite.api as api

OBJECT_ID = "example.asyncio"


@api.expose
class Library:
    """Books by number; each lookup takes a little while, as a database call would."""

    def __init__(self) -> None:
        self.visits = 0

    def title(self, number: int) -> str:
        time.sleep(0.001)
        return f"book {number}"

    def shelf(self, count: int):  # a generator: the client gets an async iterator
        for number in range(count):
            yield self.title(number)

    @property
    def name(self) -> str:
        return "the example library"

    @api.oneway
    def visit(self) -> None:
        self.visits += 1

    def visitors(self) -> int:
        return self.visits


def make_daemon(host: str = "127.0.0.1", port: int = 0) -> tuple[api.Daemon, api.URI]:
    daemon = api.Daemon(host=host, port=port)
    return daemon, daemon.register(Library(), OBJECT_ID)


def main() -> None:
    daemon, uri = make_daemon(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print("Ready. Object uri =", uri, flush=True)
    with daemon:
        daemon.requestLoop()


if __name__ == "__main__":
    main()

"""A server whose methods return generators and iterators."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator

import pyrite.api as api

OBJECT_ID = "example.streaming"


@api.expose
class Streamer:
    """Produces items one at a time."""

    def countdown(self, start: int) -> Iterator[int]:
        yield from range(start, 0, -1)

    def squares(self) -> Iterator[int]:
        # an endless stream: the client decides when it has seen enough
        return (n * n for n in itertools.count(1))

    def lines(self) -> Iterator[str]:
        return iter(["first line", "second line", "third line"])


def make_daemon(host: str = "127.0.0.1", port: int = 0) -> tuple[api.Daemon, api.URI]:
    daemon = api.Daemon(host=host, port=port)
    return daemon, daemon.register(Streamer, OBJECT_ID)


def main() -> None:
    daemon, uri = make_daemon(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print("Ready. Object uri =", uri, flush=True)
    with daemon:
        daemon.requestLoop()


if __name__ == "__main__":
    main()

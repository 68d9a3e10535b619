"""Consumes the remote generators item by item."""

from __future__ import annotations

import sys

import pyrite.api as api


def run(uri: str) -> None:
    with api.Proxy(uri) as streamer:
        print("countdown:", " ".join(str(n) for n in streamer.countdown(5)))
        squares = streamer.squares()
        first = [next(squares) for _ in range(6)]
        print("first squares of an endless stream:", first)
        squares.close()  # tells the server to drop the rest of the stream
        for line in streamer.lines():
            print("line:", line)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python client.py PYRO:example.streaming@host:port")
    run(sys.argv[1])


if __name__ == "__main__":
    main()

"""Calls the Unix-socket daemon."""

from __future__ import annotations

import sys

import pyrite.api as api


def run(uri: str) -> None:
    with api.Proxy(uri) as echo:
        print("location:", api.URI(uri).location)
        print(echo.echo("hello over a unix socket"))


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python client.py PYRO:example.unixsocket@./u:/path/to/socket")
    run(sys.argv[1])


if __name__ == "__main__":
    main()

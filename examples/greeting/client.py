"""The greeting client: calls the server through its PYRO: URI."""

from __future__ import annotations

import sys

import pyrite.api as api


def run(uri: str, name: str = "Alice") -> None:
    with api.Proxy(uri) as greeting_maker:
        print(greeting_maker.get_fortune(name))
        try:
            greeting_maker.get_fortune("")
        except ValueError as exc:
            # the error was raised in the server; its traceback came along
            remote = "".join(getattr(exc, "_pyroTraceback", []))
            print(f"The server refused: {exc!r}; remote traceback has {len(remote.splitlines())} lines")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python client.py PYRO:example.greeting@host:port [name]")
    run(sys.argv[1], *sys.argv[2:3])


if __name__ == "__main__":
    main()

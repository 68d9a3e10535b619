"""Sends Rectangles to the server with several serializers."""

from __future__ import annotations

import sys

import pyrite.api as api
import shapes


def run(uri: str) -> None:
    shapes.register()
    for serializer in ("serpent", "json", "msgpack"):
        with api.Proxy(uri) as shop:
            shop._pyroSerializer = serializer
            bigger = shop.scale(shapes.Rectangle(2, 3), 10)
            area = shop.total_area([shapes.Rectangle(1, 1), bigger])
            print(f"{serializer:8} scale -> {bigger!r} ({type(bigger).__name__}), total area {area}")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python client.py PYRO:example.shapes@host:port")
    run(sys.argv[1])


if __name__ == "__main__":
    main()

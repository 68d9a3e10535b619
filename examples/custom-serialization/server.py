"""A server that takes and returns Rectangle objects."""

from __future__ import annotations

import sys

import pyrite.api as api
import shapes

OBJECT_ID = "example.shapes"


@api.expose
class ShapeShop:
    """Works on Rectangles sent by clients."""

    def scale(self, rect: shapes.Rectangle, factor: float) -> shapes.Rectangle:
        if not isinstance(rect, shapes.Rectangle):
            raise TypeError(f"expected a Rectangle, got {type(rect).__name__}")
        return shapes.Rectangle(rect.width * factor, rect.height * factor)

    def total_area(self, rects: list[shapes.Rectangle]) -> float:
        return sum(r.area() for r in rects)


def make_daemon(host: str = "127.0.0.1", port: int = 0) -> tuple[api.Daemon, api.URI]:
    shapes.register()
    daemon = api.Daemon(host=host, port=port)
    return daemon, daemon.register(ShapeShop, OBJECT_ID)


def main() -> None:
    daemon, uri = make_daemon(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print("Ready. Object uri =", uri, flush=True)
    with daemon:
        daemon.requestLoop()


if __name__ == "__main__":
    main()

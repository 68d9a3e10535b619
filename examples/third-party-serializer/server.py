"""A server that reports which serializer each request arrived in."""

from __future__ import annotations

import sys
from typing import Any

import pyrite.api as api

OBJECT_ID = "example.plugin"


@api.expose
class Inspector:
    """Echoes data back and tells which serializer carried the call."""

    def serializer_id(self) -> int:
        return api.current_context.serializer_id

    def roundtrip(self, data: Any) -> Any:
        return data


def make_daemon(host: str = "127.0.0.1", port: int = 0) -> tuple[api.Daemon, api.URI]:
    daemon = api.Daemon(host=host, port=port)
    return daemon, daemon.register(Inspector, OBJECT_ID)


def main() -> None:
    daemon, uri = make_daemon(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print("Ready. Object uri =", uri, flush=True)
    with daemon:
        daemon.requestLoop()


if __name__ == "__main__":
    main()

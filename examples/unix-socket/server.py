"""A daemon listening on a Unix-domain socket."""

from __future__ import annotations

import os
import sys

import pyrite.api as api

OBJECT_ID = "example.unixsocket"


@api.expose
class Echo:
    """Echoes, and says which process answered."""

    def echo(self, message: str) -> str:
        return f"echo from process {os.getpid()}: {message}"


def make_daemon(socket_path: str) -> tuple[api.Daemon, api.URI]:
    daemon = api.Daemon(unixsocket=socket_path)
    return daemon, daemon.register(Echo, OBJECT_ID)


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/pyrite-example.sock"
    daemon, uri = make_daemon(path)
    print("Ready. Object uri =", uri, flush=True)
    with daemon:
        daemon.requestLoop()


if __name__ == "__main__":
    main()

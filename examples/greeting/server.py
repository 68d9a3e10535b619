"""The greeting server: one exposed object at a fixed object id."""

from __future__ import annotations

import sys

import pyrite.api as api

OBJECT_ID = "example.greeting"


@api.expose
class GreetingMaker:
    """Greets whoever asks."""

    def get_fortune(self, name: str) -> str:
        if not name:
            raise ValueError("a fortune needs a name")
        return f"Hello, {name}. Here is your fortune message: tomorrow's lucky number is 12345678."


def make_daemon(host: str = "127.0.0.1", port: int = 0) -> tuple[api.Daemon, api.URI]:
    """A daemon serving a GreetingMaker (port 0 picks a free port), and the object's URI."""
    daemon = api.Daemon(host=host, port=port)
    uri = daemon.register(GreetingMaker, OBJECT_ID)
    return daemon, uri


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    daemon, uri = make_daemon(port=port)
    print("Ready. Object uri =", uri, flush=True)
    with daemon:
        daemon.requestLoop()  # until Ctrl-C


if __name__ == "__main__":
    main()

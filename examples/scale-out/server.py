"""One replica of the example service: publishes itself as a replica under a lease.

    python server.py NAME_SERVER_URI LABEL

It renews its lease every ttl/3 seconds; on Ctrl-C or SIGTERM it takes its URI out
of the replica set; after a kill -9 its URI expires ttl seconds later."""

from __future__ import annotations

import signal
import sys

import pyrite.api as api

SERVICE_NAME = "example.scaleout.service"
TTL = 3.0


@api.expose
class Service:
    def __init__(self, label: str) -> None:
        self.label = label

    def where(self) -> str:
        return self.label


def main() -> None:
    ns_uri, label = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with api.Daemon(host="127.0.0.1") as daemon:
        uri = daemon.publish(Service(label), SERVICE_NAME, ttl=TTL, replica=True, ns=ns_uri)
        print(f"replica {label} published as {uri}", flush=True)
        try:
            daemon.requestLoop()
        except (KeyboardInterrupt, SystemExit):
            pass


if __name__ == "__main__":
    main()

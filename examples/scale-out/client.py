"""A client of the example service: calls it through a name server, a few times.

    python client.py NAME_SERVER_HOST:PORT [CALLS]

Each call makes a new proxy from ``PYRONAME:example.scaleout.service@HOST:PORT``: the name
server hands out the replicas in turn, and a proxy whose replica is gone uses another."""

from __future__ import annotations

import sys

import pyrite.api as api
from server import SERVICE_NAME


def main() -> None:
    where = sys.argv[1]
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    for _ in range(calls):
        with api.Proxy(f"PYRONAME:{SERVICE_NAME}@{where}") as service:
            service._pyroTimeout = 5
            print("answered by", service.where())


if __name__ == "__main__":
    main()

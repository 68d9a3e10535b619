"""Finds the thermometers through the name server: by name, by metadata, by listing."""

from __future__ import annotations

import sys

import pyrite.api as api


def run(ns_host: str, ns_port: int) -> None:
    with api.locate_ns(ns_host, ns_port) as ns:
        names = ns.list(prefix="example.")
        print("names under 'example.':", ", ".join(sorted(names)))
        uri, metadata = ns.lookup("example.thermometer.attic", return_metadata=True)
        print("attic metadata:", ", ".join(sorted(metadata)))
        found = ns.yplookup(meta_all={"class:thermometer"}, return_metadata=False)
        print("thermometers by metadata:", len(found))

    # PYRONAME: asks the name server for the URI on the first call
    with api.Proxy(f"PYRONAME:example.thermometer.kitchen@{ns_host}:{ns_port}") as kitchen:
        print("by name:", kitchen.reading())
    # PYROMETA: picks an object that carries every listed tag
    with api.Proxy(f"PYROMETA:class:thermometer,room:attic@{ns_host}:{ns_port}") as attic:
        print("by metadata:", attic.reading())


def main() -> None:
    ns_host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    ns_port = int(sys.argv[2]) if len(sys.argv) > 2 else 9090
    run(ns_host, ns_port)


if __name__ == "__main__":
    main()

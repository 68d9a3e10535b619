"""Registers two thermometers in a name server, tagged with metadata."""

from __future__ import annotations

import sys

import pyrite.api as api


@api.expose
class Thermometer:
    """Reports the temperature of one room."""

    def __init__(self, room: str, celsius: float) -> None:
        self.room = room
        self.celsius = celsius

    def reading(self) -> str:
        return f"{self.room}: {self.celsius:.1f} C"


ROOMS = {
    "example.thermometer.kitchen": ("kitchen", 21.5, {"room:kitchen", "class:thermometer"}),
    "example.thermometer.attic": ("attic", 14.0, {"room:attic", "class:thermometer"}),
}


def make_daemon(ns_host: str, ns_port: int) -> api.Daemon:
    """A daemon serving both thermometers, registered in the name server at ns_host:ns_port."""
    daemon = api.Daemon(host="127.0.0.1")
    with api.locate_ns(ns_host, ns_port) as ns:
        for name, (room, celsius, metadata) in ROOMS.items():
            uri = daemon.register(Thermometer(room, celsius))
            ns.register(name, uri, metadata=metadata)
            print(f"registered {name} -> {uri}")
    return daemon


def main() -> None:
    ns_host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    ns_port = int(sys.argv[2]) if len(sys.argv) > 2 else 9090
    with make_daemon(ns_host, ns_port) as daemon:
        print("Ready.", flush=True)
        daemon.requestLoop()  # until Ctrl-C


if __name__ == "__main__":
    main()

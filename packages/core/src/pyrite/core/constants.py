"""Fixed values of Pyro5's wire protocol and object naming (a leaf: imports nothing).

``protocol`` re-exports the wire constants, ``uri`` the object ids, so both
older import paths keep working.
"""

from __future__ import annotations

PROTOCOL_VERSION = 502
"""The Pyro5 wire protocol version pyrite speaks (header bytes 4-5)."""

MAGIC = 0x4DC5
"""The last two bytes of every message header."""

HEADER_SIZE = 40
"""Bytes in a message header."""

DAEMON_NAME = "Pyro.Daemon"
"""Object id of a daemon's own object (metadata, item streams, ping)."""

NAMESERVER_NAME = "Pyro.NameServer"
"""Object id (and registered name) of the name server."""

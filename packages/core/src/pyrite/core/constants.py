"""Wire-level constants every layer agrees on.  A leaf module: it imports nothing.

``PROTOCOL_VERSION`` is the version word in every message header (Pyro5's
protocol 502); ``DAEMON_NAME`` and ``NAMESERVER_NAME`` are the well-known
object ids of a daemon's own object and of the name server.
"""

from __future__ import annotations

__all__ = ["PROTOCOL_VERSION", "DAEMON_NAME", "NAMESERVER_NAME"]

PROTOCOL_VERSION = 502
"""The wire protocol version pyrite speaks (Pyro5's)."""

DAEMON_NAME = "Pyro.Daemon"
"""Object id of the ``DaemonObject`` every daemon registers for itself."""

NAMESERVER_NAME = "Pyro.NameServer"
"""Object id (and registered name) of the name server."""

"""``BroadcastServer``: answers UDP ``GET_NSURI`` broadcasts with the name server's URI.

This is how ``locate_ns()`` without a host finds a name server on the local
subnet: it broadcasts the 9 bytes ``GET_NSURI`` to ``config.BROADCAST_ADDRS``
on ``config.NS_BCPORT``, and the responder sends back the URI as text
(ISO-8859-1), exactly as Pyro5's responder does.

Run it in its own thread (``runInThread()``), or plug it into a daemon's
event loop: it has ``fileno()`` and ``processRequest()``, plus the
``transportServer``/``sockets``/``events`` shape that ``Daemon.combine``
expects.  Anything other than an exact ``GET_NSURI`` datagram is ignored,
and replies are rate limited (``MAX_REPLIES_PER_SECOND``), so the responder
cannot be used to flood a third party with spoofed requests.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

from pyrite.core.config import config
from pyrite.core.uri import URI

__all__ = ["BroadcastServer", "REQUEST", "MAX_REPLIES_PER_SECOND"]

log = logging.getLogger("pyrite.nameserver")

REQUEST = b"GET_NSURI"
MAX_REPLIES_PER_SECOND = 200
_POLL = 1.0  # how often a responder thread looks at its running flag


def _local_address_toward(peer: str) -> str | None:
    """The local interface address a packet to ``peer`` would leave from (no packet is sent)."""
    family = socket.AF_INET6 if ":" in peer else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((peer, 9))
            address: str = probe.getsockname()[0]
            return address
    except OSError:
        return None


class _EventAdapter:
    """What ``Daemon.combine()`` reads from a server it merges into its own loop."""

    def __init__(self, bcserver: BroadcastServer) -> None:
        self.sockets = [bcserver]

    def events(self, eventobjects: Any) -> None:
        for bc in eventobjects:
            bc.processRequest()


class BroadcastServer:
    """A UDP responder telling broadcasting clients where the name server is.

    ``nsUri`` is the name server's (internal) URI.  ``bchost``/``bcport``
    default to ``config.NS_BCHOST`` (all interfaces) and ``config.NS_BCPORT``;
    port 0 picks a free port (see ``getPort()``).
    """

    def __init__(self, nsUri: Any, bchost: Any = None, bcport: int | None = None, ipv6: bool = False) -> None:
        self.nsUri = URI(nsUri) if isinstance(nsUri, str) else nsUri
        if bcport is None:
            bcport = config.NS_BCPORT
        if bchost is None:
            bchost = config.NS_BCHOST
        elif not isinstance(bchost, str):
            bchost = str(bchost)  # an ipaddress object
        nshost = self.nsUri.host or ""
        use_ipv6 = ipv6 or ":" in nshost or (bchost is not None and ":" in bchost)
        family = socket.AF_INET6 if use_ipv6 else socket.AF_INET
        bind_host = bchost or ("::" if use_ipv6 else "")
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if config.SOCK_REUSE:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((bind_host, bcport, 0, 0) if use_ipv6 else (bind_host, bcport))
            self.sock.settimeout(_POLL)
        except OSError:
            self.sock.close()
            raise
        self._sockaddr = self.sock.getsockname()
        host = bchost or self._sockaddr[0]
        port = self._sockaddr[1]
        self.locationStr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.transportServer = _EventAdapter(self)
        self.running = True
        self._window = 0.0
        self._replies = 0
        log.info("ns broadcast server created on %s", self.locationStr)

    @property
    def sockets(self) -> list[BroadcastServer]:
        """The objects a selector waits on (this responder itself, via ``fileno()``)."""
        return [self]

    def events(self, eventobjects: Any) -> None:
        """Handle the pending requests (for an external event loop)."""
        self.transportServer.events(eventobjects)

    def _engine(self) -> _EventAdapter:
        # what pyrite's Daemon.combine() asks of the server it merges
        return self.transportServer

    def fileno(self) -> int:
        """The UDP socket's descriptor."""
        return self.sock.fileno()

    def getPort(self) -> int:
        """The UDP port the responder is bound to."""
        port: int = self._sockaddr[1]
        return port

    def runInThread(self) -> threading.Thread:
        """Answer requests in a daemon thread until ``close()``; returns the thread."""
        thread = threading.Thread(target=self._loop, name="pyrite-ns-broadcast", daemon=True)
        thread.start()
        return thread

    def _loop(self) -> None:
        while self.running:
            self.processRequest()

    def _may_reply(self) -> bool:
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._window = now
            self._replies = 0
        self._replies += 1
        return self._replies <= MAX_REPLIES_PER_SECOND

    def processRequest(self) -> None:
        """Read one datagram (waiting at most a second) and answer it if it is ``GET_NSURI``."""
        try:
            data, addr = self.sock.recvfrom(64)
        except (OSError, ValueError):  # timeout, closed socket, ICMP errors
            return
        if data != REQUEST or not self._may_reply():
            return
        reply = URI(self.nsUri)
        if reply.host in ("0.0.0.0", "::"):
            # bound to every interface: answer with the address on the requester's side
            local = _local_address_toward(addr[0])
            if local:
                reply.host = local
        try:
            self.sock.sendto(str(reply).encode("iso-8859-1"), 0, addr)
        except (OSError, UnicodeEncodeError) as exc:
            log.debug("cannot answer broadcast from %s: %s", addr[0], exc)

    def close(self) -> None:
        """Stop answering and release the port (a running thread ends within a second)."""
        self.running = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recvfrom
        self.sock.close()

    def __enter__(self) -> BroadcastServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

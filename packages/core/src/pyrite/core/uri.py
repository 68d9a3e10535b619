"""``URI``: the address of a remote object.

Forms (the protocol word is case-insensitive and stored upper case)::

    PYRO:objectid@host:port          a TCP location
    PYRO:objectid@[::1]:port         an IPv6 location
    PYRO:objectid@./u:/tmp/sock      a Unix-domain socket
    PYRONAME:name[@nshost[:nsport]]  looked up in a name server
    PYROMETA:meta1,meta2[@nshost[:nsport]]  looked up by metadata

On the wire a URI travels as ``Pyro5.core.URI`` with state
``(protocol, object, sockname, host, port)``.
"""

from __future__ import annotations

import re
from typing import Any

from .constants import DAEMON_NAME, NAMESERVER_NAME
from .errors import PyroError

__all__ = ["URI", "DAEMON_NAME", "NAMESERVER_NAME"]

_URI_RE = re.compile(r"(?P<protocol>[Pp][Yy][Rr][Oo][a-zA-Z]*):(?P<object>\S+?)(@(?P<location>.+))?$")
_IPV6_RE = re.compile(r"\[([0-9a-fA-F:%.]+)](?::(\d+))?$")


class URI:
    """A parsed pyrite/Pyro5 URI.  Accepts a string or another URI (copied)."""

    __slots__ = ("protocol", "object", "sockname", "host", "port")

    def __init__(self, uri: str | URI) -> None:
        if isinstance(uri, URI):
            self.__setstate__(uri.__getstate__())
            return
        if not isinstance(uri, str):
            raise TypeError(f"URI() takes a str or a URI, not {type(uri).__name__}")
        self.sockname: str | None = None
        self.host: str | None = None
        self.port: int | None = None
        match = _URI_RE.match(uri)
        if not match:
            raise PyroError(f"invalid uri: {uri!r}")
        self.protocol = match.group("protocol").upper()
        obj: Any = match.group("object")
        location = match.group("location")
        if self.protocol == "PYRO":
            if not location:
                raise PyroError(f"invalid uri (a PYRO uri needs a location): {uri!r}")
            self._parse_location(location, None)
        elif self.protocol in ("PYRONAME", "PYROMETA"):
            from .config import config

            if self.protocol == "PYROMETA":
                obj = {m.strip() for m in obj.split(",")}
            self._parse_location(location, config.NS_PORT)
        else:
            raise PyroError(f"invalid uri (unknown protocol {self.protocol!r})")
        self.object = obj

    def _parse_location(self, location: str | None, default_port: int | None) -> None:
        if not location:
            return
        if location.startswith("./u:"):
            self.sockname = location[4:]
            if not self.sockname or ":" in self.sockname:
                raise PyroError(f"invalid uri (unix socket location): {location!r}")
            return
        if location.startswith("["):
            if location.startswith("[["):
                raise PyroError(f"bad IPv6 location {location!r}: nested brackets")
            m = _IPV6_RE.match(location)
            if not m:
                raise PyroError(f"bad IPv6 location {location!r}: expected [numeric-ipv6-address]:port")
            host, port = m.group(1), m.group(2)
        else:
            host, _, port = location.partition(":")
        self.host = host
        if not port:
            self.port = default_port
            return
        try:
            self.port = int(port)
        except ValueError:
            raise PyroError(f"invalid port in uri, port={port}") from None
        if not 0 <= self.port <= 65535:
            raise PyroError(f"invalid port in uri, port={port}")

    @staticmethod
    def isUnixsockLocation(location: str) -> bool:
        """True if a location string names a Unix-domain socket (``./u:...``)."""
        return location.startswith("./u:")

    @property
    def location(self) -> str | None:
        """The location part: ``host:port``, ``[ipv6]:port``, ``./u:path`` or None."""
        if self.host:
            if ":" in self.host:
                return f"[{self.host}]:{self.port}"
            return f"{self.host}:{self.port}"
        if self.sockname:
            return "./u:" + self.sockname
        return None

    def __str__(self) -> str:
        obj = ",".join(sorted(self.object)) if self.protocol == "PYROMETA" else self.object
        location = self.location
        return f"{self.protocol}:{obj}@{location}" if location else f"{self.protocol}:{obj}"

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} at 0x{id(self):x}; {self}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URI) and self.__getstate__() == other.__getstate__()

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        state = self.__getstate__()
        if isinstance(state[1], set):
            state = (state[0], frozenset(state[1])) + state[2:]
        return hash(state)

    def __getstate__(self) -> tuple[Any, ...]:
        return self.protocol, self.object, self.sockname, self.host, self.port

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.protocol, self.object, self.sockname, self.host, self.port = state

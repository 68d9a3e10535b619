"""pyrite's configuration: Pyro5's item names, set from code or ``PYRITE_*`` variables.

Use the module-level ``config`` object (``pyrite.api.config``)::

    from pyrite.core.config import config
    config.SERIALIZER = "msgpack"
    config.COMMTIMEOUT = 5.0

``Configuration`` declares every item as a typed attribute with its default
(one item per line: add new items there).  Assigning a name that is not an
item raises ``AttributeError``, as Pyro5's ``__slots__`` config does.

At import (and on ``config.reset()``) every environment variable that starts
with ``PYRITE_`` overrides the item of the same name, converted to the type of
the default.  An unknown ``PYRITE_`` variable, or a value that does not
convert, raises ``ValueError`` naming it.  ``PYRO_`` variables are Pyro5's and
are left alone, so both libraries can live in one process.

Each item remembers where its value came from (``config.origin("NS_PORT")``:
``"default"``, the ``PYRITE_`` variable's name, or ``"code"``).  To see the
effective configuration with those origins::

    python -m pyrite.core.config          # or: pyrite-check-config
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from ._version import __version__
from .constants import PROTOCOL_VERSION

__all__ = ["Configuration", "config", "global_config", "ENV_PREFIX", "DEFAULT", "CODE", "main"]

ENV_PREFIX = "PYRITE_"
DEFAULT = "default"
"""``origin()`` of an item still at its declared default."""
CODE = "code"
"""``origin()`` of an item assigned by the program."""


def _lan_broadcast() -> list[str]:
    return ["<broadcast>", "0.0.0.0"]


@dataclass(slots=True, init=False, repr=False, eq=False)
class Configuration:
    """The set of config items.  Attribute names are Pyro5's; unknown names are refused."""

    HOST: str = "localhost"
    NS_HOST: str = "localhost"
    NS_PORT: int = 9090
    NS_BCPORT: int = 9091
    NS_BCHOST: str | None = None
    NS_AUTOCLEAN: float = 0.0
    NS_LOOKUP_DELAY: float = 0.0
    NATHOST: str | None = None
    NATPORT: int = 0
    COMPRESSION: bool = False
    SERVERTYPE: str = "thread"
    COMMTIMEOUT: float = 0.0
    POLLTIMEOUT: float = 2.0
    MAX_RETRIES: int = 0
    SOCK_REUSE: bool = True
    SOCK_NODELAY: bool = False
    DETAILED_TRACEBACK: bool = False
    THREADPOOL_SIZE: int = 80
    THREADPOOL_SIZE_MIN: int = 4
    MAX_MESSAGE_SIZE: int = 1024 * 1024 * 1024
    BROADCAST_ADDRS: list[str] = field(default_factory=_lan_broadcast)
    PREFER_IP_VERSION: int = 0
    SERIALIZER: str = "serpent"
    SERPENT_BYTES_REPR: bool = False
    ITER_STREAMING: bool = True
    ITER_STREAM_LIFETIME: float = 0.0
    ITER_STREAM_LINGER: float = 30.0
    LOGFILE: str | None = None
    LOGLEVEL: str | None = None
    LOGWIRE: bool = False
    SSL: bool = False
    SSL_SERVERCERT: str = ""
    SSL_SERVERKEY: str = ""
    SSL_SERVERKEYPASSWD: str = ""
    SSL_REQUIRECLIENTCERT: bool = False
    SSL_CLIENTCERT: str = ""
    SSL_CLIENTKEY: str = ""
    SSL_CLIENTKEYPASSWD: str = ""
    SSL_CACERTS: str = ""
    # pyrite's own: how many threads run oneway calls in a daemon at most.
    ONEWAY_THREADS: int = 16

    # pyrite's own: the most a message may hold (declared, and inflated) before the
    # server side of a connection has accepted its handshake.
    MAX_PREHANDSHAKE_SIZE: int = 64 * 1024
    # pyrite's own: beyond 1 MiB, a compressed payload may inflate to at most this many
    # times its compressed size (0 = no ratio limit; MAX_MESSAGE_SIZE always applies).
    MAX_DECOMPRESSION_RATIO: int = 500

    # pyrite's own: open item streams per client connection, and in a whole daemon (0: no limit)
    ITER_STREAM_MAX_PER_CONNECTION: int = 1000
    ITER_STREAM_MAX: int = 10000
    # the serializers a daemon accepts, by name (empty: every installed one)
    SERIALIZERS_ACCEPTED: list[str] = field(default_factory=list)
    # the most calls one batch may carry (0: no limit)
    MAX_BATCH_CALLS: int = 10000

    # pyrite's own: a name server with a write token takes register/remove/set_metadata only
    # from clients whose handshake data carries it ("" = no write policy, as in Pyro5).
    NS_WRITE_TOKEN: str = ""

    # pyrite's own, issue 8 (engine deadlines and caps; seconds, 0 switches one off):
    # accept -> handshake done (covers the TLS handshake)
    HANDSHAKE_TIMEOUT: float = 10.0
    # first byte of a message -> its last byte
    FRAME_TIMEOUT: float = 60.0
    # a connection with nothing to do is closed after this long
    IDLE_TIMEOUT: float = 0.0
    # a reply the peer does not read (thread engine: each send)
    SEND_TIMEOUT: float = 30.0
    # 0: derived from the descriptor limit (RLIMIT_NOFILE) with headroom
    MAX_CONNECTIONS: int = 0
    # multiplex: replies queued for a peer that does not read
    MAX_OUTPUT_BUFFER: int = 16 * 1024 * 1024

    # bookkeeping, not an item: item -> where its value came from
    _origins: dict[str, str] = field(default_factory=dict)

    def __init__(self) -> None:
        object.__setattr__(self, "_origins", {})
        self.reset()

    def __setattr__(self, name: str, value: Any) -> None:
        # slots refuse unknown names; this only records that the program chose the value
        object.__setattr__(self, name, value)
        if name in _ITEMS:
            self._origins[name] = CODE

    def reset(self, use_environment: bool = True) -> None:
        """Set every item back to its default, then apply ``PYRITE_*`` variables unless told not to."""
        origins = self._origins
        for item, make_default in _DEFAULTS.items():
            object.__setattr__(self, item, make_default())
            origins[item] = DEFAULT
        if not use_environment:
            return
        for key, text in os.environ.items():
            if not key.startswith(ENV_PREFIX):
                continue
            item = key[len(ENV_PREFIX) :]
            if item not in _DEFAULTS:
                raise ValueError(
                    f"unknown pyrite environment config variable: {key} (known items: {', '.join(sorted(_ITEMS))})"
                )
            object.__setattr__(self, item, _convert(item, _DEFAULTS[item](), text))
            origins[item] = key

    def origin(self, item: str) -> str:
        """Where ``item``'s value came from: ``"default"``, a ``PYRITE_*`` variable name, or ``"code"``."""
        if item not in _DEFAULTS:
            raise AttributeError(f"no config item {item!r}")
        return self._origins.get(item, DEFAULT)

    def copy(self) -> Configuration:
        """An independent copy of the current settings (origins included)."""
        other = object.__new__(Configuration)
        for item in _ITEMS:
            value = getattr(self, item)
            object.__setattr__(other, item, list(value) if isinstance(value, list) else value)
        object.__setattr__(other, "_origins", dict(self._origins))
        return other

    def as_dict(self) -> dict[str, Any]:
        """The items as a plain dict."""
        return {item: getattr(self, item) for item in _ITEMS}

    def dump(self) -> str:
        """A human-readable summary of versions and the current settings, each with its origin."""
        lines = [
            f"pyrite version: {__version__}",
            f"Loaded from: {os.path.dirname(os.path.abspath(__file__))}",
            f"Python version: {platform.python_implementation()} {platform.python_version()} "
            f"({platform.system()}, {os.name})",
            f"Protocol version: {PROTOCOL_VERSION}",
            "Currently active configuration settings (origin in brackets):",
        ]
        lines += [f"{k} = {v}    [{self.origin(k)}]" for k, v in sorted(self.as_dict().items())]
        return "\n".join(lines)


def _default_maker(item: Field[Any]) -> Callable[[], Any]:
    if item.default_factory is not MISSING:
        return item.default_factory
    value = item.default
    return lambda: value


# item name -> callable giving a fresh default (lists are never shared between configs)
_DEFAULTS: dict[str, Callable[[], Any]] = {
    f.name: _default_maker(f) for f in fields(Configuration) if not f.name.startswith("_")
}
_ITEMS = frozenset(_DEFAULTS)

_TRUE = ("1", "yes", "on", "true")
_FALSE = ("0", "off", "no", "false")


def _convert(item: str, default: Any, text: str) -> Any:
    name = ENV_PREFIX + item
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"invalid boolean value: {name}={text!r}")
    if isinstance(default, list):
        return [v.strip() for v in text.split(",") if v.strip()]
    if default is None:
        return text
    try:
        return type(default)(text)
    except ValueError:
        raise ValueError(f"invalid value for {name}: {text!r} is not {type(default).__name__}") from None


config = Configuration()
global_config = config  # Pyro5 spells it this way in Pyro5.configure


def main(argv: Sequence[str] | None = None) -> int:
    """``pyrite-check-config`` / ``python -m pyrite.core.config``: print the effective configuration."""
    parser = argparse.ArgumentParser(
        prog="pyrite-check-config",
        description="Show pyrite's effective configuration and where each value came from "
        f"(its default, a {ENV_PREFIX}* environment variable, or the program).",
    )
    parser.parse_args(argv)
    # run as ``python -m``, this file is __main__; report the config object the library uses
    module = sys.modules.get("pyrite.core.config")
    active = getattr(module, "config", config)
    print(active.dump())
    return 0


def _configure_logging() -> None:
    """Set up logging from PYRITE_LOGLEVEL / PYRITE_LOGFILE, as Pyro5 does from its PYRO_ ones,
    but only if the program has not configured logging itself."""
    import logging

    if not config.LOGLEVEL or logging.root.handlers:
        return
    level = getattr(logging, str(config.LOGLEVEL).upper(), None)
    if not isinstance(level, int):
        raise ValueError(f"invalid value for {ENV_PREFIX}LOGLEVEL: {config.LOGLEVEL!r}")
    logfile = config.LOGFILE or "pyrite.log"
    logging.basicConfig(
        level=level,
        filename=None if logfile == "{stderr}" else logfile,
        format="[%(asctime)s.%(msecs)03d,%(name)s,%(levelname)s] %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


_configure_logging()

if __name__ == "__main__":
    sys.exit(main())

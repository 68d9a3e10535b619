"""pyrite's configuration: Pyro5's item names, set from code or ``PYRITE_*`` variables.

Use the module-level ``config`` object (``pyrite.api.config``)::

    from pyrite.core.config import config
    config.SERIALIZER = "msgpack"
    config.COMMTIMEOUT = 5.0

At import (and on ``config.reset()``) every environment variable that starts
with ``PYRITE_`` overrides the item of the same name, converted to the type of
the default.  An unknown ``PYRITE_`` variable, or a value that does not
convert, raises ``ValueError`` naming it.  ``PYRO_`` variables are Pyro5's and
are left alone, so both libraries can live in one process.
"""

from __future__ import annotations

import os
import platform
from typing import Any

ENV_PREFIX = "PYRITE_"

_DEFAULTS: dict[str, Any] = {
    "HOST": "localhost",
    "NS_HOST": "localhost",
    "NS_PORT": 9090,
    "NS_BCPORT": 9091,
    "NS_BCHOST": None,
    "NS_AUTOCLEAN": 0.0,
    "NS_LOOKUP_DELAY": 0.0,
    "NATHOST": None,
    "NATPORT": 0,
    "COMPRESSION": False,
    "SERVERTYPE": "thread",
    "COMMTIMEOUT": 0.0,
    "POLLTIMEOUT": 2.0,
    "MAX_RETRIES": 0,
    "SOCK_REUSE": True,
    "SOCK_NODELAY": False,
    "DETAILED_TRACEBACK": False,
    "THREADPOOL_SIZE": 80,
    "THREADPOOL_SIZE_MIN": 4,
    "MAX_MESSAGE_SIZE": 1024 * 1024 * 1024,
    "BROADCAST_ADDRS": ["<broadcast>", "0.0.0.0"],
    "PREFER_IP_VERSION": 0,
    "SERIALIZER": "serpent",
    "SERPENT_BYTES_REPR": False,
    "ITER_STREAMING": True,
    "ITER_STREAM_LIFETIME": 0.0,
    "ITER_STREAM_LINGER": 30.0,
    "LOGFILE": None,
    "LOGLEVEL": None,
    "LOGWIRE": False,
    "SSL": False,
    "SSL_SERVERCERT": "",
    "SSL_SERVERKEY": "",
    "SSL_SERVERKEYPASSWD": "",
    "SSL_REQUIRECLIENTCERT": False,
    "SSL_CLIENTCERT": "",
    "SSL_CLIENTKEY": "",
    "SSL_CLIENTKEYPASSWD": "",
    "SSL_CACERTS": "",
    # pyrite's own: how many threads run oneway calls in a daemon at most.
    "ONEWAY_THREADS": 16,
    # pyrite's own: open item streams per client connection, and in a whole daemon (0: no limit)
    "ITER_STREAM_MAX_PER_CONNECTION": 1000,
    "ITER_STREAM_MAX": 10000,
    # the serializers a daemon accepts, by name (empty: every installed one)
    "SERIALIZERS_ACCEPTED": [],
    # the most calls one batch may carry (0: no limit)
    "MAX_BATCH_CALLS": 10000,
    # pyrite's own: the most a message may hold (declared, and inflated) before the
    # server side of a connection has accepted its handshake.
    "MAX_PREHANDSHAKE_SIZE": 64 * 1024,
    # pyrite's own: beyond 1 MiB, a compressed payload may inflate to at most this many
    # times its compressed size (0 = no ratio limit; MAX_MESSAGE_SIZE always applies).
    "MAX_DECOMPRESSION_RATIO": 500,
    # pyrite's own, issue 8 (engine deadlines and caps; seconds, 0 switches one off):
    "HANDSHAKE_TIMEOUT": 10.0,  # accept -> handshake done (covers the TLS handshake)
    "FRAME_TIMEOUT": 60.0,  # first byte of a message -> its last byte
    "IDLE_TIMEOUT": 0.0,  # a connection with nothing to do is closed after this long
    "SEND_TIMEOUT": 30.0,  # a reply the peer does not read (thread engine: each send)
    "MAX_CONNECTIONS": 0,  # 0: derived from the descriptor limit (RLIMIT_NOFILE) with headroom
    "MAX_OUTPUT_BUFFER": 16 * 1024 * 1024,  # multiplex: replies queued for a peer that does not read
}

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


class Configuration:
    """The set of config items.  Attribute names are Pyro5's; unknown names are refused."""

    __slots__ = tuple(_DEFAULTS)

    def __init__(self) -> None:
        self.reset()

    def reset(self, use_environment: bool = True) -> None:
        """Set every item back to its default, then apply ``PYRITE_*`` variables unless told not to."""
        for item, value in _DEFAULTS.items():
            setattr(self, item, list(value) if isinstance(value, list) else value)
        if not use_environment:
            return
        for key, text in os.environ.items():
            if not key.startswith(ENV_PREFIX):
                continue
            item = key[len(ENV_PREFIX) :]
            if item not in _DEFAULTS:
                raise ValueError(
                    f"unknown pyrite environment config variable: {key} (known items: {', '.join(sorted(_DEFAULTS))})"
                )
            setattr(self, item, _convert(item, _DEFAULTS[item], text))

    def copy(self) -> Configuration:
        """An independent copy of the current settings."""
        other = object.__new__(Configuration)
        for item in self.__slots__:
            value = getattr(self, item)
            setattr(other, item, list(value) if isinstance(value, list) else value)
        return other

    def as_dict(self) -> dict[str, Any]:
        """The items as a plain dict."""
        return {item: getattr(self, item) for item in self.__slots__}

    def dump(self) -> str:
        """A human-readable summary of versions and current settings."""
        from . import __version__
        from .protocol import PROTOCOL_VERSION

        lines = [
            f"pyrite version: {__version__}",
            f"Python version: {platform.python_implementation()} {platform.python_version()}",
            f"Protocol version: {PROTOCOL_VERSION}",
            "Currently active configuration settings:",
        ]
        lines += [f"{k} = {v}" for k, v in sorted(self.as_dict().items())]
        return "\n".join(lines)


config = Configuration()
global_config = config  # Pyro5 spells it this way in Pyro5.configure


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

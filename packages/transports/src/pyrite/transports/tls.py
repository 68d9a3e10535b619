"""TLS for the TCP transport: ``ssl.SSLContext`` objects built from ``config``'s ``SSL_*`` items.

The items mean what they mean in Pyro5:

=========================  ==========================================================
``SSL``                    wrap every TCP connection and listener in TLS
``SSL_SERVERCERT``         a daemon's certificate (PEM; may hold the key too)
``SSL_SERVERKEY``          its private key, if not in the certificate file
``SSL_SERVERKEYPASSWD``    the password of that key, if it is encrypted
``SSL_REQUIRECLIENTCERT``  a daemon demands, and verifies, a client certificate
``SSL_CLIENTCERT``         a client's certificate (for 2-way TLS)
``SSL_CLIENTKEY``          its private key, if not in the certificate file
``SSL_CLIENTKEYPASSWD``    the password of that key, if it is encrypted
``SSL_CACERTS``            a PEM file or a directory of CA certificates to trust (both
                           sides; empty: the system's default trust store for clients)
=========================  ==========================================================

A client always verifies the server's certificate and host name (Python's
default client context, as Pyro5).  A daemon verifies client certificates only
with ``SSL_REQUIRECLIENTCERT``.

Contexts are cached per combination of these settings, so changing ``config``
takes effect on the next connect or listen.  An encrypted key with no password
configured prompts on the terminal as OpenSSL does, but only when stdin is a
terminal; otherwise it is a clear error instead of a hang.
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any

from pyrite.core.config import config
from pyrite.core.errors import CommunicationError

__all__ = ["server_context", "client_context", "clear_cache"]

_cache: dict[tuple[Any, ...], ssl.SSLContext] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget the cached contexts (e.g. after replacing certificate files on disk)."""
    with _lock:
        _cache.clear()


def _password(value: str, item: str) -> str | Callable[[], str] | None:
    if value:
        return value
    if sys.stdin is not None and sys.stdin.isatty():
        return None  # let OpenSSL prompt, as Pyro5 does

    def refuse() -> str:
        raise CommunicationError(f"the TLS private key is encrypted but config.{item} is not set")

    return refuse


def _load_chain(context: ssl.SSLContext, cert: str, key: str, password: str, prefix: str) -> None:
    if not os.path.isfile(cert):
        raise FileNotFoundError(f"TLS certificate file not found: config.SSL_{prefix}CERT={cert!r}")
    if key and not os.path.isfile(key):
        raise FileNotFoundError(f"TLS key file not found: config.SSL_{prefix}KEY={key!r}")
    try:
        context.load_cert_chain(cert, key or None, _password(password, f"SSL_{prefix}KEYPASSWD"))
    except ssl.SSLError as exc:
        raise CommunicationError(
            f"cannot load the TLS certificate/key {cert!r}{' / ' + repr(key) if key else ''}: {exc}"
        ) from exc


def _load_cacerts(context: ssl.SSLContext, cacerts: str) -> None:
    if not cacerts:
        return
    try:
        if os.path.isdir(cacerts):
            context.load_verify_locations(capath=cacerts)
        else:
            context.load_verify_locations(cafile=cacerts)
    except FileNotFoundError:
        raise FileNotFoundError(f"TLS CA certificates not found: config.SSL_CACERTS={cacerts!r}") from None
    except ssl.SSLError as exc:
        raise CommunicationError(f"cannot load TLS CA certificates from {cacerts!r}: {exc}") from exc


def server_context() -> ssl.SSLContext:
    """The context a TLS listener wraps accepted connections with (from the current config)."""
    key = (
        "server",
        config.SSL_SERVERCERT,
        config.SSL_SERVERKEY,
        config.SSL_SERVERKEYPASSWD,
        config.SSL_CACERTS,
        bool(config.SSL_REQUIRECLIENTCERT),
    )
    with _lock:
        context = _cache.get(key)
        if context is not None:
            return context
        if not config.SSL_SERVERCERT:
            raise CommunicationError(
                "config.SSL is on but config.SSL_SERVERCERT is not set: a TLS server needs a certificate"
            )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        _load_chain(context, config.SSL_SERVERCERT, config.SSL_SERVERKEY, config.SSL_SERVERKEYPASSWD, "SERVER")
        _load_cacerts(context, config.SSL_CACERTS)
        context.verify_mode = ssl.CERT_REQUIRED if config.SSL_REQUIRECLIENTCERT else ssl.CERT_NONE
        _cache[key] = context
        return context


def client_context() -> ssl.SSLContext:
    """The context a TLS client connection is made with (from the current config)."""
    key = ("client", config.SSL_CLIENTCERT, config.SSL_CLIENTKEY, config.SSL_CLIENTKEYPASSWD, config.SSL_CACERTS)
    with _lock:
        context = _cache.get(key)
        if context is not None:
            return context
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if config.SSL_CLIENTCERT:
            _load_chain(context, config.SSL_CLIENTCERT, config.SSL_CLIENTKEY, config.SSL_CLIENTKEYPASSWD, "CLIENT")
        _load_cacerts(context, config.SSL_CACERTS)
        _cache[key] = context
        return context

"""TCP (with TLS) and Unix-domain-socket transports for pyrite.

pyrite-core finds these through the entry-point group ``pyrite.transports``:

* ``tcp.py``: ``TcpTransport`` for ``host:port`` and ``[ipv6]:port``
* ``unix.py``: ``UnixTransport`` for ``./u:path``
* ``tls.py``: TLS contexts from ``config.SSL_*``
* ``sockets.py``: the ``Connection`` and ``Listener`` both transports return
"""

from ._version import __version__

__all__ = ["__version__"]

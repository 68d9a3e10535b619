"""The Unix-domain-socket transport: locations ``./u:path``.

Entry point ``unix`` in group ``pyrite.transports``::

    transport = plugins.get_transport("./u:/tmp/app.sock")
    listener = transport.listen("./u:/tmp/app.sock")
    conn = transport.connect("./u:/tmp/app.sock", timeout=5.0)

``listen`` replaces a stale socket file (one nobody listens on any more), but
refuses with ``OSError`` (EADDRINUSE) while a server still listens there, and
never removes anything that is not a socket.  (To tell the two apart it
connects once: a live server sees that connection open and close at once.)  ``close`` removes the socket
file, unless another listener has replaced it meanwhile.

On Linux a path that starts with a NUL character (``"./u:\\0name"``) is a name
in the abstract namespace: no file is made, and it vanishes with the listener.

These sockets are never wrapped in TLS (``config.SSL`` applies to TCP only):
the file system's permissions on the socket file are the access control.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import sys
from collections.abc import Callable
from typing import ClassVar

from pyrite.core.errors import CommunicationError, TimeoutError

from .adopted import adopt_connected
from .sockets import SocketConnection, SocketListener, normalize_timeout

__all__ = ["UnixTransport", "PREFIX"]

PREFIX = "./u:"
_ABSTRACT_OK = sys.platform.startswith("linux")
_STALE_PROBE_TIMEOUT = 1.0


def _path(location: str) -> str:
    if not isinstance(location, str) or not location.startswith(PREFIX) or len(location) == len(PREFIX):
        raise ValueError(f"not a Unix socket location (./u:path): {location!r}")
    path = location[len(PREFIX) :]
    if path.startswith("\0") and not _ABSTRACT_OK:
        raise ValueError(f"abstract Unix socket names need Linux: {location!r}")
    return path


def _listening(path: str) -> bool:
    """True if something accepts connections at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_STALE_PROBE_TIMEOUT)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except (BlockingIOError, socket.timeout):
        return True  # the backlog is full: very much alive
    except OSError as exc:
        return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
    finally:
        probe.close()
    return True


def _remove_stale(path: str, location: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(errno.EADDRINUSE, f"cannot listen on {location}: {path!r} exists and is not a socket")
    if _listening(path):
        raise OSError(errno.EADDRINUSE, f"cannot listen on {location}: another server is listening there")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class UnixTransport:
    """Unix-domain stream sockets at ``./u:path`` locations.  One shared, stateless instance."""

    name: ClassVar[str] = "unix"
    priority: ClassVar[int] = 0
    socket_families: ClassVar[tuple[int, ...]] = (socket.AF_UNIX,)

    @classmethod
    def serves(cls, location: str) -> bool:
        """True for ``./u:path``."""
        return isinstance(location, str) and location.startswith(PREFIX) and len(location) > len(PREFIX)

    def adopt(self, sock: socket.socket, *, owned: bool = False) -> SocketConnection:
        """Wrap an already connected Unix-domain stream socket; with ``owned=False``
        closing the connection leaves the socket open (see ``adopted``)."""
        return adopt_connected(sock, self.socket_families, owned)

    def connect(self, location: str, timeout: float | None = None) -> SocketConnection:
        """Connect to the socket at ``location``; ``timeout`` as for TCP (None or 0: block)."""
        path = _path(location)
        timeout = normalize_timeout(timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
            return SocketConnection(sock, timeout)
        except socket.timeout as exc:
            sock.close()
            raise TimeoutError(f"cannot connect to {location}: timeout ({timeout} s)") from exc
        except FileNotFoundError as exc:
            sock.close()
            raise CommunicationError(f"cannot connect to {location}: no such socket") from exc
        except OSError as exc:
            sock.close()
            raise CommunicationError(f"cannot connect to {location}: {exc}") from exc

    def listen(self, location: str, *, reuse: bool | None = None) -> SocketListener:
        """Listen at ``location``, replacing a stale socket file (``reuse`` is ignored: a socket
        file that nobody serves is always replaced, a served one never is)."""
        path = _path(location)
        abstract = path.startswith("\0")
        if not abstract:
            _remove_stale(path, location)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot listen on {location}: {exc.strerror or exc}") from exc
        except ValueError as exc:  # e.g. an embedded NUL in a file path
            sock.close()
            raise ValueError(f"cannot listen on {location}: {exc}") from exc
        on_close = None
        if not abstract:
            identity = os.stat(path)
            on_close = _remover(path, identity.st_dev, identity.st_ino)
        return SocketListener(sock, PREFIX + path, on_close=on_close)


def _remover(path: str, device: int, inode: int) -> Callable[[], None]:
    def remove() -> None:
        # only our own socket file: another listener may have taken the path over
        with contextlib.suppress(OSError):
            info = os.stat(path)
            if info.st_dev == device and info.st_ino == inode:
                os.unlink(path)

    return remove

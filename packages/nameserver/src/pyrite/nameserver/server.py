"""Running a name server: ``NameServerDaemon``, ``start_ns`` and ``start_ns_loop``.

``start_ns`` gives you the pieces to drive yourself::

    from pyrite.nameserver import start_ns
    uri, daemon, bcserver = start_ns(host="127.0.0.1", port=0)
    daemon.requestLoop()          # in some thread; daemon.shutdown() ends it

``start_ns_loop`` runs a name server (and its broadcast responder) until the
loop condition says stop, printing where it listens, as ``pyrite-ns`` does.

As in Pyro5, no broadcast responder starts when the name server listens on
a Unix socket, on IPv6, or on a loopback address.  pyrite adds one case:
on a loopback address, giving an explicit ``bchost`` does start it (so the
discovery works on one machine, e.g. with ``bchost="127.255.255.255"``).
"""

from __future__ import annotations

import hmac
import logging
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

from pyrite.core.config import config
from pyrite.core.daemon import Daemon
from pyrite.core.errors import NamingError, PyroError
from pyrite.core.uri import NAMESERVER_NAME, URI

from .autoclean import AutoCleaner
from .broadcast import BroadcastServer
from .registry import NameServer
from .storages import open_storage

__all__ = ["NameServerDaemon", "start_ns", "start_ns_loop", "NAMESERVER_METADATA", "SELF_LEASE_TTL"]

log = logging.getLogger("pyrite.nameserver")

# Pyro5's tag for the name server's own registration; clients may search for it.
NAMESERVER_METADATA = frozenset({"class:Pyro5.nameserver.NameServer"})

# On a shared storage (Redis) each name server holds its entries under a lease of this many
# seconds, renewed every third of it: a name server killed with -9 is forgotten this long after.
SELF_LEASE_TTL = 6.0


def _token_of(data: Any) -> Any:
    """The write token in a client's handshake data: the data itself, or its "write_token" item."""
    if isinstance(data, dict):
        return data.get("write_token")
    return data


class _SelfLease(threading.Thread):
    """Renews a name server's own entries on a shared storage until stopped.

    If the storage is unreachable it logs that once and keeps trying; when the storage
    is back (or was restarted empty) the next round registers the entries again."""

    def __init__(self, daemon: NameServerDaemon) -> None:
        super().__init__(name="pyrite-ns-selflease", daemon=True)
        self.ns_daemon = daemon
        self.stopped = threading.Event()

    def run(self) -> None:
        failing = False
        while not self.stopped.wait(SELF_LEASE_TTL / 3):
            try:
                self.ns_daemon._register_self()
                nameserver = self.ns_daemon.nameserver
                if nameserver is not None:
                    nameserver._expire()  # frees the keys of expired names even when nobody writes
                if failing:
                    log.warning("name server storage reachable again; own entries renewed")
                failing = False
            except NamingError as exc:
                if not failing:
                    log.warning("cannot renew the name server's own entries: %s", exc)
                failing = True
            except Exception:
                log.exception("renewing the name server's own entries failed")


class NameServerDaemon(Daemon):
    """A daemon that serves a ``NameServer`` as ``Pyro.NameServer``.

    ``storage`` is ``"memory"`` (default), ``"sql:path/to/file.sqlite"``, or a
    storage object (see ``pyrite.nameserver.storage``).  Host, port and NAT
    settings default to ``config.HOST``, ``config.NS_PORT``, ``config.NATHOST``
    and ``config.NATPORT``.  With ``config.NS_AUTOCLEAN`` > 0 an ``AutoCleaner``
    thread runs too (``cleaner_thread``).
    """

    def __init__(
        self,
        host: Any = None,
        port: int | None = None,
        unixsocket: str | None = None,
        nathost: Any = None,
        natport: int | None = None,
        storage: Any = None,
        write_token: str | None = None,
    ) -> None:
        if host is None:
            host = config.HOST
        elif not isinstance(host, str):
            host = str(host)  # an ipaddress object
        if port is None:
            port = config.NS_PORT
        if nathost is None:
            nathost = config.NATHOST
        elif not isinstance(nathost, str):
            nathost = str(nathost)
        if natport is None:
            natport = config.NATPORT or None
        provider = open_storage(storage) if storage is None or isinstance(storage, str) else storage
        if write_token is None:
            write_token = config.NS_WRITE_TOKEN or None
        self.nameserver: NameServer | None = NameServer(provider, write_token=write_token)
        self.shared_storage = bool(getattr(provider, "shared", False))
        self.cleaner_thread: AutoCleaner | None = None
        self.lease_thread: _SelfLease | None = None
        existing = len(provider)
        if existing:
            log.debug("storage holds %d registrations", existing)
        try:
            super().__init__(host, port, unixsocket, nathost=nathost, natport=natport)
        except BaseException:
            provider.close()
            raise
        try:
            self.register(self.nameserver, NAMESERVER_NAME)
            self._register_self()
            if self.shared_storage:
                self.lease_thread = _SelfLease(self)
                self.lease_thread.start()
            if config.NS_AUTOCLEAN > 0:
                self.cleaner_thread = AutoCleaner(self.nameserver)
                self.cleaner_thread.start()
        except BaseException:
            self.close()
            raise
        log.info("name server daemon listening on %s", self.locationStr)

    @property
    def own_name(self) -> str:
        """This name server's own name on a shared storage: ``Pyro.NameServer.<location>``."""
        return f"{NAMESERVER_NAME}.{self.locationStr}"

    def _register_self(self) -> None:
        """Register (or renew) this name server's own entries.

        Alone on its storage it is ``Pyro.NameServer``, as in Pyro5.  On a shared storage
        it joins the replica set ``Pyro.NameServer`` (so that name leads to a live name
        server) and holds ``Pyro.NameServer.<location>`` (so ``list()`` shows every live
        one), both under a lease of ``SELF_LEASE_TTL`` seconds."""
        nameserver = self.nameserver
        if nameserver is None:
            return
        uri = str(self.uriFor(nameserver))
        if not self.shared_storage:
            nameserver.register(NAMESERVER_NAME, uri, metadata=NAMESERVER_METADATA)
            return
        nameserver.register(NAMESERVER_NAME, uri, metadata=NAMESERVER_METADATA, ttl=SELF_LEASE_TTL, replica=True)
        nameserver.register(self.own_name, uri, metadata=NAMESERVER_METADATA, ttl=SELF_LEASE_TTL)

    def _unregister_self(self, nameserver: NameServer) -> None:
        """Take this name server's entries off a shared storage (clean shutdown)."""
        try:
            uri = str(self.uriFor(nameserver))
            nameserver._store.remove_entry(NAMESERVER_NAME, uri)
            nameserver._store.remove_entry(self.own_name)
        except (PyroError, OSError) as exc:
            log.warning("could not remove the name server's own entries: %s", exc)

    def validateHandshake(self, conn: Any, data: Any) -> Any:
        """Note whether the client may change registrations (when a write token is set)."""
        nameserver = self.nameserver
        token = nameserver.write_token if nameserver is not None else None
        offered = _token_of(data)
        conn.pyrite_ns_writer = (
            token is None
            or isinstance(offered, str)
            and hmac.compare_digest(offered.encode("utf-8"), token.encode("utf-8"))
        )
        return super().validateHandshake(conn, data)

    def protocol_error_seen(self, exc: BaseException) -> None:
        """A client sent something that is not the protocol: warn, as Pyro5's name server does.

        A wrong serializer or a non-Pyro client is the usual cause, and a warning makes
        that visible at once (the engine also logs it)."""
        warnings.warn(f"name server got a protocol error from a client: {exc}", RuntimeWarning, stacklevel=2)

    def _release_nameserver(self) -> None:
        lease, self.lease_thread = self.lease_thread, None
        if lease is not None:
            lease.stopped.set()
            if lease is not threading.current_thread():
                lease.join(timeout=5.0)
            if self.nameserver is not None:
                self._unregister_self(self.nameserver)
        cleaner, self.cleaner_thread = self.cleaner_thread, None
        if cleaner is not None:
            cleaner.stop = True
            if cleaner is not threading.current_thread():
                cleaner.join(timeout=max(5.0, cleaner.timeout + 1.0))
        nameserver, self.nameserver = self.nameserver, None
        if nameserver is not None:
            nameserver.storage.close()

    def close(self) -> None:
        """Stop serving, stop the autocleaner and close the storage."""
        super().close()
        self._release_nameserver()

    def __enter__(self) -> NameServerDaemon:
        if self.nameserver is None:
            raise PyroError("this name server daemon is closed and cannot be entered again")
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> Any:
        self._release_nameserver()
        return super().__exit__(exc_type, exc_value, traceback)


def _listen_host(daemon: NameServerDaemon) -> str | None:
    """The host the daemon listens on (None for a Unix socket)."""
    return URI(daemon.uriFor(NAMESERVER_NAME, nat=False)).host


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("localhost", "::1")


def _broadcast_server(
    daemon: NameServerDaemon,
    unixsocket: str | None,
    enableBroadcast: bool,
    bchost: Any,
    bcport: int | None,
    say: Callable[[str], None] | None,
) -> BroadcastServer | None:
    """A broadcast responder for the daemon, or None where Pyro5 would not start one."""
    if unixsocket or not enableBroadcast:
        return None
    host = _listen_host(daemon) or ""
    if ":" in host:
        if say:
            say("No broadcast responder: IPv6 has no broadcast.")
        return None
    if _is_loopback(host) and bchost is None:
        if say:
            say("No broadcast responder on a loopback address.")
        return None
    # the internal URI: a client that can hear the broadcast is on our side of any NAT
    internal = URI(daemon.uriFor(NAMESERVER_NAME, nat=False))
    return BroadcastServer(internal, bchost, bcport)


def start_ns(
    host: Any = None,
    port: int | None = None,
    enableBroadcast: bool = True,
    bchost: Any = None,
    bcport: int | None = None,
    unixsocket: str | None = None,
    nathost: Any = None,
    natport: int | None = None,
    storage: Any = None,
    write_token: str | None = None,
) -> tuple[URI, NameServerDaemon, BroadcastServer | None]:
    """Create a name server daemon (and a broadcast responder where it makes sense) without
    running them.  Returns ``(nsUri, daemon, broadcastServer or None)``; run
    ``daemon.requestLoop()`` and ``broadcastServer.runInThread()`` (or ``daemon.combine``) yourself.

    ``storage`` is a spec (``"memory"``, ``"sql:FILE"``, ``"redis://host:port/0"``, see
    ``storages``) or a storage object; ``write_token`` turns on the write policy."""
    daemon = NameServerDaemon(
        host, port, unixsocket, nathost=nathost, natport=natport, storage=storage, write_token=write_token
    )
    try:
        bcserver = _broadcast_server(daemon, unixsocket, enableBroadcast, bchost, bcport, None)
    except BaseException:
        daemon.close()
        raise
    return URI(daemon.uriFor(NAMESERVER_NAME)), daemon, bcserver


def start_ns_loop(
    host: Any = None,
    port: int | None = None,
    enableBroadcast: bool = True,
    bchost: Any = None,
    bcport: int | None = None,
    unixsocket: str | None = None,
    nathost: Any = None,
    natport: int | None = None,
    storage: Any = None,
    loopCondition: Callable[[], bool] = lambda: True,
    write_token: str | None = None,
) -> None:
    """Run a name server until ``loopCondition()`` is false or the daemon is shut down,
    printing where it listens."""

    def say(text: str) -> None:
        print(text)

    daemon = NameServerDaemon(
        host, port, unixsocket, nathost=nathost, natport=natport, storage=storage, write_token=write_token
    )
    bcserver = None
    try:
        ns_uri = URI(daemon.uriFor(NAMESERVER_NAME))
        internal_uri = URI(daemon.uriFor(NAMESERVER_NAME, nat=False))
        hostip = "Unix domain socket" if unixsocket else (internal_uri.host or "")
        bcserver = _broadcast_server(daemon, unixsocket, enableBroadcast, bchost, bcport, say)
        if bcserver is not None:
            say(f"Broadcast server running on {bcserver.locationStr}")
            bcserver.runInThread()
        assert daemon.nameserver is not None
        existing = daemon.nameserver.count()
        if existing > 1:  # the name server's own entry does not count
            say(f"Persistent store contains {existing} existing registrations.")
        say(f"NS running on {daemon.locationStr} ({hostip})")
        if getattr(daemon, "natLocationStr", None):
            say(f"internal URI = {internal_uri}")
            say(f"external URI = {ns_uri}")
        else:
            say(f"URI = {ns_uri}")
        sys.stdout.flush()
        daemon.requestLoop(loopCondition=loopCondition)
    finally:
        daemon.close()
        if bcserver is not None:
            bcserver.close()
    say("Name server stopped.")

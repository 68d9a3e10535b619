"""What a daemon publishes in a name server, under leases it keeps renewing.

``Daemon.publish(obj, "name", ttl=30.0)`` registers the object's URI with a
lease of ``ttl`` seconds and renews it every ``ttl / 3`` seconds from a timer
thread of its own (one per daemon, started on the first publish), so the
timing holds whatever the engine's ``POLLTIMEOUT``, and a slow name server
never holds up the engine's loop (housekeeping runs there; renewals do not).  A failed renewal is retried every ``RETRY_INTERVAL`` seconds
(a name server restarting, Redis failing over).  ``Daemon.unpublish(name)``
and a clean ``shutdown()``/``close()`` remove what was published; a daemon
killed with ``kill -9`` stops renewing, and its names expire ``ttl`` seconds
after the last renewal.

With ``replica=True`` the URI joins the name's replica set, so several daemons
can publish one name; each removes only its own URI.

Name servers that share one registry (Redis) each hold a replica of
``Pyro.NameServer``.  The publisher remembers them (refreshed at every
renewal) and, when the name server it used does not answer, renews through
another one: a daemon outlives the name server it first published to.

Against a name server without leases (Pyro5's), ``publish`` registers without
``ttl`` and says so in the log; nothing is renewed then.

This module talks to the name server through a ``Proxy`` only: it never imports
``pyrite.nameserver``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from .client import Proxy
from .errors import DaemonError, NamingError, PyroError
from .naming import locate_ns
from .uri import NAMESERVER_NAME, URI

__all__ = ["Publisher", "Publication", "RETRY_INTERVAL", "CALL_TIMEOUT"]

log = logging.getLogger("pyrite.core.publishing")

RETRY_INTERVAL = 1.0  # seconds between attempts after a renewal failed
CALL_TIMEOUT = 5.0  # seconds a call to the name server may take (renewal, unpublish)


class PublishingDaemon(Protocol):
    """What a ``Publisher`` needs of its daemon."""

    objectsById: dict[str, Any]

    def uriFor(self, objectOrId: Any, nat: bool = True) -> URI: ...

    def register(
        self, obj_or_class: Any, objectId: str | None = None, force: bool = False, weak: bool = False
    ) -> URI: ...


@dataclass
class Publication:
    """One published name: where, what, and when its lease is due for renewal."""

    name: str
    uri: str
    ttl: float | None
    replica: bool
    metadata: frozenset[str] | None
    ns_uri: str  # the name server that answered last
    handshake: Any
    due: float  # time.monotonic() of the next renewal
    leased: bool = True  # False once the name server turned out not to take a ttl
    others: list[str] = field(default_factory=list)  # further name servers on the same registry


class Publisher:
    """The names one daemon published, and the thread that renews their leases."""

    def __init__(self, daemon: PublishingDaemon) -> None:
        self.daemon = daemon
        self.publications: dict[str, Publication] = {}
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._stopped = False
        self._thread: threading.Thread | None = None

    # -- talking to the name server -----------------------------------------------------------

    @staticmethod
    def _proxy(ns_uri: str, handshake: Any) -> Proxy:
        proxy = Proxy(ns_uri)
        proxy._pyroTimeout = CALL_TIMEOUT
        proxy._pyroHandshake = handshake
        return proxy

    @staticmethod
    def _learn_peers(ns: Any, pub: Publication) -> None:
        """Remember the other name servers on the same registry (none for a lone one, or Pyro5's)."""
        try:
            peers = [str(uri) for uri in ns.replicas(NAMESERVER_NAME)]
        except (PyroError, AttributeError, TypeError, OSError):
            return
        pub.others = [uri for uri in peers if uri != pub.ns_uri]

    def _renew(self, pub: Publication) -> None:
        """Register again through the name server that answered last, else through its peers."""
        failure: BaseException | None = None
        for ns_uri in [pub.ns_uri, *pub.others]:
            try:
                with self._proxy(ns_uri, pub.handshake) as proxy:
                    self._register(proxy, pub)
                    if ns_uri != pub.ns_uri:
                        log.info("renewed %s through name server %s (%s did not answer)", pub.name, ns_uri, pub.ns_uri)
                        pub.ns_uri = ns_uri
                    self._learn_peers(proxy, pub)
                return
            except (PyroError, OSError) as exc:
                failure = exc if failure is None else failure
        assert failure is not None
        raise failure

    @staticmethod
    def _register(ns: Any, pub: Publication) -> None:
        meta = None if pub.metadata is None else set(pub.metadata)
        if pub.leased:
            try:
                ns.register(pub.name, pub.uri, False, meta, ttl=pub.ttl, replica=pub.replica)
                return
            except TypeError:
                if pub.replica:
                    raise NamingError("this name server has no replica sets (it is not a pyrite name server)") from None
                pub.leased = False
                log.warning("name server at %s takes no leases: %s is registered without ttl", pub.ns_uri, pub.name)
        ns.register(pub.name, pub.uri, False, meta)

    # -- the API ----------------------------------------------------------------------------------

    def publish(
        self,
        obj_or_id: Any,
        name: str,
        *,
        ttl: float | None = 30.0,
        replica: bool = False,
        metadata: Any = None,
        ns: Any = None,
    ) -> URI:
        """Register ``obj_or_id`` (registered with the daemon first if it is not yet) as
        ``name``; returns its URI.  ``ns`` is a name-server proxy or URI (default: ``locate_ns()``)."""
        if not isinstance(name, str) or not name:
            raise TypeError("name must be a non-empty str")
        if ttl is not None and not ttl > 0:
            raise ValueError("ttl must be a positive number of seconds, or None for no lease")
        if isinstance(obj_or_id, str):
            if obj_or_id not in self.daemon.objectsById:
                raise DaemonError(f"no object registered with id {obj_or_id!r}: register it first")
            uri = self.daemon.uriFor(obj_or_id)
        else:
            try:
                uri = self.daemon.uriFor(obj_or_id)
            except DaemonError:
                uri = self.daemon.register(obj_or_id)
        if ns is None:
            located = locate_ns()
            ns_uri, handshake = str(located._pyroUri), located._pyroHandshake
            located._pyroRelease()
        elif isinstance(ns, Proxy):
            ns_uri, handshake = str(ns._pyroUri), ns._pyroHandshake
        else:
            ns_uri, handshake = str(ns), None
        tags = None if metadata is None else frozenset(metadata)
        pub = Publication(name, str(uri), ttl, replica, tags, ns_uri, handshake, 0.0)
        with self._proxy(ns_uri, handshake) as proxy:
            self._register(proxy, pub)
            if ttl and pub.leased:
                self._learn_peers(proxy, pub)
        with self._lock:
            if self._stopped:
                raise PyroError("this daemon is closed; it cannot publish")
            pub.due = time.monotonic() + (ttl / 3 if ttl else 0.0)
            self.publications[name] = pub
            if ttl and pub.leased:
                self._start_thread()
                self._wake.notify_all()
        return uri

    def unpublish(self, name: str) -> None:
        """Stop renewing ``name`` and remove this daemon's URI under it from the name server."""
        with self._lock:
            pub = self.publications.pop(name, None)
            self._wake.notify_all()
        if pub is None:
            raise NamingError(f"this daemon has not published {name!r}")
        self._remove(pub)

    def _remove(self, pub: Publication) -> None:
        failure: BaseException | None = None
        for ns_uri in [pub.ns_uri, *pub.others]:
            try:
                with self._proxy(ns_uri, pub.handshake) as proxy:
                    try:
                        proxy.remove(pub.name, uri=pub.uri)  # only our URI: the name may have moved on
                    except TypeError:  # a Pyro5 name server: no uri filter
                        if str(proxy.lookup(pub.name)) == pub.uri:
                            proxy.remove(pub.name)
                return
            except (PyroError, OSError) as exc:
                failure = exc if failure is None else failure
        log.warning("could not remove %s from the name server at %s: %s", pub.name, pub.ns_uri, failure)

    def renew_due(self) -> None:
        """Renew every lease whose time has come (the timer thread calls this)."""
        now = time.monotonic()
        with self._lock:
            due = [pub for pub in self.publications.values() if pub.ttl and pub.leased and pub.due <= now]
            for pub in due:
                pub.due = now + RETRY_INTERVAL  # claimed; the result below sets the real time
        for pub in due:
            try:
                self._renew(pub)
            except (PyroError, OSError) as exc:
                log.warning("lease renewal of %s failed (retrying in %.0f s): %s", pub.name, RETRY_INTERVAL, exc)
                continue
            with self._lock:
                if self.publications.get(pub.name) is pub:
                    assert pub.ttl is not None
                    pub.due = time.monotonic() + pub.ttl / 3

    def close(self) -> None:
        """Stop renewing and remove everything published (bounded by ``CALL_TIMEOUT`` per name)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            pubs = list(self.publications.values())
            self.publications.clear()
            self._wake.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(CALL_TIMEOUT + 1.0)
        for pub in pubs:
            self._remove(pub)

    # -- the timer thread ---------------------------------------------------------------------------

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pyrite-publisher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                dues = [pub.due for pub in self.publications.values() if pub.ttl and pub.leased]
                delay = min(dues) - time.monotonic() if dues else 60.0
                if delay > 0:
                    self._wake.wait(delay)
                    continue
            try:
                self.renew_due()
            except Exception:  # the renewer must outlive one bad round
                log.exception("lease renewal round failed")

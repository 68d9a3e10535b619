"""The server side: ``Daemon`` hosts objects, ``DaemonObject`` is its own remote
interface (object id ``Pyro.Daemon``), ``serve`` runs one in a single call.

Example::

    from pyrite.core.daemon import Daemon
    from pyrite.core.exposure import expose

    @expose
    class Greeter:
        def hello(self, name):
            return f"hello, {name}"

    with Daemon(host="127.0.0.1") as daemon:
        uri = daemon.register(Greeter, "greeter")
        daemon.requestLoop()

How a daemon is put together
----------------------------
``Daemon`` is a facade that keeps Pyro5's API and attribute names and wires:

* ``daemon.objects``: an ``objects.ObjectRegistry`` (``objectsById`` is its dict);
* ``daemon.streams``: a ``streams.StreamRegistry`` (``streaming_responses``);
* ``daemon.workers``: the one ``workers.WorkerPool`` (thread engine, oneway calls);
* ``daemon.host``: the ``dispatch.Dispatcher``, the ``interfaces.DaemonHost``
  the engine talks to;
* ``daemon.transportServer``: the engine, from the one engine table
  (``engines.engine_class(config.SERVERTYPE)``), or
  ``engines.single.SingleConnectionEngine`` for ``connected_socket``.

The listener comes from ``plugins.get_transport(location).listen(location)``
with location ``host:port``, ``[ipv6]:port`` or ``./u:<unixsocket>``.

Add-ons (a publisher, a name-server helper) hook in without subclassing:
``daemon.housekeeping_hooks`` and ``daemon.shutdown_hooks`` are lists of
callables run with every housekeeping round and once when the daemon closes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from . import plugins
from .config import config
from .daemonobject import DaemonObject
from .dispatch import Dispatcher, default_methodcall_error_handler
from .engines import engine_class, worker_pool
from .engines.single import SingleConnectionEngine
from .errors import DaemonError, PyroError, SecurityError
from .exposure import get_exposed_members, reset_exposed_members
from .objects import ObjectRegistry, auto_proxy, unpack, unpack_quiet
from .protocol import MSG_CONNECT, MSG_CONNECTOK, PROTOCOL_VERSION, send_message
from .publishing import Publisher
from .session import SERVER, Session
from .streams import StreamRegistry
from .uri import URI, location_for
from .workers import WorkerPool

__all__ = ["Daemon", "DaemonObject", "serve"]

log = logging.getLogger("pyrite.core.daemon")

SHUTDOWN_WAIT = 5.0  # seconds shutdown() waits at most for the request loop to stop


def _session_of(conn: Any) -> Session:
    """The protocol session of a connection driven by hand (a ClientConnection has one)."""
    session = getattr(conn, "session", None)
    if session is None:
        session = Session(SERVER)
        with contextlib.suppress(AttributeError):
            conn.session = session
    return session


class Daemon:
    """Hosts objects for remote calls and serves clients.

    ``host``/``port`` (default ``config.HOST``, port 0 = any free port) or
    ``unixsocket`` choose where it listens; ``nathost``/``natport`` (default
    ``config.NATHOST``/``NATPORT``) are the address put in URIs when the
    daemon is reached through NAT; ``interface`` is the class of its
    ``Pyro.Daemon`` object.  With ``connected_socket`` (a transport
    ``Connection`` or a connected socket) it serves that one connection only.
    """

    _servertype: str | None = None  # a subclass that needs one engine (aio.Daemon) names it here

    def __init__(
        self,
        host: Any = None,
        port: int = 0,
        unixsocket: str | None = None,
        nathost: Any = None,
        natport: int | None = None,
        interface: type = DaemonObject,
        connected_socket: Any = None,
    ) -> None:
        self.transportServer: Any = None
        self._listener: Any = None
        self._closed = False
        self._loop_stopped = threading.Event()  # "set": no loop runs now
        self._loop_stopped.set()
        self._loop_thread: int | None = None
        #: the Daemon's overridable per-exception hook (Pyro5's name and signature)
        self.methodcall_error_handler: Callable[..., None] = default_methodcall_error_handler
        if connected_socket is None:
            host = config.HOST if host is None else str(host)
            nathost = config.NATHOST if nathost is None else str(nathost)  # str(): an ipaddress object is fine too
            has_nathost = nathost is not None
            if has_nathost and natport is None:
                natport = config.NATPORT
            if has_nathost != (natport is not None):
                raise ValueError(f"nathost and natport go together (got nathost={nathost!r}, natport={natport!r})")
            if unixsocket and nathost:
                raise ValueError(f"nathost {nathost!r} makes no sense for a Unix socket daemon ({unixsocket!r})")
            servertype = self._servertype or config.SERVERTYPE
            engine_cls = engine_class(servertype)
            self.workers: WorkerPool = worker_pool(servertype)
        else:
            nathost = natport = None
            self.workers = worker_pool("single")
        #: the registered objects (object id -> object, class or weak reference)
        self.objects = ObjectRegistry(self, interface(self), auto_proxy)
        self.objectsById: dict[str, Any] = self.objects.objects_by_id
        self._pyroInstances: dict[type, Any] = self.objects.single_instances
        self.create_single_instance_lock = self.objects.single_lock
        #: the open item streams (iterator results)
        self.streams = StreamRegistry()
        #: what the engine talks to (``interfaces.DaemonHost``)
        self.host = Dispatcher(self, self.objects, self.streams, self.workers)
        self.housekeeper_lock = self.host.housekeeper_lock
        self._disconnect_lock = self.host.disconnect_lock  # Pyro5's name
        #: callables run each housekeeping round, and once at close (for add-ons)
        self.housekeeping_hooks: list[Callable[[], None]] = self.host.housekeeping_hooks
        self.shutdown_hooks: list[Callable[[], None]] = self.host.shutdown_hooks
        try:
            if connected_socket is not None:
                self.transportServer = SingleConnectionEngine(self.host, connected_socket)
                self._listener = self.transportServer.sock
            else:
                location = location_for(host, port, unixsocket)
                listener = self._listener = plugins.get_transport(location).listen(location)
                try:
                    self.transportServer = engine_cls(self.host, listener)
                except BaseException:
                    with contextlib.suppress(Exception):
                        listener.close()
                    raise
        except BaseException:
            self.workers.close(timeout=0.1)
            raise
        #: where the daemon listens: ``host:port``, ``[ipv6]:port`` or ``./u:path``
        self.locationStr: str = self.transportServer.location
        natport_for_loc = natport
        if natport == 0:
            natport_for_loc = int(self.locationStr.rsplit(":", 1)[1])
        #: the address put in URIs for NAT routing, or None
        self.natLocationStr: str | None = f"{nathost}:{natport_for_loc}" if nathost else None
        log.debug("daemon listening on %s, pid %d, wire protocol %d", self.locationStr, os.getpid(), PROTOCOL_VERSION)

    # -- Pyro5's private names, kept for code that drives a daemon by hand ----------------------

    def _handshake(self, conn: Any, msg: Any = None, denied_reason: str | None = None) -> bool:
        """Answer a client's MSG_CONNECT (read from ``conn`` if ``msg`` is None); True if accepted.
        With ``denied_reason`` the client is refused with that reason."""
        session = _session_of(conn)
        if msg is None:
            msg = session.receive_from(conn.recv)
        if denied_reason:
            reply = self.host.refuse(conn, session, msg, denied_reason)
        else:
            reply = self.host.serve_handshake(conn, session, msg)
        try:
            send_message(conn, reply)
        except PyroError:
            return False
        return reply.type == MSG_CONNECTOK

    def handleRequest(self, conn: Any) -> None:
        """Read one request from ``conn`` and serve it (Pyro5's name, for hand-driven loops).

        As in Pyro5, the exception of a failed ``@callback`` method is raised here too,
        after the caller got its error reply.
        """
        session = _session_of(conn)
        msg = session.receive_from(conn.recv)
        if msg.type == MSG_CONNECT:
            if not self._handshake(conn, msg):
                raise SecurityError("handshake refused")
            return
        reply = self.host.serve_request(conn, session, msg)
        if reply is not None:
            send_message(conn, reply)
        while getattr(conn, "held_oneways", None) and not self.host.resume(conn):
            self.workers.wait_for_room(1.0)
        exc = getattr(conn, "callback_error", None)
        if exc is not None:
            conn.callback_error = None
            raise exc

    @property
    def _shutting_down(self) -> bool:
        return self.host.shutting_down

    def _clientDisconnect(self, conn: Any) -> None:
        """Forget what belonged to a client that went away, then call ``clientDisconnect``."""
        self.host.client_disconnected(conn)

    def _housekeeping(self) -> None:
        """Expire item streams, run the housekeeping hooks, then call ``housekeeping``."""
        self.host.housekeeping()

    def _getInstance(self, clazz: type, conn: Any) -> Any:
        """The instance of a registered class that serves a call from ``conn``, per its instance mode."""
        return self.objects.instance_for(clazz, conn)

    # -- hooks to override --------------------------------------------------------------------

    def validateHandshake(self, conn: Any, data: Any) -> Any:
        """Check a new client's handshake data; raise to refuse it.  The return value goes back to the client."""
        return "hello"

    validateHandshake._pyrite_default = True  # type: ignore[attr-defined]  # no user code: the asyncio loop may answer

    def clientDisconnect(self, conn: Any) -> None:
        """Called when a client connection goes away."""

    def housekeeping(self) -> None:
        """Called every few seconds by the running daemon: periodic clean-up of your own."""

    def annotations(self) -> dict[str, bytes]:
        """Annotations (4-letter id -> bytes) to add to every response."""
        return {}

    def protocol_error_seen(self, exc: BaseException) -> None:
        """Called when a client's connection is closed because it broke the protocol (garbage,
        a wrong serializer, an oversized message); the engine has logged it already.  Override
        to do more (the name server warns, as Pyro5's does)."""

    annotations._pyrite_default = True  # type: ignore[attr-defined]  # the dispatcher skips calling it

    # -- item streams --------------------------------------------------------------------------

    @property
    def streaming_responses(self) -> dict[str, list[Any]]:
        """Stream id -> [connection or None, created, disconnected at (0: connected), iterator]."""
        return self.streams.entries

    # -- object registry -----------------------------------------------------------------------

    def register(self, obj_or_class: Any, objectId: str | None = None, force: bool = False, weak: bool = False) -> URI:
        """Register an object or a class under ``objectId`` (generated if None); returns its URI.

        A class is instantiated by the daemon per its ``@behavior`` (default:
        one instance per client connection).  With ``weak=True`` the daemon
        keeps only a weak reference and the registration ends with the object.
        """
        return self.uriFor(self.objects.register(obj_or_class, objectId, force, weak))

    def unregister(self, objectOrId: Any) -> None:
        """Remove a registered object or class, given itself or its id."""
        self.objects.unregister(objectOrId)

    def uriFor(self, objectOrId: Any, nat: bool = True) -> URI:
        """The URI of a registered object (or of any object id string) at this daemon.
        ``nat=False`` gives the internal address even if a NAT address is configured."""
        location = (self.natLocationStr or self.locationStr) if nat else self.locationStr
        return self.objects.uri_for(objectOrId, location)

    def resetMetadataCache(self, objectOrId: Any, nat: bool = True) -> None:
        """Forget the cached exposed members of a registered object's class (after changing the class)."""
        uri = self.uriFor(objectOrId, nat)
        registered = self.objectsById.get(uri.object)
        if registered is not None:
            target = unpack_quiet(registered)
            if target is not None:
                reset_exposed_members(target)

    # -- publishing in a name server (logic in publishing.py) ---------------------------------------

    _publisher: Publisher | None = None

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
        """Register an object (or object id) in a name server as ``name`` under a lease of
        ``ttl`` seconds that this daemon renews until ``unpublish``, ``shutdown`` or ``close``.
        ``replica=True`` joins the name's replica set; ``ns`` is a name-server proxy or URI
        (default: ``locate_ns()``).  Returns the object's URI.  See ``pyrite.core.publishing``."""
        if self._publisher is None:
            self._publisher = Publisher(self)
        return self._publisher.publish(obj_or_id, name, ttl=ttl, replica=replica, metadata=metadata, ns=ns)

    def unpublish(self, name: str) -> None:
        """Stop renewing ``name`` and remove this daemon's URI under it from the name server."""
        if self._publisher is None:
            raise PyroError(f"this daemon has not published {name!r}")
        self._publisher.unpublish(name)

    def proxyFor(self, objectOrId: Any, nat: bool = True) -> Any:
        """A ready proxy (metadata filled in) for a registered object."""
        from .client import Proxy

        uri = self.uriFor(objectOrId, nat)
        try:
            registered = self.objectsById[uri.object]
        except KeyError:
            raise DaemonError(f"no object {uri.object!r} in this daemon") from None
        proxy = Proxy(uri)
        proxy._pyroGetMetadata(known_metadata=get_exposed_members(unpack(registered)))
        return proxy

    # -- running ---------------------------------------------------------------------------------

    @property
    def sock(self) -> Any:
        """The listener (for a ``connected_socket`` daemon: the connection)."""
        return self._listener

    @property
    def sockets(self) -> list[Any]:
        """Everything to watch for the daemon in an external event loop (pass the ready ones to ``events``)."""
        return list(self._engine().sockets)

    @property
    def selector(self) -> Any:
        """The engine's selector (multiplex engine only)."""
        return self._engine().selector

    def _engine(self) -> Any:
        engine = self.transportServer
        if engine is None:
            raise PyroError("daemon is closed")
        return engine

    @staticmethod
    def serveSimple(
        objects: dict[Any, str | None],
        host: Any = None,
        port: int = 0,
        daemon: Daemon | None = None,
        ns: bool = True,
        verbose: bool = True,
    ) -> None:
        """Pyro4's name for ``serve``."""
        serve(objects, host, port, daemon, ns, verbose)

    def requestLoop(self, loopCondition: Callable[[], bool] = lambda: True) -> None:
        """Serve requests until ``loopCondition()`` is false or ``shutdown()`` is called."""
        engine = self._engine()
        host = self.host
        self._loop_stopped.clear()
        self._loop_thread = threading.get_ident()
        log.info("daemon %s: request loop starts", self.locationStr)
        try:
            engine.loop(lambda: not host.shutting_down and loopCondition())
        finally:
            self._loop_thread = None
            self._loop_stopped.set()
        log.debug("daemon %s: request loop ended", self.locationStr)

    def events(self, eventsockets: list[Any]) -> Any:
        """For an external event loop: serve what is pending on the given ready sockets."""
        return self._engine().events(eventsockets)

    def combine(self, daemon: Any) -> None:
        """Serve another daemon in this daemon's loop; ``daemon`` may also be any server with
        ``sockets`` and ``events(ready)`` (Pyro5 code passes a broadcast responder here)."""
        engine_of = getattr(daemon, "_engine", None)
        other = engine_of() if callable(engine_of) else getattr(daemon, "transportServer", None) or daemon
        self._engine().combine_loop(other)

    def shutdown(self) -> None:
        """Stop the request loop and close the daemon.  Safe from any thread (also from inside a
        remote call), idempotent, and bounded: it waits at most a few seconds for the loop."""
        if self.host.shutting_down and self.transportServer is None:
            return
        log.debug("daemon %s: shutdown requested", self.locationStr)
        self.host.begin_shutdown()
        self.streams.clear()
        engine = self.transportServer
        if engine is not None:
            try:
                engine.shutdown()
            except Exception:
                log.warning("error shutting down the server engine", exc_info=True)
        self.close()
        if self._loop_thread is not None and self._loop_thread != threading.get_ident():
            self._loop_stopped.wait(SHUTDOWN_WAIT)

    def close(self) -> None:
        """Release the listener, the connections and the worker threads.  Idempotent."""
        if self._publisher is not None:
            self._publisher.close()  # first, while the objects still answer: remove what we published
        self.host.begin_shutdown()
        engine, self.transportServer = self.transportServer, None
        self._closed = True
        if engine is None:
            return
        log.debug("daemon %s: closing its listener and connections", self.locationStr)
        self.streams.clear()
        with contextlib.suppress(Exception):
            engine.wakeup()
        try:
            engine.close()
        finally:
            self.host.close()

    # -- dunder ------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        location = getattr(self, "locationStr", None)
        if location is None:
            return f"<{type(self).__module__}.{type(self).__name__} at 0x{id(self):x}; unusable>"
        if location.startswith("./u:"):
            family = "Unix"
        elif location.startswith("["):
            family = "IPv6"
        else:
            family = "IPv4"
        count = len(getattr(self, "objectsById", ()))
        return (
            f"<{type(self).__module__}.{type(self).__name__} at 0x{id(self):x}; {location} - {family}; {count} objects>"
        )

    def __enter__(self) -> Daemon:
        if self.transportServer is None:
            raise PyroError("this daemon is closed; a closed daemon cannot be entered again")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getstate__(self) -> tuple[()]:
        # objects that reference their daemon may get serialized; the daemon itself carries nothing
        return ()

    def __setstate__(self, state: tuple[()]) -> None:
        pass


def serve(
    objects: dict[Any, str | None],
    host: Any = None,
    port: int = 0,
    daemon: Daemon | None = None,
    use_ns: bool = True,
    verbose: bool = True,
) -> None:
    """Start a daemon (or use ``daemon``), register ``objects`` and run its request loop.

    ``objects`` maps each object or class to a name (or None).  With
    ``use_ns`` the names are registered in the name server (found with
    ``locate_ns``) and the daemon generates the object ids; without it the
    names are the object ids.
    """
    if daemon is None:
        daemon = Daemon(host, port)
    with daemon:
        ns = None
        if use_ns:
            from .naming import locate_ns

            ns = locate_ns()
        try:
            for obj, name in objects.items():
                uri = daemon.register(obj, None if ns is not None else name)
                if verbose:
                    print(f"Object {obj!r}:\n    uri = {uri}")
                if name and ns is not None:
                    ns.register(name, uri)
                    if verbose:
                        print(f"    name = {name}")
        finally:
            if ns is not None:
                with contextlib.suppress(Exception):
                    ns._pyroRelease()
        if verbose:
            print("Serving requests now (Ctrl-C stops).")
        daemon.requestLoop()

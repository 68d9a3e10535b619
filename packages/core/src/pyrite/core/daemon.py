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

Transport, engine and daemon
----------------------------
The daemon opens a listener with ``plugins.get_transport(location).listen(location)``
where location is ``host:port``, ``[ipv6]:port`` or ``./u:<unixsocket>``, and
hands it to the server engine chosen by ``config.SERVERTYPE``: ``"thread"`` is
``pyrite.core.engines.threadpool``, ``"multiplex"`` is
``pyrite.core.engines.multiplex``.  The engine owns the listener and the client
connections (each a ``ClientConnection``).

What the daemon calls on an engine, and nothing else:

* ``Engine(daemon, listener)``: the constructor (the module's engine class is
  the first of ``Engine``, ``ThreadPoolEngine``, ``ThreadpoolEngine``,
  ``MultiplexEngine`` it defines)
* ``engine.location``: the listener's location string (with the real port)
* ``engine.loop(condition)``: serve until ``condition()`` is false or shutdown
* ``engine.events(ready)``: serve the given ready sockets (external event loops)
* ``engine.sockets``: list of the listener and connections to watch
* ``engine.selector``: read only when a user asks ``Daemon.selector``
* ``engine.combine_loop(other_engine)``: serve another daemon's engine in this loop
* ``engine.wakeup()``: make a waiting ``loop`` look at its condition now
* ``engine.shutdown()``: stop ``loop`` (called from any thread, even a worker)
* ``engine.close()``: release the listener and every connection (idempotent)

What the engine calls on the daemon:

* ``daemon._handshake(conn, msg) -> bool`` for the first message of a
  connection (False: drop the client); a keyword ``denied_reason=...`` refuses it
* ``daemon._handle_message(conn, msg)`` for every later message; it writes its
  own reply and raises ``CommunicationError`` only when the connection must be
  dropped
* ``daemon._client_disconnected(conn)`` once when a client is gone
* ``daemon._housekeeping()`` every now and then (every POLLTIMEOUT at most)
* ``daemon._shutting_down`` (a bool) may be read at any time
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import selectors
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from . import dispatch, plugins
from .callcontext import current_context
from .config import config
from .connection import ClientConnection
from .errors import CommunicationError, ConnectionClosedError, DaemonError, PyroError, SecurityError
from .errors import TimeoutError as PyroTimeoutError
from .exposure import expose, get_exposed_members, reset_exposed_members
from .protocol import MSG_CONNECT, PROTOCOL_VERSION, recv_message
from .uri import DAEMON_NAME, URI

__all__ = ["Daemon", "DaemonObject", "serve"]

log = logging.getLogger("pyrite.core.daemon")

ENGINE_MODULES = {"thread": "pyrite.core.engines.threadpool", "multiplex": "pyrite.core.engines.multiplex"}
_ENGINE_CLASS_NAMES = ("Engine", "ThreadPoolEngine", "ThreadpoolEngine", "MultiplexEngine")
SHUTDOWN_WAIT = 5.0  # seconds shutdown() waits at most for the request loop to stop


@expose
class DaemonObject:
    """The daemon's own remote interface, registered as ``Pyro.Daemon`` in every daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def registered(self) -> list[str]:
        """The ids of every object registered in this daemon."""
        return list(self.daemon.objectsById.keys())

    def ping(self) -> None:
        """Do nothing: a call to check that the daemon answers."""

    def info(self) -> str:
        """A line describing the daemon."""
        d = self.daemon
        return (
            f"{DAEMON_NAME} bound on {d.locationStr}, NAT {d.natLocationStr}, "
            f"{len(d.objectsById)} objects registered. Servertype: {d.transportServer}"
        )

    def get_metadata(self, objectId: str) -> dict[str, set[str]]:
        """The exposed methods, oneway methods and attributes of a registered object."""
        try:
            obj = self.daemon.objectsById.get(objectId)
        except TypeError:
            obj = None
        if obj is None:
            log.debug("unknown object requested: %r", objectId)
            raise DaemonError(f"no object registered with id {objectId!r:.100}")
        obj = dispatch._unpack(obj)
        metadata = get_exposed_members(obj)
        if not metadata["methods"] and not metadata["attrs"]:
            warnings.warn(
                f"{obj!r} has no exposed methods or attributes (are its members marked with @expose?)", stacklevel=2
            )
        return metadata

    def get_next_stream_item(self, streamId: str) -> Any:
        """The next item of a streamed iterator result; the stream ends with StopIteration."""
        return self.daemon._next_stream_item(streamId)

    def close_stream(self, streamId: str) -> None:
        """Forget a streamed iterator result (the client stopped iterating)."""
        self.daemon._close_stream(streamId)


def _auto_proxy(obj: Any) -> Any:
    """Serializer type replacement: a registered object travels as a proxy for it."""
    daemon = getattr(obj, "_pyroDaemon", None)
    if daemon is None:
        return obj
    try:
        return daemon.proxyFor(obj)
    except (ReferenceError, DaemonError):
        return obj  # its daemon is gone or it was unregistered: send it as a value


def _engine_class(servertype: str) -> Callable[..., Any]:
    module_name = ENGINE_MODULES.get(servertype)
    if module_name is None:
        raise PyroError(f"invalid server type {servertype!r} (choose from: {', '.join(ENGINE_MODULES)})")
    module = importlib.import_module(module_name)
    for name in _ENGINE_CLASS_NAMES:
        cls = getattr(module, name, None)
        if cls is not None:
            return cls
    raise PyroError(f"server engine module {module_name} defines no engine class")


def _location(host: str, port: int, unixsocket: str | None) -> str:
    if unixsocket:
        return "./u:" + unixsocket
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


class Daemon:
    """Hosts objects for remote calls and serves clients.

    ``host``/``port`` (default ``config.HOST``, port 0 = any free port) or
    ``unixsocket`` choose where it listens; ``nathost``/``natport`` (default
    ``config.NATHOST``/``NATPORT``) are the address put in URIs when the
    daemon is reached through NAT; ``interface`` is the class of its
    ``Pyro.Daemon`` object.  With ``connected_socket`` (a transport
    ``Connection`` or a connected socket) it serves that one connection only.
    """

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
        # both start "set": no loop runs yet, so there is nothing to stop or to wait for
        self.__mustshutdown, self.__loopstopped = threading.Event(), threading.Event()
        for idle_flag in (self.__mustshutdown, self.__loopstopped):
            idle_flag.set()
        self._loop_thread: int | None = None
        if connected_socket is not None:
            nathost = natport = None
            self.transportServer = _ExistingConnectionEngine(self, connected_socket)
            self._listener = self.transportServer.sock
        else:
            host = config.HOST if host is None else str(host)
            nathost = config.NATHOST if nathost is None else str(nathost)  # str(): an ipaddress object is fine too
            has_nathost = nathost is not None
            if has_nathost and natport is None:
                natport = config.NATPORT
            if has_nathost != (natport is not None):
                raise ValueError(f"nathost and natport go together (got nathost={nathost!r}, natport={natport!r})")
            if unixsocket and nathost:
                raise ValueError(f"nathost {nathost!r} makes no sense for a Unix socket daemon ({unixsocket!r})")
            engine_class = _engine_class(config.SERVERTYPE)
            location = _location(host, port, unixsocket)
            listener = self._listener = plugins.get_transport(location).listen(location)
            try:
                self.transportServer = engine_class(self, listener)
            except BaseException:
                with contextlib.suppress(Exception):
                    listener.close()
                raise
        #: where the daemon listens: ``host:port``, ``[ipv6]:port`` or ``./u:path``
        self.locationStr: str = self.transportServer.location
        natport_for_loc = natport
        if natport == 0:
            natport_for_loc = int(self.locationStr.rsplit(":", 1)[1])
        #: the address put in URIs for NAT routing, or None
        self.natLocationStr: str | None = f"{nathost}:{natport_for_loc}" if nathost else None
        daemon_object = interface(self)
        daemon_object._pyroId = DAEMON_NAME
        #: object id -> registered object (or class, or weak reference)
        self.objectsById: dict[str, Any] = {DAEMON_NAME: daemon_object}
        self._pyroInstances: dict[type, Any] = {}  # the instances of instance_mode "single" classes
        #: stream id -> [client connection or None, created, disconnected at (0: connected), iterator]
        self.streaming_responses: dict[str, list[Any]] = {}
        self._streams_lock = threading.Lock()
        self.create_single_instance_lock = threading.Lock()  # one instance per "single" class, even under races
        self.housekeeper_lock = threading.Lock()
        self._disconnect_lock = threading.Lock()  # serializes the client-disconnect bookkeeping
        self.methodcall_error_handler: Callable[..., None] = _default_methodcall_error_handler
        self._oneway_executor = dispatch.OnewayExecutor()
        # a reply asks for daemon.annotations() only when a subclass overrides it
        self._custom_annotations = type(self).annotations is not Daemon.annotations
        self.__mustshutdown.clear()
        log.debug("daemon listening on %s, pid %d, wire protocol %d", self.locationStr, os.getpid(), PROTOCOL_VERSION)

    # -- the engine seam ---------------------------------------------------------------------

    _handle_message = dispatch.handle_message

    def _handshake(self, conn: Any, msg: Any = None, denied_reason: str | None = None) -> bool:
        """Answer a client's MSG_CONNECT (read from ``conn`` if ``msg`` is None); True if accepted."""
        if msg is None:
            msg = recv_message(conn)
        return dispatch.handshake(self, conn, msg, denied_reason)

    def handleRequest(self, conn: Any) -> None:
        """Read one request from ``conn`` and serve it (Pyro5's name, for hand-driven loops)."""
        msg = recv_message(conn)
        if msg.type == MSG_CONNECT:
            if not self._handshake(conn, msg):
                raise SecurityError("handshake refused")
            return
        self._handle_message(conn, msg)

    @property
    def _shutting_down(self) -> bool:
        return self.__mustshutdown.is_set()

    def _client_disconnected(self, conn: Any) -> None:
        """Forget what belonged to a client that went away, then call ``clientDisconnect``."""
        now = time.time()
        linger = config.ITER_STREAM_LINGER
        with self._disconnect_lock:
            with self._streams_lock:
                for stream_id, entry in list(self.streaming_responses.items()):
                    if entry[0] is conn:
                        if linger > 0:
                            entry[0] = None  # keep it a while: the client may reconnect and go on
                            entry[2] = now
                        else:
                            del self.streaming_responses[stream_id]
            for resource in list(getattr(conn, "tracked_resources", ())):
                try:
                    resource.close()
                except Exception:
                    log.warning("error closing tracked resource %r", resource, exc_info=True)
            instances = getattr(conn, "pyroInstances", None)
            if instances:
                instances.clear()
        try:
            self.clientDisconnect(conn)
        except Exception:
            log.warning("error in clientDisconnect", exc_info=True)

    _clientDisconnect = _client_disconnected  # Pyro5's name

    def _housekeeping(self) -> None:
        """Expire item streams past ITER_STREAM_LIFETIME or ITER_STREAM_LINGER, then call ``housekeeping``."""
        if self._shutting_down:
            return
        if not self.housekeeper_lock.acquire(blocking=False):
            return  # another thread is at it
        try:
            if self.streaming_responses:
                now = time.time()
                lifetime = config.ITER_STREAM_LIFETIME
                linger = config.ITER_STREAM_LINGER
                with self._streams_lock:
                    for stream_id, entry in list(self.streaming_responses.items()):
                        if (0 < lifetime < now - entry[1]) or (linger > 0 and entry[2] and now - entry[2] > linger):
                            del self.streaming_responses[stream_id]
            self.housekeeping()
        finally:
            self.housekeeper_lock.release()

    # -- hooks to override --------------------------------------------------------------------

    def validateHandshake(self, conn: Any, data: Any) -> Any:
        """Check a new client's handshake data; raise to refuse it.  The return value goes back to the client."""
        return "hello"

    def clientDisconnect(self, conn: Any) -> None:
        """Called when a client connection goes away."""

    def housekeeping(self) -> None:
        """Called every few seconds by the running daemon: periodic clean-up of your own."""

    def annotations(self) -> dict[str, bytes]:
        """Annotations (4-letter id -> bytes) to add to every response."""
        return {}

    # -- item streams --------------------------------------------------------------------------

    def _register_stream(self, iterator: Any, conn: Any) -> str:
        stream_id = str(uuid.uuid4())
        with self._streams_lock:
            self.streaming_responses[stream_id] = [conn, time.time(), 0, iterator]
        return stream_id

    def _next_stream_item(self, stream_id: Any) -> Any:
        try:
            entry = self.streaming_responses.get(stream_id)
        except TypeError:
            entry = None
        if entry is None:
            raise PyroError(f"no open item stream with id {stream_id!r:.100}")
        if entry[0] is None:
            # a lingering stream is picked up by a reconnected client
            entry[0] = current_context.client
            entry[2] = 0
        try:
            return next(entry[3])
        except Exception:
            # the end of the stream (StopIteration) or an error in it: it is gone either way
            self._close_stream(stream_id)
            raise

    def _close_stream(self, stream_id: Any) -> None:
        with self._streams_lock:
            with contextlib.suppress(KeyError, TypeError):
                del self.streaming_responses[stream_id]

    # -- object registry -----------------------------------------------------------------------

    def register(self, obj_or_class: Any, objectId: str | None = None, force: bool = False, weak: bool = False) -> URI:
        """Register an object or a class under ``objectId`` (generated if None); returns its URI.

        A class is instantiated by the daemon per its ``@behavior`` (default:
        one instance per client connection).  With ``weak=True`` the daemon
        keeps only a weak reference and the registration ends with the object.
        """
        if not objectId:
            objectId = f"obj_{uuid.uuid4().hex}"
        elif not isinstance(objectId, str):
            raise TypeError(f"objectId must be a str or None, not {type(objectId).__name__}")
        is_class = isinstance(obj_or_class, type)
        if is_class:
            if weak:
                raise TypeError(f"weak=True needs an instance; {obj_or_class.__name__} is a class")
            # a class without @behavior gets the default: one instance per client connection
            obj_or_class._pyroInstancing = getattr(obj_or_class, "_pyroInstancing", ("session", None))
        if not force:
            existing = getattr(obj_or_class, "_pyroId", "")
            if existing and dispatch._unpack_quiet(self.objectsById.get(existing)) is obj_or_class:
                raise DaemonError(
                    f"{obj_or_class!r} is already registered as {existing!r} (use force=True to re-register)"
                )
            if objectId in self.objectsById:
                raise DaemonError(f"the id {objectId!r} is already taken in this daemon")
        elif objectId == DAEMON_NAME:
            raise DaemonError("cannot replace the daemon object")
        obj_or_class._pyroId = objectId
        obj_or_class._pyroDaemon = weakref.proxy(self)
        replaced = obj_or_class if is_class else type(obj_or_class)
        for serializer in plugins.all_serializers().values():
            serializer.register_type_replacement(replaced, _auto_proxy)
        if weak:
            ref = weakref.ref(obj_or_class)
            self.objectsById[objectId] = ref
            weakref.finalize(obj_or_class, _unregister_weak, weakref.ref(self), objectId, ref)
        else:
            self.objectsById[objectId] = obj_or_class
        return self.uriFor(objectId)

    def unregister(self, objectOrId: Any) -> None:
        """Remove a registered object or class, given itself or its id."""
        if objectOrId is None:
            raise ValueError("unregister() needs an object or an object id, got None")
        if isinstance(objectOrId, str):
            object_id = objectOrId
            obj = None
        else:
            object_id = getattr(objectOrId, "_pyroId", None)
            if object_id is None:
                raise DaemonError(f"{objectOrId!r} has no Pyro id: it was never registered")
            obj = objectOrId
        if object_id == DAEMON_NAME:
            return
        registered = self.objectsById.pop(object_id, None)
        if registered is not None:
            target = obj if obj is not None else dispatch._unpack_quiet(registered)
            if target is not None:
                for attr in ("_pyroId", "_pyroDaemon"):
                    with contextlib.suppress(AttributeError, TypeError):
                        delattr(target, attr)
            # the serializers' type replacement stays: other objects of the type may still need it

    def uriFor(self, objectOrId: Any, nat: bool = True) -> URI:
        """The URI of a registered object (or of any object id string) at this daemon.
        ``nat=False`` gives the internal address even if a NAT address is configured."""
        if isinstance(objectOrId, str):
            object_id = objectOrId
        else:
            object_id = getattr(objectOrId, "_pyroId", None)
            if object_id is None or object_id not in self.objectsById:
                raise DaemonError(f"{objectOrId!r} is not registered in this daemon")
        location = (self.natLocationStr or self.locationStr) if nat else self.locationStr
        return URI(f"PYRO:{object_id}@{location}")

    def resetMetadataCache(self, objectOrId: Any, nat: bool = True) -> None:
        """Forget the cached exposed members of a registered object's class (after changing the class)."""
        uri = self.uriFor(objectOrId, nat)
        registered = self.objectsById.get(uri.object)
        if registered is not None:
            target = dispatch._unpack_quiet(registered)
            if target is not None:
                reset_exposed_members(target)

    def proxyFor(self, objectOrId: Any, nat: bool = True) -> Any:
        """A ready proxy (metadata filled in) for a registered object."""
        from .client import Proxy

        uri = self.uriFor(objectOrId, nat)
        try:
            registered = self.objectsById[uri.object]
        except KeyError:
            raise DaemonError(f"no object {uri.object!r} in this daemon") from None
        proxy = Proxy(uri)
        proxy._pyroGetMetadata(known_metadata=get_exposed_members(dispatch._unpack(registered)))
        return proxy

    def _getInstance(self, clazz: type, conn: Any) -> Any:
        """The instance of a registered class that serves a call from ``conn``, per its instance mode."""
        instance_mode, creator = getattr(clazz, "_pyroInstancing", ("session", None))
        if instance_mode == "single":
            instance = self._pyroInstances.get(clazz)
            if instance is None:
                with self.create_single_instance_lock:
                    instance = self._pyroInstances.get(clazz)
                    if instance is None:
                        instance = self._pyroInstances[clazz] = _create_instance(clazz, creator)
            return instance
        if instance_mode == "session":
            instances = getattr(conn, "pyroInstances", None)
            if instances is None:
                raise DaemonError("session instance mode needs a client connection")
            instance = instances.get(clazz)
            if instance is None:
                instance = instances[clazz] = _create_instance(clazz, creator)
            return instance
        if instance_mode == "percall":
            return _create_instance(clazz, creator)
        raise DaemonError(f"class {clazz.__name__} has an unknown instance mode {instance_mode!r}")

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
        must_shutdown = self.__mustshutdown
        self.__loopstopped.clear()
        self._loop_thread = threading.get_ident()
        log.info("daemon %s: request loop starts", self.locationStr)
        try:
            engine.loop(lambda: not must_shutdown.is_set() and loopCondition())
        finally:
            self._loop_thread = None
            self.__loopstopped.set()
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
        if self.__mustshutdown.is_set() and self.transportServer is None:
            return
        log.debug("daemon %s: shutdown requested", self.locationStr)
        self.__mustshutdown.set()
        with self._streams_lock:
            self.streaming_responses = {}
        engine = self.transportServer
        if engine is not None:
            try:
                engine.shutdown()
            except Exception:
                log.warning("error shutting down the server engine", exc_info=True)
        self.close()
        if self._loop_thread is not None and self._loop_thread != threading.get_ident():
            self.__loopstopped.wait(SHUTDOWN_WAIT)

    def close(self) -> None:
        """Release the listener, the connections and the oneway threads.  Idempotent."""
        self.__mustshutdown.set()
        engine, self.transportServer = self.transportServer, None
        self._closed = True
        if engine is None:
            return
        log.debug("daemon %s: closing its listener and connections", self.locationStr)
        with self._streams_lock:
            self.streaming_responses = {}
        with contextlib.suppress(Exception):
            engine.wakeup()
        try:
            engine.close()
        finally:
            self._oneway_executor.shutdown(timeout=1.0)

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

    def __getstate__(self) -> tuple:
        # objects that reference their daemon may get serialized; the daemon itself carries nothing
        return ()

    def __setstate__(self, state: tuple) -> None:
        pass


def _create_instance(clazz: type, creator: Callable[[type], Any] | None) -> Any:
    try:
        if creator is None:
            return clazz()
        obj = creator(clazz)
        if not isinstance(obj, clazz):
            raise TypeError(f"instance_creator for {clazz.__name__} returned a {type(obj).__name__}")
        return obj
    except Exception:
        log.exception("creating an instance of %s failed", clazz.__name__)
        raise


def _unregister_weak(daemon_ref: weakref.ref, object_id: str, ref: weakref.ref) -> None:
    daemon = daemon_ref()
    if daemon is not None and daemon.objectsById.get(object_id) is ref:
        daemon.objectsById.pop(object_id, None)


def _default_methodcall_error_handler(
    daemon: Daemon, client_sock: Any, method: Callable[..., Any], vargs: Any, kwargs: Any, exception: Exception
) -> None:
    """What a daemon does by default with an exception from the called code: log it at debug level."""
    log.debug(
        "remote call raised: client=%s method=%s exception=%r",
        client_sock,
        getattr(method, "__qualname__", method),
        exception,
    )


class _ExistingConnectionEngine:
    """The engine of a daemon that serves one already connected socket or transport connection.

    It answers a MSG_CONNECT handshake if the client sends one (a Pyro5 proxy
    on a connected socket does not) and serves requests until the connection
    ends.  The connection stays the caller's: closing the daemon does not close it.
    """

    def __init__(self, daemon: Daemon, connected: Any) -> None:
        if not hasattr(connected, "recv_some"):
            connected = self._wrap_socket(connected)
        self.daemon = daemon
        self.sock = connected
        self.conn: ClientConnection | None = ClientConnection(connected)
        self.shutting_down = False
        self._disconnected = False
        self.location = self._location_of(connected)
        log.info("serving the single given connection %s", connected)

    @staticmethod
    def _wrap_socket(sock: Any) -> Any:
        sock.getpeername()  # it must be connected
        if config.SSL:
            import ssl

            if not isinstance(sock, ssl.SSLSocket):
                raise CommunicationError("SSL configured but the existing socket is not an SSL socket")
        conn = plugins.adopt_socket(sock, owned=True)  # UnknownPluginError says what to install
        conn.timeout = config.COMMTIMEOUT or None
        return conn

    @staticmethod
    def _location_of(connected: Any) -> str:
        try:
            address = connected.local_address
        except Exception:
            address = None
        if isinstance(address, tuple) and len(address) >= 2:
            host, port = address[0], address[1]
            return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
        return "./u:" + (address or "<<not-bound>>") if isinstance(address, str) else "./u:<<not-bound>>"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self.location}>"

    @property
    def sockets(self) -> list[Any]:
        return [self.sock] if self.conn is not None else []

    @property
    def selector(self) -> Any:
        raise TypeError("a daemon on one given connection has no selector")

    def combine_loop(self, other: Any) -> None:
        raise PyroError("a daemon on one given connection cannot combine other daemons' loops")

    def events(self, ready: Any) -> None:
        raise PyroError("a daemon on one given connection has no event sockets to combine")

    def wakeup(self) -> None:
        """Nothing to do: the loop looks at its condition every POLLTIMEOUT."""

    def shutdown(self) -> None:
        self.shutting_down = True

    def close(self) -> None:
        self.shutting_down = True
        self._disconnect()
        self.conn = None

    def _disconnect(self) -> None:
        if not self._disconnected and self.conn is not None:
            self._disconnected = True
            self.daemon._client_disconnected(self.conn)

    def loop(self, condition: Callable[[], bool]) -> None:
        conn = self.conn
        if conn is None:
            return
        selector = selectors.DefaultSelector()
        try:
            selector.register(self.sock.fileno(), selectors.EVENT_READ)
            while not self.shutting_down and self.conn is not None and condition():
                ready = self.sock.pending() > 0 or bool(selector.select(min(config.POLLTIMEOUT or 1.0, 1.0)))
                if ready and not self._serve_one(conn):
                    break
                self.daemon._housekeeping()
        except (OSError, ValueError):
            pass  # the descriptor went away under us: the connection is over
        finally:
            selector.close()
        if self.conn is None or self._disconnected or not condition():
            return
        self._disconnect()

    def _serve_one(self, conn: ClientConnection) -> bool:
        try:
            msg = recv_message(conn)
            if msg.type == MSG_CONNECT:
                return self.daemon._handshake(conn, msg)
            self.daemon._handle_message(conn, msg)
            return True
        except PyroTimeoutError as exc:
            log.warning("request timed out: %s", exc)
            return True
        except (ConnectionClosedError, SecurityError, CommunicationError) as exc:
            log.debug("connection ends: %s", exc)
            self._disconnect()
            self.conn = None
            return False
        except Exception:
            log.warning("handling a request failed", exc_info=True)
            return True


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

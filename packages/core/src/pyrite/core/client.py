"""The client side of a call: ``Proxy``, ``BatchProxy`` and remote iterators.

A ``Proxy`` stands in for one remote object::

    from pyrite.core.client import Proxy

    with Proxy("PYRO:thing@localhost:9999") as thing:
        thing.method(1)          # a remote call
        thing.attribute          # a remote attribute read
        for item in thing.items():   # a remote generator, streamed item by item
            ...

It connects on first use (or on ``_pyroBind()``), does the connect handshake
(which also brings the object's metadata: its methods, oneway methods and
attributes), and then sends one MSG_INVOKE per call.  A proxy is owned by the
thread that made it; ``_pyroClaimOwnership()`` hands it to another thread.

``BatchProxy(proxy)`` collects calls and sends them as one batch.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import socket
import sys
import time
from collections.abc import Iterator
from threading import get_ident
from typing import Any

from . import plugins
from .blob import SerializedBlob
from .callcontext import current_context
from .config import config
from .errors import (
    CommunicationError,
    ConnectionClosedError,
    ExceptionWrapper,
    ProtocolError,
    PyroError,
    SerializeError,
    TimeoutError,
)
from .protocol import (
    FLAGS_BATCH,
    FLAGS_EXCEPTION,
    FLAGS_ITEMSTREAMRESULT,
    FLAGS_KEEPSERIALIZED,
    FLAGS_ONEWAY,
    MSG_CONNECT,
    MSG_CONNECTFAIL,
    MSG_CONNECTOK,
    MSG_INVOKE,
    MSG_RESULT,
    ReceivingMessage,
    SendingMessage,
    recv_message,
    send_message,
)
from .uri import DAEMON_NAME, URI

__all__ = ["Proxy", "BatchProxy", "SerializedBlob"]

log = logging.getLogger("pyrite.core.client")

_RESULT_TYPES = (MSG_RESULT,)
_CONNECT_REPLY_TYPES = (MSG_CONNECTOK, MSG_CONNECTFAIL)

# Attribute names that always live on the proxy itself and never go to the
# remote object.  Pickle and copy probe some of these with getattr(), so they
# must fail fast instead of connecting to fetch metadata.
_LOCAL_NAMES = frozenset(
    [
        "__getnewargs__",
        "__getnewargs_ex__",
        "__getinitargs__",
        "__getstate__",
        "__setstate__",
        "_pyroConnection",
        "_pyroUri",
        "_pyroOneway",
        "_pyroMethods",
        "_pyroAttrs",
        "_pyroTimeout",
        "_pyroSeq",
        "_pyroLocalSocket",
        "_pyroRawWireResponse",
        "_pyroHandshake",
        "_pyroMaxRetries",
        "_pyroSerializer",
        "_Proxy__pyroTimeout",
        "_Proxy__pyroOwnerThread",
        "_Proxy__objectId",
        "_Proxy__serializer",
        "_Proxy__serializerName",
    ]
)
_LOCAL_PREFIXES = ("_pyro", "_Proxy__")


def _log_wire(text: str, msg: Any) -> None:
    log.debug(
        "%s: msgtype=%d flags=0x%x ser=%d seq=%d annotations=%s corr_id=%s\ndata=%r",
        text,
        msg.type,
        msg.flags,
        msg.serializer_id,
        msg.seq,
        sorted(getattr(msg, "annotations", {}) or {}),
        bytes(msg.corr_id).hex(),
        bytes(msg.data),
    )


class Proxy:
    """A local stand-in for a remote object; attribute access and calls go over the wire.

    ``uri`` is a ``URI`` or its string (PYRO, PYRONAME or PYROMETA; the latter
    two are resolved through the name server on connect).  Nothing is sent
    until first use.  Settings per proxy:

    ``_pyroTimeout``
        seconds to wait for the network (default ``config.COMMTIMEOUT``; 0 or None = no limit).
    ``_pyroMaxRetries``
        how often a call is retried after ConnectionClosedError or TimeoutError
        (default ``config.MAX_RETRIES``).
    ``_pyroSerializer``
        serializer name for this proxy (default ``None``: ``config.SERIALIZER``).
    ``_pyroHandshake``
        data sent in the connect handshake (the daemon's ``validateHandshake`` sees it).
    ``_pyroLocalSocket``
        the local address of the connection, once connected.

    ``connected_socket`` makes a proxy for object id ``uri`` on an already
    connected socket (or pyrite Connection), for example one end of a socketpair
    whose other end a Daemon serves; no handshake is done then.
    """

    def __init__(self, uri: str | URI, connected_socket: Any = None) -> None:
        if connected_socket is not None:
            uri = URI("PYRO:" + str(uri) + "@<<connected-socket>>:0")
        elif isinstance(uri, str):
            uri = URI(uri)
        elif not isinstance(uri, URI):
            raise TypeError(f"a Proxy needs a URI or a URI string, not {type(uri).__name__}")
        d = self.__dict__
        d["_pyroUri"] = uri
        d["_pyroConnection"] = None
        d["_pyroSerializer"] = None
        d["_pyroMethods"] = set()
        d["_pyroAttrs"] = set()
        d["_pyroOneway"] = set()
        d["_pyroSeq"] = 0
        d["_pyroRawWireResponse"] = False
        d["_pyroHandshake"] = "hello"
        d["_pyroMaxRetries"] = config.MAX_RETRIES
        d["_pyroLocalSocket"] = None
        d["_Proxy__pyroTimeout"] = config.COMMTIMEOUT
        d["_Proxy__pyroOwnerThread"] = get_ident()
        d["_Proxy__objectId"] = uri.object
        d["_Proxy__serializer"] = None
        d["_Proxy__serializerName"] = None
        # an unknown serializer is a configuration error: say so now (as Pyro5, a ValueError)
        try:
            plugins.get_serializer(config.SERIALIZER)
        except plugins.UnknownPluginError as exc:
            raise ValueError(f"unknown serializer configured: {exc}") from exc
        current_context.response_annotations = {}
        if connected_socket is not None:
            self.__attach(connected_socket)

    def __del__(self) -> None:
        conn = self.__dict__.get("_pyroConnection")
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # ------------------------------------------------------------------ attribute access

    def __getattr__(self, name: str) -> Any:
        # the common case first: a known remote method (this runs for every call)
        methods = self.__dict__.get("_pyroMethods")
        if methods is not None and name in methods:
            return _RemoteMethod(self._pyroInvoke, name, self._pyroMaxRetries)
        if methods is None or name in _LOCAL_NAMES or name.startswith(_LOCAL_PREFIXES):
            # proxy-local names (and anything on a half-built proxy) never go remote
            raise AttributeError(name)
        if not methods and not self._pyroAttrs:
            self._pyroGetMetadata()
        if name in self._pyroAttrs:
            return self._pyroInvoke("__getattr__", (name,), None)
        if name not in self._pyroMethods:
            raise AttributeError(f"remote object '{self._pyroUri}' has no exposed attribute or method '{name}'")
        return _RemoteMethod(self._pyroInvoke, name, self._pyroMaxRetries)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LOCAL_NAMES or name.startswith(_LOCAL_PREFIXES):
            object.__setattr__(self, name, value)
            return
        if not self._pyroMethods and not self._pyroAttrs:
            self._pyroGetMetadata()
        if name in self._pyroAttrs:
            self._pyroInvoke("__setattr__", (name, value), None)
            return
        raise AttributeError(f"remote object '{self._pyroUri}' has no exposed attribute '{name}'")

    def __repr__(self) -> str:
        connected = "connected" if self._pyroConnection is not None else "not connected"
        return (
            f"<{type(self).__module__}.{type(self).__name__} at 0x{id(self):x}; {connected}; "
            f"for {self._pyroUri}; owner {self.__pyroOwnerThread}>"
        )

    def __dir__(self) -> list[str]:
        names = set(dir(type(self))) | set(self.__dict__)
        return sorted(names | self._pyroMethods | self._pyroAttrs)

    # ------------------------------------------------------------------ identity, copying, pickling

    def __getstate__(self) -> tuple:
        # Pyro5's 6-tuple of plain values: the serializers put exactly this on the wire
        return (
            str(self._pyroUri),
            tuple(self._pyroOneway),
            tuple(self._pyroMethods),
            tuple(self._pyroAttrs),
            self._pyroHandshake,
            self._pyroSerializer,
        )

    def __setstate__(self, state: tuple) -> None:
        uri = URI(state[0])
        d = self.__dict__
        d["_pyroUri"] = uri
        d["_pyroOneway"] = set(state[1])
        d["_pyroMethods"] = set(state[2])
        d["_pyroAttrs"] = set(state[3])
        d["_pyroHandshake"] = state[4]
        d["_pyroSerializer"] = state[5]
        d["_pyroMaxRetries"] = config.MAX_RETRIES
        d["_pyroConnection"] = None
        d["_pyroLocalSocket"] = None
        d["_pyroSeq"] = 0
        d["_pyroRawWireResponse"] = False
        d["_Proxy__pyroTimeout"] = config.COMMTIMEOUT
        d["_Proxy__pyroOwnerThread"] = get_ident()
        d["_Proxy__objectId"] = uri.object
        d["_Proxy__serializer"] = None
        d["_Proxy__serializerName"] = None

    def __copy__(self) -> Proxy:
        """A new, unconnected proxy for the same object with the same settings."""
        other = object.__new__(type(self))
        other.__setstate__(self.__getstate__())
        other._pyroTimeout = self._pyroTimeout
        other._pyroRawWireResponse = self._pyroRawWireResponse
        other._pyroMaxRetries = self._pyroMaxRetries
        return other

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        self._pyroRelease()

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        return isinstance(other, Proxy) and other._pyroUri == self._pyroUri

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self._pyroUri)

    # Special methods are looked up on the type, never through __getattr__, so the
    # container protocol is spelled out here to reach the remote object.
    def __bool__(self) -> bool:
        return True

    def __len__(self) -> int:
        return self.__getattr__("__len__")()

    def __getitem__(self, index: Any) -> Any:
        return self.__getattr__("__getitem__")(index)

    def __setitem__(self, index: Any, value: Any) -> None:
        return self.__getattr__("__setitem__")(index, value)

    def __delitem__(self, index: Any) -> None:
        return self.__getattr__("__delitem__")(index)

    def __iter__(self) -> Iterator[Any]:
        try:
            remote_iter = self.__getattr__("__iter__")
        except AttributeError:
            remote_iter = None
        if remote_iter is not None:
            yield from remote_iter()
            return
        # no remote __iter__: fall back to indexing until IndexError, like Python does
        try:
            for index in range(sys.maxsize):
                yield self[index]
        except (StopIteration, IndexError):
            return

    # ------------------------------------------------------------------ settings

    @property
    def _pyroTimeout(self) -> float | None:
        """Seconds to wait for the network on this proxy; setting it also applies to an open connection."""
        return self.__pyroTimeout

    @_pyroTimeout.setter
    def _pyroTimeout(self, timeout: float | None) -> None:
        self.__dict__["_Proxy__pyroTimeout"] = timeout
        conn = self._pyroConnection
        if conn is not None:
            conn.timeout = timeout or None

    # ------------------------------------------------------------------ connection management

    def _pyroRelease(self) -> None:
        """Close the connection to the daemon; the proxy reconnects by itself when used again."""
        self.__check_owner()
        conn = self._pyroConnection
        if conn is not None:
            d = self.__dict__
            d["_pyroConnection"] = None
            d["_pyroLocalSocket"] = None
            conn.close()

    def _pyroBind(self) -> bool:
        """Connect now and fetch the metadata; a PYRONAME/PYROMETA uri is replaced by the PYRO uri it
        resolved to.  Returns True if a new connection was made, False if already connected."""
        return self.__pyroCreateConnection(True)

    def _pyroReconnect(self, tries: int = 100000000) -> None:
        """Release the connection and connect again, trying ``tries`` times, 2 seconds apart.

        Raises ConnectionClosedError when every try failed."""
        self._pyroRelease()
        while tries:
            try:
                self.__pyroCreateConnection()
                return
            except CommunicationError:
                tries -= 1
                if tries:
                    time.sleep(2)
        log.error("gave up reconnecting to %s", self._pyroUri)
        raise ConnectionClosedError(f"could not reconnect to {self._pyroUri}")

    def _pyroClaimOwnership(self) -> None:
        """Make the calling thread the owner of this proxy; an open connection stays open."""
        self.__dict__["_Proxy__pyroOwnerThread"] = get_ident()

    def _pyroValidateHandshake(self, response: Any) -> None:
        """Override to check the daemon's handshake response; raise to refuse the connection."""

    def _pyroAnnotations(self) -> dict[str, bytes]:
        """The annotations sent with every message of this proxy (4-letter id -> bytes).

        By default the calling thread's ``current_context.annotations``; override to add your own."""
        return current_context.annotations

    def _pyroResponseAnnotations(self, annotations: dict[str, bytes], msgtype: int) -> None:
        """Called with the annotations of a response that has any (``msgtype`` is MSG_RESULT or
        MSG_CONNECTOK); they are also in ``current_context.response_annotations``.  Override to use them."""

    def _pyroGetMetadata(self, objectId: str | None = None, known_metadata: dict | None = None) -> None:
        """Fetch (or take ``known_metadata``) and remember the remote object's methods, oneway methods
        and attributes.  Connecting usually brings them already."""
        if not known_metadata and self._pyroConnection is None:
            self.__pyroCreateConnection()
            if self._pyroMethods or self._pyroAttrs:
                return  # the handshake brought them
        result = known_metadata or self._pyroInvoke(
            "get_metadata", [objectId or self._pyroUri.object], {}, objectId=DAEMON_NAME
        )
        self.__processMetadata(result)

    def __processMetadata(self, metadata: Any) -> None:
        if not metadata:
            return
        try:
            oneway = set(metadata["oneway"])
            methods = set(metadata["methods"])
            attrs = set(metadata["attrs"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"invalid metadata from {self._pyroUri}: {exc!r}") from None
        if not all(isinstance(name, str) for name in (*oneway, *methods, *attrs)):
            raise ProtocolError(f"invalid metadata from {self._pyroUri}: names must be strings")
        d = self.__dict__
        d["_pyroOneway"] = oneway
        d["_pyroMethods"] = methods
        d["_pyroAttrs"] = attrs
        if not methods and not attrs:
            raise PyroError(
                f"remote object '{self._pyroUri}' has no exposed methods or attributes "
                "(are its members marked with @expose?)"
            )

    def __check_owner(self) -> None:
        if get_ident() != self.__pyroOwnerThread:
            raise PyroError(
                f"this proxy belongs to thread {self.__pyroOwnerThread}, not to the calling thread "
                f"{get_ident()}: make a proxy per thread, or call _pyroClaimOwnership() first"
            )

    def __get_serializer(self) -> Any:
        name = self._pyroSerializer or config.SERIALIZER
        serializer = plugins.get_serializer(name)
        d = self.__dict__
        d["_Proxy__serializer"] = serializer
        d["_Proxy__serializerName"] = name
        return serializer

    def __attach(self, connected: Any) -> None:
        """Use an already connected socket or Connection (no handshake, as Pyro5)."""
        conn = _SocketConnection(connected) if isinstance(connected, socket.socket) else connected
        if self.__pyroTimeout:
            conn.timeout = self.__pyroTimeout
        d = self.__dict__
        d["_pyroConnection"] = conn
        d["_pyroLocalSocket"] = getattr(conn, "local_address", None)

    def __pyroCreateConnection(self, replaceUri: bool = False) -> bool:
        self.__check_owner()
        if self._pyroConnection is not None:
            return False
        uri = self._pyroUri
        if uri.protocol != "PYRO":
            from .naming import resolve

            uri = resolve(uri)
        self.__connect_and_handshake(uri, replaceUri)
        if not self._pyroMethods and not self._pyroAttrs:
            self._pyroGetMetadata(uri.object)
        return True

    def __connect_and_handshake(self, uri: URI, replace_uri: bool) -> None:
        location = uri.location
        if location is None:
            raise CommunicationError(f"cannot connect to {uri}: it has no location")
        serializer = self.__get_serializer()
        conn = None
        try:
            conn = plugins.get_transport(location).connect(location, self.__pyroTimeout or None)
            payload = serializer.dumps({"handshake": self._pyroHandshake, "object": uri.object})
            seq = self._pyroSeq
            msg = SendingMessage(
                MSG_CONNECT,
                0,
                seq,
                serializer.serializer_id,
                payload,
                annotations=self._pyroAnnotations(),
                corr_id=current_context.correlation_id,
            )
            if config.LOGWIRE:
                _log_wire("proxy: connect request out", msg)
            send_message(conn, msg)
            reply = recv_message(conn, _CONNECT_REPLY_TYPES)
            if config.LOGWIRE:
                _log_wire("proxy: connect reply in", reply)
            if reply.seq != seq:
                raise ProtocolError(f"connect: reply sequence out of sync, got {reply.seq} expected {seq}")
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, PyroError) or not isinstance(exc, Exception):
                raise
            raise CommunicationError(f"cannot connect to {location}: {exc}") from exc
        user_code = False  # exceptions from the overridable hooks pass through unchanged
        try:
            response: Any = "?"
            if reply.data:
                response = plugins.get_serializer_by_id(reply.serializer_id).loads(reply.data)
            if reply.type == MSG_CONNECTFAIL:
                raise CommunicationError(f"connection to {location} rejected: {response}")
            if not isinstance(response, dict) or "handshake" not in response:
                raise ProtocolError(f"invalid handshake response from {location}: {response!r:.200}")
            self.__processMetadata(response.get("meta"))
            d = self.__dict__
            d["_pyroConnection"] = conn
            d["_Proxy__objectId"] = uri.object
            try:
                d["_pyroLocalSocket"] = conn.local_address
            except Exception:
                d["_pyroLocalSocket"] = None
            handshake = response["handshake"]
            user_code = True
            if reply.annotations:
                current_context.response_annotations = reply.annotations
                self._pyroResponseAnnotations(reply.annotations, reply.type)
            self._pyroValidateHandshake(handshake)
        except BaseException as exc:
            # a refused or unusable handshake leaves no half-open connection behind
            if self._pyroConnection is conn:
                self.__dict__["_pyroConnection"] = None
                self.__dict__["_pyroLocalSocket"] = None
            conn.close()
            if user_code or isinstance(exc, PyroError) or not isinstance(exc, Exception):
                raise
            raise ProtocolError(f"invalid handshake response from {location}: {exc!r}") from exc
        if replace_uri:
            self.__dict__["_pyroUri"] = uri
        log.debug("connected to %s", uri)

    # ------------------------------------------------------------------ calls

    def _pyroInvoke(
        self, methodname: str, vargs: Any, kwargs: dict[str, Any] | None, flags: int = 0, objectId: str | None = None
    ) -> Any:
        """Send one call and return its result (None for a oneway call); raise what the remote raised."""
        d = self.__dict__
        if get_ident() != d["_Proxy__pyroOwnerThread"]:
            self.__check_owner()
        ctx = current_context
        if ctx.response_annotations:
            ctx.response_annotations = {}
        conn = d["_pyroConnection"]
        if conn is None:
            self.__pyroCreateConnection()
            conn = d["_pyroConnection"]
        serializer = d["_Proxy__serializer"]
        if d["_Proxy__serializerName"] != (d["_pyroSerializer"] or config.SERIALIZER) or serializer is None:
            serializer = self.__get_serializer()
        serializer_id = serializer.serializer_id
        objectId = objectId or d["_Proxy__objectId"]
        annotations = self._pyroAnnotations()
        if vargs and isinstance(vargs[0], SerializedBlob):
            payload, flags, annotations, serializer_id = _blob_call(
                vargs, kwargs, annotations, flags, objectId, methodname, serializer
            )
        else:
            payload = serializer.dumpsCall(objectId, methodname, vargs, kwargs)
        if methodname in d["_pyroOneway"]:
            flags |= FLAGS_ONEWAY
        seq = (d["_pyroSeq"] + 1) & 0xFFFF
        msg = SendingMessage(MSG_INVOKE, flags, seq, serializer_id, payload, annotations, corr_id=ctx.correlation_id)
        d["_pyroSeq"] = seq
        if config.LOGWIRE:
            _log_wire("proxy: request out", msg)
        try:
            send_message(conn, msg)
            del msg
            if flags & FLAGS_ONEWAY:
                return None
            reply = recv_message(conn, _RESULT_TYPES)
            if config.LOGWIRE:
                _log_wire("proxy: reply in", reply)
            if reply.seq != seq:
                raise ProtocolError(f"invoke: reply sequence out of sync, got {reply.seq} expected {seq}")
            if reply.serializer_id != serializer_id:
                raise SerializeError(f"invalid serializer in response: {reply.serializer_id}")
            if reply.annotations:
                ctx.response_annotations = reply.annotations
                self._pyroResponseAnnotations(reply.annotations, reply.type)
            if d["_pyroRawWireResponse"]:
                return reply
            try:
                data = serializer.loads(reply.data)
            except PyroError:
                raise
            except Exception as exc:
                raise ProtocolError(f"malformed response payload: {exc!r}") from None
            rflags = reply.flags
            if rflags & FLAGS_ITEMSTREAMRESULT:
                stream_id = reply.annotations.get("STRM", b"")
                try:
                    stream_id = bytes(stream_id).decode()
                except UnicodeDecodeError:
                    raise ProtocolError("invalid stream id in response") from None
                if not stream_id:
                    raise ProtocolError(
                        "the call returned an iterator, but the server has item streaming switched off (ITER_STREAMING)"
                    )
                return _StreamResultIterator(stream_id, self)
            if rflags & FLAGS_EXCEPTION:
                if not isinstance(data, BaseException):
                    raise ProtocolError(f"exception response does not hold an exception: {type(data).__name__}")
                try:
                    raise data  # the remote exception; its remote traceback is in _pyroTraceback
                finally:
                    del data
            return data
        except (CommunicationError, KeyboardInterrupt):
            # The stream may be out of step now (a half-read reply would answer the next
            # call), so the connection goes.  ^C too: the caller may catch it and go on.
            self._pyroRelease()
            raise

    def _pyroInvokeBatch(self, calls: list[tuple[str, tuple, dict]], oneway: bool = False) -> Any:
        """Send collected ``(method, args, kwargs)`` calls as one batch; return the list of results."""
        flags = FLAGS_BATCH | FLAGS_ONEWAY if oneway else FLAGS_BATCH
        return self._pyroInvoke("<batch>", calls, None, flags)


def _blob_call(
    vargs: Any, kwargs: Any, annotations: dict[str, bytes], flags: int, objectId: str, methodname: str, serializer: Any
) -> tuple[Any, int, dict[str, bytes], int]:
    """The payload, flags, annotations and serializer id of a call whose argument is a SerializedBlob.

    The object id and method travel in the BLBI annotation, since a daemon passes
    the payload on without reading it.  A blob that holds a received message is
    forwarded byte for byte, with that message's serializer id."""
    if len(vargs) > 1 or kwargs:
        raise SerializeError(
            f"a SerializedBlob must be the call's sole argument (got {len(vargs)} positional, "
            f"{len(kwargs or ())} keyword)"
        )
    blob = vargs[0]
    annotations = dict(annotations)
    annotations["BLBI"] = marshal.dumps((blob.info, objectId, methodname))
    flags |= FLAGS_KEEPSERIALIZED
    if blob._contains_blob:
        message = blob._data
        if isinstance(message, ReceivingMessage):
            return message.data, flags, annotations, message.serializer_id
        if isinstance(message, SendingMessage):
            return message.payload, flags, annotations, message.serializer_id
        raise TypeError("blob data should be a protocol message")
    return serializer.dumpsCall(objectId, methodname, blob._data, kwargs), flags, annotations, serializer.serializer_id


class _RemoteMethod:
    """A remote method, bound to a proxy; calling it makes the remote call (with retries)."""

    __slots__ = ("_send", "_name", "_max_retries")

    def __init__(self, send: Any, name: str, max_retries: int) -> None:
        self._send = send
        self._name = name
        self._max_retries = max_retries

    def __getattr__(self, name: str) -> _RemoteMethod:
        if name.startswith("__"):
            raise AttributeError(name)
        return _RemoteMethod(self._send, f"{self._name}.{name}", self._max_retries)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        retries = self._max_retries
        if not retries:
            return self._send(self._name, args, kwargs)
        for attempt in range(retries + 1):
            try:
                return self._send(self._name, args, kwargs)
            except (ConnectionClosedError, TimeoutError):
                # only network failures are worth another try; the proxy reconnects by itself
                if attempt >= retries:
                    raise
        return None  # pragma: no cover (the loop always returns or raises)

    def __repr__(self) -> str:
        return f"<remote method {self._name!r}>"


class _StreamResultIterator:
    """The result of a remote call that returned an iterator or generator.

    It fetches the items one by one from the daemon as you iterate.  ``close()``
    (or garbage collection) tells the daemon to drop the remote iterator early.
    """

    def __init__(self, streamId: str, proxy: Proxy) -> None:
        self.streamId = streamId
        self.proxy: Proxy | None = proxy
        self.pyroseq = proxy._pyroSeq

    def __iter__(self) -> _StreamResultIterator:
        return self

    def __next__(self) -> Any:
        proxy = self.proxy
        if proxy is None:
            raise StopIteration
        if proxy._pyroConnection is None:
            raise ConnectionClosedError(
                f"cannot fetch the next streamed item: the proxy for {proxy._pyroUri} is closed"
            )
        self.pyroseq = (self.pyroseq + 1) & 0xFFFF
        try:
            return proxy._pyroInvoke("get_next_stream_item", [self.streamId], {}, objectId=DAEMON_NAME)
        except (StopIteration, GeneratorExit):
            # the daemon closed the stream by itself; nothing left to close here
            self.proxy = None
            raise

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def close(self) -> None:
        """Tell the daemon to discard the remote iterator (a oneway call)."""
        proxy = self.proxy
        self.proxy = None
        if proxy is None or proxy._pyroConnection is None:
            return
        if self.pyroseq == proxy._pyroSeq:
            proxy._pyroInvoke("close_stream", [self.streamId], {}, flags=FLAGS_ONEWAY, objectId=DAEMON_NAME)
        else:
            # Other calls went over the proxy since (the garbage collector may even run
            # this in the middle of one), so a separate connection does the closing.
            with contextlib.suppress(CommunicationError):
                with proxy.__copy__() as closer:
                    closer._pyroInvoke("close_stream", [self.streamId], {}, flags=FLAGS_ONEWAY, objectId=DAEMON_NAME)


class _BatchedRemoteMethod:
    """A method of a BatchProxy: calling it records the call."""

    __slots__ = ("_calls", "_name")

    def __init__(self, calls: list, name: str) -> None:
        self._calls = calls
        self._name = name

    def __getattr__(self, name: str) -> _BatchedRemoteMethod:
        if name.startswith("__"):
            raise AttributeError(name)
        return _BatchedRemoteMethod(self._calls, f"{self._name}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self._calls.append((self._name, args, kwargs))


class BatchProxy:
    """Collects calls for one proxy and sends them as a single batch.

    Call methods on it as on the proxy, then call the batch proxy itself::

        batch = BatchProxy(proxy)
        batch.add(1, 2)
        batch.multiply(3, 4)
        for result in batch():      # one round trip; results in call order
            print(result)

    A call that failed on the server raises its exception when iteration
    reaches it.  ``batch(oneway=True)`` sends the batch without waiting and
    returns None.
    """

    def __init__(self, proxy: Proxy) -> None:
        self.__proxy = proxy
        self.__calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str) -> _BatchedRemoteMethod:
        if name.startswith("_BatchProxy__") or name in _LOCAL_NAMES:
            raise AttributeError(name)
        return _BatchedRemoteMethod(self.__calls, name)

    def __enter__(self) -> BatchProxy:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def __copy__(self) -> BatchProxy:
        other = type(self)(self.__proxy)
        other.__calls = list(self.__calls)
        return other

    @staticmethod
    def __results(results: Any) -> Iterator[Any]:
        for result in results:
            if isinstance(result, ExceptionWrapper):
                result.raiseIt()
            else:
                yield result

    def __call__(self, oneway: bool = False) -> Iterator[Any] | None:
        self.__proxy._pyroClaimOwnership()
        results = self.__proxy._pyroInvokeBatch(self.__calls, oneway)
        self.__calls = []  # sent: start afresh (after a failure they stay, to try again)
        if oneway:
            return None
        if not isinstance(results, (list, tuple)):
            raise ProtocolError(f"batch response is not a list of results: {type(results).__name__}")
        return self.__results(results)

    def _pyroInvoke(self, name: str, args: Any, kwargs: Any) -> Iterator[Any]:
        # Pyro5 compatibility: run the batch regardless of the arguments
        results = self.__proxy._pyroInvokeBatch(self.__calls)
        self.__calls = []
        return self.__results(results)


class _SocketConnection:
    """Just enough of a pyrite Connection around a connected ``socket.socket`` (``connected_socket``).

    The socket belongs to the caller: ``close()`` leaves it open, so another proxy
    can use it after this one is released (as Pyro5 does)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @property
    def timeout(self) -> float | None:
        return self.sock.gettimeout()

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.sock.settimeout(value or None)

    def send(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise TimeoutError(f"send timed out after {self.sock.gettimeout()} s") from None
        except OSError as exc:
            raise ConnectionClosedError(f"connection dropped while sending: {exc}") from None

    def recv(self, size: int) -> bytes:
        chunks = []
        remaining = size
        try:
            while remaining:
                chunk = self.sock.recv(min(remaining, 1 << 20))
                if not chunk:
                    raise ConnectionClosedError(
                        f"peer closed the connection with {remaining} of {size} bytes still to come"
                    )
                chunks.append(chunk)
                remaining -= len(chunk)
        except socket.timeout:
            raise TimeoutError(f"receive timed out after {self.sock.gettimeout()} s") from None
        except OSError as exc:
            raise ConnectionClosedError(f"connection dropped while receiving: {exc}") from None
        return b"".join(chunks)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        pass

    @property
    def local_address(self) -> Any:
        return self.sock.getsockname()

    @property
    def peer_address(self) -> Any:
        return self.sock.getpeername()

    def getpeercert(self) -> None:
        return None

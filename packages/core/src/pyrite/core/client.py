"""The client side of a call: ``Proxy``.

A ``Proxy`` stands in for one remote object::

    from pyrite.core.client import Proxy

    with Proxy("PYRO:thing@localhost:9999") as thing:
        thing.method(1)          # a remote call
        thing.attribute          # a remote attribute read
        for item in thing.items():   # a remote generator, streamed item by item
            ...

It connects on first use (or on ``_pyroBind()``); the handshake also brings
the object's metadata.  The bytes go over a ``channel.Channel``; this module
keeps attribute magic, settings, pickling and ownership (per thread, or per
greenlet under gevent: see ``ownership``).  ``BatchProxy`` is in ``batch``
(importable from here too), remote methods and stream iterators in ``remote``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from . import failover, ownership, plugins, resolver
from .batch import BatchProxy
from .blob import SerializedBlob, blob_call
from .callcontext import current_context
from .channel import Channel, decode_result, handshake_response, metadata_sets, raise_exception_reply
from .config import config
from .constants import DAEMON_NAME
from .errors import CommunicationError, ConnectionClosedError, ProtocolError, PyroError
from .interfaces import Serializer
from .protocol import FLAGS_BATCH, FLAGS_EXCEPTION, FLAGS_ITEMSTREAMRESULT, FLAGS_ONEWAY, ReceivingMessage
from .remote import PROXY_LOCAL_NAMES, PROXY_LOCAL_PREFIXES, RemoteMethod, StreamResultIterator, proxy_state
from .uri import URI

__all__ = ["Proxy", "BatchProxy", "SerializedBlob"]

log = logging.getLogger("pyrite.core.client")

_StreamResultIterator = StreamResultIterator  # the older private name


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
        serializer name for this proxy (default ``None``: ``config.SERIALIZER``).  An
        unknown name raises ``plugins.UnknownSerializerError`` (also a KeyError) on use.
    ``_pyroHandshake``
        data sent in the connect handshake (the daemon's ``validateHandshake`` sees it).
    ``_pyroLocalSocket``
        the local address of the connection, once connected.

    ``connected_socket`` makes a proxy for object id ``uri`` on an already
    connected socket (or pyrite Connection), for example one end of a socketpair
    whose other end a Daemon serves; no handshake is done then, and the socket
    stays the caller's (releasing the proxy leaves it open).
    """

    def __init__(self, uri: str | URI, connected_socket: Any = None) -> None:
        if connected_socket is not None:
            uri = URI("PYRO:" + str(uri) + "@<<connected-socket>>:0")
        elif isinstance(uri, str):
            uri = URI(uri)
        elif not isinstance(uri, URI):
            raise TypeError(f"a Proxy needs a URI or a URI string, not {type(uri).__name__}")
        self.__fresh(uri, (), (), (), "hello", None)
        # an unknown serializer is a configuration error: say so now (as Pyro5, a ValueError)
        try:
            plugins.get_serializer(config.SERIALIZER)
        except plugins.UnknownPluginError as exc:
            raise ValueError(f"unknown serializer configured: {exc}") from exc
        current_context.response_annotations = {}
        if connected_socket is not None:
            self.__attach(connected_socket)

    def __del__(self) -> None:
        channel = self.__dict__.get("_Proxy__channel")
        if channel is not None:
            with contextlib.suppress(Exception):
                channel.close()

    # ------------------------------------------------------------------ attribute access

    def __getattr__(self, name: str) -> Any:
        # the common case first: a known remote method (this runs for every call)
        methods = self.__dict__.get("_pyroMethods")
        if methods is not None and name in methods:
            return RemoteMethod(self._pyroInvoke, name, self._pyroMaxRetries)
        if methods is None or name in PROXY_LOCAL_NAMES or name.startswith(PROXY_LOCAL_PREFIXES):
            # proxy-local names (and anything on a half-built proxy) never go remote
            raise AttributeError(name)
        if not methods and not self._pyroAttrs:
            self._pyroGetMetadata()
        if name in self._pyroAttrs:
            return self._pyroInvoke("__getattr__", (name,), None)
        if name not in self._pyroMethods:
            raise AttributeError(f"remote object '{self._pyroUri}' has no exposed attribute or method '{name}'")
        return RemoteMethod(self._pyroInvoke, name, self._pyroMaxRetries)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in PROXY_LOCAL_NAMES or name.startswith(PROXY_LOCAL_PREFIXES):
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

    def __getstate__(self) -> tuple[Any, ...]:
        # Pyro5's 6-tuple of plain values: the serializers put exactly this on the wire
        return proxy_state(self)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.__fresh(URI(state[0]), *state[1:6])

    def __fresh(self, uri: URI, oneway: Any, methods: Any, attrs: Any, handshake: Any, serializer: Any) -> None:
        # the state of an unconnected proxy, owned by the calling thread, with config's defaults
        ownership.refresh()
        d = self.__dict__
        d["_pyroUri"] = uri
        d["_pyroOneway"] = set(oneway)
        d["_pyroMethods"] = set(methods)
        d["_pyroAttrs"] = set(attrs)
        d["_pyroHandshake"] = handshake
        d["_pyroSerializer"] = serializer
        d["_pyroMaxRetries"] = config.MAX_RETRIES
        d["_pyroConnection"] = None
        d["_Proxy__channel"] = None
        d["_pyroLocalSocket"] = None
        d["_pyroSeq"] = 0
        d["_pyroRawWireResponse"] = False
        d["_Proxy__pyroTimeout"] = config.COMMTIMEOUT
        d["_Proxy__pyroOwnerThread"] = ownership.get_ident()
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
        return int(self.__getattr__("__len__")())

    def __getitem__(self, index: Any) -> Any:
        return self.__getattr__("__getitem__")(index)

    def __setitem__(self, index: Any, value: Any) -> None:
        self.__getattr__("__setitem__")(index, value)

    def __delitem__(self, index: Any) -> None:
        self.__getattr__("__delitem__")(index)

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
        timeout: float | None = self.__dict__["_Proxy__pyroTimeout"]
        return timeout

    @_pyroTimeout.setter
    def _pyroTimeout(self, timeout: float | None) -> None:
        self.__dict__["_Proxy__pyroTimeout"] = timeout
        channel = self.__channel
        if channel is not None:
            channel.timeout = timeout

    # ------------------------------------------------------------------ connection management

    def _pyroRelease(self) -> None:
        """Close the connection to the daemon; the proxy reconnects by itself when used again."""
        self.__check_owner()
        channel = self.__channel
        if channel is not None:
            d = self.__dict__
            d["_Proxy__channel"] = None
            d["_pyroConnection"] = None
            d["_pyroLocalSocket"] = None
            channel.close()

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
        """Make the calling thread (or greenlet, under gevent) the owner of this proxy; an open
        connection stays open."""
        ownership.refresh()
        self.__dict__["_Proxy__pyroOwnerThread"] = ownership.get_ident()

    def _pyroValidateHandshake(self, response: Any) -> None:
        """Override to check the daemon's handshake response; raise to refuse the connection."""

    def _pyroAnnotations(self) -> dict[str, bytes]:
        """The annotations sent with every message of this proxy (4-letter id -> bytes).

        By default the calling thread's ``current_context.annotations``; override to add your own."""
        annotations: dict[str, bytes] = current_context.annotations
        return annotations

    def _pyroResponseAnnotations(self, annotations: dict[str, bytes], msgtype: int) -> None:
        """Called with the annotations of a response that has any (``msgtype`` is MSG_RESULT or
        MSG_CONNECTOK); they are also in ``current_context.response_annotations``.  Override to use them."""

    def _pyroGetMetadata(self, objectId: str | None = None, known_metadata: dict[str, Any] | None = None) -> None:
        """Fetch (or take ``known_metadata``) and remember the remote object's methods, oneway methods
        and attributes.  Connecting usually brings them already."""
        if not known_metadata and self.__channel is None:
            self.__pyroCreateConnection()
            if self._pyroMethods or self._pyroAttrs:
                return  # the handshake brought them
        result = known_metadata or self._pyroInvoke(
            "get_metadata", [objectId or self._pyroUri.object], {}, objectId=DAEMON_NAME
        )
        self.__processMetadata(result)

    def _pyroAdoptChannel(self, channel: Channel, reply: ReceivingMessage) -> None:
        """Take over a channel that already did its handshake for this proxy's object (``reply`` is
        the daemon's answer); ``naming.locate_ns`` uses it to keep the connection it found."""
        self.__check_owner()
        if self.__channel is not None:
            self._pyroRelease()
        self.__dict__["_pyroSeq"] = channel.session.seq
        self.__accept_handshake(channel, reply, self._pyroUri, False)

    def __processMetadata(self, metadata: Any) -> None:
        if metadata:
            d = self.__dict__
            d["_pyroOneway"], d["_pyroMethods"], d["_pyroAttrs"] = metadata_sets(metadata, self._pyroUri)

    def __check_owner(self) -> None:
        if ownership.get_ident() != self.__pyroOwnerThread:
            raise PyroError(
                f"this proxy belongs to thread {self.__pyroOwnerThread}, not to the calling thread "
                f"{ownership.get_ident()}: make a proxy per thread, or call _pyroClaimOwnership() first"
            )

    def __get_serializer(self) -> Serializer:
        name = self._pyroSerializer or config.SERIALIZER
        serializer = plugins.get_serializer(name)  # UnknownSerializerError (a KeyError too) if unknown
        d = self.__dict__
        d["_Proxy__serializer"] = serializer
        d["_Proxy__serializerName"] = name
        return serializer

    def __attach(self, connected: Any) -> None:
        """Use an already connected socket or Connection (no handshake, as Pyro5)."""
        channel = Channel.adopt(connected, self.__pyroTimeout, seq=self._pyroSeq)
        d = self.__dict__
        d["_Proxy__channel"] = channel
        d["_pyroConnection"] = channel.conn
        d["_pyroLocalSocket"] = channel.local_address

    def __pyroCreateConnection(self, replaceUri: bool = False) -> bool:
        self.__check_owner()
        if self.__channel is not None:
            return False
        uri = self._pyroUri
        if uri.protocol != "PYRO":
            # a name may stand for a replica set: when the pick fails, try the others
            uri = failover.connect_any(
                uri, resolver.resolve(uri), lambda target: self.__connect_and_handshake(target, replaceUri)
            )
        else:
            self.__connect_and_handshake(uri, replaceUri)
        if not self._pyroMethods and not self._pyroAttrs:
            self._pyroGetMetadata(uri.object)
        return True

    def __connect_and_handshake(self, uri: URI, replace_uri: bool) -> None:
        location = uri.location
        if location is None:
            raise CommunicationError(f"cannot connect to {uri}: it has no location")
        serializer = self.__get_serializer()
        try:
            payload = serializer.dumps({"handshake": self._pyroHandshake, "object": uri.object})
        except PyroError:
            raise
        except Exception as exc:
            raise CommunicationError(f"cannot connect to {location}: {exc}") from exc
        channel, reply = Channel.connect(
            location,
            self.__pyroTimeout or None,
            serializer.serializer_id,
            payload,
            self._pyroAnnotations(),
            current_context.correlation_id,
            seq=self._pyroSeq,
        )
        self.__accept_handshake(channel, reply, uri, replace_uri)

    def __accept_handshake(self, channel: Channel, reply: ReceivingMessage, uri: URI, replace_uri: bool) -> None:
        location = uri.location or str(uri)
        user_code = False  # exceptions from the overridable hooks pass through unchanged
        d = self.__dict__
        try:
            response = handshake_response(reply, location)
            self.__processMetadata(response.get("meta"))
            d["_Proxy__channel"] = channel
            d["_pyroConnection"] = channel.conn
            d["_Proxy__objectId"] = uri.object
            d["_pyroLocalSocket"] = channel.local_address
            handshake = response["handshake"]
            user_code = True
            if reply.annotations:
                current_context.response_annotations = reply.annotations
                self._pyroResponseAnnotations(reply.annotations, reply.type)
            self._pyroValidateHandshake(handshake)
        except BaseException as exc:
            # a refused or unusable handshake leaves no half-open connection behind
            if d["_Proxy__channel"] is channel:
                d["_Proxy__channel"] = None
                d["_pyroConnection"] = None
                d["_pyroLocalSocket"] = None
            channel.close()
            if user_code or isinstance(exc, PyroError) or not isinstance(exc, Exception):
                raise
            raise ProtocolError(f"invalid handshake response from {location}: {exc!r}") from exc
        if replace_uri:
            d["_pyroUri"] = uri
        log.debug("connected to %s", uri)

    # ------------------------------------------------------------------ calls

    def _pyroInvoke(
        self, methodname: str, vargs: Any, kwargs: dict[str, Any] | None, flags: int = 0, objectId: str | None = None
    ) -> Any:
        """Send one call and return its result (None for a oneway call); raise what the remote raised."""
        d = self.__dict__
        if ownership.get_ident() != d["_Proxy__pyroOwnerThread"]:
            self.__check_owner()
        ctx = current_context
        if ctx.response_annotations:
            ctx.response_annotations = {}
        channel = d["_Proxy__channel"]
        if channel is None:
            self.__pyroCreateConnection()
            channel = d["_Proxy__channel"]
        serializer = d["_Proxy__serializer"]
        if d["_Proxy__serializerName"] != (d["_pyroSerializer"] or config.SERIALIZER) or serializer is None:
            serializer = self.__get_serializer()
        serializer_id = serializer.serializer_id
        objectId = objectId or d["_Proxy__objectId"]
        annotations = self._pyroAnnotations()
        if vargs and isinstance(vargs[0], SerializedBlob):
            payload, flags, annotations, serializer_id = blob_call(
                vargs, kwargs, annotations, flags, objectId, methodname, serializer
            )
        else:
            payload = serializer.dumpsCall(objectId, methodname, vargs, kwargs)
        if methodname in d["_pyroOneway"]:
            flags |= FLAGS_ONEWAY
        session = channel.session
        session.seq = d["_pyroSeq"]  # the proxy's counter is the one users see (and may set)
        sending = [session.invoke(serializer_id, payload, flags, annotations, ctx.correlation_id)]
        # only the message holds the request now, and exchange() lets go of it once it is
        # sent: a large request is freed before its reply arrives, not after
        del payload
        d["_pyroSeq"] = session.seq
        try:
            reply = channel.exchange(sending.pop())
            if reply is None:
                return None
            if reply.annotations:
                ctx.response_annotations = reply.annotations
                self._pyroResponseAnnotations(reply.annotations, reply.type)
            if d["_pyroRawWireResponse"]:
                return reply
            data = decode_result(serializer, reply, False)
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
                return StreamResultIterator(stream_id, self)
            if rflags & FLAGS_EXCEPTION:
                raise_exception_reply(data)  # the remote exception, with its remote traceback
            return data
        except (CommunicationError, KeyboardInterrupt):
            # The stream may be out of step now (a half-read reply would answer the next
            # call), so the connection goes.  ^C too: the caller may catch it and go on.
            self._pyroRelease()
            raise

    def _pyroInvokeBatch(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]], oneway: bool = False) -> Any:
        """Send collected ``(method, args, kwargs)`` calls as one batch; return the list of results."""
        flags = FLAGS_BATCH | FLAGS_ONEWAY if oneway else FLAGS_BATCH
        return self._pyroInvoke("<batch>", calls, None, flags)

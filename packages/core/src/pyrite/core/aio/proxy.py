"""``aio.Proxy``: a remote object for asyncio code; many tasks may call through one proxy at once.

::

    from pyrite.core import aio

    async with aio.Proxy("PYRO:thing@localhost:9999") as thing:
        print(await thing.method(1))                 # a remote call
        print(await thing.attribute)                 # a remote attribute (or await thing._pyroGetAttr("attribute"))
        await thing._pyroSetAttr("attribute", 2)
        async for item in await thing.items():       # a remote generator
            ...
        results = await asyncio.gather(*(thing.method(i) for i in range(100)))   # one connection

Calls from every task go over one connection (``channel.PipelineChannel``):
requests back to back, replies matched in order.  A call past ``_pyroTimeout``
raises ``errors.TimeoutError``; a cancelled call raises CancelledError.  Either
way the connection stays open and in step for everyone else.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from typing import Any

from .. import plugins
from ..blob import SerializedBlob, blob_call
from ..callcontext import current_context
from ..channel import metadata_sets
from ..config import config
from ..errors import CommunicationError, ConnectionClosedError, ProtocolError, PyroError
from ..protocol import FLAGS_BATCH, FLAGS_EXCEPTION, FLAGS_ITEMSTREAMRESULT, FLAGS_ONEWAY, ReceivingMessage
from ..remote import PROXY_LOCAL_NAMES, PROXY_LOCAL_PREFIXES, proxy_state
from ..uri import DAEMON_NAME, URI
from . import resolver
from .calls import call, handshake, load_reply, raise_remote
from .channel import PipelineChannel
from .connect import open_channel
from .remote import AsyncRemoteMethod, aio_proxies, check_loop_free, close_soon, stream_id
from .streams import AsyncStreamIterator

__all__ = ["Proxy"]

_running_loop = asyncio.get_running_loop


class Proxy:
    """An asyncio stand-in for a remote object: ``await proxy.method(...)``.

    Same uri forms and settings as the sync ``Proxy`` (``_pyroTimeout``,
    ``_pyroMaxRetries``, ``_pyroSerializer``, ``_pyroHandshake``,
    ``_pyroValidateHandshake``, ``_pyroAnnotations``, ``_pyroResponseAnnotations``),
    but with no owner: every task on the loop may use it at the same time.  The
    connection belongs to the loop it was made on; used from another loop once
    that one has stopped, the proxy connects afresh there (PyroError while it runs).
    """

    # instance attributes (set in __init__ through __dict__; declared for type checkers)
    _pyroUri: URI
    _pyroSerializer: str | None
    _pyroMethods: set[str]
    _pyroAttrs: set[str]
    _pyroOneway: set[str]
    _pyroRawWireResponse: bool
    _pyroHandshake: Any
    _pyroMaxRetries: int
    _pyroTimeout: float | None

    def __init__(self, uri: str | URI, connected_socket: Any = None) -> None:
        if connected_socket is not None:
            uri = URI("PYRO:" + str(uri) + "@<<connected-socket>>:0")
        elif isinstance(uri, str):
            uri = URI(uri)
        elif not isinstance(uri, URI):
            raise TypeError(f"a Proxy needs a URI or a URI string, not {type(uri).__name__}")
        try:
            plugins.get_serializer(config.SERIALIZER)
        except plugins.UnknownPluginError as exc:
            raise ValueError(f"unknown serializer configured: {exc}") from exc
        d = self.__dict__
        d["_pyroUri"] = uri
        d["_pyroSerializer"] = None
        d["_pyroMethods"] = set()
        d["_pyroAttrs"] = set()
        d["_pyroOneway"] = set()
        d["_pyroRawWireResponse"] = False
        d["_pyroHandshake"] = "hello"
        d["_pyroMaxRetries"] = config.MAX_RETRIES
        d["_pyroTimeout"] = config.COMMTIMEOUT
        d["_pyroChannel"] = None
        d["_pyroConnecting"] = None
        d["_pyroSocket"] = connected_socket
        d["_pyroObjectId"] = uri.object  # the resolved object id once connected (PYRONAME uris)

    # ------------------------------------------------------------------ attributes

    def __getattr__(self, name: str) -> AsyncRemoteMethod:
        if name in PROXY_LOCAL_NAMES or name.startswith(PROXY_LOCAL_PREFIXES) or name.startswith("__"):
            raise AttributeError(name)
        return AsyncRemoteMethod(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in PROXY_LOCAL_NAMES or name.startswith(PROXY_LOCAL_PREFIXES):
            self.__dict__[name] = value
            return
        raise AttributeError(
            f"setting remote attribute {name!r} needs a round trip: use 'await proxy._pyroSetAttr({name!r}, value)'"
        )

    def __repr__(self) -> str:
        connected = "connected" if self._pyroConnection is not None else "not connected"
        return f"<{type(self).__module__}.{type(self).__name__} at 0x{id(self):x}; {connected}; for {self._pyroUri}>"

    def __eq__(self, other: object) -> bool:
        return other is self or (isinstance(other, Proxy) and other._pyroUri == self._pyroUri)

    def __hash__(self) -> int:
        return hash(self._pyroUri)

    def __getstate__(self) -> tuple[Any, ...]:
        return proxy_state(self)  # the same 6-tuple as the sync Proxy: it travels as a plain proxy

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        Proxy.__init__(self, state[0])
        d = self.__dict__
        d["_pyroOneway"] = set(state[1])
        d["_pyroMethods"] = set(state[2])
        d["_pyroAttrs"] = set(state[3])
        d["_pyroHandshake"] = state[4]
        d["_pyroSerializer"] = state[5]

    def __copy__(self) -> Proxy:
        """A new, unconnected proxy for the same object with the same settings."""
        other = object.__new__(type(self))
        other.__setstate__(self.__getstate__())
        other._pyroTimeout = self._pyroTimeout
        other._pyroMaxRetries = self._pyroMaxRetries
        other._pyroRawWireResponse = self._pyroRawWireResponse
        return other

    @classmethod
    def from_proxy(cls, proxy: Any) -> Proxy:
        """An aio.Proxy for the object a sync ``Proxy`` (e.g. an autoproxied result) stands for."""
        other = object.__new__(cls)
        other.__setstate__(proxy.__getstate__())
        return other

    async def __aenter__(self) -> Proxy:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._pyroRelease()

    def __del__(self) -> None:
        channel = self.__dict__.get("_pyroChannel")
        if channel is not None and not channel.closed:
            close_soon(channel)

    # ------------------------------------------------------------------ connection

    @property
    def _pyroConnection(self) -> PipelineChannel | None:
        """The open channel, or None."""
        channel: PipelineChannel | None = self.__dict__["_pyroChannel"]
        return None if channel is None or channel.closed else channel

    @property
    def _pyroLocalSocket(self) -> Any:
        """The local address of the connection, once connected."""
        channel = self._pyroConnection
        return None if channel is None else channel.local_address

    async def _pyroBind(self) -> bool:
        """Connect now and fetch the metadata; a PYRONAME/PYROMETA uri is replaced by the PYRO uri it
        resolved to.  True if a new connection was made, False if already connected."""
        if self._pyroConnection is not None and self._pyroConnection.loop is _running_loop():
            return False
        await self._pyroEnsure(replace_uri=True)
        return True

    async def _pyroRelease(self) -> None:
        """Close the connection; calls still waiting get ConnectionClosedError.  The proxy reconnects when used."""
        pending = self.__dict__["_pyroConnecting"]
        if pending is not None and not pending.done() and pending.get_loop() is _running_loop():
            await asyncio.wait([pending])  # a connect under way finishes first (as the sync Proxy's lock)
        channel = self.__dict__["_pyroChannel"]
        self.__dict__["_pyroChannel"] = None
        if channel is not None:
            close_soon(channel)

    async def _pyroReconnect(self, tries: int = 100000000) -> None:
        """Release and connect again, ``tries`` times at most, 2 s apart (then ConnectionClosedError)."""
        await self._pyroRelease()
        while tries:
            try:
                await self._pyroEnsure()
                return
            except CommunicationError:
                tries -= 1
                if tries:
                    await asyncio.sleep(2)
        raise ConnectionClosedError(f"could not reconnect to {self._pyroUri}")

    def _pyroClaimOwnership(self) -> None:
        """Nothing to do: an aio.Proxy has no owner (kept for code written for the sync Proxy)."""

    def _pyroValidateHandshake(self, response: Any) -> Any:
        """Override to check the daemon's handshake response; raise to refuse.  May be ``async def``."""

    def _pyroAnnotations(self) -> dict[str, bytes]:
        """The annotations sent with each message: the current task's ``current_context.annotations``."""
        return current_context.task_get("annotations")  # type: ignore[no-any-return]

    def _pyroResponseAnnotations(self, annotations: dict[str, bytes], msgtype: int) -> None:
        """Called with a response's annotations, if it has any (also in the task's
        ``current_context.response_annotations``).  Override to use them."""

    async def _pyroEnsure(self, replace_uri: bool = False) -> PipelineChannel:
        """The channel on the running loop, connecting first if needed.  Tasks that arrive while a
        connect is under way wait for that one instead of making their own."""
        d = self.__dict__
        loop = _running_loop()
        while True:
            channel: PipelineChannel | None = d["_pyroChannel"]
            if channel is not None and not channel.closed:
                if channel.loop is loop:
                    return channel
                check_loop_free(channel.loop, d["_pyroUri"])
            pending: asyncio.Future[None] | None = d["_pyroConnecting"]
            if pending is None or pending.done():
                break
            if pending.get_loop() is not loop:
                check_loop_free(pending.get_loop(), d["_pyroUri"])
                break
            try:
                await asyncio.shield(pending)
            finally:  # a failed connect's error holds this frame: no cycle through its future
                del pending
        done: asyncio.Future[None] = loop.create_future()
        done.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "exception not retrieved"
        d["_pyroConnecting"] = done
        try:
            channel = await self._pyroConnect(replace_uri)
        except BaseException as exc:
            if isinstance(exc, Exception):
                done.set_exception(exc)
            else:  # cancelled (or ^C): this task's business only; the tasks waiting make their own connect
                done.set_result(None)
            del done  # (as above: the error's traceback holds this frame)
            raise
        else:
            done.set_result(None)
        finally:
            d["_pyroConnecting"] = None
        return channel

    async def _pyroConnect(self, replace_uri: bool) -> PipelineChannel:
        d = self.__dict__
        old = d["_pyroChannel"]
        if old is not None:
            d["_pyroChannel"] = None
            close_soon(old)
        uri: URI = d["_pyroUri"]
        timeout = d["_pyroTimeout"] or None
        sock = d["_pyroSocket"]
        if sock is not None:  # no handshake on a given socket (as Pyro5)
            channel = await open_channel(str(uri.location), timeout, connected_socket=sock)
            d["_pyroChannel"] = channel
            return channel
        if uri.protocol != "PYRO":
            uri = await resolver.resolve(uri)
        if uri.location is None:
            raise CommunicationError(f"cannot connect to {uri}: it has no location")
        channel = await open_channel(uri.location, timeout)
        user_code = False  # exceptions from the overridable hooks pass through unchanged
        try:
            response, reply = await handshake(
                channel,
                self._pyroSerializerObject(),
                uri.object,
                d["_pyroHandshake"],
                self._pyroAnnotations(),
                timeout,
                current_context.correlation_id,
            )
            self._pyroSetMetadata(response.get("meta"))
            if reply.annotations:
                current_context.response_annotations = reply.annotations
            user_code = True
            if reply.annotations:
                self._pyroResponseAnnotations(reply.annotations, reply.type)
            checked = self._pyroValidateHandshake(response["handshake"])
            if inspect.isawaitable(checked):
                await checked
        except BaseException as exc:
            channel.close()
            if user_code or isinstance(exc, PyroError) or not isinstance(exc, Exception):
                raise
            raise ProtocolError(f"invalid handshake response from {uri.location}: {exc!r}") from exc
        if not d["_pyroMethods"] and not d["_pyroAttrs"]:
            # before the channel is published: a task must never see it without the metadata
            try:
                meta = await call(
                    channel, self._pyroSerializerObject(), DAEMON_NAME, "get_metadata", [uri.object], {}, timeout
                )
                self._pyroSetMetadata(meta)
            except BaseException:
                channel.close()
                raise
        d["_pyroChannel"] = channel
        d["_pyroObjectId"] = uri.object
        if replace_uri:
            d["_pyroUri"] = uri
        return channel

    def _pyroAttach(self, channel: PipelineChannel, response: dict[str, Any], uri: URI) -> None:
        """Take over a channel whose handshake is done (``aio.locate_ns`` hands over its probe)."""
        self._pyroSetMetadata(response.get("meta"))
        self.__dict__["_pyroChannel"] = channel
        self.__dict__["_pyroUri"] = uri
        self.__dict__["_pyroObjectId"] = uri.object

    async def _pyroGetMetadata(self, objectId: str | None = None, known_metadata: dict[str, Any] | None = None) -> None:
        """Fetch (or take ``known_metadata``) the remote object's methods, oneway methods and attributes."""
        if known_metadata:
            self._pyroSetMetadata(known_metadata)
            return
        channel = self.__dict__["_pyroChannel"]
        if channel is None or channel.closed or channel.loop is not _running_loop():
            await self._pyroEnsure()  # as the sync Proxy: connect first (which usually brings them)
            if self._pyroMethods or self._pyroAttrs:
                return
        result = await self._pyroInvoke(
            "get_metadata", [objectId or self.__dict__["_pyroObjectId"]], {}, objectId=DAEMON_NAME, _connect=False
        )
        self._pyroSetMetadata(result)

    def _pyroSetMetadata(self, metadata: Any) -> None:
        if not metadata:
            return
        oneway, methods, attrs = metadata_sets(metadata, self._pyroUri)
        d = self.__dict__
        d["_pyroOneway"], d["_pyroMethods"], d["_pyroAttrs"] = oneway, methods, attrs

    def _pyroSerializerObject(self) -> Any:
        return plugins.get_serializer(self.__dict__["_pyroSerializer"] or config.SERIALIZER)

    # ------------------------------------------------------------------ calls

    async def _pyroGetAttr(self, name: str) -> Any:
        """The value of a remote attribute."""
        await self._pyroEnsure()
        if name not in self._pyroAttrs:
            raise AttributeError(f"remote object '{self._pyroUri}' has no exposed attribute '{name}'")
        return await self._pyroInvoke("__getattr__", (name,), None)

    async def _pyroSetAttr(self, name: str, value: Any) -> None:
        """Set a remote attribute."""
        await self._pyroEnsure()
        if name not in self._pyroAttrs:
            raise AttributeError(f"remote object '{self._pyroUri}' has no exposed attribute '{name}'")
        await self._pyroInvoke("__setattr__", (name, value), None)

    async def _pyroInvoke(
        self,
        methodname: str,
        vargs: Any,
        kwargs: dict[str, Any] | None,
        flags: int = 0,
        objectId: str | None = None,
        _connect: bool = True,
    ) -> Any:
        """Send one call and return its result (None for a oneway call); raise what the remote raised."""
        ctx = current_context
        d = self.__dict__
        channel: PipelineChannel | None = d["_pyroChannel"]
        if (
            # the common case, inline: connected on this loop, a plain two-way call, no timeout
            channel is not None
            and channel.error is None
            and channel.loop is _running_loop()
            and not flags
            and not d["_pyroTimeout"]
            and methodname not in d["_pyroOneway"]
            and not (vargs and isinstance(vargs[0], SerializedBlob))
            and not channel.writing_paused
        ):
            serializer = self._pyroSerializerObject()
            payload = serializer.dumpsCall(objectId or d["_pyroObjectId"], methodname, vargs, kwargs or {})
            msg = channel.session.invoke(
                serializer.serializer_id, payload, 0, self._pyroAnnotations(), ctx.task_get("correlation_id")
            )
            waiter = channel.send(msg)
            try:
                reply: ReceivingMessage | None = await waiter
            except asyncio.CancelledError:
                channel.abandon(waiter)  # as in _pyroRequest
                raise
        else:
            corr_id = ctx.task_get("correlation_id")
            reply, serializer = await self._pyroRequest(
                methodname, vargs, kwargs, flags, objectId, self._pyroAnnotations(), corr_id, _connect
            )
        if reply is None:
            return None
        if reply.annotations:
            ctx.task_set("response_annotations", reply.annotations)
            self._pyroResponseAnnotations(reply.annotations, reply.type)
        elif ctx.task_get("response_annotations"):
            ctx.task_set("response_annotations", {})
        return self._pyroDecode(reply, serializer)

    async def _pyroRequest(
        self,
        methodname: str,
        vargs: Any,
        kwargs: dict[str, Any] | None,
        flags: int,
        objectId: str | None,
        annotations: dict[str, bytes] | None,
        corr_id: uuid.UUID | None,
        _connect: bool = True,
    ) -> tuple[ReceivingMessage | None, Any]:
        """Send one request and wait for its reply (None for oneway); the reply and the serializer used.

        ``SharedProxy`` runs this on its loop with the calling thread's annotations and correlation id."""
        d = self.__dict__
        channel: PipelineChannel | None = d["_pyroChannel"]
        if channel is None or channel.closed or channel.loop is not _running_loop():
            channel = await self._pyroEnsure() if _connect else await self._pyroLiveChannel()
        serializer = self._pyroSerializerObject()
        serializer_id = serializer.serializer_id
        objectId = objectId or d["_pyroObjectId"]
        if vargs and isinstance(vargs[0], SerializedBlob):
            payload, flags, annotations, serializer_id = blob_call(
                vargs, kwargs, annotations or {}, flags, objectId, methodname, serializer
            )
        else:
            payload = serializer.dumpsCall(objectId, methodname, vargs, kwargs or {})
        if methodname in d["_pyroOneway"]:
            flags |= FLAGS_ONEWAY
        msg = channel.session.invoke(serializer_id, payload, flags, annotations, corr_id)
        if flags & FLAGS_ONEWAY:
            channel.send(msg, expect_reply=False)
            await channel.drain()
            return None, serializer
        waiter = channel.send(msg)
        if channel.writing_paused:  # many large requests in flight: let the buffer drain first
            await channel.drain_before(waiter)
        timeout = d["_pyroTimeout"]
        try:
            reply = await (channel.wait(waiter, timeout) if timeout else waiter)
        except asyncio.CancelledError:
            channel.abandon(waiter)  # its reply may have come just before: a stream it opened is closed
            raise
        return reply, serializer

    async def _pyroLiveChannel(self) -> PipelineChannel:
        channel: PipelineChannel | None = self.__dict__["_pyroChannel"]
        if channel is None or channel.closed:
            raise ConnectionClosedError(f"not connected to {self._pyroUri}")
        if channel.loop is not _running_loop():
            raise ConnectionClosedError(f"the connection to {self._pyroUri} belongs to another event loop")
        return channel

    def _pyroLetGo(self) -> None:
        """After a remote CommunicationError, as the sync Proxy and Pyro5's client: new calls get a
        fresh connection (a Pyro5 daemon drops the connection after sending one); calls in flight
        keep the old one, closed once their replies came.  Safe from any thread."""
        channel: PipelineChannel | None = self.__dict__["_pyroChannel"]
        self.__dict__["_pyroChannel"] = None
        if channel is not None:
            channel.retire()

    def _pyroDecode(self, reply: ReceivingMessage, serializer: Any) -> Any:
        """The result a reply carries: a value, an async stream iterator, or the remote exception raised."""
        if self.__dict__["_pyroRawWireResponse"]:
            return reply
        data = load_reply(reply, serializer)
        rflags = reply.flags
        if rflags & FLAGS_ITEMSTREAMRESULT:
            return AsyncStreamIterator(stream_id(reply), self)
        if rflags & FLAGS_EXCEPTION:
            if isinstance(data, CommunicationError):
                self._pyroLetGo()
            raise_remote(data)
        return aio_proxies(data, Proxy.from_proxy)

    async def _pyroInvokeBatch(
        self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]], oneway: bool = False
    ) -> Any:
        """Send collected ``(method, args, kwargs)`` calls as one batch; the list of results."""
        flags = FLAGS_BATCH | FLAGS_ONEWAY if oneway else FLAGS_BATCH
        return await self._pyroInvoke("<batch>", calls, None, flags)

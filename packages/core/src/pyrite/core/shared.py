"""``SharedProxy``: a sync proxy that any number of threads may use at once.

Pyro5's ``Proxy`` belongs to one thread at a time.  A ``SharedProxy`` has the
same constructor and methods but no owner: each thread's call is written to
one connection as it comes, and replies are matched back to their callers in
order (the pipelining channel of ``pyrite.core.aio``, run by one background
event-loop thread that every SharedProxy of the process shares)::

    from pyrite.core.shared import SharedProxy

    shared = SharedProxy("PYRONAME:example.thing")
    # from any thread, concurrently:
    shared.method(1)

Each call carries the calling thread's ``current_context`` annotations and
correlation id, and the response annotations land in the calling thread's
context.  Results are deserialized in the calling thread.  Replies come in
request order, so a slow call holds up the calls behind it on the connection
(their timeouts run meanwhile): a slow call is better made on a proxy of its
own.  The loop thread
starts with the first SharedProxy call and stops at interpreter exit (or with
``shutdown_loop()``; a later call starts it again).
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import weakref
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from . import sharedloop
from .aio.calls import load_reply, raise_remote
from .aio.channel import PipelineChannel
from .aio.proxy import Proxy as AioProxy
from .aio.remote import close_soon, stream_id
from .blob import SerializedBlob
from .callcontext import current_context
from .errors import CommunicationError, ConnectionClosedError, PyroError
from .protocol import FLAGS_BATCH, FLAGS_EXCEPTION, FLAGS_ITEMSTREAMRESULT, FLAGS_ONEWAY, ReceivingMessage
from .remote import PROXY_LOCAL_NAMES, PROXY_LOCAL_PREFIXES, RemoteMethod, proxy_state
from .sharedloop import shutdown_loop
from .sharedloop import wait as _wait
from .sharedremote import SharedStreamIterator as _SharedStreamIterator
from .uri import URI

__all__ = ["SharedProxy", "shutdown_loop"]

T = TypeVar("T")

# Settings that live on the inner aio proxy; reading or setting them on a SharedProxy forwards.
_FORWARDED = frozenset(
    ["_pyroTimeout", "_pyroMaxRetries", "_pyroSerializer", "_pyroHandshake", "_pyroRawWireResponse", "_pyroUri"]
)


async def _in_context(
    annotations: dict[str, bytes], corr_id: Any, coro: Coroutine[Any, Any, T], response: dict[str, bytes]
) -> T:
    # the loop task takes the calling thread's context (task-local: the loop is running), and
    # hands back the response annotations a handshake on the way left in it
    current_context.annotations = annotations
    current_context.correlation_id = corr_id
    current_context.response_annotations = {}
    try:
        return await coro
    finally:
        response.update(current_context.response_annotations)


class _Inner(AioProxy):
    """The aio proxy inside a SharedProxy: its handshake check is the SharedProxy's (held weakly, so
    dropping the SharedProxy closes the connection at once)."""

    def _pyroServe(self, outer: SharedProxy) -> _Inner:
        self.__dict__["_pyroOuter"] = weakref.ref(outer)
        return self

    async def _pyroConnect(self, replace_uri: bool) -> PipelineChannel:
        channel = await super()._pyroConnect(replace_uri)
        runner = sharedloop.running()
        if runner is not None and runner.loop is channel.loop:
            runner.channels.add(channel)  # shutdown_loop closes it, however it was first used
        return channel

    def _pyroValidateHandshake(self, response: Any) -> Any:
        outer = self.__dict__["_pyroOuter"]()
        return None if outer is None else outer._pyroValidateHandshake(response)

    def _pyroResponseAnnotations(self, annotations: dict[str, bytes], msgtype: int) -> None:
        outer = self.__dict__["_pyroOuter"]()
        if outer is not None:
            outer._pyroResponseAnnotations(annotations, msgtype)


class SharedProxy:
    """A proxy that threads may share: same constructor, settings and methods as ``Proxy``, no owner."""

    def __init__(self, uri: str | URI, connected_socket: Any = None) -> None:
        self.__dict__["_pyroAio"] = _Inner(uri, connected_socket)._pyroServe(self)

    # ------------------------------------------------------------------ running on the loop

    def _pyroRun(self, coro: Coroutine[Any, Any, T], annotations: dict[str, bytes] | None = None) -> T:
        """Run ``coro`` on the loop thread with the calling thread's annotations and correlation id."""
        runner = sharedloop.loop_thread()
        if threading.get_ident() == runner.thread.ident:
            coro.close()
            raise PyroError("a SharedProxy cannot be called from its own event-loop thread")
        if annotations is None:
            annotations = self._pyroAnnotations()
        response: dict[str, bytes] = {}
        task = _in_context(annotations, current_context.correlation_id, coro, response)
        try:
            future: Future[T] = asyncio.run_coroutine_threadsafe(task, runner.loop)
        except RuntimeError:  # the loop closed meanwhile
            task.close()
            coro.close()
            raise ConnectionClosedError("the SharedProxy event loop was shut down") from None
        try:
            result = _wait(future, runner)
        except ConnectionClosedError:  # the loop is done with the call: it may never have begun it
            for unstarted in (task, coro):
                if inspect.getcoroutinestate(unstarted) == inspect.CORO_CREATED:
                    unstarted.close()  # no "never awaited" warning
            raise
        finally:
            del future  # a failed call's error holds this frame: no cycle through the future holding it
        if response:  # as Proxy: a connect's handshake annotations land in the calling thread
            current_context.response_annotations = response
        return result

    # ------------------------------------------------------------------ attributes

    def __getattr__(self, name: str) -> Any:
        inner: AioProxy = self.__dict__["_pyroAio"]
        if name in _FORWARDED or name in ("_pyroMethods", "_pyroAttrs", "_pyroOneway"):
            return getattr(inner, name)
        if name in PROXY_LOCAL_NAMES or name.startswith(PROXY_LOCAL_PREFIXES) or name.startswith("__"):
            raise AttributeError(name)
        if name in inner._pyroMethods:
            return RemoteMethod(self._pyroInvoke, name, self._pyroMaxRetries)
        if not inner._pyroMethods and not inner._pyroAttrs:
            self._pyroGetMetadata()
        if name in inner._pyroAttrs:
            return self._pyroInvoke("__getattr__", (name,), None)
        if name not in inner._pyroMethods:
            raise AttributeError(f"remote object '{inner._pyroUri}' has no exposed attribute or method '{name}'")
        return RemoteMethod(self._pyroInvoke, name, self._pyroMaxRetries)

    def __setattr__(self, name: str, value: Any) -> None:
        inner: AioProxy = self.__dict__["_pyroAio"]
        if name in _FORWARDED:
            setattr(inner, name, value)
            return
        if name in PROXY_LOCAL_NAMES or name.startswith(PROXY_LOCAL_PREFIXES):
            self.__dict__[name] = value
            return
        if not inner._pyroMethods and not inner._pyroAttrs:
            self._pyroGetMetadata()
        if name in inner._pyroAttrs:
            self._pyroInvoke("__setattr__", (name, value), None)
            return
        raise AttributeError(f"remote object '{inner._pyroUri}' has no exposed attribute '{name}'")

    def __repr__(self) -> str:
        connected = "connected" if self._pyroConnection is not None else "not connected"
        return f"<{type(self).__module__}.{type(self).__name__} at 0x{id(self):x}; {connected}; for {self._pyroUri}>"

    def __dir__(self) -> list[str]:
        inner = self.__dict__["_pyroAio"]
        return sorted(set(dir(type(self))) | set(self.__dict__) | inner._pyroMethods | inner._pyroAttrs)

    def __getstate__(self) -> tuple[Any, ...]:
        return proxy_state(self.__dict__["_pyroAio"])

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        inner = object.__new__(_Inner)
        inner.__setstate__(state)
        self.__dict__["_pyroAio"] = inner._pyroServe(self)

    def __copy__(self) -> SharedProxy:
        """A new, unconnected SharedProxy for the same object with the same settings."""
        other = object.__new__(type(self))
        other.__dict__["_pyroAio"] = self.__dict__["_pyroAio"].__copy__()._pyroServe(other)
        return other

    def __enter__(self) -> SharedProxy:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._pyroRelease()

    def __eq__(self, other: object) -> bool:
        return other is self or (isinstance(other, SharedProxy) and other._pyroUri == self._pyroUri)

    def __hash__(self) -> int:
        return hash(self._pyroUri)

    def __del__(self) -> None:
        inner = self.__dict__.get("_pyroAio")
        channel = inner.__dict__.get("_pyroChannel") if inner is not None else None
        if channel is not None and not channel.closed:
            close_soon(channel)

    # the container protocol reaches the remote object (special methods skip __getattr__)
    def __bool__(self) -> bool:
        return True

    def __len__(self) -> int:
        return self.__getattr__("__len__")()  # type: ignore[no-any-return]

    def __getitem__(self, index: Any) -> Any:
        return self._pyroCallRemote("__getitem__", index)

    def __setitem__(self, index: Any, value: Any) -> None:
        self._pyroCallRemote("__setitem__", index, value)

    def __delitem__(self, index: Any) -> None:
        self._pyroCallRemote("__delitem__", index)

    def __iter__(self) -> Iterator[Any]:
        if not self._pyroMethods:
            self._pyroGetMetadata()
        if "__iter__" in self._pyroMethods:
            yield from self._pyroCallRemote("__iter__")
            return
        try:
            for index in range(sys.maxsize):
                yield self[index]
        except (StopIteration, IndexError):
            return

    def _pyroCallRemote(self, name: str, *args: Any) -> Any:
        if not self._pyroMethods:
            self._pyroGetMetadata()
        return RemoteMethod(self._pyroInvoke, name, self._pyroMaxRetries)(*args)

    # ------------------------------------------------------------------ connection

    @property
    def _pyroConnection(self) -> Any:
        """The open channel, or None."""
        return self.__dict__["_pyroAio"]._pyroConnection

    @property
    def _pyroSeq(self) -> int:
        """The sequence number of the last request sent on the connection (0 before any; read only:
        the threads' requests share the connection's counter)."""
        channel = self._pyroConnection
        return 0 if channel is None else int(channel.session.seq)

    @property
    def _pyroLocalSocket(self) -> Any:
        """The local address of the connection, once connected."""
        return self.__dict__["_pyroAio"]._pyroLocalSocket

    def _pyroBind(self) -> bool:
        """Connect now and fetch the metadata (PYRONAME/PYROMETA are replaced by the PYRO uri)."""
        inner: AioProxy = self.__dict__["_pyroAio"]
        return self._pyroRun(inner._pyroBind())

    def _pyroRelease(self) -> None:
        """Close the connection; calls still waiting in other threads get ConnectionClosedError."""
        inner: AioProxy = self.__dict__["_pyroAio"]
        channel = inner.__dict__["_pyroChannel"]
        inner.__dict__["_pyroChannel"] = None
        if channel is not None:
            close_soon(channel)

    def _pyroReconnect(self, tries: int = 100000000) -> None:
        """Release and connect again, ``tries`` times, 2 seconds apart."""
        self._pyroRun(self.__dict__["_pyroAio"]._pyroReconnect(tries))

    def _pyroClaimOwnership(self) -> None:
        """Nothing to do: a SharedProxy has no owner."""

    def _pyroValidateHandshake(self, response: Any) -> None:
        """Override to check the daemon's handshake response (runs on the loop thread); raise to refuse."""

    def _pyroAnnotations(self) -> dict[str, bytes]:
        """The annotations sent with each message: the calling thread's ``current_context.annotations``."""
        annotations: dict[str, bytes] = current_context.annotations
        return annotations

    def _pyroResponseAnnotations(self, annotations: dict[str, bytes], msgtype: int) -> None:
        """Called with a response's annotations, if it has any: a reply's in the calling thread,
        the connect handshake's (MSG_CONNECTOK) on the loop thread, as ``_pyroValidateHandshake``."""

    def _pyroGetMetadata(self, objectId: str | None = None, known_metadata: dict[str, Any] | None = None) -> None:
        """Fetch (or take ``known_metadata``) the remote object's methods, oneway methods and attributes."""
        inner: AioProxy = self.__dict__["_pyroAio"]
        if known_metadata:
            inner._pyroSetMetadata(known_metadata)
            return
        self._pyroRun(inner._pyroEnsure())
        if not inner._pyroMethods and not inner._pyroAttrs:
            self._pyroRun(inner._pyroGetMetadata(objectId))

    # ------------------------------------------------------------------ calls

    def _pyroInvoke(
        self, methodname: str, vargs: Any, kwargs: dict[str, Any] | None, flags: int = 0, objectId: str | None = None
    ) -> Any:
        """Send one call and return its result (None for a oneway call); raise what the remote raised."""
        inner: AioProxy = self.__dict__["_pyroAio"]
        ctx = current_context
        if ctx.response_annotations:  # as Proxy: a oneway or failed call leaves none behind
            ctx.response_annotations = {}
        annotations = self._pyroAnnotations()
        channel = inner._pyroConnection
        runner = sharedloop.running()
        if (
            channel is not None
            and runner is not None
            and channel.loop is runner.loop
            and not (vargs and isinstance(vargs[0], SerializedBlob))
        ):
            reply, serializer = self._pyroFastRequest(
                inner, channel, methodname, vargs, kwargs, flags, objectId, annotations, ctx.correlation_id
            )
        else:  # not connected yet (or a blob): the aio proxy does it all, on the loop
            reply, serializer = self._pyroRun(
                inner._pyroRequest(methodname, vargs, kwargs, flags, objectId, annotations, ctx.correlation_id),
                annotations,
            )
        if reply is None:
            return None
        if reply.annotations:
            ctx.response_annotations = reply.annotations
            self._pyroResponseAnnotations(reply.annotations, reply.type)
        return self._pyroDecode(reply, serializer)

    def _pyroFastRequest(
        self,
        inner: AioProxy,
        channel: PipelineChannel,
        methodname: str,
        vargs: Any,
        kwargs: dict[str, Any] | None,
        flags: int,
        objectId: str | None,
        annotations: dict[str, bytes],
        corr_id: Any,
    ) -> tuple[ReceivingMessage | None, Any]:
        """A call on the open connection with no task on the loop: the request is serialized here, in
        the calling thread, and only framed and written on the loop thread."""
        serializer = inner._pyroSerializerObject()
        payload = serializer.dumpsCall(objectId or inner.__dict__["_pyroObjectId"], methodname, vargs, kwargs or {})
        if methodname in inner._pyroOneway:
            flags |= FLAGS_ONEWAY
        serializer_id = serializer.serializer_id

        def build(session: Any) -> Any:
            return session.invoke(serializer_id, payload, flags, annotations, corr_id)

        runner = sharedloop.running()
        if runner is None or runner.loop is not channel.loop:
            raise ConnectionClosedError("the SharedProxy event loop was shut down")
        if channel not in runner.channels:
            runner.channels.add(channel)
        # on the loop thread itself (a stream iterator collected there): waiting would stop the loop
        on_loop = threading.get_ident() == runner.thread.ident
        if on_loop and not flags & FLAGS_ONEWAY:
            raise PyroError("a SharedProxy cannot be called from its own event-loop thread")
        try:
            future = channel.request_threadsafe(build, not flags & FLAGS_ONEWAY, inner._pyroTimeout)
        except RuntimeError:  # the loop closed meanwhile
            raise ConnectionClosedError("the SharedProxy event loop was shut down") from None
        if on_loop:
            return None, serializer  # a oneway call: it goes out on the loop's next turn
        return _wait(future, runner), serializer

    def _pyroDecode(self, reply: ReceivingMessage, serializer: Any) -> Any:
        if self._pyroRawWireResponse:
            return reply
        data = load_reply(reply, serializer)
        if reply.flags & FLAGS_ITEMSTREAMRESULT:
            return _SharedStreamIterator(stream_id(reply), self)
        if reply.flags & FLAGS_EXCEPTION:
            if isinstance(data, CommunicationError):
                self.__dict__["_pyroAio"]._pyroLetGo()
            raise_remote(data)
        return data

    def _pyroInvokeBatch(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]], oneway: bool = False) -> Any:
        """Send collected ``(method, args, kwargs)`` calls as one batch; the list of results."""
        return self._pyroInvoke("<batch>", calls, None, FLAGS_BATCH | FLAGS_ONEWAY if oneway else FLAGS_BATCH)

"""One client connection driven through a protocol ``Session``: what a proxy talks over.

A ``Channel`` connects through the transport registry (or adopts a connected
socket), sends the handshake, sends requests and reads their replies; the
session decides everything about the bytes (framing, sequence numbers,
which reply belongs to which request, limits).  It knows nothing about
objects, serializers or retries: that is the proxy's business::

    from pyrite.core.channel import Channel

    channel = Channel.open("localhost:9090", timeout=5.0)
    reply = channel.handshake(serializer_id, payload)     # MSG_CONNECTOK or MSG_CONNECTFAIL
    reply = channel.call(serializer_id, payload)         # MSG_RESULT (None for a oneway call)
    channel.close()

With ``config.LOGWIRE`` every message in and out is logged at debug level on
the ``pyrite.core.client`` logger.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn

from . import plugins
from .config import config
from .errors import CommunicationError, ProtocolError, PyroError
from .interfaces import Connection, Serializer
from .protocol import FLAGS_EXCEPTION, FLAGS_ONEWAY, MSG_CONNECTFAIL, ReceivingMessage, SendingMessage, send_message
from .session import CLIENT, Session

__all__ = ["Channel", "log_wire", "handshake_response", "decode_result", "raise_exception_reply", "metadata_sets"]

log = logging.getLogger("pyrite.core.client")

Annotations = Mapping[str, bytes | bytearray | memoryview] | None


def log_wire(text: str, msg: ReceivingMessage | SendingMessage) -> None:
    """Log one message's header fields and payload at debug level (what LOGWIRE shows)."""
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


class Channel:
    """A client connection (``conn``, a transport ``Connection``) and its ``session``.

    ``seq`` is where the session's sequence numbers continue (a proxy keeps
    counting across reconnects, as Pyro5's does).  Transport errors are
    pyrite's (``ConnectionClosedError``, ``TimeoutError``); protocol errors are
    ``ProtocolError``.  After any of them the channel is out of step and must
    be closed.  Not thread safe: one caller at a time (the owning proxy).
    """

    __slots__ = ("conn", "session")

    def __init__(self, conn: Connection, *, seq: int = 0) -> None:
        self.conn = conn
        self.session = Session(CLIENT, seq=seq)

    @classmethod
    def open(cls, location: str, timeout: float | None = None, *, seq: int = 0) -> Channel:
        """Connect to a URI location through the transport that serves it."""
        return cls(plugins.get_transport(location).connect(location, timeout or None), seq=seq)

    @classmethod
    def connect(
        cls,
        location: str,
        timeout: float | None,
        serializer_id: int,
        payload: bytes,
        annotations: Annotations = None,
        corr_id: uuid.UUID | None = None,
        *,
        seq: int = 0,
    ) -> tuple[Channel, ReceivingMessage]:
        """``open`` plus ``handshake``: the channel and the daemon's reply to MSG_CONNECT.

        Any failure closes the connection; one that is not a PyroError already
        becomes ``CommunicationError("cannot connect to ...")``."""
        channel = None
        try:
            channel = cls.open(location, timeout, seq=seq)
            return channel, channel.handshake(serializer_id, payload, annotations, corr_id)
        except BaseException as exc:
            if channel is not None:
                channel.close()
            if isinstance(exc, PyroError) or not isinstance(exc, Exception):
                raise
            raise CommunicationError(f"cannot connect to {location}: {exc}") from exc

    @classmethod
    def adopt(cls, connected: Any, timeout: float | None = None, *, seq: int = 0) -> Channel:
        """A channel over an already connected ``socket.socket`` (borrowed: closing the channel
        leaves it open) or a ready pyrite ``Connection``; no handshake is sent."""
        conn = plugins.adopt_socket(connected, owned=False) if isinstance(connected, socket.socket) else connected
        if timeout:
            conn.timeout = timeout
        return cls(conn, seq=seq)

    @property
    def timeout(self) -> float | None:
        """Seconds each wait for the peer may take (None: block)."""
        return self.conn.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.conn.timeout = value or None

    @property
    def local_address(self) -> Any:
        """This end's address, or None when it cannot be told."""
        try:
            return self.conn.local_address
        except Exception:
            return None

    def send(self, msg: SendingMessage) -> None:
        """Write one message built by ``session``."""
        if config.LOGWIRE:
            log_wire("proxy: request out", msg)
        send_message(self.conn, msg)

    def receive(self) -> ReceivingMessage:
        """Read the reply to the oldest request still waiting, and check it belongs to that request."""
        reply = self.session.receive_from(self.conn.recv)
        if config.LOGWIRE:
            log_wire("proxy: reply in", reply)
        self.session.accept_reply(reply)
        return reply

    def handshake(
        self, serializer_id: int, payload: bytes, annotations: Annotations = None, corr_id: uuid.UUID | None = None
    ) -> ReceivingMessage:
        """Send MSG_CONNECT and return the daemon's MSG_CONNECTOK or MSG_CONNECTFAIL."""
        msg = self.session.connect_request(serializer_id, payload, annotations, corr_id)
        if config.LOGWIRE:
            log_wire("proxy: connect request out", msg)
        send_message(self.conn, msg)
        reply = self.session.receive_from(self.conn.recv)
        if config.LOGWIRE:
            log_wire("proxy: connect reply in", reply)
        self.session.accept_connect_reply(reply)
        return reply

    def call(
        self,
        serializer_id: int,
        payload: bytes | bytearray | memoryview,
        flags: int = 0,
        annotations: Annotations = None,
        corr_id: uuid.UUID | None = None,
    ) -> ReceivingMessage | None:
        """One request and its reply (None for a oneway request, which gets none)."""
        return self.exchange(self.session.invoke(serializer_id, payload, flags, annotations, corr_id))

    def exchange(self, msg: SendingMessage) -> ReceivingMessage | None:
        """Send a request built by ``session.invoke`` and read its reply (None when it is oneway)."""
        conn = self.conn
        logwire = config.LOGWIRE
        if logwire:
            log_wire("proxy: request out", msg)
        send_message(conn, msg)
        if msg.flags & FLAGS_ONEWAY:
            return None
        del msg  # a large payload need not stay alive while the reply comes
        session = self.session
        reply = session.receive_from(conn.recv)
        if logwire:
            log_wire("proxy: reply in", reply)
        session.accept_reply(reply)
        return reply

    def close(self) -> None:
        """Close the connection (an adopted, borrowed socket stays open)."""
        self.conn.close()

    def __repr__(self) -> str:
        return f"<Channel {self.conn!r} {self.session!r}>"


MAX_REASON = 2000  # characters of a refusing daemon's reason kept in the error message


def handshake_response(reply: ReceivingMessage, location: str) -> dict[str, Any]:
    """The daemon's answer to a handshake, as a dict with at least ``"handshake"``.

    Raises CommunicationError when the daemon refused (MSG_CONNECTFAIL, with
    its reason) and ProtocolError when the answer is not a handshake answer."""
    response: Any = "?"
    if reply.data:
        response = plugins.get_serializer_by_id(reply.serializer_id).loads(reply.data)
    if reply.type == MSG_CONNECTFAIL:
        reason = str(response)
        if len(reason) > MAX_REASON:  # a daemon's reason, however long, makes a readable message
            reason = f"{reason[:MAX_REASON]}... ({len(reason)} characters)"
        raise CommunicationError(f"connection to {location} rejected: {reason}")
    if not isinstance(response, dict) or "handshake" not in response:
        raise ProtocolError(f"invalid handshake response from {location}: {response!r:.200}")
    return response


def decode_result(serializer: Serializer, reply: ReceivingMessage, raise_remote: bool = True) -> Any:
    """The value a MSG_RESULT carries.  An exception reply raises the remote exception
    (its remote traceback in ``_pyroTraceback``), unless ``raise_remote`` is false: then
    the caller checks its own flags first and calls ``raise_exception_reply``."""
    try:
        data = serializer.loads(reply.data)
    except PyroError:
        raise
    except Exception as exc:
        raise ProtocolError(f"malformed response payload: {exc!r}") from None
    if raise_remote and reply.flags & FLAGS_EXCEPTION:
        raise_exception_reply(data)
    return data


def raise_exception_reply(data: Any) -> NoReturn:
    """Raise what an exception reply (FLAGS_EXCEPTION) held; ProtocolError if it is no exception."""
    if not isinstance(data, BaseException):
        raise ProtocolError(f"exception response does not hold an exception: {type(data).__name__}")
    try:
        raise data
    finally:
        del data


def metadata_sets(metadata: Any, uri: object) -> tuple[set[str], set[str], set[str]]:
    """The (oneway, methods, attrs) name sets of a daemon's metadata answer for ``uri``.

    Raises ProtocolError for a malformed answer and PyroError when the object
    exposes nothing at all."""
    try:
        oneway = set(metadata["oneway"])
        methods = set(metadata["methods"])
        attrs = set(metadata["attrs"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"invalid metadata from {uri}: {exc!r}") from None
    if not all(isinstance(name, str) for name in (*oneway, *methods, *attrs)):
        raise ProtocolError(f"invalid metadata from {uri}: names must be strings")
    if not methods and not attrs:
        raise PyroError(
            f"remote object '{uri}' has no exposed methods or attributes (are its members marked with @expose?)"
        )
    return oneway, methods, attrs

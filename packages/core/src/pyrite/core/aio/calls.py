"""Requests on a bare ``PipelineChannel``: the connect handshake and plain calls.

The layer under ``aio.Proxy`` that the name-server lookups (``resolver``) use
as well, so resolving a PYRONAME uri needs no proxy.  Replies are read with the
sync client's helpers (``channel.handshake_response``, ``channel.decode_result``),
so both clients judge a reply alike.
"""

from __future__ import annotations

from typing import Any

from ..channel import decode_result, handshake_response, raise_exception_reply
from ..errors import ExceptionWrapper, ProtocolError, PyroError
from ..protocol import ReceivingMessage
from .channel import PipelineChannel

__all__ = ["handshake", "call", "load_reply", "raise_remote"]


def load_reply(reply: ReceivingMessage, serializer: Any) -> Any:
    """The deserialized payload of a reply (a malformed payload is a ProtocolError); no raising of
    an exception reply: the caller checks the flags first (a stream result comes before it)."""
    return decode_result(serializer, reply, raise_remote=False)


def raise_remote(data: Any) -> None:
    """Raise the exception an exception reply carried (its remote traceback is in ``_pyroTraceback``)."""
    if isinstance(data, ExceptionWrapper):
        data.raiseIt()
    raise_exception_reply(data)


async def handshake(
    channel: PipelineChannel,
    serializer: Any,
    object_id: str,
    data: Any,
    annotations: dict[str, bytes] | None = None,
    timeout: float | None = None,
    corr_id: Any = None,
) -> tuple[dict[str, Any], ReceivingMessage]:
    """Send MSG_CONNECT for ``object_id`` with handshake ``data``; the daemon's response dict and the reply.

    A refusal (MSG_CONNECTFAIL) raises CommunicationError with the daemon's reason."""
    payload = serializer.dumps({"handshake": data, "object": object_id})
    msg = channel.session.connect_request(serializer.serializer_id, payload, annotations=annotations, corr_id=corr_id)
    reply = await channel.request(msg, timeout)
    try:
        return handshake_response(reply, channel.location), reply
    except PyroError:
        raise
    except Exception as exc:
        raise ProtocolError(f"invalid handshake response from {channel.location}: {exc!r}") from exc


async def call(
    channel: PipelineChannel,
    serializer: Any,
    object_id: str,
    method: str,
    vargs: Any,
    kwargs: dict[str, Any] | None = None,
    timeout: float | None = None,
    annotations: dict[str, bytes] | None = None,
    corr_id: Any = None,
) -> Any:
    """One plain remote call on ``channel``; its result, or the remote exception raised here."""
    payload = serializer.dumpsCall(object_id, method, vargs, kwargs or {})
    msg = channel.session.invoke(serializer.serializer_id, payload, 0, annotations, corr_id)
    return decode_result(serializer, await channel.request(msg, timeout))

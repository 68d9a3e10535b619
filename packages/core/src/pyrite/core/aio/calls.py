"""Requests on a bare ``PipelineChannel``: the connect handshake and plain calls.

The layer under ``aio.Proxy`` that the name-server lookups (``resolver``) use
as well, so resolving a PYRONAME uri needs no proxy.
"""

from __future__ import annotations

from typing import Any

from .. import plugins
from ..errors import CommunicationError, ExceptionWrapper, ProtocolError, PyroError
from ..protocol import FLAGS_EXCEPTION, MSG_CONNECTFAIL, ReceivingMessage
from .channel import PipelineChannel

__all__ = ["handshake", "call", "load_reply", "raise_remote"]


def load_reply(reply: ReceivingMessage, serializer: Any) -> Any:
    """The deserialized payload of a reply (a malformed payload is a ProtocolError)."""
    try:
        return serializer.loads(reply.data)
    except PyroError:
        raise
    except Exception as exc:
        raise ProtocolError(f"malformed response payload: {exc!r}") from None


def raise_remote(data: Any) -> None:
    """Raise the exception an exception reply carried (its remote traceback is in ``_pyroTraceback``)."""
    if isinstance(data, ExceptionWrapper):
        data.raiseIt()
    if not isinstance(data, BaseException):
        raise ProtocolError(f"exception response does not hold an exception: {type(data).__name__}")
    try:
        raise data
    finally:
        del data


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
    response: Any = "?"
    if reply.data:
        try:
            response = plugins.get_serializer_by_id(reply.serializer_id).loads(reply.data)
        except PyroError:
            raise
        except Exception as exc:
            raise ProtocolError(f"invalid handshake response from {channel.location}: {exc!r}") from exc
    if reply.type == MSG_CONNECTFAIL:
        raise CommunicationError(f"connection to {channel.location} rejected: {response}")
    if not isinstance(response, dict) or "handshake" not in response:
        raise ProtocolError(f"invalid handshake response from {channel.location}: {response!r:.200}")
    return response, reply


async def call(
    channel: PipelineChannel,
    serializer: Any,
    object_id: str,
    method: str,
    vargs: Any,
    kwargs: dict[str, Any] | None = None,
    timeout: float | None = None,
) -> Any:
    """One plain remote call on ``channel``; its result, or the remote exception raised here."""
    payload = serializer.dumpsCall(object_id, method, vargs, kwargs or {})
    reply = await channel.request(channel.session.invoke(serializer.serializer_id, payload), timeout)
    data = load_reply(reply, serializer)
    if reply.flags & FLAGS_EXCEPTION:
        raise_remote(data)
    return data

"""``SerializedBlob``: data that passes through a call without being deserialized.

A gateway or dispatcher can accept a blob and forward it unchanged; only the
final receiver calls ``deserialized()``.  Pass it as the only argument of a
remote call.  ``info`` is a small, plainly serializable description.
"""

from __future__ import annotations

import marshal
from typing import TYPE_CHECKING, Any

from .errors import SerializeError
from .protocol import FLAGS_KEEPSERIALIZED, ReceivingMessage, SendingMessage

if TYPE_CHECKING:
    from .interfaces import Serializer


class SerializedBlob:
    """Wraps ``data`` so that pyrite keeps its serialized form as-is.

    On the sending side, ``data`` is the object.  When a daemon receives a call
    whose only argument is a blob and whose target method takes it, the blob it
    passes holds the received message (``is_blob=True``), and
    ``deserialized()`` decodes it on demand with the serializer it came with.
    """

    def __init__(self, info: Any, data: Any, is_blob: bool = False) -> None:
        self.info = info
        self._data = data
        self._contains_blob = is_blob

    def deserialized(self) -> Any:
        """The wrapped data, deserialized now if it is still a received message."""
        if not self._contains_blob:
            return self._data
        from . import plugins
        from .protocol import ReceivingMessage, SendingMessage

        msg = self._data
        serializer = plugins.get_serializer_by_id(msg.serializer_id)
        if isinstance(msg, ReceivingMessage):
            payload = msg.data
        elif isinstance(msg, SendingMessage):
            payload = msg.payload
        else:
            raise TypeError("blob data should be a protocol message")
        # the payload is a call whose positional arguments are the blob's data:
        # (object id, method, data, kwargs), as a sending proxy writes it.
        _, _, data, _ = serializer.loadsCall(payload)
        return data


def blob_call(
    vargs: Any,
    kwargs: Any,
    annotations: dict[str, bytes],
    flags: int,
    objectId: str,
    methodname: str,
    serializer: Serializer,
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

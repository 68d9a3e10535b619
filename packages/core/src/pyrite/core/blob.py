"""``SerializedBlob``: data that passes through a call without being deserialized.

A gateway or dispatcher can accept a blob and forward it unchanged; only the
final receiver calls ``deserialized()``.  Pass it as the only argument of a
remote call.  ``info`` is a small, plainly serializable description.
"""

from __future__ import annotations

from typing import Any


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

"""``current_context``: per-thread facts about the call being made or served.

In a daemon, during a call: ``client`` (the connection), ``client_sock_addr``,
``seq``, ``msg_flags``, ``serializer_id``, ``annotations`` (received) and
``response_annotations`` (set these to send annotations back).  In a client,
set ``correlation_id`` (a ``uuid.UUID``) and every message this thread sends
carries it; a daemon copies the id of the request into its context.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from .errors import PyroError


class _CallContext(threading.local):
    def __init__(self) -> None:
        self.client: Any = None
        self.client_sock_addr: Any = None
        self.seq = 0
        self.msg_flags = 0
        self.serializer_id = 0
        self.annotations: dict[str, bytes] = {}
        self.response_annotations: dict[str, bytes] = {}
        self.correlation_id: uuid.UUID | None = None

    def to_global(self) -> dict[str, Any]:
        """The context as a dict, to carry it to another thread (see from_global)."""
        return dict(self.__dict__)

    def from_global(self, values: dict[str, Any]) -> None:
        """Take over a context captured with to_global in another thread."""
        for key in (
            "client",
            "client_sock_addr",
            "seq",
            "msg_flags",
            "serializer_id",
            "annotations",
            "response_annotations",
            "correlation_id",
        ):
            setattr(self, key, values[key])

    def track_resource(self, resource: Any) -> None:
        """Tie a resource to the current client connection; the daemon calls its
        ``close()`` when that client disconnects."""
        if not self.client:
            raise PyroError("track_resource() needs a client connection, and this call has none")
        self.client.tracked_resources.add(resource)

    def untrack_resource(self, resource: Any) -> None:
        """Stop tracking a resource for the current client connection."""
        if not self.client:
            raise PyroError("untrack_resource() needs a client connection, and this call has none")
        self.client.tracked_resources.discard(resource)


current_context = _CallContext()

"""``DaemonObject``: a daemon's own remote interface, registered as ``Pyro.Daemon``.

Clients call it for metadata (``get_metadata``, also answered in the
handshake), to fetch streamed results (``get_next_stream_item``,
``close_stream``), and to look at the daemon (``registered``, ``ping``,
``info``).  ``Daemon(interface=...)`` may replace it by a subclass.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from .callcontext import current_context
from .calls import loop_call_when
from .errors import DaemonError
from .exposure import expose, get_exposed_members
from .uri import DAEMON_NAME

__all__ = ["DaemonObject"]

log = logging.getLogger("pyrite.core.daemon")


def _item_awaited(call: Any) -> bool:
    """Is ``call`` of ``get_next_stream_item`` one for a stream whose items an event loop produces?"""
    stream_id = call.vargs[0] if call.vargs else call.kwargs.get("streamId")
    return bool(call.target.daemon.streams.awaits_items(stream_id))


@expose
class DaemonObject:
    """The daemon's own remote interface, registered as ``Pyro.Daemon`` in every daemon."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon

    def registered(self) -> list[str]:
        """The ids of every object registered in this daemon."""
        return list(self.daemon.objectsById.keys())

    def ping(self) -> None:
        """Do nothing: a call to check that the daemon answers."""

    def info(self) -> str:
        """A line describing the daemon."""
        d = self.daemon
        return (
            f"{DAEMON_NAME} bound on {d.locationStr}, NAT {d.natLocationStr}, "
            f"{len(d.objectsById)} objects registered. Servertype: {d.transportServer}"
        )

    def get_metadata(self, objectId: str) -> dict[str, set[str]]:
        """The exposed methods, oneway methods and attributes of a registered object."""
        try:
            obj = self.daemon.objects.lookup(objectId)
        except DaemonError:
            log.debug("unknown object requested: %r", objectId)
            raise
        metadata = get_exposed_members(obj)
        if not metadata["methods"] and not metadata["attrs"]:
            warnings.warn(
                f"{obj!r} has no exposed methods or attributes (are its members marked with @expose?)", stacklevel=2
            )
        return metadata

    @loop_call_when(_item_awaited)
    def get_next_stream_item(self, streamId: str) -> Any:
        """The next item of a streamed iterator result; the stream ends with StopIteration.

        The next item of an async generator is awaited on the asyncio engine's loop: there
        this returns an awaitable of it (``loop_call_when``), so no worker waits for it."""
        return self.daemon.streams.next(streamId, current_context.client)

    def close_stream(self, streamId: str) -> None:
        """Forget a streamed iterator result (the client stopped iterating)."""
        self.daemon.streams.close(streamId)

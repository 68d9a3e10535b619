"""pyrite's asyncio API (stdlib asyncio only), re-exported as ``pyrite.api.aio``.

This file is the aio-client branch's; on the aio-server branch it only hands
out ``Daemon`` (loaded on first access).
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {"Daemon": "daemon"}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

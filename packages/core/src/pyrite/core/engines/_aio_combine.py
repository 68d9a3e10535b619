"""What the asyncio engine's loop serves besides its own clients (``AsyncioEngine.combine_loop``)."""

from __future__ import annotations

from typing import Any

__all__ = ["SelectorServer"]


class SelectorServer:
    """A selector engine combined into an asyncio loop: readiness of its selector's descriptor
    means some of its sockets are ready; ask the selector which, and let the engine serve them."""

    def __init__(self, engine: Any, selector: Any) -> None:
        self.engine = engine
        self.selector = selector

    def events(self, _ready: Any) -> None:
        ready = [key.fileobj for key, _ in self.selector.select(0)]
        self.engine.events(ready)  # also runs its housekeeping when due

    def __repr__(self) -> str:
        return f"<combined {self.engine!r}>"

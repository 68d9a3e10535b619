"""``lookup`` and ``yplookup`` that wait for a registration to appear (Pyro5's helpers).

Both call the name server proxy you pass, retrying while the answer is
"unknown name" (or empty, for ``yplookup``) for up to ``delay_time`` seconds
(``config.NS_LOOKUP_DELAY`` when 0), then make one last call whose result or
error is returned as is::

    ns = locate_ns()
    uri = lookup(ns, "my.service", delay_time=5)
"""

from __future__ import annotations

import time
from typing import Any

from pyrite.core.config import config
from pyrite.core.errors import NamingError, TimeoutError

__all__ = ["lookup", "yplookup"]


def _pause(delay_time: float, deadline: float) -> bool:
    """Sleep a little before the next try; False once the deadline has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    time.sleep(min(remaining, max(0.2, delay_time / 5)))
    return True


def lookup(nameserver: Any, name: str, return_metadata: bool = False, delay_time: float = 0) -> Any:
    """``nameserver.lookup(name, return_metadata)``, retried for up to ``delay_time`` seconds."""
    delay_time = delay_time or config.NS_LOOKUP_DELAY
    deadline = time.monotonic() + delay_time
    while delay_time > 0:
        try:
            return nameserver.lookup(name, return_metadata)
        except (NamingError, TimeoutError):
            pass
        if not _pause(delay_time, deadline):
            break
    return nameserver.lookup(name, return_metadata)


def yplookup(
    nameserver: Any, meta_all: Any = None, meta_any: Any = None, return_metadata: bool = True, delay_time: float = 0
) -> Any:
    """``nameserver.yplookup(meta_all, meta_any, return_metadata)``, retried for up to
    ``delay_time`` seconds while nothing matches."""
    delay_time = delay_time or config.NS_LOOKUP_DELAY
    deadline = time.monotonic() + delay_time
    while delay_time > 0:
        try:
            result = nameserver.yplookup(meta_all, meta_any, return_metadata)
            if result:
                return result
        except (NamingError, TimeoutError):
            pass
        if not _pause(delay_time, deadline):
            break
    return nameserver.yplookup(meta_all, meta_any, return_metadata)

"""Who owns a proxy: the thread that made it, or the greenlet when gevent has patched threading.

A proxy may be used only by its owner (``Proxy._pyroClaimOwnership()`` moves
it).  Under gevent many greenlets share one OS thread, so there ownership is
per greenlet (``greenlet.getcurrent``), as in Pyro5.  gevent is never imported
here: the check looks at ``sys.modules``, and runs again whenever a proxy is
made or claimed, since a program may patch after importing pyrite.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["owner_ident_function", "refresh", "get_ident"]


def owner_ident_function(threading_patched: bool, getcurrent: Callable[[], Any] | None) -> Callable[[], Any]:
    """Which function tells proxy owners apart.

    When gevent has patched threading, many greenlets share one OS thread, so
    ownership is per greenlet (``greenlet.getcurrent``, as Pyro5 does);
    otherwise per thread (``threading.get_ident``)."""
    if threading_patched and getcurrent is not None:
        return getcurrent
    return threading.get_ident


def _gevent_patched_threading() -> bool:
    monkey = sys.modules.get("gevent.monkey")  # never imported here: only if the program uses gevent
    if monkey is None:
        return False
    try:
        return bool(monkey.is_module_patched("threading"))
    except Exception:
        return False


def refresh() -> None:
    """Choose ``get_ident`` again (is gevent's threading patch in place now?)."""
    global get_ident
    getcurrent = None
    if _gevent_patched_threading():
        greenlet = sys.modules.get("greenlet")
        getcurrent = getattr(greenlet, "getcurrent", None)
    get_ident = owner_ident_function(getcurrent is not None, getcurrent)


get_ident: Callable[[], Any] = threading.get_ident
"""The current owner identity (thread id, or greenlet); ``refresh()`` re-chooses it."""

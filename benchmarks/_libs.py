"""Load one library's API (Pyro5 or pyrite) behind the same small set of names.

The benchmark's server and client processes import only the library they
measure, so the two never share an interpreter, a config object or a GIL.
"""

from __future__ import annotations

import types
from typing import Any

LIBRARIES = ("pyro5", "pyrite", "raw")


def load(name: str) -> types.SimpleNamespace:
    """The API of library ``name`` ("pyro5" or "pyrite") as one namespace.

    Holds Proxy, BatchProxy, Daemon, expose, oneway, config and version.
    "raw" is the raw-socket floor (``_raw.py``): no library, no BatchProxy.
    """
    if name == "raw":
        import _raw

        return types.SimpleNamespace(
            name=name,
            version=_raw.version,
            Proxy=_raw.RawProxy,
            BatchProxy=None,
            Daemon=_raw.RawDaemon,
            expose=_raw.expose,
            oneway=_raw.oneway,
            config=_raw.config,
        )
    if name == "pyro5":
        import Pyro5
        import Pyro5.api as api

        version = Pyro5.__version__
    elif name == "pyrite":
        import pyrite.api as api

        version = api.__version__
    else:
        raise ValueError(f"unknown library {name!r}; choose from {LIBRARIES}")
    return types.SimpleNamespace(
        name=name,
        version=version,
        Proxy=api.Proxy,
        BatchProxy=api.BatchProxy,
        Daemon=api.Daemon,
        expose=api.expose,
        oneway=api.oneway,
        config=api.config,
        aio=getattr(api, "aio", None),  # pyrite only: the asyncio client
        SharedProxy=getattr(api, "SharedProxy", None),  # pyrite only
    )


def configure(lib: types.SimpleNamespace, settings: dict[str, Any]) -> None:
    """Apply the shared benchmark settings to the library's global config."""
    for item, value in settings.items():
        setattr(lib.config, item, value)

"""``serializers`` and ``serializers_by_id``: Pyro5's serializer tables, as live views.

Pyro5 keeps two module-level dicts, ``Pyro5.serializers.serializers`` (name ->
instance) and ``serializers_by_id`` (wire id -> instance).  pyrite's
serializers come from the plugin registry (``pyrite.core.plugins``), so these
two are read-only ``Mapping`` views over it: every installed serializer
appears, third-party plugins included, and nothing can be added or removed
through them (install or uninstall a distribution instead)::

    from pyrite.serializers import serializers, serializers_by_id
    serializers["json"].dumps({"a": 1})
    serializers_by_id[1].name            # 'serpent'
    sorted(serializers)                  # ['cbor2', 'json', 'marshal', 'msgpack', 'serpent', ...]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pyrite.core import plugins

__all__ = ["SerializerMap", "serializers", "serializers_by_id"]


class SerializerMap(Mapping[Any, Any]):
    """A read-only view of the usable serializers, keyed by ``name`` or by ``serializer_id``."""

    __slots__ = ("_by_id",)

    def __init__(self, by_id: bool = False) -> None:
        self._by_id = by_id

    def _table(self) -> dict[Any, Any]:
        # read on every access, so a plugins.reset() (tests) or a newly usable plugin shows through
        by_name = plugins.all_serializers()
        if not self._by_id:
            return by_name
        return {ser.serializer_id: ser for ser in by_name.values()}

    def __getitem__(self, key: Any) -> Any:
        return self._table()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __contains__(self, key: object) -> bool:
        return key in self._table()

    def __repr__(self) -> str:
        kind = "serializers_by_id" if self._by_id else "serializers"
        return f"<{kind} {sorted(self._table())!r}>"


serializers = SerializerMap()
"""Serializer name -> shared serializer instance (Pyro5's ``serializers.serializers``)."""

serializers_by_id = SerializerMap(by_id=True)
"""Wire serializer id -> shared serializer instance (Pyro5's ``serializers.serializers_by_id``)."""

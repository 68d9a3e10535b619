"""``HandshakeReplies``: the payloads of handshake replies, kept for the next client that gets the same.

A daemon answers each new connection's MSG_CONNECT with ``{"handshake": answer,
"meta": metadata}`` in the client's serializer.  Most clients of one object get
the same answer (``validateHandshake`` returns a fixed value or None) and the
same metadata, and serializing it was a good part of what a new connection costs
the daemon.  The payload is kept by value: the serializer, the answer (only a
plain immutable one) and the three name sets, so a changed class or answer simply
makes a new entry.
"""

from __future__ import annotations

from typing import Any

from .interfaces import Serializer

__all__ = ["HandshakeReplies"]

# answers kept by value; the key holds the type too (True == 1, but they serialize differently).
# No float: 0.0 == -0.0, and they serialize differently as well.
_PLAIN_ANSWERS = frozenset((type(None), bool, int, str, bytes))
KEPT = 256  # payloads kept at most; then the lot is forgotten and refilled


class HandshakeReplies:
    """Handshake reply payloads by (serializer, answer, metadata).  Safe from any thread
    (a dict; a lost race just serializes once more)."""

    __slots__ = ("_kept",)

    def __init__(self) -> None:
        self._kept: dict[Any, bytes] = {}

    def payload(self, serializer: Serializer, answer: Any, meta: Any) -> bytes:
        """``serializer.dumps({"handshake": answer, "meta": meta})``, from the kept ones when it can."""
        key: Any = None
        if type(answer) in _PLAIN_ANSWERS and type(meta) is dict and len(meta) == 3:
            try:
                key = (
                    serializer.serializer_id,
                    type(answer),
                    answer,
                    frozenset(meta["methods"]),
                    frozenset(meta["oneway"]),
                    frozenset(meta["attrs"]),
                )
                kept = self._kept.get(key)
            except (KeyError, TypeError):  # not three sets of names: serialize it as it is
                key = kept = None
            if kept is not None:
                return kept
        payload: bytes = serializer.dumps({"handshake": answer, "meta": meta})
        if key is not None:
            if len(self._kept) >= KEPT:
                self._kept.clear()
            self._kept[key] = payload
        return payload

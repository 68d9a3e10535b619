"""``aio.BatchProxy``: collect calls for an ``aio.Proxy`` and send them as one batch, one round trip::

    batch = aio.BatchProxy(proxy)
    batch.add(1, 2)
    batch.multiply(3, 4)
    for result in await batch():      # results in call order
        print(result)

A call that failed on the server raises its exception when iteration reaches
it.  ``await batch(oneway=True)`` sends the batch without waiting; None.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import ExceptionWrapper, ProtocolError
from .proxy import Proxy

__all__ = ["BatchProxy"]


class _BatchedCall:
    """A method of a BatchProxy: calling it records the call."""

    __slots__ = ("_calls", "_name")

    def __init__(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]], name: str) -> None:
        self._calls = calls
        self._name = name

    def __getattr__(self, name: str) -> _BatchedCall:
        if name.startswith("__"):
            raise AttributeError(name)
        return _BatchedCall(self._calls, f"{self._name}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self._calls.append((self._name, args, kwargs))


def _results(results: Any) -> Iterator[Any]:
    for result in results:
        if isinstance(result, ExceptionWrapper):
            result.raiseIt()
        else:
            yield result


class BatchProxy:
    """Records calls made on it; ``await batch()`` sends them to ``proxy`` as one batch."""

    def __init__(self, proxy: Proxy) -> None:
        if not isinstance(proxy, Proxy):
            raise TypeError(f"aio.BatchProxy needs an aio.Proxy, not {type(proxy).__name__}")
        self.__proxy = proxy
        self.__calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> _BatchedCall:
        if name.startswith(("_BatchProxy__", "_pyro", "__")):
            raise AttributeError(name)
        return _BatchedCall(self.__calls, name)

    async def __aenter__(self) -> BatchProxy:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        pass

    async def __call__(self, oneway: bool = False) -> Iterator[Any] | None:
        """Send the recorded calls; an iterator over their results (None when ``oneway``)."""
        results = await self.__proxy._pyroInvokeBatch(self.__calls, oneway)
        self.__calls = []  # sent: start afresh (after a failure they stay, to try again)
        if oneway:
            return None
        if not isinstance(results, (list, tuple)):
            raise ProtocolError(f"batch response is not a list of results: {type(results).__name__}")
        return _results(results)

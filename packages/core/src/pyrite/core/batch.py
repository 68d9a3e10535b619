"""``BatchProxy``: collect calls for one proxy and send them as a single batch.

::

    from pyrite.core.batch import BatchProxy

    batch = BatchProxy(proxy)
    batch.add(1, 2)
    batch.multiply(3, 4)
    results = list(batch())      # one round trip, results in call order

``pyrite.core.client.BatchProxy`` is the same class (the older import path).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from .errors import ExceptionWrapper, ProtocolError
from .remote import PROXY_LOCAL_NAMES

__all__ = ["BatchProxy", "BatchTarget"]

Call = tuple[str, tuple[Any, ...], dict[str, Any]]


class BatchTarget(Protocol):
    """What a BatchProxy needs of the proxy it batches for (``client.Proxy`` has both)."""

    def _pyroClaimOwnership(self) -> None: ...

    def _pyroInvokeBatch(self, calls: list[Call], oneway: bool = False) -> Any: ...


class _BatchedRemoteMethod:
    """A method of a BatchProxy: calling it records the call."""

    __slots__ = ("_calls", "_name")

    def __init__(self, calls: list[Call], name: str) -> None:
        self._calls = calls
        self._name = name

    def __getattr__(self, name: str) -> _BatchedRemoteMethod:
        if name.startswith("__"):
            raise AttributeError(name)
        return _BatchedRemoteMethod(self._calls, f"{self._name}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self._calls.append((self._name, args, kwargs))


class BatchProxy:
    """Collects calls for one proxy and sends them as a single batch.

    Call methods on it as on the proxy, then call the batch proxy itself::

        batch = BatchProxy(proxy)
        batch.add(1, 2)
        batch.multiply(3, 4)
        for result in batch():      # one round trip; results in call order
            print(result)

    A call that failed on the server raises its exception when iteration
    reaches it.  ``batch(oneway=True)`` sends the batch without waiting and
    returns None.
    """

    def __init__(self, proxy: BatchTarget) -> None:
        self.__proxy = proxy
        self.__calls: list[Call] = []

    def __getattr__(self, name: str) -> _BatchedRemoteMethod:
        if name.startswith("_BatchProxy__") or name in PROXY_LOCAL_NAMES:
            raise AttributeError(name)
        return _BatchedRemoteMethod(self.__calls, name)

    def __enter__(self) -> BatchProxy:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def __copy__(self) -> BatchProxy:
        other = type(self)(self.__proxy)
        other.__calls = list(self.__calls)
        return other

    @staticmethod
    def __results(results: Any) -> Iterator[Any]:
        for result in results:
            if isinstance(result, ExceptionWrapper):
                result.raiseIt()
            else:
                yield result

    def __call__(self, oneway: bool = False) -> Iterator[Any] | None:
        self.__proxy._pyroClaimOwnership()
        results = self.__proxy._pyroInvokeBatch(self.__calls, oneway)
        self.__calls = []  # sent: start afresh (after a failure they stay, to try again)
        if oneway:
            return None
        if not isinstance(results, (list, tuple)):
            raise ProtocolError(f"batch response is not a list of results: {type(results).__name__}")
        return self.__results(results)

    def _pyroInvoke(self, name: str, args: Any, kwargs: Any) -> Iterator[Any]:
        # Pyro5 compatibility: run the batch regardless of the arguments
        results = self.__proxy._pyroInvokeBatch(self.__calls)
        self.__calls = []
        return self.__results(results)

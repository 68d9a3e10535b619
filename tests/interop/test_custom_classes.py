"""User classes and exceptions with ``register_class_to_dict``/``register_dict_to_class`` on
both sides, between pyrite and Pyro5 5.17, every serializer: as arguments, as results, as a
call's exception, and as the exception that stops a batch.

Runs for the same sides as ``test_calls.py`` (its fixtures are imported from there).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyrite.api
import Pyro5.api
import pytest

from .test_calls import Side, pyro5_limit, side  # noqa: F401  (side is a fixture)

TIMEOUT = 10.0


class Money:
    """A user class that travels as a registered class dict."""

    def __init__(self, amount: int, currency: str) -> None:
        self.amount, self.currency = amount, currency

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and (other.amount, other.currency) == (self.amount, self.currency)


class InsufficientFunds(Exception):
    """A user exception that travels as a registered class dict."""


def money_to_dict(m: Money) -> dict[str, Any]:
    return {"__class__": "interop.Money", "amount": m.amount, "currency": m.currency}


def money_from_dict(classname: str, d: dict[str, Any]) -> Money:
    return Money(d["amount"], d["currency"])


def funds_to_dict(e: InsufficientFunds) -> dict[str, Any]:
    return {"__class__": "interop.InsufficientFunds", "args": list(e.args)}


def funds_from_dict(classname: str, d: dict[str, Any]) -> InsufficientFunds:
    return InsufficientFunds(*d["args"])


@pytest.fixture(autouse=True, scope="module")
def _converters() -> Iterator[None]:
    for api in (Pyro5.api, pyrite.api):
        api.register_class_to_dict(Money, money_to_dict)
        api.register_dict_to_class("interop.Money", money_from_dict)
        api.register_class_to_dict(InsufficientFunds, funds_to_dict)
        api.register_dict_to_class("interop.InsufficientFunds", funds_from_dict)
    yield
    for api in (Pyro5.api, pyrite.api):
        api.unregister_class_to_dict(Money)
        api.unregister_dict_to_class("interop.Money")
        api.unregister_class_to_dict(InsufficientFunds)
        api.unregister_dict_to_class("interop.InsufficientFunds")


def _bank_class(api: Any) -> type:
    @api.expose
    class Bank:
        def double(self, m: Money) -> Money:
            return Money(m.amount * 2, m.currency)

        def withdraw(self, amount: int) -> None:
            raise InsufficientFunds("only 5 left", amount)

        def balance(self) -> int:
            return 5

    return Bank


@pytest.fixture
def bank(side: Side, serializer: str) -> Iterator[Any]:  # noqa: F811
    uri = side.daemon.register(_bank_class(side.server.api)())
    p = side.client.api.Proxy(str(uri))
    p._pyroTimeout = TIMEOUT
    yield p
    p._pyroRelease()
    side.daemon.unregister(uri.object)


def test_custom_class_argument_and_result(bank: Any) -> None:
    assert bank.double(Money(21, "EUR")) == Money(42, "EUR")


def test_custom_exception(bank: Any) -> None:
    with pytest.raises(InsufficientFunds) as info:
        bank.withdraw(10)
    assert info.value.args == ("only 5 left", 10)
    assert bank.balance() == 5


def test_custom_exception_stops_a_batch(
    side: Side,  # noqa: F811
    bank: Any,
    request: pytest.FixtureRequest,
    serializer: str,
) -> None:
    pyro5_limit(request, side, serializer, "batch")
    pyro5_limit(request, side, serializer, "batch-error")
    batch = side.client.api.BatchProxy(bank)
    batch.balance()
    batch.withdraw(10)
    batch.balance()
    results = batch()
    assert next(results) == 5
    # the exception in the batch result goes through the registered converter, as Pyro5's does
    with pytest.raises(InsufficientFunds) as info:
        next(results)
    assert info.value.args == ("only 5 left", 10)
    assert list(results) == []

"""pyrite.api offers every name of Pyro5.api, of the same kind, so ports only change the import."""

from __future__ import annotations

import inspect
import types

import pyrite.api
import Pyro5.api
import Pyro5.errors
import pytest
from pyrite.core import errors as pyrite_errors


def kind(value: object) -> str:
    """A coarse kind that both libraries must agree on."""
    if isinstance(value, types.ModuleType):
        return "module"
    if inspect.isclass(value):
        return "class"
    if inspect.ismethod(value):
        return "bound method"
    if inspect.isroutine(value):
        return "function"
    return "object"


@pytest.mark.parametrize("name", Pyro5.api.__all__)
def test_every_pyro5_api_name_exists_with_the_same_kind(name: str) -> None:
    assert name in pyrite.api.__all__
    assert kind(getattr(pyrite.api, name)) == kind(getattr(Pyro5.api, name))


def test_all_lists_pyro5_names_plus_pyrites_own() -> None:
    # pyrite's additions: the errors module, the version, the asyncio API and the thread-shareable proxy
    assert set(pyrite.api.__all__) == set(Pyro5.api.__all__) | {"errors", "__version__", "aio", "SharedProxy"}
    assert len(pyrite.api.__all__) == len(set(pyrite.api.__all__))
    for name in pyrite.api.__all__:
        assert hasattr(pyrite.api, name), name


def test_star_import_gives_every_name() -> None:
    namespace: dict[str, object] = {}
    exec("from pyrite.api import *", namespace)
    assert set(Pyro5.api.__all__) <= set(namespace)


def test_names_are_the_core_objects() -> None:
    from pyrite.core.client import BatchProxy, Proxy
    from pyrite.core.config import config
    from pyrite.core.daemon import Daemon
    from pyrite.serializers.base import SerializerBase

    assert pyrite.api.Proxy is Proxy
    assert pyrite.api.BatchProxy is BatchProxy
    assert pyrite.api.Daemon is Daemon
    assert pyrite.api.config is config
    assert pyrite.api.errors is pyrite_errors
    assert pyrite.api.SerializerBase is SerializerBase
    # Pyro5 hands out SerializerBase's classmethods as plain names
    for name in (
        "register_dict_to_class",
        "register_class_to_dict",
        "unregister_dict_to_class",
        "unregister_class_to_dict",
    ):
        method = getattr(pyrite.api, name)
        assert method.__self__ is SerializerBase
        assert method.__func__ is getattr(SerializerBase, name).__func__


def test_version_matches_the_distribution() -> None:
    from importlib.metadata import version

    assert pyrite.api.__version__ == version("pyrite")


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        pyrite.api.no_such_name  # noqa: B018


def pyro5_error_names() -> list[str]:
    """The classes and functions Pyro5.errors defines itself (not what it imports)."""
    return sorted(
        name
        for name, value in vars(Pyro5.errors).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == "Pyro5.errors"
    )


@pytest.mark.parametrize("name", pyro5_error_names())
def test_every_pyro5_errors_name_exists_in_pyrite_errors(name: str) -> None:
    ours = getattr(pyrite_errors, name)
    theirs = getattr(Pyro5.errors, name)
    assert kind(ours) == kind(theirs)
    if inspect.isclass(theirs):
        # the hierarchy is Pyro5's too: same base class names
        assert [b.__name__ for b in ours.__mro__] == [b.__name__ for b in theirs.__mro__]


def test_pyro5_errors_names_were_found() -> None:
    # guards the parametrization above against silently testing nothing
    assert {
        "PyroError",
        "CommunicationError",
        "SerializeError",
        "get_pyro_traceback",
        "format_traceback",
        "excepthook",
    } <= set(pyro5_error_names())

"""Fixtures for the interop tests: Pyro5 and pyrite daemons in threads of this process.

Pyro5 and pyrite live side by side here: ``Pyro5.config`` (``PYRO_*``) and
pyrite's ``config`` (``PYRITE_*``) are separate.  Each test picks a
serializer for both and gets both configs back as they were.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import Pyro5.api
import pytest

from pyrite.core.config import config as pyrite_config

from . import services

SERIALIZERS = ["serpent", "json", "marshal", "msgpack"]
JOIN = 10.0  # seconds any daemon thread gets to finish


@pytest.fixture(autouse=True)
def _pyro5_config() -> Iterator[None]:
    """Pyro5's global config, restored after every test."""
    saved = Pyro5.api.config.as_dict()
    yield
    for item, value in saved.items():
        setattr(Pyro5.api.config, item, value)


@pytest.fixture(params=SERIALIZERS)
def serializer(request: pytest.FixtureRequest) -> str:
    """Both libraries use this serializer for the test."""
    name = request.param
    Pyro5.api.config.SERIALIZER = name
    pyrite_config.SERIALIZER = name
    return name


class Served:
    """A daemon running its request loop in a thread."""

    def __init__(self, daemon: Any, name: str) -> None:
        self.daemon = daemon
        self.thread = threading.Thread(target=daemon.requestLoop, name=name, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.daemon.shutdown()
        self.thread.join(JOIN)
        alive = self.thread.is_alive()
        self.daemon.close()
        assert not alive, f"{self.thread.name} did not stop"


def serve(daemon: Any, name: str) -> Served:
    return Served(daemon, name)


@pytest.fixture(scope="module")
def pyro5_lib() -> services.Lib:
    return services.pyro5()


@pytest.fixture(scope="module")
def pyrite_lib() -> services.Lib:
    return services.pyrite()


@pytest.fixture(scope="module")
def pyro5_classes(pyro5_lib: services.Lib) -> Any:
    return services.build(pyro5_lib)


@pytest.fixture(scope="module")
def pyrite_classes(pyrite_lib: services.Lib) -> Any:
    return services.build(pyrite_lib)

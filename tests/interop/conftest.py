"""Fixtures for the interop tests (Pyro5 and pyrite daemons run in threads of this process).

Pyro5 and pyrite live side by side here: ``Pyro5.config`` (``PYRO_*``) and
pyrite's ``config`` (``PYRITE_*``) are separate.  Each test picks a
serializer for both and gets both configs back as they were.
"""

from __future__ import annotations

from collections.abc import Iterator

import Pyro5.api
import pytest
from pyrite.core.config import config as pyrite_config

SERIALIZERS = ["serpent", "json", "marshal", "msgpack"]


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

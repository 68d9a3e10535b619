"""Shared test set-up.  Broadcast discovery is pinned to loopback before anything
else is imported, so no test ever broadcasts on a real network."""

import os

os.environ["PYRITE_BROADCAST_ADDRS"] = "127.255.255.255"
os.environ["PYRO_BROADCAST_ADDRS"] = "127.255.255.255"

import pytest  # noqa: E402
from pyrite.core.config import config  # noqa: E402

from tests.daemons import start_daemon  # noqa: E402, F401  (a shared fixture)


@pytest.fixture(autouse=True)
def _fresh_config():
    """Every test starts from the default config (plus the broadcast pin) and leaves it so."""
    config.reset()
    yield
    config.reset()

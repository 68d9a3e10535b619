"""Issue 8, item 6: remote item streams are capped per connection and per daemon, and freed
when their connection closes (ITER_STREAM_LINGER 0 here; Pyro5's linger is kept)."""

from __future__ import annotations

import pytest
from pyrite.core.errors import PyroError

from .conftest import wait_until


def _opens(proxy) -> bool:
    try:
        proxy.gen(3)
        return True
    except PyroError:
        return False


def test_stream_caps_and_release_on_disconnect(server):
    proc = server(ITER_STREAM_MAX_PER_CONNECTION=20, ITER_STREAM_MAX=30, ITER_STREAM_LINGER=0)
    first = proc.proxy()
    second = proc.proxy()
    try:
        kept_first = [first.gen(3) for _ in range(20)]
        with pytest.raises(PyroError, match="(?i)stream"):
            first.gen(3)
        kept_second = [second.gen(3) for _ in range(10)]
        with pytest.raises(PyroError, match="(?i)stream"):
            second.gen(3)  # the daemon-wide cap
        assert list(kept_second[0]) == [0, 1, 2]  # streams under the cap still work
        del kept_first
        first._pyroRelease()  # its 20 streams go with its connection
        assert wait_until(lambda: _opens(second), 5.0)
        assert list(kept_second[1]) == [0, 1, 2]
    finally:
        first._pyroRelease()
        second._pyroRelease()
    assert proc.alive()

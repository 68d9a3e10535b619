"""Issue 8, item 2: SystemExit, KeyboardInterrupt and GeneratorExit raised by user code.

The caller gets an error reply (a PyroError naming the original type), the worker
survives or is replaced, the engine keeps serving and oneway calls keep running.  With
THREADPOOL_SIZE 8, 36 such calls would leave no worker if each killed one.
"""

from __future__ import annotations

import pytest
from pyrite.core.errors import PyroError

from .conftest import wait_until

KINDS = ["SystemExit", "KeyboardInterrupt", "GeneratorExit"]


def test_user_code_raising_base_exceptions_does_not_stop_the_server(server):
    proc = server(THREADPOOL_SIZE=8, THREADPOOL_SIZE_MIN=2)
    with proc.proxy() as proxy:
        for kind in KINDS:
            for _ in range(12):
                with pytest.raises(PyroError) as raised:
                    proxy.raise_exit(kind)
                assert kind in str(raised.value)
            assert proxy.echo(kind) == kind
        for kind in KINDS:
            for _ in range(12):
                proxy.oneway_exit(kind)
        proxy.count_oneway()
        assert wait_until(lambda: proxy.count() == 1, 5.0), "oneway calls stopped running"
    # a fresh connection is served too: the engine, not just one link, survived
    with proc.proxy() as again:
        assert again.echo("alive") == "alive"
    assert proc.alive()

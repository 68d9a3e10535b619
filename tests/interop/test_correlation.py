"""Correlation ids between pyrite and Pyro5 5.17 when the client sets none, every serializer.

A Pyro5 daemon gives every request that carries no correlation id a fresh random one: the
method sees it in ``current_context.correlation_id`` and the reply header carries it
(``FLAGS_CORR_ID``).  A pyrite daemon must do the same, on the wire and for the method.

Runs for the same sides as ``test_calls.py`` (its fixtures are imported from there).
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

import pytest
from pyrite.core.calls import fresh_correlation_id

from .test_calls import Side, proxy, service, side  # noqa: F401  (fixtures)

FLAGS_CORR_ID = 1 << 6  # Pyro5.protocol.FLAGS_CORR_ID


def test_call_without_correlation_id_gets_a_fresh_one(
    side: Side,  # noqa: F811
    proxy: Any,  # noqa: F811
) -> None:
    side.client.api.current_context.correlation_id = None
    seen = [proxy.correlation() for _ in range(3)]
    assert all(cid is not None for cid in seen), seen
    assert len({uuid.UUID(cid) for cid in seen}) == 3


def test_reply_carries_the_daemons_correlation_id(
    side: Side,  # noqa: F811
    service: tuple[Any, Any],  # noqa: F811
    serializer: str,
) -> None:
    side.client.api.current_context.correlation_id = None
    p = side.proxy(service[1])
    p._pyroRawWireResponse = True
    try:
        msg = p.correlation()
        assert msg.flags & FLAGS_CORR_ID
        assert bytes(msg.corr_id) != bytes(16)
    finally:
        p._pyroRelease()


def test_fresh_ids_are_version_4_and_differ_in_a_forked_child() -> None:
    ids = [fresh_correlation_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in ids)
    if sys.platform == "win32" or not hasattr(os, "fork"):
        pytest.skip("no fork here")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its next id and leave at once
        os.write(write_end, fresh_correlation_id().bytes)
        os._exit(0)
    os.close(write_end)
    try:
        child_id = uuid.UUID(bytes=os.read(read_end, 16))
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert child_id != fresh_correlation_id()

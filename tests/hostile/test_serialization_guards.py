"""Issue 8, items 8-11: what a hostile payload must not reach.

8. A KEEPSERIALIZED (BLBI) annotation holding a code object is refused, as the marshal
   serializer refuses one.
9. Deserializing imports no module: a ``{"__class__": "sqlite3.X", "__exception__": true}``
   argument, and (cbor2) an echoed PyroError, leave ``sys.modules`` of the server unchanged.
10. ``SERIALIZERS_ACCEPTED``: other serializers are refused in the handshake with a reason.
11. ``MAX_BATCH_CALLS``: a larger batch is refused, and a 100,000-call batch costs no
    lasting memory.
"""

from __future__ import annotations

import importlib.util
import json
import marshal

import pytest
from pyrite.core.client import BatchProxy
from pyrite.core.config import config
from pyrite.core.errors import CommunicationError, PyroError

from .conftest import (
    FLAGS_EXCEPTION,
    FLAGS_KEEPSERIALIZED,
    JSON,
    MSG_INVOKE,
    MSG_RESULT,
    SERPENT,
    handshaked_socket,
    message,
    needs_proc,
    read_message,
)


def _blob_call(info: object) -> bytes:
    annotation = marshal.dumps((info, "hostile", "blob_info_type"))
    payload = json.dumps({"some": "data"}).encode()
    return message(MSG_INVOKE, payload, JSON, flags=FLAGS_KEEPSERIALIZED, seq=1, annotations={"BLBI": annotation})


def test_blob_annotation_code_object_refused(server):
    proc = server()
    with handshaked_socket(proc.address) as sock:
        sock.sendall(_blob_call("plain info"))
        msgtype, flags, _, body = read_message(sock)
        assert msgtype == MSG_RESULT and not flags & FLAGS_EXCEPTION and b"str" in body  # the path works
    with handshaked_socket(proc.address) as sock:
        sock.sendall(_blob_call(compile("1 + 1", "<hostile>", "eval")))
        try:
            msgtype, flags, _, body = read_message(sock)
        except (ConnectionError, OSError):
            return  # refused by closing the connection: fine too
        assert flags & FLAGS_EXCEPTION, f"a code object got through as blob info: {body[:200]!r}"
        assert b"code" not in body or b"Error" in body
    assert proc.alive()


SERIALIZERS = [
    name
    for name, module in (("serpent", "serpent"), ("json", "json"), ("marshal", "marshal"), ("msgpack", "msgpack"))
    if importlib.util.find_spec(module)
]


def _modules(proxy) -> set[str]:
    return {name for name in ("sqlite3", "email.parser", "fractions", "decimal") if proxy.has_module(name)}


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_deserializing_imports_no_module(server, serializer):
    proc = server()
    config.SERIALIZER = serializer
    with proc.proxy() as proxy:
        assert proxy.echo("warm up") == "warm up"
        before = _modules(proxy)
        assert "sqlite3" not in before
        hostile = {"__class__": "sqlite3.OperationalError", "__exception__": True, "args": ["x"], "attributes": {}}
        try:
            proxy.echo(hostile)
        except Exception:
            pass  # refusing it is fine; importing for it is not
        assert _modules(proxy) == before


@pytest.mark.skipif(not importlib.util.find_spec("cbor2"), reason="cbor2 not installed")
def test_cbor_echo_of_pyro_error_imports_no_module(server):
    proc = server()
    config.SERIALIZER = "cbor2"
    with proc.proxy() as proxy:
        assert proxy.echo("warm up") == "warm up"
        before = _modules(proxy)
        try:
            proxy.echo(PyroError("echo me"))
        except Exception:
            pass
        assert _modules(proxy) == before


def test_serializers_accepted(server):
    proc = server(SERIALIZERS_ACCEPTED="json")
    config.SERIALIZER = "serpent"
    with pytest.raises(CommunicationError, match="(?i)serializer"), proc.proxy() as refused:
        refused.echo(1)
    config.SERIALIZER = "json"
    with proc.proxy() as accepted:
        assert accepted.echo("ok") == "ok"


def test_batch_cap(server):
    _batch_cap(server(MAX_BATCH_CALLS=1000), "json")


@pytest.mark.parametrize("servertype", ["thread"])  # the cap is the dispatcher's; serpent's cost is measured once
def test_batch_cap_serpent(server):
    _batch_cap(server(MAX_BATCH_CALLS=1000), "serpent")


def _batch_cap(proc, serializer: str) -> None:
    needs_proc()
    config.SERIALIZER = serializer
    with proc.proxy(timeout=20.0) as proxy:
        batch = BatchProxy(proxy)
        for i in range(1000):
            batch.echo(i)
        assert list(batch()) == list(range(1000))
        start = proc.rss_mb()
        for size in (1001, 100_000):
            batch = BatchProxy(proxy)
            for i in range(size):
                batch.echo(i)
            with pytest.raises(PyroError, match="(?i)batch"):
                list(batch())
            del batch
        assert proxy.echo("after") == "after"
        assert proc.rss_mb() - start < 100


@pytest.mark.parametrize("servertype", ["thread", "multiplex"])  # the guard is the serializer's
def test_serpent_data_that_needs_compile_is_capped(server):
    """serpent text outside the plain subset goes through compile(), which takes about 1 KB per
    item (10 MB of it: 4 GB and 30 s).  A request with more items than COMPILE_MAX_ITEMS is
    refused at once with an exception reply, its connection and the daemon's memory intact;
    escaped strings, the usual reason for compile() before, no longer need it."""
    from pyrite.serializers.serpent_serializer import COMPILE_MAX_ITEMS

    needs_proc()
    proc = server()
    with proc.proxy() as proxy:
        assert proxy.echo(["line\n", "tab\t", "quote'\""]) == ["line\n", "tab\t", "quote'\""]
    start = proc.rss_mb()
    header = b"# serpent utf-8 python3.2\n"
    items = b",".join([b"1j"] * (COMPILE_MAX_ITEMS * 3))  # complex numbers: outside the subset
    payload = header + b"('hostile','echo',([" + items + b"],),{})"
    with handshaked_socket(proc.address) as sock:
        sock.settimeout(20.0)
        sock.sendall(message(MSG_INVOKE, payload, SERPENT, seq=1))
        msgtype, flags, _, data = read_message(sock)
        assert msgtype == MSG_RESULT and flags & FLAGS_EXCEPTION
        assert b"too costly" in data
    with proc.proxy() as proxy:
        assert proxy.echo("after") == "after"
    assert proc.rss_mb() - start < 100

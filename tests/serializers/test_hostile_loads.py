"""What a refused or hostile payload leaves behind (issue 8, items 1 and 9).

* A refused load must not leave a reference cycle: an exception that is its own
  ``__cause__`` (or a pyrite error and cbor2's wrapper pointing at each other)
  keeps the traceback, and with it the decoded input, alive until the cyclic
  collector happens to run.  With the collector off, the refused input must be
  freed by reference counting alone.
* Loading never imports a module: a class name in a payload must not decide
  which modules a process loads.  Checked in a fresh interpreter, per serializer.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import tracemalloc
import types
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyrite.core import plugins
from pyrite.core.errors import PyroError, SecurityError, SerializeError
from pyrite.serializers import base as serializer_base

NAMES = ["serpent", "marshal", "json", "msgpack", "cbor2"]
SERIALIZERS_DIR = str(Path(serializer_base.__file__).parent)
BIG = "x" * (4 * 1024 * 1024)  # large enough that keeping a decoded copy alive shows in tracemalloc


@pytest.fixture(params=NAMES)
def ser(request: pytest.FixtureRequest) -> Any:
    plugins.reset()
    return plugins.get_serializer(request.param)


def _cyclic_garbage_after(action: Callable[[], None]) -> list[Any]:
    """Run ``action`` with the cyclic collector off; what a collection then finds is what
    ``action`` left in reference cycles (reference counting alone could not free it)."""
    gc.collect()
    gc.disable()
    try:
        action()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _ours(garbage: list[Any]) -> list[Any]:
    """The cyclic garbage that a serializer call made: exceptions, and the frames and tracebacks
    of the serializers or of this file (another test's leftover thread may make garbage too)."""

    def ours(code: types.CodeType) -> bool:
        return SERIALIZERS_DIR in code.co_filename or code.co_filename == __file__

    found = []
    for obj in garbage:
        if (
            isinstance(obj, BaseException)
            or (isinstance(obj, types.FrameType) and ours(obj.f_code))
            or (isinstance(obj, types.TracebackType) and ours(obj.tb_frame.f_code))
        ):
            found.append(obj)
    return found


def _describe(garbage: list[Any]) -> list[str]:
    return sorted({type(obj).__name__ for obj in garbage})


def _refused_payloads(ser: Any) -> dict[str, tuple[str, bytes]]:
    """name -> (method, data): each is refused with a PyroError, and each holds a large string."""
    security = ser.dumps({"__class__": "evil__name", "blob": BIG})  # SecurityError from dict_to_class
    unknown = ser.dumps({"__class__": "no.such.Class", "blob": BIG})  # SerializeError from dict_to_class
    shape = ser.dumps([BIG, 1])  # loadsCall: not a call's shape (SerializeError raised inside the try)
    good = ser.dumps([BIG])
    garbage = good[: len(good) // 2] + b"\xff\xfe\x00garbage"  # the library's own error, wrapped
    return {
        "security": ("loads", security),
        "unknown class": ("loads", unknown),
        "call shape": ("loadsCall", shape),
        "truncated": ("loads", garbage),
    }


CASES = ["security", "unknown class", "call shape", "truncated"]


@pytest.mark.parametrize("case", CASES)
def test_refused_load_leaves_no_reference_cycle(ser: Any, case: str) -> None:
    method, data = _refused_payloads(ser)[case]
    refs: list[weakref.ref[BaseException]] = []

    def refuse() -> None:
        # plain try/except: pytest.raises keeps the traceback for its report
        try:
            getattr(ser, method)(data)
        except PyroError as exc:
            refs.append(weakref.ref(exc))
        else:
            raise AssertionError("the payload was accepted")

    garbage = _ours(_cyclic_garbage_after(refuse))
    assert garbage == [], f"{ser.name} {case}: a refused load left cyclic garbage: {_describe(garbage)}"
    assert refs and refs[0]() is None, f"{ser.name} {case}: the refusal outlived its handler"


@pytest.mark.parametrize("case", CASES)
def test_refused_load_frees_the_decoded_input(ser: Any, case: str) -> None:
    method, data = _refused_payloads(ser)[case]

    def refuse() -> None:
        try:
            getattr(ser, method)(data)
        except PyroError:
            pass
        else:
            raise AssertionError("the payload was accepted")

    refuse()  # once before measuring: first-use caches are not what this test is about
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        refuse()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        gc.enable()
    # the payload holds 4 MiB of text: a decoded copy kept alive would show as +4 MiB or more
    assert after - before < 512 * 1024, f"{ser.name} {case}: {after - before} bytes kept after a refused load"


def test_refusals_still_name_their_cause(ser: Any) -> None:
    # the fix must not lose the errors themselves
    payloads = _refused_payloads(ser)
    with pytest.raises(SecurityError):
        ser.loads(payloads["security"][1])
    with pytest.raises(SerializeError, match="no.such.Class"):
        ser.loads(payloads["unknown class"][1])
    with pytest.raises(SerializeError) as info:
        ser.loads(payloads["truncated"][1])
    assert info.value.__cause__ is not info.value
    assert info.value.__cause__ is None or not isinstance(info.value.__cause__, PyroError)


class _NoState:
    __slots__ = ()


def test_refused_dump_leaves_no_reference_cycle(ser: Any) -> None:
    def refuse() -> None:
        try:
            ser.dumps([BIG, object()])
        except (PyroError, ValueError, TypeError):
            pass
        else:
            raise AssertionError("the value was written")

    garbage = _ours(_cyclic_garbage_after(refuse))
    assert garbage == [], f"{ser.name}: a refused dump left cyclic garbage: {_describe(garbage)}"


# ---------------------------------------------------------------- no imports while loading

IMPORT_PROBE = textwrap.dedent(
    r"""
    import json, sys
    assert "sqlite3" not in sys.modules, "the probe needs a process without sqlite3"
    from pyrite.core import plugins
    from pyrite.core.errors import NamingError
    from pyrite.core.errors import ExceptionWrapper
    from pyrite.core.uri import URI

    name = sys.argv[1]
    ser = plugins.get_serializer(name)
    ser.loads(ser.dumps([1, "a", {"b": 2.5}]))  # warm-up: the serializer itself is loaded now

    PAYLOADS = [
        {"__class__": "sqlite3.OperationalError", "__exception__": True, "args": ["locked"], "attributes": {}},
        {"__class__": "sqlite3.dbapi2.Error", "__exception__": True, "args": [], "attributes": {}},
        {"__class__": "email.errors.MessageError", "__exception__": True, "args": ["x"], "attributes": {}},
        {"__class__": "xml.etree.ElementTree.ParseError", "__exception__": True, "args": [], "attributes": {}},
        {"__class__": "decimal.InvalidOperation", "__exception__": True, "args": [], "attributes": {}},
        {"__class__": "tkinter.Tk", "state": {}},
        {"__class__": "antigravity.fly"},
        {"__class__": "builtins.ZeroDivisionError", "__exception__": True, "args": ["z"], "attributes": {}},
        {"__class__": "Pyro5.errors.NamingError", "__exception__": True, "args": ["n"], "attributes": {}},
        {"__class__": "Pyro5.client.Proxy",
         "state": ["PYRO:obj@127.0.0.1:9", [], [], [], 0.0, None]},
        {"__class__": "Pyro5.core.URI", "state": ["PYRO", "obj", None, "127.0.0.1", 9]},
    ]
    before = set(sys.modules)
    loaded = []
    for payload in PAYLOADS:
        try:
            loaded.append(ser.loads(ser.dumps(payload)))
        except Exception as exc:
            loaded.append(exc)
    # echo: what a daemon does with an error it received as an argument
    loaded.append(ser.loads(ser.dumps(NamingError("echo"))))
    loaded.append(ser.loads(ser.dumps(ExceptionWrapper(NamingError("wrapped")))))
    loaded.append(ser.loads(ser.dumps(URI("PYRO:obj@127.0.0.1:9"))))
    for value in loaded:
        try:
            ser.loads(ser.dumps(value))
        except Exception:
            pass
    for raw in EXTRA:
        try:
            value = ser.loads(bytes.fromhex(raw))
            ser.dumps(value)
        except Exception:
            pass
    print(json.dumps({"new": sorted(set(sys.modules) - before),
                      "kinds": [type(v).__name__ for v in loaded]}))
    """
)

# raw payloads only one serializer can express: CBOR tags that cbor2 decodes with stdlib types
CBOR_EXTRA = [
    "d81e820103",  # tag 30, a Fraction (cbor2 would import fractions)
    "c482200f",  # tag 4, a decimal fraction
    "d83482000104",  # tag 52, an IPv4 address
    "d8247818436f6e74656e742d547970653a20746578742f706c61696e",  # tag 36, MIME (refused)
    "d8236261",  # tag 35, a regular expression (refused)
]


@pytest.mark.parametrize("name", NAMES)
def test_loading_imports_no_module(name: str) -> None:
    extra = CBOR_EXTRA if name == "cbor2" else []
    script = IMPORT_PROBE.replace("for raw in EXTRA:", f"for raw in {extra!r}:")
    proc = subprocess.run([sys.executable, "-c", script, name], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["new"] == [], f"{name}: loading imported {result['new']}"
    kinds = result["kinds"]
    # the payloads were really loaded (or refused), not skipped
    assert kinds[0] == "PyroError"  # a sqlite3 error, in a process without sqlite3
    assert kinds[7] == "ZeroDivisionError" and kinds[8] == "NamingError"
    assert kinds[9] == "Proxy" and kinds[10] == "URI"
    assert kinds[-3:] == ["NamingError", "ExceptionWrapper", "URI"]


def test_sqlite3_errors_are_rebuilt_where_sqlite3_is_imported(ser: Any) -> None:
    import sqlite3

    data = {"__class__": "sqlite3.OperationalError", "__exception__": True, "args": ["locked"], "attributes": {}}
    value = ser.loads(ser.dumps(data))
    assert type(value) is sqlite3.OperationalError and value.args == ("locked",)

"""safemarshal.py: marshal data from a peer is checked before it is loaded."""

from __future__ import annotations

import marshal
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrite.core import safemarshal
from pyrite.core.errors import SerializeError

PLAIN = [
    None,
    True,
    False,
    0,
    -(2**31),
    2**100,
    -(2**70),
    1.5,
    1 + 2j,
    "",
    "text",
    "é" * 300,
    b"",
    b"b" * 70000,
    (),
    (1, 2),
    [1, [2, (3,)]],
    {},
    {"a": {1: 2}, (1, 2): [None]},
    {1, 2},
    frozenset([3]),
    ("info", "objid", "method"),
    ["shared"] * 1000,
]


@pytest.mark.parametrize("version", [0, 2, 4, marshal.version])
@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_data_loads(value, version):
    assert safemarshal.loads(marshal.dumps(value, version)) == value


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=5) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=30,
)


@given(plain)
def test_any_plain_data_loads(value):
    assert safemarshal.loads(marshal.dumps(value)) == value


@given(plain, st.integers(min_value=0, max_value=200))
def test_truncated_data_is_refused_not_crashed(value, cut):
    data = marshal.dumps(value)
    if cut >= len(data):
        return
    try:
        safemarshal.loads(data[:cut])
    except SerializeError:
        pass


def code_object():
    return compile("1 + 1", "<peer>", "eval")


@pytest.mark.parametrize(
    "data",
    [
        marshal.dumps(code_object()),
        marshal.dumps(("info", code_object(), "m")),
        marshal.dumps({"k": [code_object()]}),
        marshal.dumps(...),
        marshal.dumps(StopIteration),
        b"0",
        b"?",
        b"c" + b"\0" * 30,
    ],
    ids=["code", "code in tuple", "code in dict", "ellipsis", "stopiteration", "null", "unknown", "raw code"],
)
def test_non_data_is_refused(data):
    with pytest.raises(SerializeError, match="refused|NULL"):
        safemarshal.loads(data)


@pytest.mark.parametrize(
    "data",
    [
        b"(" + struct.pack("<i", 2**31 - 1),
        b"[" + struct.pack("<i", 2**28),
        b"<" + struct.pack("<i", 2**30),
        b"l" + struct.pack("<i", 2**28 - 1),
        b"u" + struct.pack("<i", 2**30) + b"abc",
        b"(" + struct.pack("<i", -1),
    ],
    ids=["tuple", "list", "set", "long", "string", "negative count"],
)
def test_declared_sizes_beyond_the_data_are_refused_before_loading(data):
    with pytest.raises(SerializeError, match="declares|more than"):
        safemarshal.check(data)


def test_memoryview_input_and_garbage():
    assert safemarshal.loads(memoryview(marshal.dumps([1, "a"]))) == [1, "a"]
    with pytest.raises(SerializeError):
        safemarshal.loads(b"")
    with pytest.raises(SerializeError):
        safemarshal.loads(marshal.dumps((1, 2))[:-1])

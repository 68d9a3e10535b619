"""The small-value shortcuts read and write exactly what the slow way does.

serpent_small reads the plain subset of literal syntax exactly as ``ast.literal_eval``
does, and refuses (``Unsupported``) everything else, which then takes the ``compile()``
way; the json serializer's kept C encoder and bare C scanner write and read what
``json.dumps``/``json.loads`` do, errors included."""

from __future__ import annotations

import ast
import json
import math
import warnings

import pytest
import serpent
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrite.core import plugins
from pyrite.serializers.serpent_small import Unsupported, parse

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.binary(max_size=5)
    | st.complex_numbers(allow_nan=False, max_magnitude=1e6)
)
keys = (  # serpent refuses None as a key
    st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10) | st.binary(max_size=5)
)
hashables = st.recursive(keys, lambda inner: st.tuples(inner) | st.tuples(inner, inner), max_leaves=4)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples()
        | st.tuples(inner)
        | st.tuples(inner, inner, inner)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.frozensets(hashables, max_size=3)
    ),
    max_leaves=12,
)


def same(a, b) -> bool:
    """Equal, with the types of the containers and -0.0 told apart too."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def check(text: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # e.g. an invalid escape in the soup
            expected = ast.literal_eval(text)
    except Exception:
        expected = Unsupported
    try:
        got, has_class = parse(text, 0)
    except Unsupported:
        return  # compile() decides: always allowed
    assert expected is not Unsupported, f"parse accepted what literal_eval refuses: {text!r}"
    assert same(got, expected), (text, got, expected)
    assert has_class == has_class_key(expected)


def has_class_key(value) -> bool:
    if type(value) is dict:
        return "__class__" in value or any(has_class_key(v) or has_class_key(k) for k, v in value.items())
    if type(value) in (list, tuple, set, frozenset):
        return any(has_class_key(v) for v in value)
    return False


@settings(max_examples=300, deadline=None)
@given(values)
def test_what_serpent_writes_reads_as_literal_eval_reads_it(value):
    text = serpent.dumps(value).decode("utf-8").split("\n", 1)[1]
    check(text)


tokens = st.sampled_from(
    [
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        " ",
        "\t",
        "\n",
        "'a'",
        '"b"',
        "'",
        "1",
        "-",
        "0",
        "07",
        "1.5",
        "1e5",
        "1j",
        ".",
        "True",
        "None",
        "Falsey",
        "_",
        "#",
        "\\",
        "b'x'",
        "'__class__'",
        "1_0",
        "{'__class__':1}",
        "+",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(tokens, max_size=12))
def test_token_soup_reads_as_literal_eval_reads_it_or_is_left_to_compile(parts):
    check("".join(parts))


@pytest.mark.parametrize(
    "text",
    [
        "(42)",
        "((1,),)",
        "()",
        "[]",
        "{}",
        "{1}",
        "{1,}",
        "[1,]",
        "{'a':1,}",
        "{'a': 1, 'a': 2}",
        "-0",
        "-0.0",
        "1e30000",
        "-1e30000",
        "0.30000000000000004",
        "{(1, 2): [None]}",
        "{1: 'a', True: 'b'}",
        "('a',\t'b' )",
        "'a\\'b'",
        '"say \\"hi\\""',
        "'tab\\there\\nnew\\\\line\\r'",
        "'\\x00\\xff\\u20ac\\U0001f600\\ud800'",
        "'\\a\\b\\f\\v'",
        "['\\'', \"\\\"\", '\\\\']",
    ],
)
def test_plain_literals(text):
    value, _ = parse(text, 0)
    assert same(value, ast.literal_eval(text))


@pytest.mark.parametrize(
    "text",
    [
        "'a' 'b'",
        "1, 2",
        "{[1]: 2}",
        "{[1]}",
        "(1",
        "1 +1",
        "b'x'",
        "'\\0'",
        "'\\N{BULLET}'",
        "'\\q'",
        "'\\x4'",
        "'\\U00110000'",
        "'a\\\nb'",
        "1j",
        "1" * 4001,
        "007",
        "1_000",
        "-(1)",
        "set()",
        "[" * 50 + "]" * 50,
        "42 # c",
        "x",
        "(\n1)",
    ],
)
def test_left_to_compile(text):
    with pytest.raises(Unsupported):
        parse(text, 0)


def test_serializer_reads_small_calls_and_class_dicts_both_ways():
    ser = plugins.get_serializer("serpent")
    assert ser.loadsCall(ser.dumpsCall("bench", "ping", (42,), {})) == ("bench", "ping", (42,), {})
    data = b"# serpent utf-8 python3.2\n[{'__class__':'float','value':'nan'},{'a':{'__class__':'float','value':'inf'}}]"
    nan, inner = ser.loads(data)
    assert math.isnan(nan) and inner == {"a": math.inf}
    assert ser.loads(b"# serpent utf-8 python3.2\n(1,2)") == (1, 2)
    with pytest.raises(Exception, match="indent"):
        ser.loads(b"# serpent utf-8 python3.2\n  42")  # compile() refuses it: so does pyrite


def test_large_plain_data_is_read_without_compile_and_the_rest_with_it(monkeypatch):
    """A batch of 1,000 calls (18 KB), a long list, strings with the escapes repr() writes: plain
    data, read by serpent_small as compile() would read it.  A large value outside the subset
    (complex numbers, a line break) still reads right, through compile()."""
    from pyrite.serializers import serpent_serializer

    ser = plugins.get_serializer("serpent")
    compiled: list[int] = []
    plain_compile = serpent_serializer.SerpentSerializer._compile

    def counting(text):
        compiled.append(len(text))
        return plain_compile(text)

    monkeypatch.setattr(serpent_serializer.SerpentSerializer, "_compile", staticmethod(counting))
    batch = [("ping", (n,), {"k": [n, 1.5, None, True]}) for n in range(1000)]
    data = ser.dumps(batch)
    assert len(data) > 16 * 1024
    assert ser.loads(data) == ast.literal_eval(data.decode().split("\n", 1)[1])
    texts = ['it\'s "quoted"\n', "tab\t\\ \x00 \u20ac \U0001f600"] * 2000
    assert ser.loads(ser.dumps(texts)) == texts
    assert compiled == []
    outside = ser.dumps([1 + 2j] * 5000)  # complex numbers: serpent_small gives up, compile() reads them
    assert ser.loads(outside) == [1 + 2j] * 5000
    assert len(compiled) == 1
    broken = b"# serpent utf-8 python3.2\n[\n" + b"1,\n" * 20000 + b"]"  # line breaks: straight to compile()
    assert ser.loads(broken) == [1] * 20000
    assert len(compiled) == 2


# ------------------------------------------------------------------ json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_json_writes_what_pyro5_writes(value):
    import Pyro5.serializers

    ser, ref = plugins.get_serializer("json"), Pyro5.serializers.serializers["json"]
    assert ser.dumps(value) == ref.dumps(value)
    assert ser.dumpsCall("obj", "m", [value], {"k": value}) == ref.dumpsCall("obj", "m", [value], {"k": value})


json_soup = st.lists(
    st.sampled_from(
        [
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\n",
            '"a"',
            '"',
            "1",
            "-",
            "1.5e3",
            "true",
            "nul",
            "NaN",
            '"\\u00e9"',
            '"\\x"',
            "\x01",
            "Infinity",
            "0",
            "01",
        ]
    ),
    max_size=10,
)


@settings(max_examples=400, deadline=None)
@given(json_soup)
def test_json_reads_what_json_loads_reads_and_refuses_what_it_refuses(parts):
    text = "".join(parts)
    ser = plugins.get_serializer("json")
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(Exception, match="invalid json data"):
            ser.loads(text.encode())
    else:
        got = ser.loads(text.encode())
        assert got == expected or (got != got and expected != expected)  # NaN is not equal to itself

"""The large-payload fast paths write exactly Pyro5's bytes and read exactly what the slow way reads.

Each serializer has a shortcut for large bytes or strings (see msgpack_skim,
marshal_splice, json_bulk and serpent_bulk).  These tests compare the output
with Pyro5's serializer and the loaded values with the reference loader
(``ast.literal_eval``, ``json.loads``, ``msgpack.unpackb``), including data
the shortcut must leave alone (escapes, comments, prefixes, bad UTF-8).
"""

from __future__ import annotations

import ast
import datetime
import json
import marshal
import os

import msgpack
import Pyro5.core
import Pyro5.serializers
import pytest
import serpent
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrite.core import errors, plugins
from pyrite.core.uri import URI
from pyrite.serializers import json_bulk, marshal_splice, msgpack_skim, serpent_bulk

BIG = 70_000  # above every fast path's threshold (64 KiB)
BLOB = os.urandom(BIG)


def ours(name):
    return plugins.get_serializer(name)


def pyro5(name):
    return Pyro5.serializers.serializers[name]


def big_text(piece: str, size: int = BIG) -> str:
    piece = piece or "x"
    return piece * (size // len(piece) + 1)


small_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


# ------------------------------------------------------------------ msgpack


@settings(max_examples=25, deadline=None)
@given(st.lists(small_values | st.just(BLOB) | st.just(BLOB[:-7]), min_size=1, max_size=5), small_values)
def test_msgpack_large_bytes_are_written_as_pyro5_writes_them(vargs, extra):
    ser, ref = ours("msgpack"), pyro5("msgpack")
    kwargs = {"k": extra}
    assert ser.dumpsCall("obj", "m", tuple(vargs), kwargs) == ref.dumpsCall("obj", "m", tuple(vargs), kwargs)
    assert ser.dumpsCall("obj", "m", list(vargs), {}) == ref.dumpsCall("obj", "m", list(vargs), {})
    assert ser.dumps(vargs) == ref.dumps(vargs)
    assert ser.dumps(tuple(vargs)) == ref.dumps(tuple(vargs))


def test_msgpack_large_bytes_alone():
    assert ours("msgpack").dumps(BLOB) == pyro5("msgpack").dumps(BLOB) == msgpack.packb(BLOB)


@settings(max_examples=60, deadline=None)
@given(small_values, st.booleans())
def test_msgpack_skim_never_misses_a_class_key(value, with_class):
    if with_class:
        value = [value, {"__class__": "x", "v": BLOB}]
    data = msgpack.packb([BLOB, value])
    verdict = msgpack_skim.skim(data)
    if verdict is False:
        assert b"__class__" not in data
    if with_class:
        assert verdict is not False


def test_msgpack_skim_decides_the_echo_shapes_without_searching():
    ser = ours("msgpack")
    assert msgpack_skim.skim(ser.dumpsCall("bench", "echo", (BLOB,), {})) is False
    assert msgpack_skim.skim(memoryview(ser.dumps(BLOB))) is False
    assert msgpack_skim.skim(ser.dumps([BLOB, {"__class__": "y"}])) is True
    assert msgpack_skim.skim(msgpack.packb(list(range(1000)))) is None  # too many steps
    assert msgpack_skim.skim(ser.dumps(BLOB)[:-1]) is None  # truncated: unpackb decides
    assert msgpack_skim.skim(memoryview(ser.dumps(BLOB)).cast("c")) is None  # not plain bytes items


def test_msgpack_large_data_still_rebuilds_class_dicts():
    ser, ref = ours("msgpack"), pyro5("msgpack")
    uri = Pyro5.core.URI("PYRO:obj@localhost:5555")
    for data in (ref.dumps([BLOB, uri]), ref.dumpsCall("o", "m", (BLOB, uri), {})):
        loaded = ser.loads(memoryview(data)) if data[0] != 0x94 else ser.loadsCall(memoryview(data))[2]
        assert loaded[0] == BLOB
        assert type(loaded[1]) is URI and str(loaded[1]) == str(uri)


def test_msgpack_broken_large_data_is_a_serialize_error():
    data = ours("msgpack").dumpsCall("o", "m", (BLOB,), {})
    for broken in (data[:-1], data[: BIG // 2], b"\xc1" + data):
        with pytest.raises(errors.SerializeError):
            ours("msgpack").loadsCall(broken)


# ------------------------------------------------------------------ marshal


@settings(max_examples=25, deadline=None)
@given(st.lists(small_values | st.just(BLOB) | st.just(BLOB[:-3]), min_size=1, max_size=5), small_values)
def test_marshal_large_bytes_load_as_pyro5s(vargs, extra):
    ser, ref = ours("marshal"), pyro5("marshal")
    call = ("obj", "m", tuple(vargs), {"k": extra})
    mine, theirs = ser.dumpsCall(*call), ref.dumpsCall(*call)
    assert marshal.loads(mine) == marshal.loads(theirs)
    assert len(mine) == len(theirs)  # the same items; only marshal's reference flags may differ
    assert ser.loadsCall(mine) == ref.loadsCall(theirs)
    for data in (tuple(vargs) + (extra,), [*vargs, extra]):
        assert marshal.loads(ser.dumps(data)) == marshal.loads(ref.dumps(data))


def test_marshal_splice_writes_what_marshal_writes():
    # the same large object twice: marshal writes the second as a reference
    other = BLOB[1:]
    data = ("id", "echo", [BLOB, 1, BLOB, other], {"k": BLOB, "j": other})
    spliced = marshal_splice.marshal_dumps(data, marshal.dumps)
    assert spliced == marshal.dumps(data)
    assert marshal.loads(spliced) == data
    assert marshal_splice.marshal_dumps((1, 2), marshal.dumps) == marshal.dumps((1, 2))
    # a value only the data refers to gets no reference flag from marshal (its placeholder
    # does): the one place the bytes may differ; the data is the same
    fresh = ("id", "echo", [os.urandom(BIG)], {})
    spliced = marshal_splice.marshal_dumps(fresh, marshal.dumps)
    assert marshal.loads(spliced) == fresh and len(spliced) == len(marshal.dumps(fresh))


def test_marshal_splice_gives_up_on_a_placeholder_lookalike():
    # data that happens to hold the placeholder's bytes: the splice must not touch it
    lookalike = marshal_splice._TOKEN + (0).to_bytes(4, "little")
    data = ("id", "echo", [BLOB, lookalike], {})
    assert marshal.loads(marshal_splice.marshal_dumps(data, marshal.dumps)) == data
    assert ours("marshal").loadsCall(ours("marshal").dumpsCall(*data))[2] == [BLOB, lookalike]


# ------------------------------------------------------------------ json

texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(texts, st.lists(small_values, max_size=3))
def test_json_large_strings_are_written_as_pyro5_writes_them(piece, others):
    ser, ref = ours("json"), pyro5("json")
    text = big_text(piece)
    assert ser.dumps(text) == ref.dumps(text)
    for vargs in ((text,), (*others, text), (text, *others, text)):
        assert ser.dumpsCall("obj", "m", vargs, {"k": others}) == ref.dumpsCall("obj", "m", vargs, {"k": others})


@settings(max_examples=40, deadline=None)
@given(texts, st.lists(small_values, max_size=3))
def test_json_large_strings_load_as_json_loads_them(piece, others):
    ser, ref = ours("json"), pyro5("json")
    text = big_text(piece)
    assert ser.loads(memoryview(ref.dumps(text))) == text
    data = ref.dumpsCall("obj", "m", [*others, text], {"k": text})
    assert ser.loadsCall(data) == ("obj", "m", [*others, text], {"k": text})
    document = json.dumps({text: [text, others], "x": text}, ensure_ascii=False).encode()
    assert ser.loads(document) == json.loads(document)


def test_json_reduce_takes_the_echo_shapes():
    text = big_text("0123456789abcdef")
    for data in (ours("json").dumps(text), ours("json").dumpsCall("bench", "echo", (text,), {})):
        rest, strings = json_bulk.reduce(data)
        assert strings == [text] and len(rest) < 100
    assert json_bulk.plain_string(text) == b'"' + text.encode() + b'"'
    assert json_bulk.plain_string(text + "\n") is None


@pytest.mark.parametrize(
    "document",
    [
        b'{"a": "@1", "a": "@2"}',  # duplicate keys: the last one wins
        b'{"@1": 1, "@1" : 2}',  # large keys are never cut out
        b'[\n"@1",\n"@2"\n]',  # newlines between tokens (pretty-printed)
        b'["@1\\n@2"]',  # an escape somewhere
        b'{"__class__": "Pyro5.core.URI", "state": ["PYRO", "@1", null, "localhost", 1]}',
    ],
)
def test_json_documents_load_as_json_loads_them(document):
    document = document.replace(b"@1", b"x" * BIG).replace(b"@2", "é".encode() * BIG)
    loaded = ours("json").loads(document)
    expected = pyro5("json").loads(document)
    if isinstance(expected, Pyro5.core.URI):
        assert type(loaded) is URI and str(loaded) == str(expected)
    else:
        assert loaded == expected


@pytest.mark.parametrize(
    "document",
    [
        b'["@1\x01"]',  # a control character inside a string
        b'["@1\xff"]',  # not UTF-8
        b'["@1", "@2]',  # unterminated
        b'["@1"] "@2"',  # extra data
        b'"@1',
    ],
)
def test_json_broken_large_documents_are_serialize_errors(document):
    with pytest.raises(errors.SerializeError):
        ours("json").loads(document.replace(b"@1", b"x" * BIG).replace(b"@2", b"y" * BIG))


# ------------------------------------------------------------------ serpent


@settings(max_examples=40, deadline=None)
@given(texts, st.lists(small_values, max_size=3))
def test_serpent_large_values_are_written_as_pyro5_writes_them(piece, others):
    ser, ref = ours("serpent"), pyro5("serpent")
    text = big_text(piece)
    for value in (text, [text, *others], {"k": text, text: others}, BLOB, bytearray(BLOB), memoryview(BLOB)):
        assert ser.dumps(value) == ref.dumps(value)
    vargs = (*others, BLOB, text)
    assert ser.dumpsCall("obj", "m", vargs, {"k": BLOB}) == ref.dumpsCall("obj", "m", vargs, {"k": BLOB})


@settings(max_examples=40, deadline=None)
@given(texts, st.lists(small_values, max_size=3))
def test_serpent_large_values_load_as_pyro5_loads_them(piece, others):
    ser, ref = ours("serpent"), pyro5("serpent")
    text = big_text(piece)
    for value in ([text, others, text], {text: 1, "k": (text, {text})}, BLOB):
        data = ref.dumps(value)
        assert ser.loads(memoryview(data)) == ref.loads(data)
    data = ref.dumpsCall("obj", "m", (BLOB, text, *others), {"k": text})
    assert ser.loadsCall(data) == ref.loadsCall(data)


def test_serpent_reduce_takes_the_echo_shapes():
    ser = ours("serpent")
    request = ser.dumpsCall("bench", "echo", (BLOB,), {})
    reply = ser.dumps(ser.loadsCall(request)[2][0])  # the echo: the base64 dict goes back
    for data in (request, reply):
        rest, strings = serpent_bulk.reduce(data)
        assert len(strings) == 1 and len(rest) < 200
    assert serpent.tobytes(ser.loads(reply)) == BLOB


@pytest.mark.parametrize(
    "text",
    [
        "('@1', # a comment with a quote '\n '@2')",
        "('''@1''', '@2')",  # triple quotes
        "(b'@1', r'@2', u'@1')",  # prefixes
        "('@1' '@2', 1)",  # adjacent literals are joined
        "('@1'  '@2')",
        "{'@1': 1, '@1': 2, '@2': {'@2'}}",
        "(\"@1's\", '@2\"')",  # both kinds of quotes
        "(\n'@1',\n'@2',\n)",
        "[1, 2.5, -3, '@1', ('@2',), None, True]",
        "{'__class__': 'Pyro5.core.URI', 'state': ('PYRO', '@1', None, 'localhost', 1)}",
    ],
)
def test_serpent_documents_load_as_literal_eval_loads_them(text):
    text = text.replace("@1", "x" * BIG).replace("@2", "é" * BIG)
    data = b"# serpent utf-8 python3.2\n" + text.encode()
    loaded = ours("serpent").loads(data)
    expected = pyro5("serpent").loads(data)
    if isinstance(expected, Pyro5.core.URI):
        assert type(loaded) is URI and str(loaded) == str(expected)
    else:
        assert loaded == expected == ast.literal_eval(text)


@pytest.mark.parametrize(
    "text",
    [
        "('@1\n@2',)",  # a line break inside a literal
        "('@1', '@2'",  # unterminated
        "('@1', f'@2')",  # not a literal
        "('@1', '@2\xff')",
        "('@1', '@2')) + 1",
        "('@1', '@2' # ')",
    ],
)
def test_serpent_broken_large_documents_are_serialize_errors(text):
    data = b"# serpent utf-8 python3.2\n" + text.encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff")
    data = data.replace(b"@1", b"x" * BIG).replace(b"@2", b"y" * BIG)
    with pytest.raises(errors.SerializeError) as refused:
        ours("serpent").loads(data)
    try:  # a syntax error is reported as compile() reports it for the whole text, positions included
        compile(data.decode("utf-8"), "<serpent>", "eval", ast.PyCF_ONLY_AST)
    except SyntaxError as exc:
        assert str(exc) in str(refused.value)
    except (UnicodeDecodeError, ValueError):
        pass


def test_serpent_class_dicts_get_their_large_strings():
    data = pyro5("serpent").dumps([{"__class__": "Pyro5.core.URI", "state": ("PYRO", "x" * BIG, None, "h", 1)}])
    (uri,) = ours("serpent").loads(data)
    assert type(uri) is URI and uri.object == "x" * BIG


# ------------------------------------------------------------------ msgpack's per-thread Packer


class Wrapped:
    def __init__(self, inner):
        self.inner = inner


def test_msgpack_packer_survives_reentry_errors_and_threads():
    import threading

    from pyrite.serializers import SerializerBase

    ser = ours("msgpack")

    # a converter that writes msgpack itself while the outer value is being written
    def to_dict(obj):
        return {"__class__": "test.Wrapped", "packed": ser.dumps(obj.inner)}

    SerializerBase.register_class_to_dict(Wrapped, to_dict)
    try:
        value = [1, Wrapped([2, Wrapped("x")]), {"k": b"y"}]
        expected = msgpack.packb(
            [
                1,
                {
                    "__class__": "test.Wrapped",
                    "packed": msgpack.packb([2, {"__class__": "test.Wrapped", "packed": msgpack.packb("x")}]),
                },
                {"k": b"y"},
            ],
            use_bin_type=True,
        )
        assert ser.dumps(value) == expected
        with pytest.raises(errors.SerializeError):
            ser.dumps([1, "x" * 100, datetime.datetime.now(datetime.timezone.utc)])  # msgpack takes naive ones only
        assert ser.dumps([3, "after an error"]) == msgpack.packb([3, "after an error"], use_bin_type=True)
        assert ser.dumps(list(range(300_000))) == msgpack.packb(list(range(300_000)))  # a grown buffer
        assert ser.dumps(7) == msgpack.packb(7)

        results: dict[int, bool] = {}

        def work(n: int) -> None:
            results[n] = all(ser.dumps([n, i, "t" * n]) == msgpack.packb([n, i, "t" * n]) for i in range(300))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert results == {n: True for n in range(8)}
    finally:
        SerializerBase.unregister_class_to_dict(Wrapped)

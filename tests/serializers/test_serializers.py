"""Round trips, protocol classes, exceptions and refusals for every built-in serializer."""

from __future__ import annotations

import array
import collections
import datetime
import decimal
import enum
import fractions
import threading
import uuid

import pytest
import serpent
from pyrite.core import errors, plugins
from pyrite.core.client import Proxy
from pyrite.core.config import config
from pyrite.core.errors import ExceptionWrapper, PyroError, SecurityError, SerializeError
from pyrite.core.uri import URI
from pyrite.serializers import (
    SerializerBase,
    register_class_to_dict,
    register_dict_to_class,
    unregister_class_to_dict,
    unregister_dict_to_class,
)
from pyrite.serializers.cbor_serializer import CborSerializer
from pyrite.serializers.json_serializer import JsonSerializer
from pyrite.serializers.marshal_serializer import MarshalSerializer
from pyrite.serializers.msgpack_serializer import MsgpackSerializer
from pyrite.serializers.serpent_serializer import SerpentSerializer

NAMES = ["serpent", "marshal", "json", "msgpack", "cbor2"]
IDS = {"serpent": 1, "marshal": 2, "json": 3, "msgpack": 4, "cbor2": 5}


@pytest.fixture(params=NAMES)
def ser(request):
    plugins.reset()
    return plugins.get_serializer(request.param)


def roundtrip(ser, value):
    return ser.loads(ser.dumps(value))


# ---------------------------------------------------------------- basic values

COMMON = [
    None,
    True,
    False,
    0,
    -1,
    2**62,
    2**70,
    -(2**70),
    1.5,
    -0.0,
    "",
    "text",
    "ünïcødé ✓ \n\t'\"\\",
    [],
    [1, "a", None],
    {},
    {"a": 1, "b": [1, 2, {"c": None}]},
    [[[[1]]]],
]


@pytest.mark.parametrize("value", COMMON, ids=repr)
def test_common_values_round_trip(ser, value):
    assert roundtrip(ser, value) == value


def test_registry_gives_each_builtin_by_name_and_id():
    plugins.reset()
    for name, sid in IDS.items():
        s = plugins.get_serializer(name)
        assert s.serializer_id == sid and s.name == name
        assert plugins.get_serializer_by_id(sid) is s
        assert isinstance(s, SerializerBase)
    assert isinstance(plugins.get_serializer("serpent"), SerpentSerializer)
    assert isinstance(plugins.get_serializer("marshal"), MarshalSerializer)
    assert isinstance(plugins.get_serializer("json"), JsonSerializer)
    assert isinstance(plugins.get_serializer("msgpack"), MsgpackSerializer)
    assert isinstance(plugins.get_serializer("cbor2"), CborSerializer)


def test_tuples_keep_or_become_lists(ser):
    back = roundtrip(ser, (1, (2, 3)))
    if ser.name in ("serpent", "marshal"):
        assert back == (1, (2, 3))
    else:
        assert back == [1, [2, 3]]


def test_sets(ser):
    back = roundtrip(ser, {1, 2, 3})
    if ser.name in ("serpent", "marshal", "cbor2"):
        assert back == {1, 2, 3}
    else:
        assert sorted(back) == [1, 2, 3]
    back = roundtrip(ser, frozenset({"x"}))
    assert set(back) == {"x"}


def test_bytes(ser):
    data = b"\x00\x01binary\xff"
    if ser.name == "json":
        with pytest.raises(SerializeError):
            ser.dumps(data)
        return
    back = roundtrip(ser, data)
    if ser.name == "serpent":
        # as Pyro5: serpent delivers its base64 dict; serpent.tobytes() makes bytes of it
        assert back == {"data": "AAFiaW5hcnn/", "encoding": "base64"}
        assert serpent.tobytes(back) == data
    else:
        assert back == data
    assert (
        bytes(
            roundtrip(ser, bytearray(data))
            if ser.name != "serpent"
            else serpent.tobytes(roundtrip(ser, bytearray(data)))
        )
        == data
    )


def test_serpent_bytes_repr_config():
    ser = plugins.get_serializer("serpent")
    config.SERPENT_BYTES_REPR = True
    assert b"b'\\x00ab'" in ser.dumps(b"\x00ab")
    assert roundtrip(ser, b"\x00ab") == b"\x00ab"
    assert ser.loadsCall(ser.dumpsCall("o", "m", (b"xy",), {}))[2] == (b"xy",)


def test_complex(ser):
    if ser.name == "json":
        with pytest.raises(SerializeError):
            ser.dumps(1 + 2j)
        return
    assert roundtrip(ser, 1.5 - 2j) == 1.5 - 2j


def test_non_finite_floats(ser):
    back = roundtrip(ser, [float("inf"), float("-inf"), float("nan")])
    assert back[0] == float("inf") and back[1] == float("-inf") and back[2] != back[2]


def test_uuid_decimal_as_pyro5(ser):
    u = uuid.uuid4()
    d = decimal.Decimal("3.14159265358979323846264338327950288")
    if ser.name == "cbor2":
        assert roundtrip(ser, [u, d]) == [u, d]
    else:
        assert list(roundtrip(ser, [u, d])) == [str(u), str(d)]


def test_datetimes(ser):
    dt = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
    date = datetime.date(2024, 5, 6)
    back = roundtrip(ser, [dt, date])
    if ser.name in ("serpent", "json", "marshal"):
        assert back == [dt.isoformat(), date.isoformat()]
    else:
        assert back == [dt, date]
    if ser.name == "msgpack":
        with pytest.raises(SerializeError):
            ser.dumps(datetime.datetime.now(datetime.timezone.utc))
    if ser.name == "cbor2":
        aware = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
        t = datetime.time(1, 2, 3, 4)
        delta = datetime.timedelta(days=2, seconds=5, microseconds=6)
        assert roundtrip(ser, [aware, t, delta, fractions.Fraction(1, 3)]) == [
            aware,
            t,
            delta,
            fractions.Fraction(1, 3),
        ]


def test_arrays(ser):
    assert list(roundtrip(ser, array.array("i", [1, 2, 3]))) == [1, 2, 3]
    assert roundtrip(ser, array.array("u", "hello")) == "hello"


def test_serpent_specials():
    ser = plugins.get_serializer("serpent")
    Color = enum.Enum("Color", "RED GREEN")
    assert roundtrip(ser, [Color.GREEN, collections.deque([1, 2]), datetime.timedelta(seconds=90)]) == [2, [1, 2], 90.0]
    assert roundtrip(ser, complex(float("nan"), 1)).imag == 1.0
    assert roundtrip(ser, set()) == ()


def test_marshal_converts_nested_unmarshallable_values():
    ser = plugins.get_serializer("marshal")
    u = uuid.uuid4()
    Level = enum.IntEnum("Level", "LOW HIGH")
    back = ser.loads(
        ser.dumps({"ids": [u], "when": datetime.date(2020, 1, 2), "lvl": Level.HIGH, "uri": URI("PYRO:x@h:1")})
    )
    assert back == {"ids": [str(u)], "when": "2020-01-02", "lvl": 2, "uri": URI("PYRO:x@h:1")}
    assert type(back["lvl"]) is int


def test_memoryview_and_bytearray_input(ser):
    value = {"k": [1, 2, "three"], "u": URI("PYRO:obj@localhost:1234")}
    data = ser.dumps(value)
    for form in (memoryview(data), bytearray(data), memoryview(b"xx" + data)[2:]):
        assert ser.loads(form) == value
    call = ser.dumpsCall("obj", "method", (1, URI("PYRO:a@b:1")), {"kw": "v"})
    for form in (call, memoryview(call), bytearray(call)):
        obj, method, vargs, kwargs = ser.loadsCall(form)
        assert (obj, method, list(vargs), kwargs) == ("obj", "method", [1, URI("PYRO:a@b:1")], {"kw": "v"})


def test_call_round_trip(ser):
    obj, method, vargs, kwargs = ser.loadsCall(ser.dumpsCall("objid", "add", (1, "two", [3]), {"x": {"y": 4}}))
    assert obj == "objid" and method == "add"
    assert list(vargs) == [1, "two", [3]]
    assert kwargs == {"x": {"y": 4}}


def test_call_with_none_kwargs(ser):
    # Pyro5 proxies send kwargs None for __getattr__, __setattr__ and batched calls; it loads as {}
    assert ser.loadsCall(ser.dumpsCall("o", "__getattr__", ("attr",), None))[3] == {}


def test_call_with_blob_data_as_vargs(ser):
    # a SerializedBlob sends its data in the vargs slot, as it is
    obj, method, vargs, kwargs = ser.loadsCall(ser.dumpsCall("o", "m", {"blob": [1, 2]}, {}))
    assert vargs == {"blob": [1, 2]} and kwargs == {}


# ---------------------------------------------------------------- protocol classes

URIS = [
    "PYRO:obj@localhost:5555",
    "PYRO:obj@[::1]:5555",
    "PYRO:obj@./u:/tmp/sock",
    "PYRONAME:some.name",
    "PYRONAME:some.name@nshost:1234",
    "PYROMETA:meta1,meta2@localhost",
]


@pytest.mark.parametrize("text", URIS)
def test_uri_round_trip(ser, text):
    uri = URI(text)
    back = roundtrip(ser, uri)
    assert isinstance(back, URI) and back == uri and str(back) == str(uri)


def test_uri_wire_form(ser):
    uri = URI("PYRO:obj@localhost:5555")
    assert SerializerBase.class_to_dict(uri) == {
        "__class__": "Pyro5.core.URI",
        "state": ("PYRO", "obj", None, "localhost", 5555),
    }
    assert b"Pyro5.core.URI" in ser.dumps(uri)


def test_nested_protocol_objects(ser):
    value = {"list": [URI("PYRO:a@h:1"), {"deep": (URI("PYRO:b@h:2"),)}]}
    back = roundtrip(ser, value)
    assert back["list"][0] == URI("PYRO:a@h:1")
    assert back["list"][1]["deep"][0] == URI("PYRO:b@h:2")


def make_proxy():
    proxy = Proxy("PYRO:thing@localhost:4444")
    proxy._pyroOneway = {"fire"}
    proxy._pyroMethods = {"fire", "get"}
    proxy._pyroAttrs = {"value"}
    proxy._pyroHandshake = {"hello": "there"}
    return proxy


def test_proxy_round_trip(ser):
    proxy = make_proxy()
    back = roundtrip(ser, proxy)
    assert type(back) is Proxy
    assert back._pyroUri == URI("PYRO:thing@localhost:4444")
    assert back._pyroOneway == {"fire"} and back._pyroMethods == {"fire", "get"} and back._pyroAttrs == {"value"}
    assert back._pyroHandshake == {"hello": "there"}
    assert back._pyroConnection is None
    d = SerializerBase.class_to_dict(proxy)
    assert d["__class__"] == "Pyro5.client.Proxy" and len(d["state"]) == 6


def test_proxy_subclass_travels_as_plain_proxy(ser):
    class MyProxy(Proxy):
        pass

    back = roundtrip(ser, MyProxy("PYRO:x@localhost:1"))
    assert type(back) is Proxy and back._pyroUri == URI("PYRO:x@localhost:1")


# ---------------------------------------------------------------- exceptions


def test_pyrite_errors_round_trip_with_traceback(ser):
    for cls in errors.ERROR_CLASSES.values():
        exc = cls("message", 42)
        exc._pyroTraceback = ["Traceback (most recent call last):\n", "  boom\n"]
        back = roundtrip(ser, exc)
        assert type(back) is cls and back.args == ("message", 42)
        assert back._pyroTraceback == exc._pyroTraceback
        assert SerializerBase.class_to_dict(exc)["__class__"] == "Pyro5.errors." + cls.__name__


def test_pyrite_internal_error_subclasses_travel_as_public_ancestor(ser):
    back = roundtrip(ser, plugins.UnknownPluginError("no such thing"))
    assert type(back) is PyroError and back.args == ("no such thing",)


def test_builtin_exceptions_round_trip(ser):
    for exc in (
        ValueError("v"),
        ZeroDivisionError("division by zero"),
        KeyError("k"),
        OSError(2, "gone"),
        RuntimeError(),
    ):
        exc.custom = "attr"
        back = roundtrip(ser, exc)
        assert type(back) is type(exc) and back.args == exc.args and back.custom == "attr"


def test_exception_wire_form():
    exc = ValueError("x")
    exc._pyroTraceback = ["tb"]
    assert SerializerBase.class_to_dict(exc) == {
        "__class__": "builtins.ValueError",
        "__exception__": True,
        "args": ("x",),
        "attributes": {"_pyroTraceback": ["tb"]},
    }


def test_exception_wrapper_round_trip(ser):
    inner = errors.NamingError("unknown name")
    inner._pyroTraceback = ["remote tb\n"]
    back = roundtrip(ser, [ExceptionWrapper(inner), 1])
    wrapper = back[0]
    assert isinstance(wrapper, ExceptionWrapper)
    assert type(wrapper.exception) is errors.NamingError
    with pytest.raises(errors.NamingError) as info:
        wrapper.raiseIt()
    assert info.value._pyroTraceback == ["remote tb\n"]
    d = SerializerBase.class_to_dict(ExceptionWrapper(inner))
    assert (
        d["__class__"] == "Pyro5.core._ExceptionWrapper" and d["exception"]["__class__"] == "Pyro5.errors.NamingError"
    )


@pytest.mark.parametrize("cls", [SystemExit, KeyboardInterrupt, GeneratorExit, BaseException])
def test_base_exceptions_are_never_rebuilt(ser, cls):
    exc = cls("stop")
    exc._pyroTraceback = ["tb line\n"]
    back = roundtrip(ser, exc)
    assert type(back) is PyroError
    assert cls is BaseException or not isinstance(back, cls)
    assert cls.__name__ in str(back) and "stop" in str(back)
    assert back._pyroTraceback == ["tb line\n"]


def test_unknown_exception_class_is_refused_as_in_pyro5(ser):
    class LocalError(Exception):
        pass

    with pytest.raises(SerializeError, match="no converter for serialized class .*LocalError"):
        roundtrip(ser, LocalError("x"))


def test_exception_attributes_cannot_reach_dunders():
    data = {
        "__class__": "builtins.ValueError",
        "__exception__": True,
        "args": ["x"],
        "attributes": {"__class__": "builtins.SystemExit", "__dict__": {}, "__traceback__": "x", "ok": 1},
    }
    exc = SerializerBase.dict_to_class(data)
    assert type(exc) is ValueError and exc.ok == 1 and exc.__traceback__ is None


def test_bad_exception_args_are_serialize_errors():
    with pytest.raises(SerializeError):
        SerializerBase.dict_to_class(
            {"__class__": "builtins.UnicodeDecodeError", "__exception__": True, "args": ["too", "few"]}
        )
    with pytest.raises(SerializeError):
        SerializerBase.dict_to_class({"__class__": "builtins.ValueError", "__exception__": True, "args": 5})


# ---------------------------------------------------------------- custom classes and refusals


class Thing:
    def __init__(self, name, size):
        self.name = name
        self.size = size


class SlotThing:
    __slots__ = ("a", "b")

    def __init__(self):
        self.a, self.b = 1, 2


def test_unregistered_classes_are_refused(ser):
    data = ser.dumps(Thing("x", 1))
    with pytest.raises(
        SerializeError, match=r"no converter for serialized class tests\.serializers\.test_serializers\.Thing"
    ):
        ser.loads(data)
    assert SerializerBase.class_to_dict(SlotThing()) == {
        "a": 1,
        "b": 2,
        "__class__": "tests.serializers.test_serializers.SlotThing",
    }


@pytest.mark.parametrize(
    "classname",
    ["os.system", "subprocess.Popen", "builtins.eval", "pickle.loads", "collections.OrderedDict", "builtins.object"],
)
def test_arbitrary_class_names_are_refused(ser, classname):
    with pytest.raises(SerializeError):
        ser.loads(ser.dumps({"__class__": classname, "args": ["rm -rf /"]}))


def test_double_underscore_names_are_security_errors(ser):
    with pytest.raises(SecurityError):
        ser.loads(ser.dumps({"__class__": "builtins.__import__", "x": 1}))


def test_registered_converters_round_trip(ser):
    def to_dict(obj):
        return {"__class__": "test.Thing", "name": obj.name, "size": obj.size}

    def from_dict(classname, data):
        assert classname == "test.Thing"
        return Thing(data["name"], data["size"])

    register_class_to_dict(Thing, to_dict)
    register_dict_to_class("test.Thing", from_dict)
    try:
        back = roundtrip(ser, {"things": [Thing("a", 1), Thing("b", 2)]})
        assert [(t.name, t.size) for t in back["things"]] == [("a", 1), ("b", 2)]
        call = ser.loadsCall(ser.dumpsCall("o", "m", (Thing("c", 3),), {"t": Thing("d", 4)}))
        assert call[2][0].name == "c" and call[3]["t"].size == 4
    finally:
        unregister_class_to_dict(Thing)
        unregister_dict_to_class("test.Thing")
    with pytest.raises(SerializeError):
        roundtrip(ser, Thing("a", 1))


def test_serpent_too_false_leaves_serpent_alone():
    ser = plugins.get_serializer("serpent")
    register_class_to_dict(Thing, lambda obj: {"__class__": "custom"}, serpent_too=False)
    try:
        assert b"custom" not in ser.dumps(Thing("n", 1))
        assert b"custom" in plugins.get_serializer("json").dumps(Thing("n", 1))
    finally:
        unregister_class_to_dict(Thing)


def test_registries_are_shared_by_all_serializers():
    register_dict_to_class("shared.Name", lambda name, data: ("made", data["v"]))
    try:
        for name in NAMES:
            ser = plugins.get_serializer(name)
            assert tuple(roundtrip(ser, {"__class__": "shared.Name", "v": 7})) == ("made", 7)
    finally:
        unregister_dict_to_class("shared.Name")


def test_type_replacement(ser):
    class Service:
        pass

    type(ser).register_type_replacement(Service, lambda obj: URI("PYRO:replaced@localhost:1"))
    try:
        assert roundtrip(ser, [Service()]) == [URI("PYRO:replaced@localhost:1")]
        assert list(ser.loadsCall(ser.dumpsCall("o", "m", (Service(),), {}))[2]) == [URI("PYRO:replaced@localhost:1")]
    finally:
        type(ser).unregister_type_replacement(Service)
    with pytest.raises(ValueError):
        ser.register_type_replacement(type, lambda obj: obj)
    with pytest.raises(ValueError):
        ser.register_type_replacement("notatype", lambda obj: obj)


def test_autoproxy_style_replacement_gives_proxy(ser):
    class Service:
        pass

    def to_proxy(obj):
        return make_proxy()

    ser.register_type_replacement(Service, to_proxy)
    try:
        back = roundtrip(ser, {"svc": Service()})
        assert type(back["svc"]) is Proxy and back["svc"]._pyroMethods == {"fire", "get"}
    finally:
        ser.unregister_type_replacement(Service)


# ---------------------------------------------------------------- hostile input

GARBAGE = [
    b"",
    b"\xff\xfe\xfd",
    b"[1, 2",
    b"{'a': }",
    b"__import__('os').system('true')",
    b"\x93\x01\x02",
    b"\xc1" * 10,
    b"[" * 100000,
    b"\xdb\xff\xff\xff\xff",
    b"\x85" * 50,
    b"\xa8\xff\xff\xff\x7f",
    b"[\x00\x00\x00\x40" * 3,
    b"\xdd\xff\xff\xff\xff",
    b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_is_a_serialize_error(ser, data):
    # includes headers that declare billions of items: refused without reserving the memory
    with pytest.raises(PyroError):
        ser.loads(data)
    with pytest.raises(PyroError):
        ser.loadsCall(data)


@pytest.mark.parametrize("code", [b"l", b"\xec", b"(", b"[", b"\xa8", b"\xdb"])
def test_marshal_refuses_huge_declared_sizes_within_the_memory_of_the_data(code):
    # a long ('l') reserves two bytes per declared digit, a tuple or list eight per item;
    # with the address space capped at 1 GiB, loading any of these unguarded would fail
    # with MemoryError instead of the guard's SerializeError
    import resource

    ser = plugins.get_serializer("marshal")
    limit = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(
        resource.RLIMIT_AS, (max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 * 2, 1 << 30), limit[1])
    )
    try:
        for pad in (b"", b"s\x00\x00\x01\x00" + b"x" * 65536):  # short data, and data past the walk-first size
            data = (
                (b")\x02" + pad + code + (2**31 - 1).to_bytes(4, "little"))
                if pad
                else code + (2**31 - 1).to_bytes(4, "little")
            )
            with pytest.raises(SerializeError) as caught:
                ser.loads(data)
            assert "MemoryError" not in str(caught.value)  # refused by the guard, not by running out
    finally:
        resource.setrlimit(resource.RLIMIT_AS, limit)


def test_marshal_guard_passes_big_plain_data_exactly():
    import marshal

    ser = plugins.get_serializer("marshal")
    big = bytes(range(256)) * 8192 + b"(\xff\xff\xff\x7f" * 1000  # header-like bytes inside a bytes value
    assert ser.loads(marshal.dumps([big, list(range(3000)), "l\xff\xff\xff\x7f"])) == [
        big,
        list(range(3000)),
        "l\xff\xff\xff\x7f",
    ]


def test_wrong_call_shapes_are_serialize_errors(ser):
    for value in (1, "x", [1, 2, 3], {"a": 1}, ["o", "m", [], "notadict"], ["o", "m", [], [1]]):
        data = ser.dumps(value)
        with pytest.raises(SerializeError):
            ser.loadsCall(data)


def test_serpent_refuses_code():
    ser = plugins.get_serializer("serpent")
    for text in (
        b"__import__('os').getcwd()",
        b"[x for x in ()]",
        b"(lambda: 1)",
        b"1 if True else 2",
        b"{**{}}",
        b"open('/etc/passwd')",
    ):
        with pytest.raises(SerializeError):
            ser.loads(text)


def test_marshal_refuses_code_objects_and_other_non_data():
    import marshal

    ser = plugins.get_serializer("marshal")
    code = compile("print('hi')", "<x>", "exec")
    for value in (code, [1, code], {"k": (code,)}, Ellipsis, ("o", "m", [code], {})):
        with pytest.raises(SerializeError):
            ser.loads(marshal.dumps(value))
    with pytest.raises(SerializeError):
        ser.loadsCall(marshal.dumps(("o", "m", [code], {})))


def test_msgpack_unknown_ext_and_int_keys():
    import msgpack

    ser = plugins.get_serializer("msgpack")
    with pytest.raises(SerializeError):
        ser.loads(msgpack.packb(msgpack.ExtType(0x55, b"x")))
    with pytest.raises(SerializeError):
        ser.loads(msgpack.packb({1: 2}))


def test_cbor_refuses_unsafe_tags():
    import cbor2

    ser = plugins.get_serializer("cbor2")
    for payload in (
        cbor2.dumps(cbor2.CBORTag(35, "a+")),
        cbor2.dumps(cbor2.CBORTag(36, "text")),
        bytes.fromhex("d81c81d81d00"),
        cbor2.dumps(cbor2.CBORTag(999999, 1)),
    ):
        with pytest.raises(SerializeError):
            ser.loads(payload)


def test_invalid_uri_and_proxy_states_are_refused(ser):
    for data in (
        {"__class__": "Pyro5.core.URI", "state": ["PYRO", "x", None, "h", "notaport"]},
        {"__class__": "Pyro5.core.URI", "state": ["EVIL", "x", None, "h", 1]},
        {"__class__": "Pyro5.core.URI"},
        {"__class__": "Pyro5.client.Proxy", "state": ["PYRO:x@h:1", [], [], []]},
        {"__class__": "Pyro5.client.Proxy", "state": ["PYRO:x@h:1", [1], [], [], None, None]},
        {"__class__": "Pyro5.core._ExceptionWrapper", "exception": 42},
        {"__class__": "Pyro5.errors.NoSuchError", "args": []},
    ):
        with pytest.raises(PyroError):
            ser.loads(ser.dumps(data))


def test_daemon_marker_becomes_none(ser):
    assert roundtrip(ser, {"__class__": "Pyro5.server.Daemon", "state": ()}) is None


def test_circular_data_is_refused(ser):
    data = [1]
    data.append(data)
    if ser.name == "marshal":
        # marshal writes cycles (as in Pyro5); pyrite refuses to load them
        with pytest.raises(SerializeError):
            ser.loads(ser.dumps(data))
        return
    with pytest.raises((ValueError, SerializeError)):
        ser.dumps(data)


# ---------------------------------------------------------------- threads


def test_shared_instance_is_thread_safe(ser):
    failures = []

    def work(n):
        try:
            for i in range(150):
                value = {"n": n, "i": i, "uri": URI(f"PYRO:obj{n}@localhost:{1000 + i}"), "l": list(range(i % 7))}
                assert ser.loads(ser.dumps(value)) == value
                obj, method, vargs, kwargs = ser.loadsCall(ser.dumpsCall(f"o{n}", "m", (i,), {"k": n}))
                assert (obj, list(vargs), kwargs) == (f"o{n}", [i], {"k": n})
        except Exception as x:  # collected and reported by the main thread
            failures.append(x)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert failures == []

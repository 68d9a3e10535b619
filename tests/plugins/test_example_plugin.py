"""The example third-party serializer (examples/plugin-serializer), found through its installed entry point."""

from __future__ import annotations

import importlib.metadata

import pytest
from pyrite.core import plugins
from pyrite.core.errors import ExceptionWrapper, NamingError, PyroError, SerializeError
from pyrite.core.uri import URI


@pytest.fixture
def ser():
    plugins.reset()
    return plugins.get_serializer("example-repr")


def test_entry_point_is_installed_by_its_distribution():
    eps = [ep for ep in importlib.metadata.entry_points(group="pyrite.serializers") if ep.name == "example-repr"]
    assert len(eps) == 1
    assert eps[0].value == "pyrite_example_serializer:ReprSerializer"
    assert eps[0].dist.name == "pyrite-example-serializer"


def test_found_by_name_and_id(ser):
    from pyrite_example_serializer import ReprSerializer

    assert type(ser) is ReprSerializer
    assert ser.serializer_id == 42 and ser.name == "example-repr"
    assert plugins.get_serializer_by_id(42) is ser
    assert "example-repr" in plugins.all_serializers()


@pytest.mark.parametrize(
    "value", [None, 1, -(2**100), 1.5, "tëxt", b"\x00bytes", [1, [2]], (1, (2,)), {"a": {1: 2}}, {1, 2}, 3 - 4j]
)
def test_round_trips(ser, value):
    assert ser.loads(ser.dumps(value)) == value


def test_non_finite_floats(ser):
    back = ser.loads(ser.dumps([float("inf"), float("-inf"), float("nan")]))
    assert back[0] == float("inf") and back[1] == float("-inf") and back[2] != back[2]


def test_protocol_classes_and_exceptions(ser):
    err = NamingError("gone")
    err._pyroTraceback = ["tb\n"]
    back = ser.loads(ser.dumps([URI("PYRO:x@localhost:1"), err, ExceptionWrapper(ValueError("v"))]))
    assert back[0] == URI("PYRO:x@localhost:1")
    assert type(back[1]) is NamingError and back[1]._pyroTraceback == ["tb\n"]
    assert type(back[2].exception) is ValueError


def test_calls(ser):
    obj, method, vargs, kwargs = ser.loadsCall(ser.dumpsCall("obj", "meth", (1, URI("PYRO:a@b:2")), {"k": "v"}))
    assert (obj, method, vargs, kwargs) == ("obj", "meth", (1, URI("PYRO:a@b:2")), {"k": "v"})


def test_never_runs_code(ser):
    for text in (
        b"__import__('os').system('echo hacked')",
        b"open('/etc/passwd').read()",
        b"(lambda: 1)()",
        b"[x for x in range(3)]",
    ):
        with pytest.raises(SerializeError):
            ser.loads(text)
    with pytest.raises(PyroError):
        ser.loads(b"{'__class__': 'os.system', 'cmd': 'true'}")


def test_type_replacement_applies(ser):
    class Service:
        pass

    type(ser).register_type_replacement(Service, lambda obj: URI("PYRO:svc@localhost:3"))
    try:
        assert ser.loads(ser.dumps([Service()])) == [URI("PYRO:svc@localhost:3")]
    finally:
        type(ser).unregister_type_replacement(Service)

"""expose / oneway / behavior / callback and the inspection of exposed members."""

from __future__ import annotations

import pytest
from pyrite.core import exposure
from pyrite.core.exposure import (
    behavior,
    callback,
    expose,
    get_exposed_members,
    get_exposed_property_value,
    is_private_attribute,
    method_table,
    oneway,
    reset_exposed_members,
    set_exposed_property_value,
)


class PartlyExposed:
    c_attr = "hi"

    def __init__(self):
        self.value = 42

    def __dunder__(self):
        return "dunder"

    def _private(self):
        pass

    def __private(self):
        pass

    def method(self):
        pass

    @expose
    def exposed(self):
        return "exposed"

    @classmethod
    def classmethod(cls):
        pass

    @staticmethod
    def staticmethod():
        pass

    @expose
    @oneway
    def oneway(self):
        pass

    @expose
    @property
    def prop1(self):
        return self.value

    @expose
    @prop1.setter
    def prop1(self, value):
        self.value = value

    @property
    def prop2(self):
        return self.value

    @expose
    @property
    def readonly_prop1(self):
        return self.value


@expose
class FullyExposed(PartlyExposed):
    def sub_method(self):
        pass

    @classmethod
    def sub_classmethod(cls):
        return "cm"

    @staticmethod
    def sub_staticmethod():
        return "sm"

    def __len__(self):
        return 3

    @oneway
    def sub_oneway(self):
        pass

    @property
    def sub_prop(self):
        return 1

    @sub_prop.setter
    def sub_prop(self, value):
        pass


def test_private_attribute_names():
    for name in (
        "_",
        "__",
        "___",
        "_p",
        "_pp",
        "_p_",
        "_p__",
        "__p",
        "___p",
        "__init__",
        "__call__",
        "__getattr__",
        "__setattr__",
        "__getattribute__",
        "__repr__",
        "__reduce__",
        "__class__",
        "__dict__",
        "__del__",
        "__getstate__",
    ):
        assert is_private_attribute(name), name
    for name in ("__dunder__", "__len__", "__getitem__", "method", "m_", "x"):
        assert not is_private_attribute(name), name


def test_members_of_partly_exposed_class_and_instance():
    m = get_exposed_members(PartlyExposed())
    assert m == get_exposed_members(PartlyExposed)
    assert m == {"methods": {"exposed", "oneway"}, "oneway": {"oneway"}, "attrs": {"prop1", "readonly_prop1"}}


def test_whole_class_expose_marks_own_members_not_inherited_ones():
    m = get_exposed_members(FullyExposed)
    # own members (methods, class/static methods, dunder, properties) plus what the base exposed itself
    assert m["methods"] == {
        "sub_method",
        "sub_classmethod",
        "sub_staticmethod",
        "__len__",
        "sub_oneway",
        "exposed",
        "oneway",
    }
    assert m["oneway"] == {"sub_oneway", "oneway"}
    assert m["attrs"] == {"sub_prop", "prop1", "readonly_prop1"}
    assert FullyExposed._pyroExposed is True


def test_not_only_exposed_lists_every_public_member():
    m = get_exposed_members(PartlyExposed, only_exposed=False)
    assert m["methods"] == {"method", "exposed", "classmethod", "staticmethod", "oneway", "__dunder__"}
    assert m["attrs"] == {"prop1", "prop2", "readonly_prop1"}


def test_as_lists_and_fresh_containers():
    m = get_exposed_members(PartlyExposed, as_lists=True)
    assert isinstance(m["methods"], list) and sorted(m["methods"]) == ["exposed", "oneway"]
    m2 = get_exposed_members(PartlyExposed)
    m2["methods"].add("hack")  # the caller may change what it got: the cache is untouched
    assert "hack" not in get_exposed_members(PartlyExposed)["methods"]


def test_cache_and_reset():
    class Thing:
        @expose
        def one(self):
            pass

    assert get_exposed_members(Thing)["methods"] == {"one"}
    Thing.two = expose(lambda self: None)
    Thing.two.__name__ = "two"
    assert get_exposed_members(Thing)["methods"] == {"one"}  # cached
    assert get_exposed_members(Thing, use_cache=False)["methods"] == {"one", "two"}
    assert "two" not in method_table(Thing)
    reset_exposed_members(Thing())
    assert get_exposed_members(Thing)["methods"] == {"one", "two"}
    assert "two" in method_table(Thing)
    Thing.three = expose(lambda self: None)
    reset_exposed_members()
    assert "three" in get_exposed_members(Thing)["methods"]


def test_method_table_bits():
    class Thing:
        @expose
        def plain(self):
            pass

        @expose
        @oneway
        def fire(self):
            pass

        @expose
        @callback
        def answer(self):
            pass

        def hidden(self):
            pass

    table = method_table(Thing)
    assert table == {"plain": 0, "fire": exposure.METHOD_ONEWAY, "answer": exposure.METHOD_CALLBACK}


def test_expose_private_names_fails():
    with pytest.raises(AttributeError):

        class A:
            @expose
            def _private(self):
                pass

    with pytest.raises(AttributeError):

        class B:
            @expose
            def __private(self):
                pass

    with pytest.raises(AttributeError):

        @expose
        class _C:
            pass

    with pytest.raises(AttributeError):

        class D:
            @expose
            @property
            def _secret(self):
                return 1

    with pytest.raises(AttributeError):

        class E:
            @expose
            def __init__(self):
                pass


def test_expose_dunder_is_allowed():
    class A:
        @expose
        def __dunder__(self):
            pass

    assert A.__dunder__._pyroExposed
    assert get_exposed_members(A)["methods"] == {"__dunder__"}


def test_whole_class_expose_skips_private_members():
    @expose
    class A:
        def _hidden(self):
            pass

        def __init__(self):
            pass

        def shown(self):
            pass

    assert not hasattr(A._hidden, "_pyroExposed")
    assert not hasattr(A.__init__, "_pyroExposed")
    assert get_exposed_members(A)["methods"] == {"shown"}


def test_expose_classmethod_order():
    with pytest.raises(AttributeError, match="put @expose above @classmethod/@staticmethod"):

        class A:
            @expose
            @classmethod
            def cm(cls):
                pass

    with pytest.raises(AttributeError, match="put @expose above @classmethod/@staticmethod"):

        class B:
            @expose
            @staticmethod
            def sm():
                pass

    class C:
        @classmethod
        @expose
        def cm(cls):
            pass

        @staticmethod
        @expose
        def sm():
            pass

    assert get_exposed_members(C)["methods"] == {"cm", "sm"}


def test_expose_rejects_unknown_things():
    with pytest.raises(AttributeError):
        expose(42)


def test_oneway_and_callback_marks():
    def f():
        pass

    assert oneway(f) is f and f._pyroOneway is True
    assert callback(f) is f and f._pyroCallback is True


def test_behavior():
    @behavior(instance_mode="percall")
    class A:
        pass

    assert A._pyroInstancing == ("percall", None)

    def creator(cls):
        return cls()

    @behavior("single", creator)
    class B:
        pass

    assert B._pyroInstancing == ("single", creator)
    with pytest.raises(ValueError):
        behavior(instance_mode="bogus")
    with pytest.raises(TypeError):
        behavior(instance_creator=12345)
    with pytest.raises(TypeError):
        behavior()(lambda: None)
    with pytest.raises(SyntaxError):

        @behavior
        class C:
            pass


def test_get_exposed_property_value():
    o = PartlyExposed()
    assert get_exposed_property_value(o, "prop1") == 42
    assert get_exposed_property_value(o, "readonly_prop1") == 42
    for name in ("prop2", "value", "c_attr", "method", "exposed", "nonexisting", "_private", "__class__", "__dict__"):
        with pytest.raises(AttributeError):
            get_exposed_property_value(o, name)
    assert get_exposed_property_value(o, "prop2", only_exposed=False) == 42
    with pytest.raises(AttributeError):
        get_exposed_property_value(o, 123)  # not even a name


def test_set_exposed_property_value():
    o = PartlyExposed()
    set_exposed_property_value(o, "prop1", 999)
    assert o.value == 999
    for name in ("readonly_prop1", "prop2", "value", "c_attr", "nonexisting", "__class__"):
        with pytest.raises(AttributeError):
            set_exposed_property_value(o, name, 1)
    assert o.value == 999


def test_private_property_never_reachable_even_if_marked():
    class A:
        @property
        def _secret(self):
            return "secret"

    A._secret.fget._pyroExposed = True  # marked by hand: still private
    assert get_exposed_members(A)["attrs"] == set()
    with pytest.raises(AttributeError):
        get_exposed_property_value(A(), "_secret")

"""pyrite.serializers.serializers / serializers_by_id: live read-only views like Pyro5's dicts."""

from __future__ import annotations

from collections.abc import Mapping

import Pyro5.serializers
import pytest
from pyrite.core import plugins
from pyrite.serializers import serializers, serializers_by_id


def test_same_builtin_names_and_ids_as_pyro5():
    assert set(Pyro5.serializers.serializers) <= set(serializers)
    for name, theirs in Pyro5.serializers.serializers.items():
        ours = serializers[name]
        assert ours.serializer_id == theirs.serializer_id
        assert serializers_by_id[ours.serializer_id] is ours
    assert set(Pyro5.serializers.serializers_by_id) <= set(serializers_by_id)


def test_views_are_the_registry_instances_and_work():
    assert serializers["json"] is plugins.get_serializer("json")
    assert serializers_by_id[1] is plugins.get_serializer_by_id(1)
    data = serializers["json"].dumps({"a": [1, 2]})
    assert serializers_by_id[3].loads(data) == {"a": [1, 2]}
    assert len(serializers) == len(serializers_by_id) == len(plugins.all_serializers())
    assert "serpent" in serializers and 2 in serializers_by_id and "nope" not in serializers
    with pytest.raises(KeyError):
        serializers["nope"]
    assert "serpent" in repr(serializers)


def test_third_party_plugin_appears():
    # the example plugin (examples/plugin-serializer) is installed in the test environment
    assert serializers["example-repr"].serializer_id == 42
    assert serializers_by_id[42] is serializers["example-repr"]


def test_views_are_read_only():
    assert isinstance(serializers, Mapping)
    with pytest.raises(TypeError):
        serializers["x"] = object()  # type: ignore[index]
    with pytest.raises(TypeError):
        del serializers_by_id[1]  # type: ignore[attr-defined]
    assert not hasattr(serializers, "pop") and not hasattr(serializers, "update")


def test_views_are_live_over_registry_reset():
    before = serializers["serpent"]
    plugins.reset()
    after = serializers["serpent"]
    assert after is not before  # rebuilt by the registry, seen without re-importing anything
    assert after is plugins.get_serializer("serpent")

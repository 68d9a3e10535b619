"""Serpent, marshal, JSON, msgpack and CBOR serializers for pyrite.

Get a shared serializer instance through the plugin registry::

    from pyrite.core import plugins
    ser = plugins.get_serializer("serpent")

The class <-> dict registries are global and shared by every serializer::

    from pyrite.serializers import register_class_to_dict, register_dict_to_class

Pyro5's tables of installed serializers, as live read-only views of the
plugin registry (third-party plugins appear too)::

    from pyrite.serializers import serializers, serializers_by_id
"""

from ._version import __version__
from .base import SerializerBase
from .registry import serializers, serializers_by_id

register_class_to_dict = SerializerBase.register_class_to_dict
unregister_class_to_dict = SerializerBase.unregister_class_to_dict
register_dict_to_class = SerializerBase.register_dict_to_class
unregister_dict_to_class = SerializerBase.unregister_dict_to_class

__all__ = [
    "SerializerBase",
    "register_class_to_dict",
    "unregister_class_to_dict",
    "register_dict_to_class",
    "unregister_dict_to_class",
    "serializers",
    "serializers_by_id",
    "__version__",
]

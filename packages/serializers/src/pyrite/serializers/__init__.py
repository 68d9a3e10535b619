"""Serpent, marshal, JSON, msgpack and CBOR serializers for pyrite.

Get a shared serializer instance through the plugin registry::

    from pyrite.core import plugins
    ser = plugins.get_serializer("serpent")

The class <-> dict registries are global and shared by every serializer::

    from pyrite.serializers import register_class_to_dict, register_dict_to_class
"""

from ._version import __version__
from .base import SerializerBase

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
    "__version__",
]

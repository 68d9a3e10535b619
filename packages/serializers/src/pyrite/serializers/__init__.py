"""Serpent, marshal, JSON, msgpack and CBOR serializers for pyrite."""

from ._version import __version__

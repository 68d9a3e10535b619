"""TCP (with TLS) and Unix-domain-socket transports for pyrite."""

from ._version import __version__

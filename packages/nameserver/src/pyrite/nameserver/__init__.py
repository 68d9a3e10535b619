"""The pyrite name server, its storage backends and command-line tools."""

from ._version import __version__

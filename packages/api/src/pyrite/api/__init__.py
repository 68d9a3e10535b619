"""pyrite: remote-object communication for Python, Pyro5's API and wire protocol."""

from ._version import __version__

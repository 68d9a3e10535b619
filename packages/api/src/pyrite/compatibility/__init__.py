"""Compatibility layers for code written against older APIs (Pyro5's ``Pyro5.compatibility``).

* ``Pyro4``: Pyro4's names on top of pyrite; ``from pyrite.compatibility import Pyro4``
"""

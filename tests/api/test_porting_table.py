"""The README's porting table names every Pyro5 5.17 module, and every pyrite module it names exists."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import Pyro5

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(Pyro5\.[\w.]+)` \| (.+) \|$")


def _table() -> dict[str, list[str]]:
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1)] = re.findall(r"`(pyrite\.[\w.]+)", match.group(2))
    return rows


def _pyro5_modules() -> set[str]:
    found = set()
    for info in pkgutil.walk_packages(Pyro5.__path__, "Pyro5."):
        leaf = info.name.rsplit(".", 1)[-1]
        if info.ispkg or leaf.startswith("_"):
            continue
        found.add(info.name)
    return found


def test_every_pyro5_module_has_a_row():
    table = _table()
    assert _pyro5_modules() <= set(table), sorted(_pyro5_modules() - set(table))
    assert "Not carried over" not in README.read_text(encoding="utf-8")


def test_every_named_pyrite_module_imports():
    for pyro5_name, pyrite_names in _table().items():
        assert pyrite_names, pyro5_name
        for name in pyrite_names:
            importlib.import_module(name)

"""Audit: the hatch environment (hatch.toml) is the one the brief promises: one default env with
the five distributions and the example plugin as workspace members, the test tools and Pyro5 5.17,
and the ``test``/``demo`` scripts (``hatch run demo`` runs examples/demo.py).  The interpreter
running these tests is that env, so the same distributions must be installed here."""

from __future__ import annotations

import shlex
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent.parent
FIVE = {"pyrite", "pyrite-core", "pyrite-serializers", "pyrite-transports", "pyrite-nameserver"}


@pytest.fixture(scope="module")
def default_env() -> dict:
    with open(ROOT / "hatch.toml", "rb") as f:
        return tomllib.load(f)["envs"]["default"]


def _member_dirs(default_env: dict) -> list[Path]:
    dirs: list[Path] = []
    for pattern in default_env["workspace"]["members"]:
        dirs.extend(sorted(p for p in ROOT.glob(pattern) if (p / "pyproject.toml").is_file()))
    return dirs


def test_workspace_members_are_the_five_distributions_and_the_example_plugin(default_env):
    names = set()
    for folder in _member_dirs(default_env):
        with open(folder / "pyproject.toml", "rb") as f:
            names.add(tomllib.load(f)["project"]["name"])
    assert names == FIVE | {"pyrite-example-serializer"}


def test_env_dependencies(default_env):
    deps = " ".join(default_env["dependencies"])
    for needed in ("pytest", "pytest-timeout", "hypothesis", "Pyro5==5.17", "msgpack", "cbor2"):
        assert needed in deps, needed


def test_scripts_test_and_demo(default_env):
    scripts = default_env["scripts"]
    assert shlex.split(scripts["test"])[0] == "pytest"
    demo = shlex.split(scripts["demo"])
    assert demo[0] == "python" and (ROOT / demo[1]).resolve() == (ROOT / "examples" / "demo.py").resolve()
    assert (ROOT / demo[1]).is_file()


def test_this_interpreter_has_the_env_installed():
    for dist in sorted(FIVE | {"pyrite-example-serializer"}):
        try:
            version(dist)
        except PackageNotFoundError:
            pytest.fail(f"{dist} is not installed in the hatch env running the tests")
    assert version("Pyro5") == "5.17"

"""The monorepo's shape: one PEP 420 namespace, five lockstep distributions.

Also: the packaging config (the root LICENSE in every wheel and sdist, the
wheel target of each distribution), the hatch environment and the gates
``.ci/run`` runs.  The last tests build real wheels and sdists and install a
subset of the wheels into a fresh virtual environment, to prove that a user
who installs only pyrite-core, pyrite-serializers and pyrite-transports gets
a working client and server.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ROOT / "packages"

# folder (and leaf module under pyrite/) -> distribution name
DISTRIBUTIONS = {
    "core": "pyrite-core",
    "serializers": "pyrite-serializers",
    "transports": "pyrite-transports",
    "nameserver": "pyrite-nameserver",
    "api": "pyrite",
}
EXAMPLE_PLUGIN = ROOT / "examples" / "plugin-serializer"

SERIALIZER_ENTRY_POINTS = {
    "serpent": "pyrite.serializers.serpent_serializer:SerpentSerializer",
    "marshal": "pyrite.serializers.marshal_serializer:MarshalSerializer",
    "json": "pyrite.serializers.json_serializer:JsonSerializer",
    "msgpack": "pyrite.serializers.msgpack_serializer:MsgpackSerializer",
    "cbor2": "pyrite.serializers.cbor_serializer:CborSerializer",
}
TRANSPORT_ENTRY_POINTS = {
    "tcp": "pyrite.transports.tcp:TcpTransport",
    "unix": "pyrite.transports.unix:UnixTransport",
}
CONSOLE_SCRIPTS = {
    "pyrite-ns": "pyrite.nameserver.cli:main",
    "pyrite-nsc": "pyrite.nameserver.nsc:main",
}
CORE_SCRIPTS = {"pyrite-check-config": "pyrite.core.config:main"}
API_SCRIPTS = {
    "pyrite-echoserver": "pyrite.utils.echoserver:main",
    "pyrite-httpgateway": "pyrite.utils.httpgateway:main",
}


def pyproject(folder: str | Path) -> dict:
    path = Path(folder) if isinstance(folder, Path) else PACKAGES / folder
    with open(path / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def source_version(folder: str) -> str:
    text = (PACKAGES / folder / "src" / "pyrite" / folder / "_version.py").read_text()
    match = re.search(r'^__version__\s*=\s*"([^"]+)"\s*$', text, re.M)
    assert match, f"no __version__ in packages/{folder}/_version.py"
    return match.group(1)


def requirement_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower()  # type: ignore[union-attr]


VERSION = source_version("core")


# --- the namespace --------------------------------------------------------------------------


def test_pyrite_is_a_namespace_package() -> None:
    import pyrite

    assert getattr(pyrite, "__file__", None) is None
    paths = {Path(p).resolve() for p in pyrite.__path__}
    for folder in DISTRIBUTIONS:
        assert (PACKAGES / folder / "src" / "pyrite").resolve() in paths, folder


def test_no_pyrite_init_anywhere_in_the_repo() -> None:
    found = [
        p
        for p in ROOT.rglob("pyrite/__init__.py")
        if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
    ]
    assert found == []
    # py.typed belongs in each leaf: in src/pyrite/ two wheels would own the same file
    for folder in DISTRIBUTIONS:
        assert not (PACKAGES / folder / "src" / "pyrite" / "py.typed").exists()


def test_every_leaf_module_imports_from_its_own_folder() -> None:
    import importlib

    for folder in DISTRIBUTIONS:
        module = importlib.import_module(f"pyrite.{folder}")
        assert (
            Path(module.__file__).resolve() == (PACKAGES / folder / "src" / "pyrite" / folder / "__init__.py").resolve()
        )


# --- each distribution ----------------------------------------------------------------------


def test_exactly_the_five_distributions() -> None:
    folders = {p.name for p in PACKAGES.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert folders == set(DISTRIBUTIONS)


@pytest.mark.parametrize("folder", DISTRIBUTIONS)
def test_distribution_has_the_four_parts(folder: str) -> None:
    base = PACKAGES / folder
    leaf = base / "src" / "pyrite" / folder
    for part in (
        base / "pyproject.toml",
        base / "README.md",
        leaf / "__init__.py",
        leaf / "_version.py",
        leaf / "py.typed",
    ):
        assert part.is_file(), part
    readme = (base / "README.md").read_text()
    assert readme.startswith(f"# {DISTRIBUTIONS[folder]}\n")
    # each README says how to install just that distribution
    assert re.search(rf"pip install [^\n]*\b{re.escape(DISTRIBUTIONS[folder])}\b(?!-)", readme), folder


@pytest.mark.parametrize("folder", DISTRIBUTIONS)
def test_pyproject_shape(folder: str) -> None:
    data = pyproject(folder)
    project = data["project"]
    assert project["name"] == DISTRIBUTIONS[folder]
    assert project["dynamic"] == ["version"]
    assert project["requires-python"] == ">=3.10"
    assert project["readme"] == "README.md"
    assert data["build-system"]["build-backend"] == "hatchling.build"
    assert data["tool"]["hatch"]["version"]["path"] == f"src/pyrite/{folder}/_version.py"
    # "src/pyrite", never "src/pyrite/<leaf>": hatchling would ship a top-level <leaf>/ package
    assert data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/pyrite"]


LICENSED = [PACKAGES / folder for folder in DISTRIBUTIONS] + [EXAMPLE_PLUGIN]


@pytest.mark.parametrize("where", LICENSED, ids=lambda p: p.name)
def test_every_distribution_ships_the_root_license(where: Path) -> None:
    project = pyproject(where)["project"]
    assert project["license"] == "MIT"
    # a license file outside the project folder cannot go into an sdist, so each
    # distribution keeps a copy of the root LICENSE next to its pyproject.toml
    assert project["license-files"] == ["LICENSE"], where
    assert (where / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes(), f"{where}/LICENSE differs from LICENSE"


def test_example_plugin_wheel_target() -> None:
    data = pyproject(EXAMPLE_PLUGIN)
    # its distribution name differs from its module: hatchling cannot guess the package (STYLE P2)
    assert data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/pyrite_example_serializer"]
    assert data["build-system"]["build-backend"] == "hatchling.build"


def test_versions_agree() -> None:
    versions = {folder: source_version(folder) for folder in DISTRIBUTIONS}
    assert len(set(versions.values())) == 1, versions
    import importlib

    for folder in DISTRIBUTIONS:
        assert importlib.import_module(f"pyrite.{folder}").__version__ == VERSION


def test_installed_metadata_matches_the_sources() -> None:
    # a stale environment (see STYLE P3/P4) shows up here rather than as odd failures elsewhere
    for dist in DISTRIBUTIONS.values():
        assert metadata.version(dist) == VERSION, dist


def _all_requirements() -> list[tuple[str, str]]:
    reqs = []
    for folder in DISTRIBUTIONS:
        project = pyproject(folder)["project"]
        reqs += [(folder, r) for r in project.get("dependencies", [])]
        for extra in project.get("optional-dependencies", {}).values():
            reqs += [(folder, r) for r in extra]
    reqs += [("examples/plugin-serializer", r) for r in pyproject(EXAMPLE_PLUGIN)["project"]["dependencies"]]
    return reqs


def test_sibling_pins_equal_the_version() -> None:
    siblings = [(where, r) for where, r in _all_requirements() if requirement_name(r).startswith("pyrite")]
    assert siblings, "no sibling requirements found"
    for where, requirement in siblings:
        # only workspace members: another pyrite-* name would come from someone else on PyPI
        assert requirement_name(requirement) in DISTRIBUTIONS.values(), (where, requirement)
        assert requirement.endswith(f"=={VERSION}"), (where, requirement)


def test_dependency_graph() -> None:
    def deps(folder: str) -> list[str]:
        return pyproject(folder)["project"].get("dependencies", [])

    assert deps("core") == []  # stdlib only
    assert {requirement_name(r) for r in deps("serializers")} == {"pyrite-core", "serpent"}
    assert {requirement_name(r) for r in deps("transports")} == {"pyrite-core"}
    assert {requirement_name(r) for r in deps("nameserver")} == {"pyrite-core"}
    umbrella = deps("api")
    assert {requirement_name(r) for r in umbrella} == {
        "pyrite-core",
        "pyrite-serializers",
        "pyrite-transports",
        "pyrite-nameserver",
    }
    serializers = next(r for r in umbrella if requirement_name(r) == "pyrite-serializers")
    extras = re.search(r"\[([^]]*)]", serializers)
    assert extras and set(extras.group(1).replace(" ", "").split(",")) == set(
        pyproject("serializers")["project"]["optional-dependencies"]
    )


# --- entry points ---------------------------------------------------------------------------


def test_entry_points_declared() -> None:
    entry_points = pyproject("serializers")["project"]["entry-points"]
    assert entry_points["pyrite.serializers"] == SERIALIZER_ENTRY_POINTS
    entry_points = pyproject("transports")["project"]["entry-points"]
    assert entry_points["pyrite.transports"] == TRANSPORT_ENTRY_POINTS
    assert pyproject("nameserver")["project"]["scripts"] == CONSOLE_SCRIPTS
    plugin = pyproject(EXAMPLE_PLUGIN)["project"]["entry-points"]["pyrite.serializers"]
    assert list(plugin) == ["example-repr"]
    for folder in ("core", "api"):
        assert "entry-points" not in pyproject(folder)["project"]
    assert pyproject("core")["project"]["scripts"] == CORE_SCRIPTS
    assert pyproject("api")["project"]["scripts"] == API_SCRIPTS


def test_entry_points_installed_and_loadable() -> None:
    installed = {ep.name: ep for ep in metadata.entry_points(group="pyrite.serializers")}
    for name, value in SERIALIZER_ENTRY_POINTS.items():
        assert installed[name].value == value
        cls = installed[name].load()
        assert cls.serializer_id == {"serpent": 1, "marshal": 2, "json": 3, "msgpack": 4, "cbor2": 5}[name]
    installed = {ep.name: ep for ep in metadata.entry_points(group="pyrite.transports")}
    for name, value in TRANSPORT_ENTRY_POINTS.items():
        assert installed[name].value == value
        installed[name].load()
    installed = {ep.name: ep for ep in metadata.entry_points(group="console_scripts")}
    for name, value in {**CONSOLE_SCRIPTS, **CORE_SCRIPTS, **API_SCRIPTS}.items():
        assert installed[name].value == value
        assert callable(installed[name].load())


# --- the hatch environment and the gates -----------------------------------------------------


@pytest.fixture(scope="module")
def default_env() -> dict:
    with open(ROOT / "hatch.toml", "rb") as f:
        return tomllib.load(f)["envs"]["default"]


def _member_dirs(default_env: dict) -> list[Path]:
    dirs: list[Path] = []
    for pattern in default_env["workspace"]["members"]:
        dirs.extend(sorted(p for p in ROOT.glob(pattern) if (p / "pyproject.toml").is_file()))
    return dirs


def test_workspace_members_are_the_five_distributions_and_the_example_plugin(default_env: dict) -> None:
    names = set()
    for folder in _member_dirs(default_env):
        names.add(pyproject(folder)["project"]["name"])
    assert names == set(DISTRIBUTIONS.values()) | {"pyrite-example-serializer"}


def test_env_dependencies(default_env: dict) -> None:
    deps = " ".join(default_env["dependencies"])
    for needed in ("pytest", "pytest-timeout", "hypothesis", "Pyro5==5.17", "msgpack", "cbor2", "ruff", "mypy"):
        assert needed in deps, needed


def test_env_scripts(default_env: dict) -> None:
    scripts = default_env["scripts"]
    assert shlex.split(scripts["test"])[0] == "pytest"
    demo = shlex.split(scripts["demo"])
    assert demo[0] == "python" and (ROOT / demo[1]).resolve() == (ROOT / "examples" / "demo.py").resolve()
    assert (ROOT / demo[1]).is_file()
    assert scripts["lint"] == ["ruff check .", "ruff format --check ."]
    types = shlex.split(scripts["types"])
    assert types[:2] == ["mypy", "--strict"]
    checked = {types[i + 1] for i, arg in enumerate(types) if arg == "-p"}
    # every distribution's package, plus the tools and the Pyro4 layer the umbrella ships
    assert checked == {f"pyrite.{folder}" for folder in DISTRIBUTIONS} | {"pyrite.utils", "pyrite.compatibility"}


def test_ci_runs_every_gate_in_a_fresh_hatch_data_dir() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert 'export HATCH_DATA_DIR="$(mktemp -d)"' in commands
    order = [
        ".ci/.venv/bin/hatch run lint",
        ".ci/.venv/bin/hatch run types",
        ".ci/.venv/bin/hatch build --all",
        "exec .ci/.venv/bin/hatch run test",
    ]
    positions = [commands.index(command) for command in order]
    assert positions == sorted(positions), commands
    assert commands.index('export HATCH_DATA_DIR="$(mktemp -d)"') < positions[0]
    # the build writes into dist/; CI leaves no artifacts behind
    assert commands[positions[2] + 1] == "rm -rf dist"


def test_this_interpreter_has_the_env_installed() -> None:
    for dist in sorted(set(DISTRIBUTIONS.values()) | {"pyrite-example-serializer"}):
        try:
            metadata.version(dist)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{dist} is not installed in the hatch env running the tests")
    assert metadata.version("Pyro5") == "5.17"


# --- real wheels, real partial install ------------------------------------------------------


def _run(args: list[str], *, timeout: float, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _clean_env() -> dict[str, str]:
    # nothing from the dev environment may leak into the fresh one
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh venv with hatchling, and a folder with a wheel of each of the five distributions."""
    base = tmp_path_factory.mktemp("layout")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120, cwd=base)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", "hatchling>=1.27"], timeout=300, cwd=base, env=_clean_env())
    wheels = base / "wheels"
    _run(
        [str(python), "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels)]
        + [str(PACKAGES / folder) for folder in DISTRIBUTIONS],
        timeout=300,
        cwd=base,
        env=_clean_env(),
    )
    return python, wheels


@pytest.mark.timeout(900)
def test_wheels_share_the_namespace(wheelhouse: tuple[Path, Path]) -> None:
    _, wheels = wheelhouse
    for folder, dist in DISTRIBUTIONS.items():
        [wheel] = wheels.glob(f"{dist.replace('-', '_')}-{VERSION}-*.whl")
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
        code = [n for n in names if ".dist-info/" not in n]
        assert "pyrite/__init__.py" not in names
        # the umbrella also ships the tools (pyrite.utils) and the Pyro4 layer (pyrite.compatibility)
        leaves = ("api", "utils", "compatibility") if folder == "api" else (folder,)
        assert all(n.split("/")[1] in leaves and n.startswith("pyrite/") for n in code), (wheel.name, code)
        for leaf in leaves:
            for part in ("__init__.py", "py.typed"):
                assert f"pyrite/{leaf}/{part}" in names, (wheel.name, leaf, part)
        assert f"pyrite/{folder}/_version.py" in names, wheel.name
        licenses = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert len(licenses) == 1, (wheel.name, names)
        with zipfile.ZipFile(wheel) as zf:
            assert zf.read(licenses[0]) == (ROOT / "LICENSE").read_bytes(), wheel.name


@pytest.mark.timeout(900)
def test_sdists_carry_the_license(wheelhouse: tuple[Path, Path], tmp_path: Path) -> None:
    python, _ = wheelhouse
    for where in LICENSED:
        _run(
            [str(python), "-m", "hatchling", "build", "--target", "sdist", "--directory", str(tmp_path)],
            timeout=300,
            cwd=where,
            env=_clean_env(),
        )
    sdists = sorted(tmp_path.glob("*.tar.gz"))
    assert len(sdists) == len(LICENSED), sdists
    for sdist in sdists:
        with tarfile.open(sdist) as tf:
            top = sdist.name[: -len(".tar.gz")]
            member = tf.extractfile(f"{top}/LICENSE")
            assert member is not None, sdist.name
            assert member.read() == (ROOT / "LICENSE").read_bytes(), sdist.name


PARTIAL_CORE_ONLY = textwrap.dedent("""
    import importlib.util
    import pyrite
    assert getattr(pyrite, "__file__", None) is None
    for missing in ("pyrite.serializers", "pyrite.transports", "pyrite.nameserver", "pyrite.api"):
        assert importlib.util.find_spec(missing) is None, missing
    from pyrite.core import plugins
    from pyrite.core.plugins import UnknownPluginError
    for lookup, hint in ((lambda: plugins.get_serializer("serpent"), "pip install pyrite-serializers"),
                         (lambda: plugins.get_transport("127.0.0.1:9999"), "pip install pyrite-transports")):
        try:
            lookup()
        except UnknownPluginError as exc:
            assert hint in str(exc), exc
        else:
            raise AssertionError("a lookup without the plugin distribution succeeded")
    print("core alone: OK")
""")

PARTIAL_CLIENT_AND_SERVER = textwrap.dedent("""
    import importlib.util, threading
    import pyrite
    assert getattr(pyrite, "__file__", None) is None
    assert importlib.util.find_spec("pyrite.nameserver") is None
    assert importlib.util.find_spec("pyrite.api") is None
    from pyrite.core import Daemon, Proxy, expose, config, plugins
    from pyrite.core.plugins import UnknownPluginError

    @expose
    class Calculator:
        def add(self, a, b):
            return a + b

    config.COMMTIMEOUT = 10.0
    with Daemon(host="127.0.0.1", port=0) as daemon:
        uri = daemon.register(Calculator, "calc")
        thread = threading.Thread(target=daemon.requestLoop, daemon=True)
        thread.start()
        for serializer in ("serpent", "json", "marshal"):
            config.SERIALIZER = serializer
            with Proxy(uri) as calc:
                assert calc.add(20, 22) == 42
        daemon.shutdown()
        thread.join(10)
        assert not thread.is_alive()
    # installed without the [msgpack] extra: the error says how to get it
    try:
        plugins.get_serializer("msgpack")
    except UnknownPluginError as exc:
        assert "pip install pyrite-serializers[msgpack]" in str(exc), exc
    else:
        raise AssertionError("msgpack should not be usable without the extra")
    print("client and server without the name server: OK", uri)
""")


@pytest.mark.timeout(900)
def test_partial_install_without_nameserver(wheelhouse: tuple[Path, Path], tmp_path: Path) -> None:
    python, wheels = wheelhouse
    env = _clean_env()
    # core alone: it imports, and a lookup names the distribution to install
    _run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheels), "pyrite-core"],
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    out = _run([str(python), "-c", PARTIAL_CORE_ONLY], timeout=60, cwd=tmp_path, env=env)
    assert "core alone: OK" in out
    # add serializers and transports (serpent comes from the index): a working client and server
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--find-links",
            str(wheels),
            "pyrite-serializers",
            "pyrite-transports",
        ],
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    freeze = _run([str(python), "-m", "pip", "freeze"], timeout=60, cwd=tmp_path, env=env).lower()
    assert "pyrite-nameserver" not in freeze and "msgpack" not in freeze
    out = _run([str(python), "-c", PARTIAL_CLIENT_AND_SERVER], timeout=60, cwd=tmp_path, env=env)
    assert "client and server without the name server: OK PYRO:calc@127.0.0.1:" in out

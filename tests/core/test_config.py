"""pyrite.core.config: Pyro5's items and defaults, PYRITE_* environment variables."""

from __future__ import annotations

import Pyro5
import Pyro5.configure
import Pyro5.protocol
import pytest
from pyrite.core.config import ENV_PREFIX, Configuration, config


def test_same_items_as_pyro5():
    ours = config.as_dict()
    theirs = Pyro5.config.as_dict()
    assert set(theirs) <= set(ours)
    pyrite_own = {
        "ONEWAY_THREADS",
        "ITER_STREAM_MAX_PER_CONNECTION",
        "ITER_STREAM_MAX",
        "SERIALIZERS_ACCEPTED",
        "MAX_BATCH_CALLS",
        "MAX_PREHANDSHAKE_SIZE",
        "MAX_DECOMPRESSION_RATIO",
        # issue 8 item 7, the name server's write policy
        "NS_WRITE_TOKEN",
        # issue 8, engine deadlines and caps
        "HANDSHAKE_TIMEOUT",
        "FRAME_TIMEOUT",
        "IDLE_TIMEOUT",
        "SEND_TIMEOUT",
        "MAX_CONNECTIONS",
        "MAX_OUTPUT_BUFFER",
    }
    assert set(ours) - set(theirs) == pyrite_own


def test_defaults_match_pyro5():
    fresh = Configuration()
    fresh.reset(use_environment=False)
    pyro5_defaults = type(Pyro5.config)()
    pyro5_defaults.reset(use_environment=False)
    for item, value in pyro5_defaults.as_dict().items():
        if item == "LOGFILE":
            assert fresh.LOGFILE is None  # pyrite leaves log set-up to the application
            continue
        assert getattr(fresh, item) == value, item


def test_unknown_attribute_is_refused():
    with pytest.raises(AttributeError):
        config.NO_SUCH_ITEM = 1
    with pytest.raises(AttributeError):
        config.NO_SUCH_ITEM  # noqa: B018


@pytest.mark.parametrize(
    "item, text, expected",
    [
        ("NS_PORT", "1234", 1234),
        ("COMMTIMEOUT", "2.5", 2.5),
        ("NS_AUTOCLEAN", "3", 3.0),
        ("COMPRESSION", "yes", True),
        ("COMPRESSION", "ON", True),
        ("COMPRESSION", "1", True),
        ("SOCK_REUSE", "false", False),
        ("SOCK_REUSE", "0", False),
        ("SOCK_REUSE", " No ", False),
        ("BROADCAST_ADDRS", "127.1.255.255, 127.255.255.255 ,", ["127.1.255.255", "127.255.255.255"]),
        ("SERIALIZER", "json", "json"),
        ("NATHOST", "nat.example", "nat.example"),
        ("LOGFILE", "x.log", "x.log"),
    ],
)
def test_environment_overrides_with_types(monkeypatch, item, text, expected):
    monkeypatch.setenv(ENV_PREFIX + item, text)
    config.reset()
    value = getattr(config, item)
    assert value == expected
    assert type(value) is type(expected)


def test_environment_ignored_when_asked(monkeypatch):
    monkeypatch.setenv("PYRITE_NS_PORT", "1234")
    config.reset(use_environment=False)
    assert config.NS_PORT == 9090
    config.reset()
    assert config.NS_PORT == 1234


def test_broadcast_pinned_to_loopback_for_tests():
    # tests/conftest.py pins it through the environment; this proves env lists work end to end
    assert config.BROADCAST_ADDRS == ["127.255.255.255"]


def test_pyro_variables_are_left_alone(monkeypatch):
    monkeypatch.setenv("PYRO_NS_PORT", "1111")
    monkeypatch.setenv("PYRO_TOTALLY_UNKNOWN", "x")
    config.reset()
    assert config.NS_PORT == 9090


def test_unknown_pyrite_variable_is_an_error(monkeypatch):
    monkeypatch.setenv("PYRITE_NO_SUCH_ITEM", "1")
    with pytest.raises(ValueError, match="PYRITE_NO_SUCH_ITEM"):
        config.reset()
    monkeypatch.delenv("PYRITE_NO_SUCH_ITEM")
    config.reset()


@pytest.mark.parametrize(
    "item, text", [("NS_PORT", "ninety"), ("COMMTIMEOUT", "soon"), ("COMPRESSION", "maybe"), ("THREADPOOL_SIZE", "1.5")]
)
def test_unconvertible_value_is_an_error(monkeypatch, item, text):
    monkeypatch.setenv(ENV_PREFIX + item, text)
    with pytest.raises(ValueError, match=ENV_PREFIX + item):
        config.reset()
    monkeypatch.delenv(ENV_PREFIX + item)
    config.reset()


def test_reset_restores_defaults_and_lists_are_not_shared():
    config.NS_PORT = 1
    config.BROADCAST_ADDRS.append("1.2.3.4")
    config.reset(use_environment=False)
    assert config.NS_PORT == 9090
    # users keep real LAN broadcast by default, exactly as Pyro5 has it
    pyro5_defaults = Pyro5.configure.Configuration()
    pyro5_defaults.reset(use_environment=False)
    assert config.BROADCAST_ADDRS == pyro5_defaults.BROADCAST_ADDRS
    other = Configuration()
    other.reset(use_environment=False)
    other.BROADCAST_ADDRS.append("x")
    assert config.BROADCAST_ADDRS == pyro5_defaults.BROADCAST_ADDRS


def test_copy_is_independent():
    snapshot = config.copy()
    config.NS_PORT = 4321
    config.BROADCAST_ADDRS.append("5.6.7.8")
    assert snapshot.NS_PORT == 9090
    assert "5.6.7.8" not in snapshot.BROADCAST_ADDRS


def test_as_dict_and_dump():
    data = config.as_dict()
    assert data["SERIALIZER"] == "serpent" and data["NS_PORT"] == 9090
    text = config.dump()
    assert "Protocol version: 502" in text
    assert "NS_PORT = 9090" in text
    assert "pyrite version" in text


def test_items_are_typed_attributes():
    import dataclasses
    import typing

    hints = typing.get_type_hints(Configuration)
    items = set(config.as_dict())
    assert items <= set(hints)
    # every item's default is of its declared type (None allowed only where declared optional)
    fresh = Configuration()
    fresh.reset(use_environment=False)
    for item in items:
        value = getattr(fresh, item)
        declared = hints[item]
        if value is None:
            assert type(None) in typing.get_args(declared), item
        else:
            assert isinstance(value, typing.get_origin(declared) or declared), item
    assert not hasattr(fresh, "__dict__")  # a slotted class: no room for unknown names
    assert {f.name for f in dataclasses.fields(Configuration)} - items == {"_origins"}


def test_origin_tracks_default_environment_and_code(monkeypatch):
    monkeypatch.setenv("PYRITE_NS_PORT", "4444")
    config.reset()
    assert config.origin("NS_PORT") == "PYRITE_NS_PORT"
    assert config.origin("HOST") == "default"
    config.HOST = "127.0.0.1"
    assert config.origin("HOST") == "code"
    snapshot = config.copy()
    assert snapshot.origin("HOST") == "code" and snapshot.origin("NS_PORT") == "PYRITE_NS_PORT"
    text = config.dump()
    assert "NS_PORT = 4444    [PYRITE_NS_PORT]" in text
    assert "HOST = 127.0.0.1    [code]" in text
    assert "SERIALIZER = serpent    [default]" in text
    with pytest.raises(AttributeError):
        config.origin("NO_SUCH_ITEM")
    monkeypatch.delenv("PYRITE_NS_PORT")
    config.reset()
    assert config.origin("HOST") == "default" and config.HOST == "localhost"


def test_config_module_does_not_import_protocol():
    import subprocess
    import sys

    code = "import sys, pyrite.core.config as c; c.config.dump(); print(sorted(m for m in sys.modules if m.startswith('pyrite')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True).stdout
    loaded = eval(out)  # a printed list of module names
    assert "pyrite.core.protocol" not in loaded and "pyrite.core.errors" not in loaded
    from pyrite.core import constants, protocol

    assert constants.PROTOCOL_VERSION == protocol.PROTOCOL_VERSION == Pyro5.protocol.PROTOCOL_VERSION


@pytest.mark.parametrize("command", [["-m", "pyrite.core.config"], ["pyrite-check-config"]])
def test_config_tools_print_effective_configuration(command):
    import os
    import shutil
    import subprocess
    import sys

    env = dict(os.environ, PYRITE_COMMTIMEOUT="7.5", PYRITE_SERIALIZER="json")
    if command[0] == "-m":
        argv = [sys.executable, *command]
    else:
        exe = shutil.which(command[0], path=os.path.dirname(sys.executable))
        assert exe, "pyrite-check-config is not installed in this environment"
        argv = [exe]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Protocol version: 502" in out
    assert "COMMTIMEOUT = 7.5    [PYRITE_COMMTIMEOUT]" in out
    assert "SERIALIZER = json    [PYRITE_SERIALIZER]" in out
    assert "NS_PORT = 9090    [default]" in out
    assert done.stderr == ""

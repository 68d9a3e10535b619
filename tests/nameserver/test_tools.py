"""pyrite-ns and pyrite-nsc: argument parsing and the nsc commands against a NameServer object."""

from __future__ import annotations

import pytest
from pyrite.core.errors import NamingError
from pyrite.nameserver import cli, nsc
from pyrite.nameserver.registry import NameServer


def test_ns_options_are_pyro5s():
    parser = cli.make_parser()
    options = parser.parse_args(
        [
            "-n",
            "127.0.0.1",
            "-p",
            "0",
            "-u",
            "/tmp/s",
            "-s",
            "sql:x.db",
            "--bchost",
            "h",
            "--bcport",
            "5",
            "--nathost",
            "nat",
            "--natport",
            "6",
            "-x",
        ]
    )
    assert (
        options.host,
        options.port,
        options.unixsocket,
        options.storage,
        options.bchost,
        options.bcport,
        options.nathost,
        options.natport,
        options.enablebc,
    ) == ("127.0.0.1", 0, "/tmp/s", "sql:x.db", "h", 5, "nat", 6, False)
    defaults = parser.parse_args([])
    assert defaults.storage == "memory" and defaults.enablebc is True and defaults.port is None


def test_ns_short_broadcast_options():
    options = cli.make_parser().parse_args(["-b", "127.255.255.255", "-c", "0"])
    assert (options.bchost, options.bcport) == ("127.255.255.255", 0)


@pytest.mark.parametrize("tool", [cli.main, nsc.main])
def test_help_and_bad_arguments(tool, capsys):
    with pytest.raises(SystemExit) as exc:
        tool(["--invalidarg"])
    assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        tool(["-h"])
    assert exc.value.code == 0
    assert "show this help message" in capsys.readouterr().out


def test_nsc_rejects_unknown_command(capsys):
    with pytest.raises(SystemExit) as exc:
        nsc.main(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_nsc_commands(capsys, monkeypatch):
    ns = NameServer()

    def run(cmd, *args):
        nsc.handle_command(ns, cmd, list(args))
        return capsys.readouterr().out

    with pytest.raises(KeyError):
        run("foo")
    assert capsys.readouterr().out.startswith("Error: KeyError ")
    assert run("ping") == "Name server answered the ping.\n"
    with pytest.raises(NamingError):
        run("lookup", "WeirdName")
    assert capsys.readouterr().out == "Error: NamingError - name not registered: WeirdName\n"
    assert run("list").endswith("END LIST \n")
    out = run("listmatching", "name.$")
    assert out.endswith("END LIST - regex 'name.$'\n") and "name1" not in out
    assert run("register", "name1", "PYRO:obj1@hostname:9999") == "Registered name1\n"
    assert run("remove", "name2") == "No registrations removed.\n"
    assert "name1 --> PYRO:obj1@hostname:9999" in run("listmatching", "name.$")
    assert run("setmeta", "name1", "b", "a") == "Metadata of name1 set\n"
    assert run("lookup", "name1") == "PYRO:obj1@hostname:9999\nmetadata: {'a', 'b'}\n"
    out = run("yplookup_all", "a", "b")
    assert "name1 --> PYRO:obj1@hostname:9999\n    metadata: {'a', 'b'}\n" in out
    assert "name1" not in run("yplookup_all", "a", "zzz")
    assert "name1" in run("yplookup_any", "zzz", "a")
    assert run("list", "name").startswith("--------START LIST - prefix 'name'\nname1 -->")
    assert run("setmeta", "name1") == "Metadata of name1 removed\n"
    assert run("remove", "name1") == "Removed name1\n"
    with pytest.raises(SystemExit, match="requires two arguments"):
        run("register", "only-one")


def test_nsc_failed_call_prints_the_error(capsys):
    ns = NameServer()
    with pytest.raises(NamingError):
        nsc.handle_command(ns, "lookup", ["WeirdName"])
    assert capsys.readouterr().out == "Error: NamingError - name not registered: WeirdName\n"


def test_removematching_asks_and_guards_everything(capsys, monkeypatch):
    ns = NameServer()
    for i in range(4):
        ns.register(f"svc.{i}", "PYRO:x@h:1")
    answers = iter(["n", "y", "n", "y"])
    questions = []

    def fake_input(prompt):
        questions.append(prompt)
        return next(answers)

    monkeypatch.setattr("builtins.input", fake_input)
    nsc.handle_command(ns, "removematching", ["svc.[01]"])
    assert capsys.readouterr().out == "No registrations removed.\n" and ns.count() == 4
    nsc.handle_command(ns, "removematching", ["svc.[01]"])
    assert capsys.readouterr().out == "2 items removed.\n" and ns.count() == 2
    nsc.handle_command(ns, "removematching", [".*"])
    assert "matches EVERY name" in questions[-1]
    assert capsys.readouterr().out == "No registrations removed.\n" and ns.count() == 2
    nsc.handle_command(ns, "removematching", [".*"])
    assert capsys.readouterr().out == "2 items removed.\n" and ns.count() == 0


def test_removematching_without_a_terminal(capsys, monkeypatch):
    ns = NameServer()
    ns.register("svc", "PYRO:x@h:1")

    def no_input(prompt):
        raise EOFError

    monkeypatch.setattr("builtins.input", no_input)
    nsc.handle_command(ns, "removematching", ["svc"])
    assert capsys.readouterr().out.endswith("No registrations removed.\n")
    assert ns.count() == 1

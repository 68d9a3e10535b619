"""``pyrite-nsc``: query and change a running name server from the command line.

Options and commands are Pyro5's ``pyro5-nsc``::

    pyrite-nsc [-n HOST] [-p PORT] [-u UNIXSOCKET] [-v] COMMAND [ARGS...]

    list [prefix]                  registrations (with metadata), optionally by prefix
    listmatching PATTERN           registrations whose name matches a regex
    lookup NAME                    the URI (and metadata) of one name
    register NAME URI              add a registration (refuses an existing name)
    remove NAME                    remove one registration
    removematching PATTERN         remove the names matching a regex (asks first)
    yplookup_all TAG [TAG...]      registrations having all the tags
    yplookup_any TAG [TAG...]      registrations having any of the tags
    setmeta NAME [TAG...]          replace (or with no tags: clear) the metadata
    ping                           check the name server answers

Without ``-n`` the name server is found by broadcast (then ``-p`` is the
broadcast port).  Exit status: 0 on success, 1 if the name server cannot be
found or the command failed (the error is printed as ``Error: Type - message``),
2 for bad usage.

``removematching`` with a pattern that matches every name (``.*``, ``""``...)
says so in its question, and only then asks a pyrite name server to remove
everything (``everything=True``).
"""

from __future__ import annotations

import re
import sys
from argparse import ArgumentParser
from collections.abc import Callable, Sequence
from typing import Any

from pyrite.core.errors import PyroError

__all__ = ["main", "handle_command", "COMMANDS"]

COMMANDS = (
    "list",
    "lookup",
    "register",
    "remove",
    "removematching",
    "listmatching",
    "yplookup_all",
    "yplookup_any",
    "setmeta",
    "ping",
)


def _tags(metadata: Any) -> str:
    return "{" + ", ".join(repr(tag) for tag in sorted(metadata)) + "}"


def _print_list(result: dict[str, Any], title: str = "") -> None:
    print(f"--------START LIST {title}")
    for name, (uri, metadata) in sorted(result.items()):
        print(f"{name} --> {uri}")
        if metadata:
            print("    metadata:", _tags(metadata))
    print(f"--------END LIST {title}")


def _ask(question: str) -> bool:
    try:
        answer = input(question)
    except EOFError:
        print()
        return False
    return answer.strip() in ("y", "Y")


def _matches_everything(pattern: str) -> bool:
    try:
        return re.match(pattern, "") is not None
    except re.error:
        return False  # the name server reports the invalid pattern


def handle_command(namesrv: Any, cmd: str, args: Sequence[str]) -> None:
    """Run one nsc command against a name server (a proxy, or a ``NameServer`` object).

    Bad arguments raise SystemExit with the usage; a failed call prints
    ``Error: Type - message`` and re-raises (as Pyro5's nsc does)."""
    args = list(args)

    def need(count: int, what: str, at_least: bool = False) -> None:
        if (len(args) < count) if at_least else (len(args) != count):
            raise SystemExit(f"{cmd} requires {what}")

    def cmd_ping() -> None:
        namesrv.ping()
        print("Name server answered the ping.")

    def cmd_list() -> None:
        if not args:
            _print_list(namesrv.list(return_metadata=True))
        else:
            _print_list(namesrv.list(prefix=args[0], return_metadata=True), f"- prefix '{args[0]}'")

    def cmd_listmatching() -> None:
        need(1, "one argument: pattern")
        _print_list(namesrv.list(regex=args[0], return_metadata=True), f"- regex '{args[0]}'")

    def cmd_lookup() -> None:
        need(1, "one argument: name")
        uri, metadata = namesrv.lookup(args[0], return_metadata=True)
        print(uri)
        if metadata:
            print("metadata:", _tags(metadata))

    def cmd_register() -> None:
        need(2, "two arguments: name uri")
        namesrv.register(args[0], args[1], safe=True)
        print(f"Registered {args[0]}")

    def cmd_remove() -> None:
        need(1, "one argument: name")
        if namesrv.remove(args[0]) > 0:
            print(f"Removed {args[0]}")
        else:
            print("No registrations removed.")

    def cmd_removematching() -> None:
        need(1, "one argument: pattern")
        pattern = args[0]
        if _matches_everything(pattern):
            if not _ask(f"The pattern {pattern!r} matches EVERY name. Remove all registrations (y/n)?"):
                print("No registrations removed.")
                return
            try:
                count = namesrv.remove(regex=pattern, everything=True)
            except TypeError:  # a Pyro5 name server: no such flag, and no guard to lift
                count = namesrv.remove(regex=pattern)
        else:
            if not _ask(f"This may remove many registrations matching {pattern!r}. Continue (y/n)?"):
                print("No registrations removed.")
                return
            count = namesrv.remove(regex=pattern)
        print(f"{count} items removed.")

    def cmd_setmeta() -> None:
        need(1, "arguments: name and zero or more meta tags", at_least=True)
        metadata = set(args[1:])
        namesrv.set_metadata(args[0], metadata)
        print(f"Metadata of {args[0]} set" if metadata else f"Metadata of {args[0]} removed")

    def cmd_yplookup_all() -> None:
        need(1, "at least one metadata tag argument", at_least=True)
        _print_list(namesrv.yplookup(meta_all=args, return_metadata=True), " - metadata query")

    def cmd_yplookup_any() -> None:
        need(1, "at least one metadata tag argument", at_least=True)
        _print_list(namesrv.yplookup(meta_any=args, return_metadata=True), " - metadata query")

    commands: dict[str, Callable[[], None]] = {
        "ping": cmd_ping,
        "list": cmd_list,
        "listmatching": cmd_listmatching,
        "lookup": cmd_lookup,
        "register": cmd_register,
        "remove": cmd_remove,
        "removematching": cmd_removematching,
        "setmeta": cmd_setmeta,
        "yplookup_all": cmd_yplookup_all,
        "yplookup_any": cmd_yplookup_any,
    }
    try:
        commands[cmd]()
    except SystemExit:
        raise
    except Exception as exc:
        print(f"Error: {type(exc).__name__} - {exc}")
        raise


def make_parser() -> ArgumentParser:
    """The argument parser of ``pyrite-nsc``."""
    parser = ArgumentParser(prog="pyrite-nsc", description="pyrite name server control utility.")
    parser.add_argument(
        "-n", "--host", dest="host", default="", help="name server host (default: find it by broadcast or config)"
    )
    parser.add_argument(
        "-p", "--port", dest="port", type=int, help="name server port; without -n, the broadcast port to ask on"
    )
    parser.add_argument("-u", "--unixsocket", help="reach the name server on this Unix-domain socket")
    parser.add_argument("-v", "--verbose", action="store_true", dest="verbose", help="say more about what happens")
    parser.add_argument("command", choices=COMMANDS)
    return parser


def main(args: Sequence[str] | None = None) -> int:
    """Parse the command line, find the name server, run the command; returns the exit status."""
    options, command_args = make_parser().parse_known_args(args)
    from pyrite.core.naming import locate_ns

    if options.verbose:
        print("Looking for the name server...")
    where = f"./u:{options.unixsocket}" if options.unixsocket else options.host
    try:
        namesrv = locate_ns(where, options.port)
    except PyroError as exc:
        print(f"Error: {type(exc).__name__} - {exc}")
        return 1
    with namesrv:
        if options.verbose:
            print(f"Using the name server at {namesrv._pyroUri}")
        try:
            handle_command(namesrv, options.command, command_args)
        except SystemExit as exc:
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
                return 2
            raise
        except Exception:
            return 1  # handle_command printed the error
    if options.verbose:
        print("Done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

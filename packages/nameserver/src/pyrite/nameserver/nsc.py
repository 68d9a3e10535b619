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

pyrite's own commands, for replica sets (a pyrite name server only)::

    replicas NAME                  every live URI of a name
    addreplica NAME URI [TTL]      add a URI to a name's replica set (with a lease of TTL seconds)
    removereplica NAME URI         take one URI out of a name's replica set

``list``, ``listmatching`` and the ``yplookup`` commands show every replica of a
replica set (``replicas:`` lines) when the name server has them.

``--write-token TOKEN`` (or ``PYRITE_NS_WRITE_TOKEN``) sends the token a name
server with a write policy asks for before it takes changes.

Without ``-n`` the name server is found by broadcast (then ``-p`` is the
broadcast port).  Exit status: 0 on success, 1 if the name server cannot be
found or the command failed (the error is printed as ``Error: Type - message``),
2 for bad usage.

``removematching`` with a pattern that matches every name (``.*``, ``""``...,
or one the name server finds matches all its names) says so in its question,
and only then asks a pyrite name server to remove everything
(``everything=True``).
"""

from __future__ import annotations

import re
import sys
from argparse import ArgumentParser
from collections.abc import Callable, Sequence
from typing import Any

from pyrite.core.errors import NamingError, PyroError

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
    "replicas",
    "addreplica",
    "removereplica",
)


def _tags(metadata: Any) -> str:
    return "{" + ", ".join(repr(tag) for tag in sorted(metadata)) + "}"


def _replica_sets(namesrv: Any) -> dict[str, list[str]]:
    """The name server's replica sets, or {} when it has none (a Pyro5 name server)."""
    try:
        return dict(namesrv.replica_sets())
    except (AttributeError, TypeError, PyroError):
        return {}


def _print_list(result: dict[str, Any], title: str = "", replicas: dict[str, list[str]] | None = None) -> None:
    print(f"--------START LIST {title}")
    for name, (uri, metadata) in sorted(result.items()):
        print(f"{name} --> {uri}")
        if metadata:
            print("    metadata:", _tags(metadata))
        if replicas and name in replicas:
            print("    replicas:", ", ".join(sorted(replicas[name])))
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

    def show(result: dict[str, Any], title: str = "") -> None:
        _print_list(result, title, _replica_sets(namesrv) if result else None)

    def cmd_list() -> None:
        if not args:
            show(namesrv.list(return_metadata=True))
        else:
            show(namesrv.list(prefix=args[0], return_metadata=True), f"- prefix '{args[0]}'")

    def cmd_listmatching() -> None:
        need(1, "one argument: pattern")
        show(namesrv.list(regex=args[0], return_metadata=True), f"- regex '{args[0]}'")

    def cmd_replicas() -> None:
        need(1, "one argument: name")
        uris = sorted(str(uri) for uri in namesrv.replicas(args[0]))
        print(f"{args[0]}: {len(uris)} replica{'s' if len(uris) != 1 else ''}")
        for uri in uris:
            print(f"    {uri}")

    def cmd_addreplica() -> None:
        if len(args) not in (2, 3):
            raise SystemExit(f"{cmd} requires arguments: name uri [ttl seconds]")
        ttl = None
        if len(args) == 3:
            try:
                ttl = float(args[2])
            except ValueError:
                raise SystemExit(f"{cmd}: ttl must be a number of seconds, not {args[2]!r}") from None
        namesrv.register(args[0], args[1], ttl=ttl, replica=True)
        print(f"Added a replica of {args[0]}" + (f" (lease {ttl:g} s)" if ttl else ""))

    def cmd_removereplica() -> None:
        need(2, "two arguments: name uri")
        if namesrv.remove(args[0], uri=args[1]) > 0:
            print(f"Removed the replica {args[1]} of {args[0]}")
        else:
            print("No replica removed.")

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

    def remove_everything(pattern: str) -> int:
        if not _ask(f"The pattern {pattern!r} matches EVERY name. Remove all registrations (y/n)?"):
            return -1
        try:
            return int(namesrv.remove(regex=pattern, everything=True))
        except TypeError:  # a Pyro5 name server: no such flag, and no guard to lift
            return int(namesrv.remove(regex=pattern))

    def cmd_removematching() -> None:
        need(1, "one argument: pattern")
        pattern = args[0]
        if _matches_everything(pattern):
            count = remove_everything(pattern)
        elif not _ask(f"This may remove many registrations matching {pattern!r}. Continue (y/n)?"):
            count = -1
        else:
            try:
                count = int(namesrv.remove(regex=pattern))
            except NamingError as exc:
                if "everything=True" not in str(exc):
                    raise
                count = remove_everything(pattern)  # it matches all the names there are now
        print("No registrations removed." if count < 0 else f"{count} items removed.")

    def cmd_setmeta() -> None:
        need(1, "arguments: name and zero or more meta tags", at_least=True)
        metadata = set(args[1:])
        namesrv.set_metadata(args[0], metadata)
        print(f"Metadata of {args[0]} set" if metadata else f"Metadata of {args[0]} removed")

    def cmd_yplookup_all() -> None:
        need(1, "at least one metadata tag argument", at_least=True)
        show(namesrv.yplookup(meta_all=args, return_metadata=True), " - metadata query")

    def cmd_yplookup_any() -> None:
        need(1, "at least one metadata tag argument", at_least=True)
        show(namesrv.yplookup(meta_any=args, return_metadata=True), " - metadata query")

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
        "replicas": cmd_replicas,
        "addreplica": cmd_addreplica,
        "removereplica": cmd_removereplica,
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
    parser.add_argument(
        "--write-token",
        dest="write_token",
        help="the name server's write token, for changes (default: config.NS_WRITE_TOKEN)",
    )
    parser.add_argument("command", choices=COMMANDS)
    return parser


def main(args: Sequence[str] | None = None) -> int:
    """Parse the command line, find the name server, run the command; returns the exit status."""
    options, command_args = make_parser().parse_known_args(args)
    from pyrite.core.config import config
    from pyrite.core.naming import locate_ns

    if options.verbose:
        print("Looking for the name server...")
    where = f"./u:{options.unixsocket}" if options.unixsocket else options.host
    try:
        namesrv = locate_ns(where, options.port)
    except PyroError as exc:
        print(f"Error: {type(exc).__name__} - {exc}")
        return 1
    token = options.write_token or config.NS_WRITE_TOKEN
    if token:
        namesrv._pyroHandshake = {"write_token": token}
        namesrv._pyroRelease()  # the next call connects again, now with the token
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

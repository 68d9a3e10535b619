"""``pyrite-ns`` (and ``python -m pyrite.nameserver``): run a name server from the command line.

The options are Pyro5's ``pyro5-ns`` options::

    -n/--host HOST        host to bind on (default config.HOST, "localhost")
    -p/--port PORT        port to bind on (default config.NS_PORT, 9090; 0 = any free port)
    -u/--unixsocket PATH  listen on a Unix-domain socket instead
    -s/--storage SPEC     "memory" (default), "sql:path/to/file.sqlite" (persistent), or
                          "redis://[user:password@]host:port/db" (also rediss://, unix://;
                          shared by several name servers; needs pyrite-nameserver[redis])
    --bchost HOST         host to bind the broadcast responder on
    --bcport PORT         port of the broadcast responder (default config.NS_BCPORT, 9091)
    --nathost HOST        external host name, when behind NAT
    --natport PORT        external port, when behind NAT
    -x/--nobc             do not start a broadcast responder
    --write-token TOKEN   pyrite's own: only clients with this token in their handshake data
                          may register, remove or set metadata (default config.NS_WRITE_TOKEN)

It prints the URI it serves (``URI = PYRO:Pyro.NameServer@host:port``) and runs
until interrupted (Ctrl-C or SIGTERM), then exits with status 0.  A start-up
failure (port in use, bad storage) prints one ``Error:`` line on stderr and
exits with status 1.
"""

from __future__ import annotations

import signal
import sys
from argparse import ArgumentParser
from collections.abc import Sequence

from pyrite.core.errors import PyroError

__all__ = ["main", "make_parser"]


def make_parser() -> ArgumentParser:
    """The argument parser of ``pyrite-ns``."""
    parser = ArgumentParser(prog="pyrite-ns", description="Run a pyrite name server until interrupted.")
    parser.add_argument("-n", "--host", dest="host", help="address or host name to listen on (default: config.NS_HOST)")
    parser.add_argument("-p", "--port", dest="port", type=int, help="TCP port to listen on; 0 picks a free one")
    parser.add_argument("-u", "--unixsocket", help="listen on this Unix-domain socket path instead of TCP")
    parser.add_argument(
        "-s",
        "--storage",
        default="memory",
        help="where registrations live: 'memory' (default), 'sql:FILE' for sqlite, or "
        "'redis://host:port/db' (also rediss://, unix://) shared by several name servers",
    )
    # -b/-c are pyrite's short forms; Pyro5 5.17 spells these only --bchost/--bcport
    parser.add_argument("-b", "--bchost", dest="bchost", help="address the broadcast responder binds to")
    parser.add_argument(
        "-c", "--bcport", dest="bcport", type=int, help="UDP port of the broadcast responder; 0 picks a free one"
    )
    parser.add_argument("--nathost", dest="nathost", help="host name clients use when behind NAT")
    parser.add_argument("--natport", dest="natport", type=int, help="port clients use when behind NAT")
    parser.add_argument(
        "-x", "--nobc", dest="enablebc", action="store_false", default=True, help="run without the broadcast responder"
    )
    parser.add_argument(
        "--write-token",
        dest="write_token",
        help="changes (register, remove, set_metadata) need this token in the client's handshake data",
    )
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(args: Sequence[str] | None = None) -> int:
    """Parse the options and run the name server; returns the exit status."""
    options = make_parser().parse_args(args)
    from .server import start_ns_loop  # imported here so --help works without a daemon

    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not in the main thread (e.g. called from a test thread)
        pass
    try:
        start_ns_loop(
            options.host,
            options.port,
            enableBroadcast=options.enablebc,
            bchost=options.bchost,
            bcport=options.bcport,
            unixsocket=options.unixsocket,
            nathost=options.nathost,
            natport=options.natport,
            storage=options.storage,
            write_token=options.write_token,
        )
    except KeyboardInterrupt:
        print("Name server stopped.")
        return 0
    except (PyroError, OSError, ValueError) as exc:
        print(f"Error: {type(exc).__name__} - {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

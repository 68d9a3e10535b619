"""``pyrite-ns`` (and ``python -m pyrite.nameserver``): run a name server from the command line.

The options are Pyro5's ``pyro5-ns`` options::

    -n/--host HOST        host to bind on (default config.HOST, "localhost")
    -p/--port PORT        port to bind on (default config.NS_PORT, 9090; 0 = any free port)
    -u/--unixsocket PATH  listen on a Unix-domain socket instead
    -s/--storage SPEC     "memory" (default) or "sql:path/to/file.sqlite" (persistent)
    --bchost HOST         host to bind the broadcast responder on
    --bcport PORT         port of the broadcast responder (default config.NS_BCPORT, 9091)
    --nathost HOST        external host name, when behind NAT
    --natport PORT        external port, when behind NAT
    -x/--nobc             do not start a broadcast responder

It prints the URI it serves (``URI = PYRO:Pyro.NameServer@host:port``) and runs
until interrupted (Ctrl-C or SIGTERM), then exits with status 0.  A start-up
failure (port in use, bad storage) prints one ``Error:`` line on stderr and
exits with status 1.
"""

from __future__ import annotations

import signal
import sys
from argparse import ArgumentParser
from typing import Sequence

from pyrite.core.errors import PyroError

__all__ = ["main", "make_parser"]


def make_parser() -> ArgumentParser:
    """The argument parser of ``pyrite-ns``."""
    parser = ArgumentParser(prog="pyrite-ns", description="pyrite name server command line launcher.")
    parser.add_argument("-n", "--host", dest="host", help="hostname to bind server on")
    parser.add_argument("-p", "--port", dest="port", type=int, help="port to bind server on (0=random)")
    parser.add_argument("-u", "--unixsocket", help="Unix domain socket name to bind server on")
    parser.add_argument("-s", "--storage", default="memory",
                        help="Storage system to use (memory, sql:file)")
    parser.add_argument("--bchost", dest="bchost", help='hostname to bind broadcast server on (default is "")')
    parser.add_argument("--bcport", dest="bcport", type=int, help="port to bind broadcast server on (0=random)")
    parser.add_argument("--nathost", dest="nathost", help="external hostname in case of NAT")
    parser.add_argument("--natport", dest="natport", type=int, help="external port in case of NAT")
    parser.add_argument("-x", "--nobc", dest="enablebc", action="store_false", default=True,
                        help="don't start a broadcast server")
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(args: Sequence[str] | None = None) -> int:
    """Parse the options and run the name server; returns the exit status."""
    options = make_parser().parse_args(args)
    from .server import start_ns_loop   # imported here so --help works without a daemon
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:   # not in the main thread (e.g. called from a test thread)
        pass
    try:
        start_ns_loop(options.host, options.port, enableBroadcast=options.enablebc, bchost=options.bchost,
                      bcport=options.bcport, unixsocket=options.unixsocket, nathost=options.nathost,
                      natport=options.natport, storage=options.storage)
    except KeyboardInterrupt:
        print("NS shut down.")
        return 0
    except (PyroError, OSError, ValueError) as exc:
        print(f"Error: {type(exc).__name__} - {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

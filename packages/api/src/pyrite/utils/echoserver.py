"""A test server with one echo object: ``pyrite-echoserver`` (Pyro5's ``pyro5-echoserver``).

Start it from a shell and call it from anywhere (pyrite, Pyro5, Pyrolite)::

    pyrite-echoserver -H 127.0.0.1 -p 9999          # or: python -m pyrite.utils.echoserver
    pyrite-echoserver -N -v                           # also start a name server and register there

    with pyrite.api.Proxy("PYRO:test.echoserver@127.0.0.1:9999") as echo:
        echo.echo("hi")                               # -> "hi"

The object is registered as ``test.echoserver`` (with a name server too, given
``-n`` or ``-N``).  Its methods are Pyro5's: ``echo``, ``error``,
``error_with_text``, ``oneway_echo`` and ``oneway_slow`` (oneway), ``slow``
(answers after 5 s), ``generator`` (three items, streamed), ``nan``, ``inf``,
``shutdown`` (ends the server), and the ``verbose`` property.  ``_private`` and
``__private`` stay unreachable; ``__dunder__`` is exposed, as in Pyro5.

The server runs on the multiplex engine, as Pyro5's does.  ``main(args,
returnWithoutLooping=True)`` builds everything and returns ``(daemon, echo,
uri)`` without serving, for tests and embedding.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from pyrite.core.config import config
from pyrite.core.daemon import Daemon
from pyrite.core.exposure import expose, oneway
from pyrite.core.naming import locate_ns
from pyrite.core.uri import URI
from pyrite.nameserver import start_ns

__all__ = ["EchoServer", "NameServer", "start_nameserver", "main", "OBJECT_NAME"]

OBJECT_NAME = "test.echoserver"
"""The object id, and the name server name, the echo object is registered under."""

SLOW_SECONDS = 5.0  # what slow() and oneway_slow() wait, as in Pyro5


def _say(text: str) -> None:
    print(f"{time.asctime()} - {text}", flush=True)


def _printable(value: Any) -> str:
    # a terminal that cannot show every character must not turn an echo into an error
    encoding = sys.stdout.encoding or "utf-8"
    return repr(value).encode(encoding, errors="replace").decode(encoding)


@expose
class EchoServer:
    """The echo object.  Set ``verbose`` (locally or remotely) to print each call as it comes in."""

    _verbose = False
    _must_shutdown = False

    def echo(self, message: Any) -> Any:
        """Return ``message`` unchanged."""
        if self._verbose:
            _say(f"echo: {_printable(message)}")
        return message

    def error(self) -> None:
        """Raise a ValueError (the remote side sees it with pyrite's remote traceback)."""
        if self._verbose:
            _say("error: raising ValueError")
        raise ValueError("echo server: error() raises this on purpose")

    def error_with_text(self) -> None:
        """Raise a ValueError with a message."""
        if self._verbose:
            _say("error_with_text: raising ValueError")
        raise ValueError("the message of the error")

    @oneway
    def oneway_echo(self, message: Any) -> str:
        """Like ``echo``, but oneway: the caller gets nothing back and does not wait."""
        if self._verbose:
            _say(f"oneway_echo: {_printable(message)}")
        return "this value never reaches the caller"

    def slow(self) -> str:
        """Answer after a few seconds."""
        if self._verbose:
            _say("slow: waiting")
        time.sleep(SLOW_SECONDS)
        if self._verbose:
            _say("slow: answering")
        return "Finally, an answer!"

    def generator(self) -> Iterator[str]:
        """Three strings, one at a time (an item stream on the wire)."""
        yield "one"
        yield "two"
        yield "three"

    def nan(self) -> float:
        """A float NaN."""
        return float("nan")

    def inf(self) -> float:
        """A float infinity."""
        return float("inf")

    @oneway
    def oneway_slow(self) -> str:
        """Oneway, and slow: the caller returns at once while this waits a few seconds."""
        if self._verbose:
            _say("oneway_slow: waiting")
        time.sleep(SLOW_SECONDS)
        if self._verbose:
            _say("oneway_slow: done")
        return "this value never reaches the caller"

    def _private(self) -> str:
        """Never reachable remotely (leading underscore)."""
        return "private"

    def __private(self) -> str:
        """Never reachable remotely (name-mangled)."""
        return "private"

    def __dunder__(self) -> str:
        """Reachable remotely: dunder names of an exposed class are, as in Pyro5."""
        return "dunder"

    def shutdown(self) -> None:
        """Ask the server to stop (its request loop ends within a poll interval)."""
        if self._verbose:
            _say("shutting down")
        self._must_shutdown = True

    @property
    def verbose(self) -> bool:
        """Whether calls are printed."""
        return self._verbose

    @verbose.setter
    def verbose(self, onoff: bool) -> None:
        self._verbose = bool(onoff)


class NameServer(threading.Thread):
    """A name server (and its broadcast responder) served in a thread, for ``-N``.

    ``start()`` it, wait for ``started``; ``stop()`` shuts it down and joins.
    """

    def __init__(self, hostname: str) -> None:
        super().__init__(name="pyrite-echoserver-ns", daemon=True)
        self.hostname = hostname
        self.started = threading.Event()
        self.uri: URI | None = None
        self.ns_daemon: Any = None
        self.bc_server: Any = None
        self._bc_thread: threading.Thread | None = None

    def run(self) -> None:
        """Create the name server, signal ``started``, serve until ``stop()``."""
        try:
            self.uri, self.ns_daemon, self.bc_server = start_ns(self.hostname)
        finally:
            self.started.set()  # also on failure: the starter must not wait forever
        if self.bc_server is not None:
            self._bc_thread = self.bc_server.runInThread()
        self.ns_daemon.requestLoop()
        self.ns_daemon.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the name server and the broadcast responder down and wait for their threads."""
        if self.bc_server is not None:
            self.bc_server.close()
            if self._bc_thread is not None:
                self._bc_thread.join(timeout)
        if self.ns_daemon is not None:
            self.ns_daemon.shutdown()
        self.join(timeout)


def start_nameserver(host: str, timeout: float = 30.0) -> NameServer:
    """Start a ``NameServer`` thread on ``host`` and return it once it is serving."""
    ns = NameServer(host)
    ns.start()
    if not ns.started.wait(timeout) or ns.uri is None:
        raise RuntimeError(f"the name server on {host!r} did not start")
    return ns


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyrite-echoserver", description="Serve pyrite's test echo object (and optionally a name server)."
    )
    parser.add_argument("-H", "--host", default="localhost", help="host name or address to listen on (%(default)s)")
    parser.add_argument("-p", "--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument("-u", "--unixsocket", help="listen on this Unix domain socket instead of TCP")
    parser.add_argument("-n", "--naming", action="store_true", help="register the object with a name server")
    parser.add_argument("-N", "--nameserver", action="store_true", help="start a name server too (implies -n)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every call")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    return parser


def main(args: Sequence[str] | None = None, returnWithoutLooping: bool = False) -> Any:
    """Run the echo server (``pyrite-echoserver``); see the module docstring for the options."""
    options = _parser().parse_args(args)
    if options.verbose:
        options.quiet = False
    if not options.quiet:
        print("pyrite echo server starting.", flush=True)
    config.SERVERTYPE = "multiplex"
    namesvr = None
    if options.nameserver:
        options.naming = True
        namesvr = start_nameserver(options.host)
    daemon = Daemon(host=options.host, port=options.port, unixsocket=options.unixsocket)
    echo = EchoServer()
    echo._verbose = options.verbose
    uri = daemon.register(echo, OBJECT_NAME)
    if options.naming:
        if namesvr is not None and namesvr.uri is not None:
            ns = locate_ns(namesvr.uri.host, namesvr.uri.port)
        else:
            ns = locate_ns()
        with ns:
            ns.register(OBJECT_NAME, uri)
            if options.verbose:
                print(f"registered with the name server at {ns._pyroUri}", flush=True)
        if options.verbose and namesvr is not None:
            where = namesvr.bc_server.locationStr if namesvr.bc_server is not None else "none"
            print(f"name server broadcast responder: {where}", flush=True)
    elif options.verbose:
        print("no name server used.", flush=True)
    if not options.quiet:
        print(f"object name: {OBJECT_NAME}", flush=True)
        print(f"echo uri: {uri}", flush=True)
        print("echo server running.", flush=True)
    if returnWithoutLooping:
        return daemon, echo, uri
    try:
        daemon.requestLoop(loopCondition=lambda: not echo._must_shutdown)
    finally:
        daemon.close()
        if namesvr is not None:
            namesvr.stop()
    if not options.quiet:
        print("echo server stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""pyrite in one go: a name server, a server registered in it, a client that finds it by name.

Run it with ``hatch run demo`` (or ``python examples/demo.py``). Everything
runs in this one process on 127.0.0.1, with broadcast discovery off, and
everything is stopped again before it exits::

    python examples/demo.py                      # name server on 9090 if free, else a free port
    python examples/demo.py --serializer json    # any installed serializer
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time

import pyrite.api as api

HOST = "127.0.0.1"
DEFAULT_NS_PORT = 9090
OBJECT_NAME = "example.demo.greeter"


@api.expose
class Greeter:
    """The demo's remote object."""

    def __init__(self) -> None:
        self._served = 0
        self._lock = threading.Lock()

    def greet(self, name: str) -> str:
        with self._lock:
            self._served += 1
            count = self._served
        return f"Hello {name}, greeting #{count} from process {os.getpid()}"

    @property
    def served(self) -> int:
        return self._served


def port_is_free(port: int) -> bool:
    """True if nothing listens on HOST:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def start_in_thread(daemon: api.Daemon, name: str) -> threading.Thread:
    thread = threading.Thread(target=daemon.requestLoop, name=name, daemon=True)
    thread.start()
    return thread


def stop(daemon: api.Daemon, thread: threading.Thread, what: str) -> bool:
    """Shut a daemon down and wait (boundedly) for its loop to end."""
    daemon.shutdown()
    thread.join(10)
    daemon.close()
    stopped = not thread.is_alive()
    print(f"       {what}: {'stopped' if stopped else 'DID NOT STOP'}")
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serializer", default=None, help="serializer for the client (default: config)")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"name server port (default: {DEFAULT_NS_PORT} if free, else any free port)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()

    port = args.port if args.port is not None else (DEFAULT_NS_PORT if port_is_free(DEFAULT_NS_PORT) else 0)
    print(f"pyrite {api.__version__} demo")
    print(f"[1/5] starting a name server on {HOST}:{port or '<free port>'} (broadcast off)")
    try:
        ns_uri, ns_daemon, _ = api.start_ns(host=HOST, port=port, enableBroadcast=False)
    except (OSError, api.errors.PyroError) as exc:
        if args.port is not None:
            raise
        # 9090 was taken between the check and the bind: any free port will do
        print(f"       port {port} is busy ({exc}); using a free port")
        ns_uri, ns_daemon, _ = api.start_ns(host=HOST, port=0, enableBroadcast=False)
    ns_thread = start_in_thread(ns_daemon, "name server")
    print(f"       name server: {ns_uri}")
    # the client below finds the name server through config, as a deployed client would
    api.config.NS_HOST = ns_uri.host
    api.config.NS_PORT = ns_uri.port

    print("[2/5] starting a daemon with a Greeter object")
    daemon = api.Daemon(host=HOST)
    uri = daemon.register(Greeter(), "demo.greeter")
    server_thread = start_in_thread(daemon, "server")
    print(f"       object: {uri}")

    ok = True
    try:
        print(f"[3/5] registering it in the name server as {OBJECT_NAME!r}")
        with api.locate_ns() as ns:
            ns.register(OBJECT_NAME, uri, metadata={"demo", "greeter"})
            print(f"       the name server now lists: {', '.join(sorted(ns.list()))}")

        print(f"[4/5] client: calling PYRONAME:{OBJECT_NAME}")
        with api.Proxy(f"PYRONAME:{OBJECT_NAME}") as greeter:
            if args.serializer:
                greeter._pyroSerializer = args.serializer
            for name in ("Alice", "Bob"):
                print(f"       greet({name!r}) -> {greeter.greet(name)!r}")
            print(f"       PYRONAME:{OBJECT_NAME} resolves to {api.resolve('PYRONAME:' + OBJECT_NAME)}")
            print(f"       remote property 'served' = {greeter.served}")

        with api.locate_ns() as ns:
            ns.remove(OBJECT_NAME)
    finally:
        print("[5/5] shutting down")
        ok &= stop(daemon, server_thread, "server daemon")
        ok &= stop(ns_daemon, ns_thread, "name server")

    print(f"Demo finished in {time.monotonic() - started:.2f} s.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The remote objects the interop tests serve, built once for each library.

``build(lib)`` makes the same classes decorated with either Pyro5's or
pyrite's ``expose``/``oneway``/``callback``, and reading that library's
``current_context`` and error classes, so both directions test one service.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

JOIN = 10.0  # seconds any daemon thread gets to finish

# Every wait inside a service is bounded, so a broken test never hangs a daemon thread forever.
SERVICE_WAIT = 10.0


@dataclass
class Lib:
    """What a test needs from one library: its api module, its errors module, its name."""

    name: str
    api: Any
    errors: Any


def pyro5() -> Lib:
    import Pyro5.api
    import Pyro5.errors

    return Lib("Pyro5", Pyro5.api, Pyro5.errors)


def pyrite() -> Lib:
    import pyrite.api
    from pyrite.core import errors

    return Lib("pyrite", pyrite.api, errors)


def build(lib: Lib) -> SimpleNamespace:
    """The service classes, decorated with ``lib``'s decorators."""
    api, errors = lib.api, lib.errors

    @api.expose
    class Child:
        """Returned by Service.make_child: travels back as an autoproxy."""

        def __init__(self, name: str) -> None:
            self.name = name

        def whoami(self) -> str:
            return f"child {self.name}"

    @api.expose
    class Service:
        """One object per test; the test holds it too and sees its events."""

        def __init__(self) -> None:
            self._value = 1
            self.release = threading.Event()
            self.oneway_done = threading.Event()
            self.counter = 0
            self.counter_lock = threading.Lock()
            self.children: list[Any] = []

        # plain calls
        def echo(self, value: Any) -> Any:
            return value

        def add(self, a: Any, b: Any) -> Any:
            return a + b

        def greet(self, name: str, punctuation: str = "!") -> str:
            return f"hello {name}{punctuation}"

        # attributes
        @property
        def value(self) -> int:
            return self._value

        @value.setter
        def value(self, new: int) -> None:
            self._value = new

        @property
        def readonly(self) -> str:
            return "read only"

        # errors
        def fail(self, message: str) -> None:
            raise ValueError(message)

        def fail_naming(self) -> None:
            raise errors.NamingError("no such name here")

        def fail_key(self) -> None:
            return {}["missing"]

        # oneway: blocks until the test releases it, so a blocking call would deadlock the test
        @api.oneway
        def hold(self) -> None:
            if self.release.wait(SERVICE_WAIT):
                self.oneway_done.set()

        @api.oneway
        def bump(self, n: int = 1) -> None:
            with self.counter_lock:
                self.counter += n

        def count(self) -> int:
            return self.counter

        # streaming
        def generate(self, n: int):
            for i in range(n):
                yield i * 10

        def endless(self):
            i = 0
            while True:
                yield i
                i += 1

        def iterator(self, items: list[Any]):
            return iter(items)

        # autoproxy
        def make_child(self, name: str) -> Any:
            child = Child(name)
            self._pyroDaemon.register(child)
            self.children.append(child)
            return child

        # SerializedBlob: a blob arrives still serialized; the method unpacks it
        def blob(self, blob: Any) -> list[Any]:
            return [type(blob).__name__, blob.info, blob.deserialized()]

        # call context
        def correlation(self) -> str | None:
            cid = api.current_context.correlation_id
            return str(cid) if cid else None

        # timeouts
        def slow(self) -> str:
            self.release.wait(SERVICE_WAIT)
            return "slow done"

        # callbacks into the client's daemon
        def call_back(self, listener: Any, n: int) -> list[Any]:
            return [listener.notify(i) for i in range(n)]

        def call_back_failing(self, listener: Any) -> str:
            try:
                listener.explode()
            except ZeroDivisionError as exc:
                return f"caught {type(exc).__name__}"
            return "no exception"

    @api.expose
    class Listener:
        """Lives in the client's daemon; the server calls it."""

        def __init__(self) -> None:
            self.seen: list[int] = []

        def notify(self, i: int) -> str:
            self.seen.append(i)
            return f"got {i}"

        @api.callback
        def explode(self) -> None:
            return 1 // 0

    class HandshakeDaemon(api.Daemon):
        """Lets in clients that send the default handshake or the right password; remembers what came."""

        def validateHandshake(self, conn: Any, data: Any) -> Any:
            self.handshakes = getattr(self, "handshakes", [])
            self.handshakes.append(data)
            if data == "hello":  # what a proxy sends unless told otherwise
                return "hello"
            if not isinstance(data, dict) or data.get("password") != "secret":
                raise ValueError("wrong password")
            return {"welcome": data["user"]}

    return SimpleNamespace(Service=Service, Child=Child, Listener=Listener, HandshakeDaemon=HandshakeDaemon)


class Served:
    """A daemon running its request loop in a thread."""

    def __init__(self, daemon: Any, name: str) -> None:
        self.daemon = daemon
        self.thread = threading.Thread(target=daemon.requestLoop, name=name, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.daemon.shutdown()
        self.thread.join(JOIN)
        alive = self.thread.is_alive()
        self.daemon.close()
        assert not alive, f"{self.thread.name} did not stop"


def serve(daemon: Any, name: str) -> Served:
    """Run ``daemon.requestLoop()`` in a thread named ``name``; call ``.stop()`` when done."""
    return Served(daemon, name)

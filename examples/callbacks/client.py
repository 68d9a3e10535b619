"""The client: serves a listener object in its own daemon and hands it to the worker."""

from __future__ import annotations

import sys
import threading

import pyrite.api as api


@api.expose
class ProgressListener:
    """Called by the server while it works."""

    def __init__(self) -> None:
        self.finished = threading.Event()

    def progress(self, job: str, step: int, steps: int) -> None:
        print(f"  [callback] {job}: step {step}/{steps}")

    @api.oneway
    def done(self, job: str) -> None:
        # oneway: the server does not wait for this to return
        print(f"  [callback] {job}: finished")
        self.finished.set()

    @api.callback
    def explode(self) -> None:
        return 1 // 0


def run(uri: str) -> None:
    listener = ProgressListener()
    with api.Daemon(host="127.0.0.1") as daemon:
        daemon.register(listener)  # registered: it travels to the server as a proxy
        thread = threading.Thread(target=daemon.requestLoop, daemon=True)
        thread.start()
        try:
            with api.Proxy(uri) as worker:
                print(worker.work("backup", 3, listener))
                if not listener.finished.wait(10):
                    raise RuntimeError("the oneway 'done' callback never arrived")
                print(worker.try_bad_listener(listener))
        finally:
            daemon.shutdown()
            thread.join(10)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python client.py PYRO:example.worker@host:port")
    run(sys.argv[1])


if __name__ == "__main__":
    main()

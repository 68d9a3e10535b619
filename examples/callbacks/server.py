"""The worker: does jobs and reports progress to a listener the client passes in."""

from __future__ import annotations

import sys

import pyrite.api as api

OBJECT_ID = "example.worker"


@api.expose
class Worker:
    """Processes jobs, calling back ``listener.progress`` and ``listener.done``."""

    def work(self, job: str, steps: int, listener) -> str:
        for step in range(1, steps + 1):
            listener.progress(job, step, steps)
        listener.done(job)
        return f"{job}: {steps} steps done"

    def try_bad_listener(self, listener) -> str:
        try:
            listener.explode()
        except ZeroDivisionError as exc:
            return f"the listener raised {type(exc).__name__}"
        return "the listener did not raise"


def make_daemon(host: str = "127.0.0.1", port: int = 0) -> tuple[api.Daemon, api.URI]:
    daemon = api.Daemon(host=host, port=port)
    return daemon, daemon.register(Worker, OBJECT_ID)


def main() -> None:
    daemon, uri = make_daemon(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print("Ready. Object uri =", uri, flush=True)
    with daemon:
        daemon.requestLoop()


if __name__ == "__main__":
    main()
